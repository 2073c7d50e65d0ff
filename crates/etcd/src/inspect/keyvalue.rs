//! etcd's MVCC records in the backend: the `key` bucket, whose keys are revisions and whose values
//! are `mvccpb.KeyValue` messages, and the latest state of the keyspace built from it.
//!
//! A revision key is 17 bytes: the main revision (u64, big-endian), `_`, and the sub revision
//! (u64, big-endian). A deletion is stored as a record whose key carries an extra `t` and whose
//! value holds only the deleted key; it is called a tombstone.

use std::collections::HashMap;

use caasctl_bbolt::{Bucket, Db};

use super::protowire::{self, Value};
use super::InspectError;

/// Name of the bucket that contains every revision.
pub const KEY_BUCKET: &[u8] = b"key";
/// Name of the bucket that contains the consistent index and the compaction revisions.
pub const META_BUCKET: &[u8] = b"meta";

/// A revision: a transaction's main revision and the position of the change inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Revision {
    /// Main revision, the one etcd reports as the header revision.
    pub main: i64,
    /// Index of the change inside its transaction.
    pub sub: i64,
}

/// Parses a revision key of the `key` bucket; the second value is true for a tombstone.
pub fn parse_revision(bytes: &[u8]) -> Option<(Revision, bool)> {
    let main = i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?);
    if bytes.get(8) != Some(&b'_') {
        return None;
    }
    let sub = i64::from_be_bytes(bytes.get(9..17)?.try_into().ok()?);
    let tombstone = match bytes.get(17..) {
        Some([]) => false,
        Some([b't']) => true,
        _ => return None,
    };
    Some((Revision { main, sub }, tombstone))
}

/// One record of the `key` bucket, borrowing from the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Revision of the change.
    pub revision: Revision,
    /// True when the change deleted the key.
    pub tombstone: bool,
    /// The user's key.
    pub key: &'a [u8],
    /// Revision of the key's last creation.
    pub create_revision: i64,
    /// Revision of the key's last modification.
    pub mod_revision: i64,
    /// Number of modifications since the key's creation.
    pub version: i64,
    /// The value.
    pub value: &'a [u8],
    /// Lease ID, 0 for none.
    pub lease: i64,
}

impl<'a> Record<'a> {
    /// Decodes a record from its bucket key and `mvccpb.KeyValue` value.
    ///
    /// # Errors
    /// [`InspectError::BadRecord`] when either is malformed.
    pub fn decode(bucket_key: &[u8], message: &'a [u8]) -> Result<Record<'a>, InspectError> {
        let bad = |reason: String| InspectError::BadRecord { revision_key: hex::encode(bucket_key), reason };
        let (revision, tombstone) = parse_revision(bucket_key).ok_or_else(|| bad("not a revision key".into()))?;
        let mut record = Record { revision, tombstone, key: &[], create_revision: 0, mod_revision: 0, version: 0, value: &[], lease: 0 };
        for field in protowire::fields(message) {
            let (number, value) = field.map_err(bad)?;
            match (number, value) {
                (1, Value::Bytes(bytes)) => record.key = bytes,
                (2, Value::Varint(_)) => record.create_revision = value.int64().unwrap_or(0),
                (3, Value::Varint(_)) => record.mod_revision = value.int64().unwrap_or(0),
                (4, Value::Varint(_)) => record.version = value.int64().unwrap_or(0),
                (5, Value::Bytes(bytes)) => record.value = bytes,
                (6, Value::Varint(_)) => record.lease = value.int64().unwrap_or(0),
                _ => {}
            }
        }
        Ok(record)
    }
}

/// Returns the `key` bucket.
///
/// # Errors
/// [`InspectError::MissingBucket`] when the file has none, so it is no etcd v3 backend.
pub fn key_bucket<'a>(db: &'a Db, path: &std::path::Path) -> Result<Bucket<'a>, InspectError> {
    db.bucket(KEY_BUCKET)
        .map_err(|source| InspectError::Read { path: path.to_owned(), source })?
        .ok_or_else(|| InspectError::MissingBucket { path: path.to_owned(), bucket: "key" })
}

/// Calls `visit` for every record of the `key` bucket, in revision order.
///
/// # Errors
/// [`InspectError::Read`] for a damaged file and the errors of `visit`.
pub fn for_each_record<'a>(
    db: &'a Db,
    path: &std::path::Path,
    mut visit: impl FnMut(Record<'a>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    for entry in key_bucket(db, path)?.cursor() {
        let entry = entry.map_err(|source| InspectError::Read { path: path.to_owned(), source })?;
        visit(Record::decode(entry.key, entry.value)?)?;
    }
    Ok(())
}

/// Builds the keyspace as of the last revision in a snapshot: each live key and its newest record.
pub fn latest_state<'a>(db: &'a Db, path: &std::path::Path) -> Result<HashMap<&'a [u8], Record<'a>>, InspectError> {
    let mut live = HashMap::new();
    for_each_record(db, path, |record| {
        if record.tombstone {
            live.remove(record.key);
        } else {
            live.insert(record.key, record);
        }
        Ok(())
    })?;
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
        let mut key = main.to_be_bytes().to_vec();
        key.push(b'_');
        key.extend_from_slice(&sub.to_be_bytes());
        if tombstone {
            key.push(b't');
        }
        key
    }

    #[test]
    fn parses_revision_keys() {
        assert_eq!(parse_revision(&revision_key(5, 1, false)), Some((Revision { main: 5, sub: 1 }, false)));
        assert_eq!(parse_revision(&revision_key(7, 0, true)), Some((Revision { main: 7, sub: 0 }, true)));
        assert_eq!(parse_revision(b"short"), None);
        let mut bad = revision_key(1, 0, false);
        bad[8] = b'x';
        assert_eq!(parse_revision(&bad), None);
    }

    #[test]
    fn decodes_key_value_message() {
        // key "/a", create 2, mod 3, version 2, value "v", lease 0x10.
        let message = [0x0a, 0x02, b'/', b'a', 0x10, 0x02, 0x18, 0x03, 0x20, 0x02, 0x2a, 0x01, b'v', 0x30, 0x10];
        let record = Record::decode(&revision_key(3, 0, false), &message).unwrap();
        assert_eq!(record.key, b"/a");
        assert_eq!((record.create_revision, record.mod_revision, record.version, record.lease), (2, 3, 2, 16));
        assert_eq!(record.value, b"v");
    }
}
