//! Host patterns of an INI host line: an optional `:PORT`, and ranges such as `node[01:10]`,
//! `db-[a:f]` or `x[1:10:2]` expanded to host names, with ansible 2.14's rules.
//!
//! Ansible first tries to read the pattern as a host name, IPv4 or IPv6 address with a port
//! (`host:22`, `[2001:db8::1]:22`). When that fails, the whole pattern is the name and there is no
//! port, so `fe80::1` stays one host. Then every `[BEGIN:END(:STEP)]` is expanded, left to right:
//! numeric bounds keep the zero padding of BEGIN (`[01:10]` gives `01`..`10`, and BEGIN and END
//! must then have the same width), single letters expand alphabetically over `a..zA..Z`.

use std::sync::OnceLock;

use regex::Regex;

/// A host pattern split into names and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// Host names in expansion order.
    pub hosts: Vec<String>,
    /// The port given with `:PORT`, if any.
    pub port: Option<u64>,
}

/// Why a pattern could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A range is malformed; the text says how, in ansible's words.
    Range(String),
    /// The pattern itself is not allowed.
    Pattern(String),
}

const RANGE_NUMERIC: &str = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]";
const RANGE_HEX: &str = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]";
const RANGE_ALNUM: &str = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";

struct Patterns {
    bracketed_hostport: Regex,
    hostport: Regex,
    ipv4: Regex,
    ipv6: Regex,
    range: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let i4 = format!(r"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{RANGE_NUMERIC})");
        let i6 = format!(r"(?:[0-9a-f]{{1,4}}|{RANGE_HEX})");
        // Ansible's IPv6 expression is `^A|B|...|Z$`: only the last branch is anchored at the end,
        // so a string that merely starts like an IPv6 address (`fe80::1%eth0`) is accepted too.
        let ipv6 = [
            format!(r"(?:{i6}:){{7}}{i6}"),
            format!(r"(?:{i6}:){{1,6}}:"),
            format!(r"(?:{i6}:)(?::{i6}){{1,6}}"),
            format!(r"(?:{i6}:){{2}}(?::{i6}){{1,5}}"),
            format!(r"(?:{i6}:){{3}}(?::{i6}){{1,4}}"),
            format!(r"(?:{i6}:){{4}}(?::{i6}){{1,3}}"),
            format!(r"(?:{i6}:){{5}}(?::{i6}){{1,2}}"),
            format!(r"(?:{i6}:){{6}}(?::{i6})"),
            format!(r":(?::{i6}){{1,6}}"),
            format!(r"{i6}?::"),
            format!(r"(?:0:){{6}}(?:{i6}\.){{3}}{i6}"),
            format!(r"::(?:ffff:)?(?:{i6}\.){{3}}{i6}"),
            format!(r"(?:0:){{5}}ffff:(?:{i6}\.){{3}}{i6}$"),
        ]
        .join("|");
        Patterns {
            bracketed_hostport: Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("valid regex"),
            hostport: Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("valid regex"),
            ipv4: Regex::new(&format!(r"(?i)^(?:{i4}\.){{3}}{i4}$")).expect("valid regex"),
            ipv6: Regex::new(&format!(r"(?i)^(?:{ipv6})")).expect("valid regex"),
            range: Regex::new(&format!("(?i)^{RANGE_ALNUM}")).expect("valid regex"),
        }
    })
}

/// Returns true when `name` is a host name in ansible's sense: dot-separated labels of word
/// characters, `-` and ranges, each label starting with a word character or a range and not
/// ending with `_` or `-`.
fn is_hostname(name: &str) -> bool {
    name.split('.').all(|label| {
        let mut rest = label;
        let mut first = true;
        let mut last = None;
        while let Some(c) = rest.chars().next() {
            if c == '[' {
                match patterns().range.find(rest) {
                    Some(found) => {
                        rest = &rest[found.end()..];
                        last = Some(']');
                    }
                    None => return false,
                }
            } else if c.is_alphanumeric() || c == '_' || (c == '-' && !first) {
                rest = &rest[c.len_utf8()..];
                last = Some(c);
            } else {
                return false;
            }
            first = false;
        }
        matches!(last, Some(c) if c != '_' && c != '-')
    })
}

/// Splits `address` into host and port as ansible's `parse_address(allow_ranges=True)` does, or
/// returns `None` when it is not a host name or address.
fn parse_address(address: &str) -> Option<(String, Option<u64>)> {
    let patterns = patterns();
    let mut address = address.to_owned();
    let mut port = None;
    // Both forms are tried in turn, so `[host]:22` is unwrapped and then tried as `host:PORT`.
    for form in [&patterns.bracketed_hostport, &patterns.hostport] {
        if let Some(captures) = form.captures(&address) {
            let host = captures[1].to_owned();
            port = Some(captures[2].parse::<u64>().ok()?);
            address = host;
        }
    }
    if patterns.ipv4.is_match(&address) || patterns.ipv6.is_match(&address) || is_hostname(&address) {
        Some((address, port))
    } else {
        None
    }
}

/// Expands one host pattern, the first word of a host line.
///
/// # Errors
/// [`PatternError::Range`] for a malformed range, [`PatternError::Pattern`] for a pattern ending in
/// `:` without a port or a YAML document marker.
pub fn expand(pattern: &str) -> Result<Expanded, PatternError> {
    let (name, port) = parse_address(pattern).unwrap_or_else(|| (pattern.to_owned(), None));
    if pattern.trim().ends_with(':') && port.is_none() {
        return Err(PatternError::Pattern(format!(
            "invalid host pattern '{pattern}': a trailing ':' is reserved for a port"
        )));
    }
    let hosts = if name.contains('[') { expand_ranges(&name)? } else { vec![name] };
    if hosts.iter().any(|host| host.trim() == "---") {
        return Err(PatternError::Pattern(format!(
            "invalid host pattern '{pattern}': '---' is normally a sign this is a YAML file"
        )));
    }
    Ok(Expanded { hosts, port })
}

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Expands the first `[...]` of `name`, then the ones left in each result.
fn expand_ranges(name: &str) -> Result<Vec<String>, PatternError> {
    let range_error = |text: &str| PatternError::Range(text.to_owned());
    let open = name.find('[').expect("caller checked for '['");
    let close = name.find(']').ok_or_else(|| range_error("missing ']'"))?;
    if close < open || name[open + 1..close].contains('[') {
        return Err(range_error("brackets do not pair up"));
    }
    let head = &name[..open];
    let body = &name[open + 1..close];
    let tail = &name[close + 1..];

    let bounds: Vec<&str> = body.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(range_error("host range must be begin:end or begin:end:step"));
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(range_error("host range must specify end value"));
    }
    let step_text = bounds.get(2).copied().unwrap_or("1");
    let step: i64 = step_text.trim().parse().map_err(|_| range_error(&format!("invalid step '{step_text}'")))?;
    if step <= 0 {
        return Err(range_error(&format!("step must be a positive number, got '{step_text}'")));
    }
    let width = if begin.starts_with('0') && begin.len() > 1 {
        if begin.len() != end.len() {
            return Err(range_error("host range must specify equal-length begin and end formats"));
        }
        begin.len()
    } else {
        0
    };

    let items: Vec<String> = match (LETTERS.find(begin), LETTERS.find(end)) {
        (Some(first), Some(last)) => {
            if first > last {
                return Err(range_error("host range must have begin <= end"));
            }
            LETTERS[first..=last].chars().step_by(step as usize).map(|c| pad(&c.to_string(), width)).collect()
        }
        _ => {
            let number = |text: &str| -> Result<i64, PatternError> {
                text.trim().replace('_', "").parse::<i64>().map_err(|_| range_error(&format!("'{text}' is neither a number nor a letter")))
            };
            let (first, last) = (number(begin)?, number(end)?);
            // NOTE: ansible silently expands a reversed numeric range such as [5:1] to no host at
            // all; here it is rejected, because an inventory edit must never drop hosts unseen.
            if first > last {
                return Err(range_error("host range must have begin <= end"));
            }
            (first..=last).step_by(step as usize).map(|n| pad(&n.to_string(), width)).collect()
        }
    };

    let mut hosts = Vec::new();
    for item in items {
        let host = format!("{head}{item}{tail}");
        if host.contains('[') {
            hosts.extend(expand_ranges(&host)?);
        } else {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

fn pad(text: &str, width: usize) -> String {
    format!("{text:0>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(pattern: &str) -> Vec<String> {
        expand(pattern).expect("expands").hosts
    }

    #[test]
    fn range_numeric_padded_step_alpha() {
        assert_eq!(hosts("node[01:03]"), ["node01", "node02", "node03"]);
        assert_eq!(hosts("x[1:10:3]"), ["x1", "x4", "x7", "x10"]);
        assert_eq!(hosts("db-[a:c].example.com"), ["db-a.example.com", "db-b.example.com", "db-c.example.com"]);
        assert_eq!(hosts("10.0.0.[1:2]"), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(hosts("r[1:2]-[a:b]"), ["r1-a", "r1-b", "r2-a", "r2-b"]);
        assert_eq!(hosts("m[:2]"), ["m0", "m1", "m2"]);
    }

    #[test]
    fn range_malformed_rejected() {
        for pattern in ["node[1:]", "node[01:100]", "node[1:2:3:4]", "node[a:5]", "node[c:a]", "node[5:1]", "node[1:3:0]", "node[1:3"] {
            assert!(matches!(expand(pattern), Err(PatternError::Range(_))), "{pattern}");
        }
    }

    #[test]
    fn port_forms() {
        assert_eq!(expand("host:2222").unwrap(), Expanded { hosts: vec!["host".into()], port: Some(2222) });
        assert_eq!(expand("[2001:db8::1]:22").unwrap(), Expanded { hosts: vec!["2001:db8::1".into()], port: Some(22) });
        assert_eq!(expand("fe80::1").unwrap(), Expanded { hosts: vec!["fe80::1".into()], port: None });
        assert_eq!(expand("node[01:02]:2222").unwrap().port, Some(2222));
        assert_eq!(expand("my_host_:22").unwrap(), Expanded { hosts: vec!["my_host_:22".into()], port: None });
    }

    #[test]
    fn pattern_trailing_colon_rejected() {
        assert!(matches!(expand("host:"), Err(PatternError::Pattern(_))));
    }
}
