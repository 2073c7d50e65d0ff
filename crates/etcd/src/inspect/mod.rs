//! Offline reading of etcd snapshots and backend files, without etcd.
//!
//! An etcd v3 snapshot is a bbolt database (read by `caasctl-bbolt`). This module reports what
//! `etcdutl snapshot status` reports, lists keys and their revisions, decodes the Kubernetes
//! objects stored under `/registry` (or OpenShift 3's `/kubernetes.io` and `/openshift.io`) and
//! compares two snapshots, so one deleted object can be recovered from a backup without restoring
//! the whole cluster.

pub mod diff;
pub mod hashkv;
pub mod k8s;
pub mod k8s_proto;
mod k8s_schema;
pub mod keys;
pub mod keyvalue;
pub mod protowire;
pub mod status;

use std::path::{Path, PathBuf};

use caasctl_bbolt::{BoltError, Db};
use caasctl_core::{Localize, Message};

/// A failure to read a snapshot offline.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file is missing, damaged, truncated or no bbolt database.
    #[error("failed to read snapshot {}", path.display())]
    Read {
        /// Snapshot path.
        path: PathBuf,
        /// Cause, naming the page where the reader stopped.
        #[source]
        source: BoltError,
    },

    /// The file is a bbolt database without a bucket etcd always creates.
    #[error("{} has no {bucket:?} bucket, so it is no etcd v3 snapshot", path.display())]
    MissingBucket {
        /// Snapshot path.
        path: PathBuf,
        /// Missing bucket.
        bucket: &'static str,
    },

    /// A top-level key stores a value where etcd only creates buckets.
    #[error("top-level key {name:?} of {} is not a bucket", path.display())]
    NotABucket {
        /// Snapshot path.
        path: PathBuf,
        /// The key.
        name: String,
    },

    /// A record of the `key` bucket cannot be decoded.
    #[error("invalid record {revision_key} in the key bucket: {reason}")]
    BadRecord {
        /// The record's bucket key, hex.
        revision_key: String,
        /// The defect found.
        reason: String,
    },

    /// A Kubernetes object cannot be decoded.
    #[error("failed to decode the object stored at {key}: {reason}")]
    BadObject {
        /// etcd key.
        key: String,
        /// The defect found.
        reason: String,
    },

    /// No revision of the key is in the snapshot.
    #[error("key {key} is not in the snapshot")]
    KeyNotFound {
        /// The key.
        key: String,
    },

    /// The key was deleted at or before the requested revision.
    #[error("key {key} was deleted at revision {revision}")]
    KeyDeleted {
        /// The key.
        key: String,
        /// Revision of the deletion.
        revision: i64,
    },

    /// The requested revision lies before the last compaction, so the snapshot may lack it.
    #[error("revision {requested} is before the snapshot's compaction revision {compacted}")]
    RevisionCompacted {
        /// Requested revision.
        requested: i64,
        /// Revision of the last compaction.
        compacted: i64,
    },

    /// No live object matches a `k8s get` query.
    #[error("no {resource} object matches (namespace {namespace}, name {name})")]
    NoObjects {
        /// Resource as given.
        resource: String,
        /// Namespace as given, or `*`.
        namespace: String,
        /// Name as given, or `*`.
        name: String,
    },
}

impl Localize for InspectError {
    fn message(&self) -> Message {
        match self {
            InspectError::Read { path, source } => {
                Message::new("inspect.error.read").arg("path", path.display()).arg("reason", source)
            }
            InspectError::MissingBucket { path, bucket } => {
                Message::new("inspect.error.missing_bucket").arg("path", path.display()).arg("bucket", bucket)
            }
            InspectError::NotABucket { path, name } => {
                Message::new("inspect.error.not_a_bucket").arg("path", path.display()).arg("name", name)
            }
            InspectError::BadRecord { revision_key, reason } => {
                Message::new("inspect.error.bad_record").arg("key", revision_key).arg("reason", reason)
            }
            InspectError::BadObject { key, reason } => Message::new("inspect.error.bad_object").arg("key", key).arg("reason", reason),
            InspectError::KeyNotFound { key } => Message::new("inspect.error.key_not_found").arg("key", key),
            InspectError::KeyDeleted { key, revision } => {
                Message::new("inspect.error.key_deleted").arg("key", key).arg("revision", revision)
            }
            InspectError::RevisionCompacted { requested, compacted } => {
                Message::new("inspect.error.revision_compacted").arg("requested", requested).arg("compacted", compacted)
            }
            InspectError::NoObjects { resource, namespace, name } => Message::new("inspect.error.no_objects")
                .arg("resource", resource)
                .arg("namespace", namespace)
                .arg("name", name),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            InspectError::Read { source, .. } if source.is_corrupt() => Some(Message::new("inspect.hint.corrupt")),
            InspectError::KeyNotFound { .. } => Some(Message::new("inspect.hint.keys")),
            InspectError::KeyDeleted { .. } => Some(Message::new("inspect.hint.history")),
            _ => None,
        }
    }
}

/// Opens a snapshot file, or an etcd member's `member/snap/db`, read-only.
///
/// # Errors
/// [`InspectError::Read`] when it is missing, unreadable or not a bbolt database.
pub fn open(path: &Path) -> Result<Db, InspectError> {
    Db::open(path).map_err(|source| InspectError::Read { path: path.to_owned(), source })
}
