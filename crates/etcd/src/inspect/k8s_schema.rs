//! Schema-driven decoding of Kubernetes protobuf messages into the JSON the API server returns.
//!
//! `k8s_schema.txt` lists, for each message of the Kubernetes API, the number, JSON name and type
//! of its fields. `scripts/gen-k8s-schema.py` writes it from the published protobuf bindings. With
//! it, any built-in kind decodes field by field. A few messages have a JSON form of their own
//! (times, quantities, int-or-string, raw JSON); [`special`] handles them.
//!
//! NOTE: the schema is that of a recent Kubernetes release. Field numbers are never reused, so
//! objects written by older releases (OpenShift 3.11 is Kubernetes 1.11) decode fully, except
//! fields that were removed since; those are listed in the decoding note. OpenShift's own kinds
//! (`/openshift.io`) are stored as JSON in 3.x and need no schema.
//!
//! NOTE: the API server applies defaults when it reads an object; a value it never stored (a new
//! claim's `status.phase: Pending`) is not in the snapshot, so it is not in the decoded object.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Number, Value as Json};

use super::k8s_proto::base64;
use super::protowire::{fields, Value};

const SCHEMA_TEXT: &str = include_str!("k8s_schema.txt");

/// Repetition of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Repeated,
    /// A map with string keys, written as entries (key 1, value 2).
    Map,
    /// An embedded message whose fields JSON puts in the parent.
    Inline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Int,
    Bool,
    Double,
    Bytes,
    Message(&'static str),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    number: u32,
    json: &'static str,
    shape: Shape,
    kind: Kind,
}

type Messages = HashMap<&'static str, Vec<Field>>;

fn messages() -> &'static Messages {
    static MESSAGES: OnceLock<Messages> = OnceLock::new();
    MESSAGES.get_or_init(|| parse(SCHEMA_TEXT))
}

/// Parses the schema text; lines it cannot read are skipped (a unit test checks there are none).
fn parse(text: &'static str) -> Messages {
    let mut out: Messages = HashMap::new();
    let mut current: Option<&'static str> = None;
    for line in text.lines() {
        let mut words = line.split(' ');
        match words.next() {
            Some("m") => {
                let name = words.next().unwrap_or_default();
                out.entry(name).or_default();
                current = Some(name);
            }
            Some(number) => {
                let (Some(message), Ok(number), Some(json), Some(kind)) = (current, number.parse(), words.next(), words.next()) else {
                    continue;
                };
                let (shape, kind) = match kind.as_bytes().first() {
                    Some(b'*') => (Shape::Repeated, &kind[1..]),
                    Some(b'%') => (Shape::Map, &kind[1..]),
                    Some(b'^') => (Shape::Inline, &kind[1..]),
                    _ => (Shape::Single, kind),
                };
                let kind = match kind {
                    "s" => Kind::String,
                    "i" => Kind::Int,
                    "b" => Kind::Bool,
                    "d" => Kind::Double,
                    "y" => Kind::Bytes,
                    "M" => match words.next() {
                        Some(target) => Kind::Message(target),
                        None => continue,
                    },
                    _ => continue,
                };
                if let Some(list) = out.get_mut(message) {
                    list.push(Field { number, json, shape, kind });
                }
            }
            None => {}
        }
    }
    out
}

/// The module of the bindings that contains an API group, as `api/GROUP/VERSION` resolves in
/// Kubernetes' own layout.
fn group_module(group: &str) -> Option<&'static str> {
    Some(match group {
        "" | "core" => "api.core",
        "apps" => "api.apps",
        "batch" => "api.batch",
        "autoscaling" => "api.autoscaling",
        "policy" => "api.policy",
        "extensions" => "api.extensions",
        "rbac.authorization.k8s.io" => "api.rbac",
        "networking.k8s.io" => "api.networking",
        "storage.k8s.io" => "api.storage",
        "scheduling.k8s.io" => "api.scheduling",
        "coordination.k8s.io" => "api.coordination",
        "discovery.k8s.io" => "api.discovery",
        "events.k8s.io" => "api.events",
        "node.k8s.io" => "api.node",
        "certificates.k8s.io" => "api.certificates",
        "admissionregistration.k8s.io" => "api.admissionregistration",
        "flowcontrol.apiserver.k8s.io" => "api.flowcontrol",
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions",
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration",
        _ => return None,
    })
}

/// The message that encodes objects of `kind` in `api_version`. When the schema no longer has that
/// version (batch/v2alpha1 was removed in Kubernetes 1.21), another version of the group with
/// the same kind is used, and the second value is a note about it.
pub fn message_for(api_version: &str, kind: &str) -> Option<(&'static str, Option<String>)> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let module = group_module(group)?;
    let messages = messages();
    let exact = format!("{module}.{version}.{kind}");
    if let Some((name, _)) = messages.get_key_value(exact.as_str()) {
        return Some((name, None));
    }
    let prefix = format!("{module}.");
    let suffix = format!(".{kind}");
    let mut others: Vec<&'static str> = messages.keys().copied().filter(|name| name.starts_with(&prefix) && name.ends_with(&suffix) && name[prefix.len()..].split('.').count() == 2).collect();
    others.sort_unstable();
    // Prefer a stable version (v1 over v1beta1).
    let chosen = others.iter().find(|name| !name.contains("alpha") && !name.contains("beta")).or(others.first())?;
    Some((chosen, Some(format!("{api_version} {kind} is not in caasctl's schema; decoded with the fields of {chosen}"))))
}

/// Decodes `bytes` as `message`. Fields the schema does not know are named in `unknown`.
pub fn decode(message: &str, bytes: &[u8], unknown: &mut Vec<String>) -> Result<Json, String> {
    let mut out = Map::new();
    decode_into(message, bytes, &mut out, unknown, 0)?;
    Ok(Json::Object(out))
}

/// Kubernetes objects nest a few dozen levels at most; deeper input is hostile.
const MAX_DEPTH: usize = 64;

fn decode_into(message: &str, bytes: &[u8], out: &mut Map<String, Json>, unknown: &mut Vec<String>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("messages nest deeper than {MAX_DEPTH} levels"));
    }
    let Some(schema) = messages().get(message) else {
        unknown.push(format!("message {message}"));
        return Ok(());
    };
    for field in fields(bytes) {
        let (number, value) = field?;
        let Some(spec) = schema.iter().find(|f| f.number == number) else {
            // A field removed from Kubernetes since (ObjectMeta's clusterName, 15) is still written
            // empty by older servers; only one that contains data is worth a note.
            if !matches!(value, Value::Bytes([]) | Value::Varint(0)) {
                unknown.push(format!("{message} field {number}"));
            }
            continue;
        };
        match spec.shape {
            Shape::Single => {
                let item = single(spec.kind, value, unknown, depth)?;
                // Protobuf carries empty strings and zero times that the API server's JSON leaves
                // out. Zero numbers and false stay: some are meaningful (revisionHistoryLimit: 0).
                if item.is_null() || item.as_str() == Some("") {
                    continue;
                }
                out.insert(spec.json.to_owned(), item);
            }
            Shape::Repeated => {
                let items = repeated(spec.kind, value, unknown, depth)?;
                let slot = out.entry(spec.json).or_insert_with(|| Json::Array(Vec::new()));
                if let Json::Array(list) = slot {
                    list.extend(items);
                }
            }
            Shape::Map => {
                let (key, item) = map_entry(spec.kind, value, unknown, depth)?;
                let slot = out.entry(spec.json).or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(map) = slot {
                    map.insert(key, item);
                }
            }
            Shape::Inline => {
                let Kind::Message(inner) = spec.kind else { continue };
                decode_into(inner, value.bytes().unwrap_or_default(), out, unknown, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn single(kind: Kind, value: Value<'_>, unknown: &mut Vec<String>, depth: usize) -> Result<Json, String> {
    Ok(match kind {
        Kind::String => Json::String(value.string().ok_or("a string field is not length-delimited")?),
        Kind::Int => Json::from(value.int64().unwrap_or(0)),
        Kind::Bool => Json::Bool(value.int64().unwrap_or(0) != 0),
        Kind::Double => match value {
            Value::Fixed64(bits) => Number::from_f64(f64::from_bits(bits)).map_or(Json::Null, Json::Number),
            _ => return Err("a double field is not 64-bit".into()),
        },
        Kind::Bytes => Json::String(base64(value.bytes().unwrap_or_default())),
        Kind::Message(name) => {
            let bytes = value.bytes().ok_or_else(|| format!("{name} is not length-delimited"))?;
            match special(name, bytes)? {
                Some(json) => json,
                None => {
                    let mut inner = Map::new();
                    decode_into(name, bytes, &mut inner, unknown, depth + 1)?;
                    Json::Object(inner)
                }
            }
        }
    })
}

fn repeated(kind: Kind, value: Value<'_>, unknown: &mut Vec<String>, depth: usize) -> Result<Vec<Json>, String> {
    // Packed integers arrive as one length-delimited run of varints.
    if let (Kind::Int, Value::Bytes(mut run)) = (kind, value) {
        let mut items = Vec::new();
        while !run.is_empty() {
            let (number, rest) = varint(run)?;
            items.push(Json::from(number as i64));
            run = rest;
        }
        return Ok(items);
    }
    Ok(vec![single(kind, value, unknown, depth)?])
}

fn varint(input: &[u8]) -> Result<(u64, &[u8]), String> {
    let mut value = 0u64;
    for (index, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((value, &input[index + 1..]));
        }
    }
    Err("packed field ends inside a varint".into())
}

fn map_entry(kind: Kind, value: Value<'_>, unknown: &mut Vec<String>, depth: usize) -> Result<(String, Json), String> {
    let entry = value.bytes().ok_or("a map entry is not length-delimited")?;
    let (mut key, mut item) = (String::new(), None);
    for field in fields(entry) {
        match field? {
            (1, v) => key = v.string().unwrap_or_default(),
            (2, v) => item = Some(single(kind, v, unknown, depth)?),
            _ => {}
        }
    }
    // An entry without a value holds the type's empty value.
    let item = item.unwrap_or_else(|| match kind {
        Kind::Message(_) => Json::Object(Map::new()),
        _ => Json::String(String::new()),
    });
    Ok((key, item))
}

/// Messages whose JSON form is not an object of their fields.
fn special(name: &str, bytes: &[u8]) -> Result<Option<Json>, String> {
    let tail = name.rsplit_once('.').map_or(name, |(_, tail)| tail);
    let module = name.rsplit_once('.').map_or("", |(module, _)| module);
    let json = match (module, tail) {
        ("apimachinery.pkg.apis.meta.v1", "Time") => time(bytes, false)?,
        ("apimachinery.pkg.apis.meta.v1", "MicroTime") => time(bytes, true)?,
        ("apimachinery.pkg.apis.meta.v1", "Duration") => Json::String(duration(int_field(bytes, 1)?)),
        ("apimachinery.pkg.api.resource", "Quantity") => Json::String(string_field(bytes, 1)?),
        ("apimachinery.pkg.util.intstr", "IntOrString") => {
            if int_field(bytes, 1)? == 0 {
                Json::from(int_field(bytes, 2)?)
            } else {
                Json::String(string_field(bytes, 3)?)
            }
        }
        ("apimachinery.pkg.runtime", "RawExtension") | ("apimachinery.pkg.apis.meta.v1", "FieldsV1") => raw_json(bytes)?,
        (module, "JSON") if module.starts_with("apiextensions_apiserver.") => raw_json(bytes)?,
        _ => return Ok(None),
    };
    Ok(Some(json))
}

fn int_field(bytes: &[u8], number: u32) -> Result<i64, String> {
    let mut out = 0;
    for field in fields(bytes) {
        let (n, value) = field?;
        if n == number {
            out = value.int64().unwrap_or(0);
        }
    }
    Ok(out)
}

fn string_field(bytes: &[u8], number: u32) -> Result<String, String> {
    let mut out = String::new();
    for field in fields(bytes) {
        let (n, value) = field?;
        if n == number {
            out = value.string().unwrap_or_default();
        }
    }
    Ok(out)
}

/// Raw JSON kept as bytes in field 1; bytes that are not JSON are shown as base64.
fn raw_json(bytes: &[u8]) -> Result<Json, String> {
    let mut raw: &[u8] = &[];
    for field in fields(bytes) {
        if let (1, value) = field? {
            raw = value.bytes().unwrap_or_default();
        }
    }
    if raw.is_empty() {
        return Ok(Json::Null);
    }
    Ok(serde_json::from_slice(raw).unwrap_or_else(|_| Json::String(base64(raw))))
}

/// Formats a `Time` (whole seconds) or `MicroTime` (microseconds) in RFC 3339, UTC. The zero
/// time is `null`, as the API server writes it.
fn time(bytes: &[u8], micro: bool) -> Result<Json, String> {
    let (seconds, nanos) = (int_field(bytes, 1)?, int_field(bytes, 2)?);
    if seconds == 0 && nanos == 0 {
        return Ok(Json::Null);
    }
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| format!("time {seconds} out of range: {e}"))?;
    let date = at.date();
    let clock = at.time();
    let mut text = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", date.year(), u8::from(date.month()), date.day(), clock.hour(), clock.minute(), clock.second());
    if micro {
        text.push_str(&format!(".{:06}", nanos / 1000));
    }
    text.push('Z');
    Ok(Json::String(text))
}

/// Formats nanoseconds the way Go's `time.Duration.String` does ("1h0m0s", "1.5s", "300ms").
fn duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros removed.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let text = format!("{rest:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_line_parses() {
        let fields_in_text = SCHEMA_TEXT.lines().filter(|l| !l.starts_with('#') && !l.starts_with("m ") && !l.is_empty()).count();
        let parsed: usize = messages().values().map(Vec::len).sum();
        assert_eq!(parsed, fields_in_text);
        for fields in messages().values() {
            for field in fields {
                if let Kind::Message(target) = field.kind {
                    assert!(messages().contains_key(target), "{} refers to unknown {target}", field.json);
                }
            }
        }
    }

    #[test]
    fn kinds_map_to_messages() {
        assert_eq!(message_for("apps/v1", "Deployment").unwrap(), ("api.apps.v1.Deployment", None));
        assert_eq!(message_for("v1", "Pod").unwrap().0, "api.core.v1.Pod");
        let (name, note) = message_for("batch/v2alpha1", "CronJob").unwrap();
        assert_eq!(name, "api.batch.v1.CronJob");
        assert!(note.unwrap().contains("batch/v2alpha1"));
        assert!(message_for("route.openshift.io/v1", "Route").is_none());
    }

    #[test]
    fn durations_read_like_go() {
        for (nanos, text) in [(0, "0s"), (1_500_000_000, "1.5s"), (300_000_000, "300ms"), (3_600_000_000_000, "1h0m0s"), (90_000_000_000, "1m30s"), (-2_000, "-2µs")] {
            assert_eq!(duration(nanos), text);
        }
    }

    #[test]
    fn inline_fields_join_the_parent() {
        // Volume{name: "data", volumeSource{emptyDir{}}}: name 1, volumeSource 2 { emptyDir 2 {} }.
        let bytes = [0x0a, 4, b'd', b'a', b't', b'a', 0x12, 2, 0x12, 0];
        let json = decode("api.core.v1.Volume", &bytes, &mut Vec::new()).unwrap();
        assert_eq!(json, serde_json::json!({"name": "data", "emptyDir": {}}));
    }

    #[test]
    fn hostile_input_returns_errors_not_panics() {
        // A small xorshift generator keeps the inputs the same on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let nested = [0x0a, 4, b'd', b'a', b't', b'a', 0x12, 6, 0x0a, 4, 0x0a, 2, b'c', b'm'];
        for round in 0..20_000 {
            let mut input: Vec<u8> = if round % 2 == 0 { nested.to_vec() } else { (0..(next() % 64)).map(|_| next() as u8).collect() };
            if !input.is_empty() {
                let at = (next() as usize) % input.len();
                input[at] ^= 1 << (next() % 8);
                input.truncate(input.len() - (next() as usize) % 3.min(input.len()));
            }
            for message in ["api.core.v1.Volume", "api.core.v1.Pod", "api.apps.v1.Deployment", "apimachinery.pkg.apis.meta.v1.ObjectMeta"] {
                let _ = decode(message, &input, &mut Vec::new());
            }
        }
    }
}
