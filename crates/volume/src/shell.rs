//! Quoting for POSIX shells, for commands sent over SSH or run with `sh -c` in a container.

/// Quotes `value` for a POSIX shell; plain words stay as they are.
pub fn quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Builds `sh -c SCRIPT sh ARGS...` as one string, so that the script reads its values from
/// `$1`, `$2`... and no value is ever parsed as shell code.
pub fn sh_command(script: &str, args: &[&str]) -> String {
    let mut command = format!("sh -c {} sh", quote(script));
    for arg in args {
        command.push(' ');
        command.push_str(&quote(arg));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_single_quotes() {
        assert_eq!(quote("/var/lib/a"), "/var/lib/a");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
