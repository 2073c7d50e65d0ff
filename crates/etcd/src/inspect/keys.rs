//! `inspect keys` and `inspect get`: the live keys of a snapshot and the revisions of one key.
//!
//! A snapshot keeps every revision written since the last compaction, so besides the newest value
//! of a key it can return the value at an earlier revision, or the value a key had before it was
//! deleted.

use std::path::Path;

use caasctl_bbolt::Db;

use super::keyvalue::{for_each_record, latest_state, Record, Revision};
use super::InspectError;

/// A live key and its newest record, without the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The key, with invalid UTF-8 replaced.
    pub key: String,
    /// Revision of the key's creation.
    pub create_revision: i64,
    /// Revision of its last modification.
    pub mod_revision: i64,
    /// Modifications since creation.
    pub version: i64,
    /// Lease ID, 0 for none.
    pub lease: i64,
    /// Value size in bytes.
    pub value_size: usize,
}

/// Lists the live keys that start with `prefix`, in key order.
///
/// # Errors
/// The errors of reading the `key` bucket.
pub fn list(db: &Db, path: &Path, prefix: &[u8]) -> Result<Vec<KeyInfo>, InspectError> {
    let _span = tracing::info_span!("etcd.inspect.keys", path = %path.display()).entered();
    let mut found: Vec<(&[u8], Record<'_>)> = latest_state(db, path)?.into_iter().filter(|(key, _)| key.starts_with(prefix)).collect();
    found.sort_unstable_by_key(|(key, _)| *key);
    Ok(found
        .into_iter()
        .map(|(key, record)| KeyInfo {
            key: String::from_utf8_lossy(key).into_owned(),
            create_revision: record.create_revision,
            mod_revision: record.mod_revision,
            version: record.version,
            lease: record.lease,
            value_size: record.value.len(),
        })
        .collect())
}

/// One change of a key: a put with its value, or a deletion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRevision {
    /// Revision of the change.
    pub revision: Revision,
    /// True when the change deleted the key.
    pub deleted: bool,
    /// Revision of the key's creation (0 for a deletion).
    pub create_revision: i64,
    /// Modifications since creation (0 for a deletion).
    pub version: i64,
    /// Lease ID, 0 for none.
    pub lease: i64,
    /// The value; empty for a deletion.
    #[serde(skip)]
    pub value: Vec<u8>,
}

/// Returns every change of `key` still in the snapshot, oldest first.
///
/// # Errors
/// The errors of reading the `key` bucket.
pub fn history(db: &Db, path: &Path, key: &[u8]) -> Result<Vec<KeyRevision>, InspectError> {
    let _span = tracing::info_span!("etcd.inspect.history", path = %path.display()).entered();
    let mut changes = Vec::new();
    for_each_record(db, path, |record| {
        if record.key == key {
            changes.push(KeyRevision {
                revision: record.revision,
                deleted: record.tombstone,
                create_revision: record.create_revision,
                version: record.version,
                lease: record.lease,
                value: record.value.to_vec(),
            });
        }
        Ok(())
    })?;
    Ok(changes)
}

/// Returns the change that was current at revision `at`: the newest change of the key at or before
/// it. `None` when the key did not exist yet or the change is beyond what the snapshot holds.
pub fn at_revision(changes: &[KeyRevision], at: i64) -> Option<&KeyRevision> {
    changes.iter().rev().find(|change| change.revision.main <= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(main: i64, deleted: bool) -> KeyRevision {
        KeyRevision { revision: Revision { main, sub: 0 }, deleted, create_revision: 0, version: 0, lease: 0, value: main.to_string().into_bytes() }
    }

    #[test]
    fn at_revision_picks_newest_not_after() {
        let changes = vec![change(3, false), change(5, false), change(9, true)];
        assert!(at_revision(&changes, 2).is_none());
        assert_eq!(at_revision(&changes, 4).unwrap().revision.main, 3);
        assert_eq!(at_revision(&changes, 5).unwrap().revision.main, 5);
        assert!(at_revision(&changes, 100).unwrap().deleted);
    }
}
