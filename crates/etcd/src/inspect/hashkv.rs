//! The keyspace hash of a snapshot, computed offline the way etcd's `HashKV` RPC computes it on a
//! running member (etcd 3.4 and 3.5, `mvcc` store `hashByRev`): CRC-32C (Castagnoli) of the name
//! `key`, then of each record of the `key` bucket whose main revision is at most the requested
//! one, its revision key followed by its value, in key order. A restored member must return the
//! same hash at the same revision, which makes it a check of the restore.

use std::path::Path;

use caasctl_bbolt::Db;

use super::keyvalue::{parse_revision, KEY_BUCKET};
use super::InspectError;

/// The keyspace hash at one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KeyspaceHash {
    /// CRC-32C, as `HashKV` returns it.
    pub hash: u32,
    /// Revision the hash covers.
    pub revision: i64,
    /// Records hashed.
    pub records: u64,
}

/// Hashes the records of the `key` bucket up to `revision` (the newest revision when `None`).
///
/// NOTE: etcd leaves out records older than the last compaction unless its in-memory index keeps
/// them. After a compaction finished, the file holds only kept records, so the hashes agree. A
/// snapshot taken while a compaction was still deleting records may hash differently.
///
/// # Errors
/// [`InspectError::Read`] for a damaged file, [`InspectError::BadRecord`] for a key of the `key`
/// bucket that is not a revision.
pub fn keyspace_hash(db: &Db, path: &Path, revision: Option<i64>) -> Result<KeyspaceHash, InspectError> {
    let read_error = |source| InspectError::Read { path: path.to_owned(), source };
    let mut hash = crc32c::crc32c_append(0, KEY_BUCKET);
    let mut newest = 0i64;
    let mut records = 0u64;
    let Some(bucket) = db.bucket(KEY_BUCKET).map_err(read_error)? else {
        return Ok(KeyspaceHash { hash, revision: revision.unwrap_or(0), records });
    };

    // Keys sort by revision, so the newest revision is the last key's.
    for entry in bucket.cursor() {
        let entry = entry.map_err(read_error)?;
        let (parsed, _) = parse_revision(entry.key)
            .ok_or_else(|| InspectError::BadRecord { revision_key: hex::encode(entry.key), reason: "not a revision key".into() })?;
        newest = parsed.main;
    }
    let upper = revision.unwrap_or(newest);

    for entry in bucket.cursor() {
        let entry = entry.map_err(read_error)?;
        let Some((parsed, _)) = parse_revision(entry.key) else { continue };
        if parsed.main > upper {
            break;
        }
        hash = crc32c::crc32c_append(hash, entry.key);
        hash = crc32c::crc32c_append(hash, entry.value);
        records += 1;
    }
    Ok(KeyspaceHash { hash, revision: upper, records })
}
