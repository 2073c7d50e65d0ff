//! `inspect status`: the hash, revision, key count and size of a snapshot, computed exactly as
//! `etcdutl snapshot status` (etcd 3.5) and `etcdctl snapshot status` (etcd 3.4) compute them, so
//! the numbers can be compared with theirs and with a backup's manifest.
//!
//! Their hash is CRC-32C (Castagnoli) over, for each top-level bucket in key order, the bucket's
//! name followed by each of its keys and values in key order; an entry that is a nested bucket adds
//! only its key, because bbolt's `ForEach` passes a nil value for it. The key count is the number
//! of entries over all top-level buckets, the revision is the main revision of the last key of the
//! `key` bucket (tombstones included), and the size is the meta's high-water mark times the page
//! size (bbolt's `Tx.Size`), which leaves out the SHA-256 etcd appends to a saved snapshot.

use std::path::Path;

use caasctl_bbolt::{Bucket, Db};

use super::keyvalue::{parse_revision, KEY_BUCKET, META_BUCKET};
use super::InspectError;

/// The result of `inspect status`. The first four fields have the names and values of
/// `etcdutl snapshot status -w json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// CRC-32C of bucket names, keys and values.
    pub hash: u32,
    /// Main revision of the newest record.
    pub revision: i64,
    /// Entries over all top-level buckets.
    pub total_key: u64,
    /// Database size in bytes.
    pub total_size: u64,
    /// Raft index of the last applied entry (`consistent_index` in the `meta` bucket).
    pub consistent_index: Option<u64>,
    /// Revision of the last finished compaction; revisions before it are gone.
    pub compact_revision: Option<i64>,
    /// Revision of the last scheduled compaction.
    pub scheduled_compact_revision: Option<i64>,
    /// Records in the `key` bucket, tombstones included.
    pub revisions: u64,
    /// Page size of the bbolt file in bytes.
    pub page_size: usize,
    /// bbolt transaction ID of the snapshot.
    pub txid: u64,
}

/// Returns the revision of the last finished compaction recorded in the `meta` bucket.
///
/// # Errors
/// [`InspectError::Read`] for a damaged file.
pub fn compacted_revision(db: &Db, path: &Path) -> Result<Option<i64>, InspectError> {
    let Some(meta) = db.bucket(META_BUCKET).map_err(read_error(path))? else { return Ok(None) };
    let entry = meta.get(b"finishedCompactRev").map_err(read_error(path))?;
    Ok(entry.filter(|e| !e.is_bucket()).and_then(|e| parse_revision(e.value)).map(|(r, _)| r.main))
}

fn read_error(path: &Path) -> impl Fn(caasctl_bbolt::BoltError) -> InspectError + '_ {
    move |source| InspectError::Read { path: path.to_owned(), source }
}

/// Computes the status of an open snapshot.
///
/// # Errors
/// [`InspectError::Read`] for a damaged file, [`InspectError::BadRecord`] for a key of the `key`
/// bucket that is not a revision, [`InspectError::NotABucket`] for a top-level value.
pub fn status(db: &Db, path: &Path) -> Result<SnapshotStatus, InspectError> {
    let span = tracing::info_span!("etcd.inspect.status", path = %path.display());
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let mut hash = 0u32;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    let mut revisions = 0u64;
    for top in db.root().cursor() {
        let top = top.map_err(read_error(path))?;
        if !top.is_bucket() {
            return Err(InspectError::NotABucket { path: path.to_owned(), name: String::from_utf8_lossy(top.key).into_owned() });
        }
        let bucket = Bucket::open(db, &top).map_err(read_error(path))?;
        hash = crc32c::crc32c_append(hash, top.key);
        let is_key_bucket = top.key == KEY_BUCKET;
        for entry in bucket.cursor() {
            let entry = entry.map_err(read_error(path))?;
            hash = crc32c::crc32c_append(hash, entry.key);
            if !entry.is_bucket() {
                hash = crc32c::crc32c_append(hash, entry.value);
            }
            if is_key_bucket {
                let (parsed, _) = parse_revision(entry.key)
                    .ok_or_else(|| InspectError::BadRecord { revision_key: hex::encode(entry.key), reason: "not a revision key".into() })?;
                revision = parsed.main;
                revisions += 1;
            }
            total_key += 1;
        }
    }

    let meta = db.bucket(META_BUCKET).map_err(read_error(path))?;
    let meta_value = |name: &[u8]| -> Result<Option<Vec<u8>>, InspectError> {
        let Some(bucket) = meta else { return Ok(None) };
        Ok(bucket.get(name).map_err(read_error(path))?.filter(|e| !e.is_bucket()).map(|e| e.value.to_vec()))
    };
    let consistent_index = meta_value(b"consistent_index")?.and_then(|v| Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?)));
    let compact = |name: &[u8]| -> Result<Option<i64>, InspectError> { Ok(meta_value(name)?.and_then(|v| parse_revision(&v).map(|(r, _)| r.main))) };

    let result = SnapshotStatus {
        hash,
        revision,
        total_key,
        total_size: db.size(),
        consistent_index,
        compact_revision: compact(b"finishedCompactRev")?,
        scheduled_compact_revision: compact(b"scheduledCompactRev")?,
        revisions,
        page_size: db.page_size(),
        txid: db.meta().txid,
    };
    tracing::info!(hash = result.hash, revision, total_key, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot status computed");
    Ok(result)
}
