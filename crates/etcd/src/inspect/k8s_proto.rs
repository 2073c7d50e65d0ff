//! Decoding of Kubernetes objects that the API server stored as protobuf.
//!
//! Such a value is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` message: type meta
//! (field 1: apiVersion 1, kind 2), the encoded object (field 2), content encoding (3) and content
//! type (4). The object's own message starts, for every built-in kind, with its `ObjectMeta` as
//! field 1. This module reads the envelope and passes the object to the schema-driven decoder in
//! [`k8s_schema`](super::k8s_schema). For a kind outside that schema it decodes `ObjectMeta` only
//! and names what was left out.
//!
//! Field numbers follow `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto` and
//! `k8s.io/api/core/v1/generated.proto`, which have kept them stable since Kubernetes 1.3.

use serde_json::{json, Map, Value as Json};

use super::protowire::{fields, Value};

/// The protobuf magic at the start of a stored object.
pub const MAGIC: &[u8] = b"k8s\0";

/// A decoded `runtime.Unknown`.
#[derive(Debug, Clone, Default)]
pub struct Unknown<'a> {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// The encoded object.
    pub raw: &'a [u8],
    /// Content encoding; empty for none.
    pub content_encoding: String,
    /// Content type; empty means protobuf.
    pub content_type: String,
}

/// Decodes the envelope that follows [`MAGIC`].
pub fn unknown(message: &[u8]) -> Result<Unknown<'_>, String> {
    let mut out = Unknown::default();
    for field in fields(message) {
        match field? {
            (1, Value::Bytes(type_meta)) => {
                for inner in fields(type_meta) {
                    match inner? {
                        (1, value) => out.api_version = value.string().unwrap_or_default(),
                        (2, value) => out.kind = value.string().unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            (2, Value::Bytes(raw)) => out.raw = raw,
            (3, value) => out.content_encoding = value.string().unwrap_or_default(),
            (4, value) => out.content_type = value.string().unwrap_or_default(),
            _ => {}
        }
    }
    Ok(out)
}

/// Formats a `meta.v1.Time` (seconds 1, nanos 2) as the API server does: RFC 3339 in UTC, whole
/// seconds.
fn time(message: &[u8]) -> Result<Json, String> {
    let mut seconds = 0i64;
    for field in fields(message) {
        if let (1, value) = field? {
            seconds = value.int64().unwrap_or(0);
        }
    }
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| format!("time {seconds} out of range: {e}"))?;
    let text = at.format(&time::format_description::well_known::Rfc3339).map_err(|e| e.to_string())?;
    Ok(Json::String(text))
}

/// Decodes a map entry (key 1, value 2) into `target`; `bytes_value` base64-encodes the value.
fn map_entry(entry: &[u8], target: &mut Map<String, Json>, bytes_value: bool) -> Result<(), String> {
    let (mut key, mut value) = (String::new(), Json::String(String::new()));
    for field in fields(entry) {
        match field? {
            (1, v) => key = v.string().unwrap_or_default(),
            (2, v) => {
                let bytes = v.bytes().unwrap_or_default();
                value = Json::String(if bytes_value { base64(bytes) } else { String::from_utf8_lossy(bytes).into_owned() });
            }
            _ => {}
        }
    }
    target.insert(key, value);
    Ok(())
}

fn insert_map(object: &mut Map<String, Json>, name: &str, entry: &[u8], bytes_value: bool) -> Result<(), String> {
    let slot = object.entry(name).or_insert_with(|| Json::Object(Map::new()));
    match slot {
        Json::Object(map) => map_entry(entry, map, bytes_value),
        _ => Err(format!("{name} is not a map")),
    }
}

fn push(object: &mut Map<String, Json>, name: &str, item: Json) {
    if let Json::Array(items) = object.entry(name).or_insert_with(|| Json::Array(Vec::new())) {
        items.push(item);
    }
}

fn owner_reference(message: &[u8]) -> Result<Json, String> {
    let mut out = Map::new();
    for field in fields(message) {
        let (number, value) = field?;
        let name = match number {
            1 => "kind",
            3 => "name",
            4 => "uid",
            5 => "apiVersion",
            6 => "controller",
            7 => "blockOwnerDeletion",
            _ => continue,
        };
        let item = if number >= 6 { Json::Bool(value.int64().unwrap_or(0) != 0) } else { Json::String(value.string().unwrap_or_default()) };
        out.insert(name.into(), item);
    }
    Ok(Json::Object(out))
}

/// Decodes an `ObjectMeta`. Managed fields (17) are counted, not decoded, because they are only
/// bookkeeping of server-side apply and `--clean` drops them anyway.
pub fn object_meta(message: &[u8]) -> Result<(Json, usize), String> {
    let mut out = Map::new();
    let mut managed_fields = 0;
    for field in fields(message) {
        let (number, value) = field?;
        match number {
            1 => _ = out.insert("name".into(), Json::String(value.string().unwrap_or_default())),
            2 => _ = out.insert("generateName".into(), Json::String(value.string().unwrap_or_default())),
            3 => _ = out.insert("namespace".into(), Json::String(value.string().unwrap_or_default())),
            4 => _ = out.insert("selfLink".into(), Json::String(value.string().unwrap_or_default())),
            5 => _ = out.insert("uid".into(), Json::String(value.string().unwrap_or_default())),
            6 => _ = out.insert("resourceVersion".into(), Json::String(value.string().unwrap_or_default())),
            // The generated marshaller writes generation even when it is 0, which JSON leaves out.
            7 if value.int64().unwrap_or(0) != 0 => _ = out.insert("generation".into(), json!(value.int64().unwrap_or(0))),
            8 => _ = out.insert("creationTimestamp".into(), time(value.bytes().unwrap_or_default())?),
            9 => _ = out.insert("deletionTimestamp".into(), time(value.bytes().unwrap_or_default())?),
            10 => _ = out.insert("deletionGracePeriodSeconds".into(), json!(value.int64().unwrap_or(0))),
            11 => insert_map(&mut out, "labels", value.bytes().unwrap_or_default(), false)?,
            12 => insert_map(&mut out, "annotations", value.bytes().unwrap_or_default(), false)?,
            13 => push(&mut out, "ownerReferences", owner_reference(value.bytes().unwrap_or_default())?),
            14 => push(&mut out, "finalizers", Json::String(value.string().unwrap_or_default())),
            17 => managed_fields += 1,
            _ => {}
        }
    }
    // The API server leaves empty strings out of its JSON.
    out.retain(|_, v| v.as_str() != Some(""));
    Ok((Json::Object(out), managed_fields))
}

/// Decodes a protobuf object. The second value names what could not be decoded.
///
/// Kinds in caasctl's schema ([`k8s_schema`](super::k8s_schema)) decode completely. Other kinds
/// (an aggregated API's types, for example) keep apiVersion, kind and metadata, with a note.
pub fn object(unknown: &Unknown<'_>) -> Result<(Json, Option<String>), String> {
    let mut notes = Vec::new();
    let out = match super::k8s_schema::message_for(&unknown.api_version, &unknown.kind) {
        Some((message, note)) => {
            notes.extend(note);
            let mut left_out = Vec::new();
            let decoded = super::k8s_schema::decode(message, unknown.raw, &mut left_out)?;
            if !left_out.is_empty() {
                notes.push(format!("left out {}", left_out.join(", ")));
            }
            match decoded {
                Json::Object(map) => map,
                _ => Map::new(),
            }
        }
        None => metadata_only(unknown, &mut notes)?,
    };
    let mut object = Map::new();
    object.insert("apiVersion".into(), Json::String(unknown.api_version.clone()));
    object.insert("kind".into(), Json::String(unknown.kind.clone()));
    object.extend(out);
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok((Json::Object(object), note))
}

/// Decodes only the metadata (field 1 of every built-in kind) of a kind caasctl has no schema for.
fn metadata_only(unknown: &Unknown<'_>, notes: &mut Vec<String>) -> Result<Map<String, Json>, String> {
    let mut out = Map::new();
    let mut skipped = Vec::new();
    for field in fields(unknown.raw) {
        let (number, value) = field?;
        if number == 1 {
            let (meta, _managed_fields) = object_meta(value.bytes().unwrap_or_default())?;
            out.insert("metadata".into(), meta);
        } else {
            skipped.push(format!("field {number}"));
        }
    }
    notes.push(format!(
        "{} {} is not in caasctl's schema: only apiVersion, kind and metadata are decoded; left out {}",
        unknown.api_version,
        unknown.kind,
        skipped.join(", ")
    ));
    Ok(out)
}

/// Encodes bytes as standard base64 with padding, as the API server writes `[]byte` fields in JSON.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * index)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
