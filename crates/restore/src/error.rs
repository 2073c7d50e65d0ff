//! Errors of a restore, with their catalogue messages and what the operator can do next.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};
use caasctl_etcd::repo::RepoError;
use caasctl_etcd::EtcdError;

use crate::exec::ExecError;

/// A restore that failed or was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot file could not be read.
    #[error("failed to read snapshot {}", path.display())]
    SnapshotRead {
        /// Snapshot path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with a bbolt meta page.
    #[error("{} is not an etcd snapshot: no valid bbolt meta page", path.display())]
    NotBolt {
        /// Snapshot path.
        path: PathBuf,
    },

    /// The file is shorter than its own header says.
    #[error("snapshot {} is truncated: {size} bytes, the database needs at least {expected}", path.display())]
    Truncated {
        /// Snapshot path.
        path: PathBuf,
        /// File size.
        size: u64,
        /// Bytes the bbolt header requires.
        expected: u64,
    },

    /// The file carries no appended hash: a `db` copied out of a data dir.
    #[error("snapshot {} has no integrity hash; it looks like a db copied from a data dir", path.display())]
    NoAppendedHash {
        /// Snapshot path.
        path: PathBuf,
    },

    /// etcd's appended hash does not match the database bytes.
    #[error("snapshot {} is corrupted: appended sha256 {expected}, data hashes to {actual}", path.display())]
    AppendedHashMismatch {
        /// Snapshot path.
        path: PathBuf,
        /// Hash stored in the file.
        expected: String,
        /// Hash of the data.
        actual: String,
    },

    /// The file's SHA-256 differs from the backup manifest's.
    #[error("snapshot {} does not match its manifest: expected sha256 {expected}, file hashes to {actual}", path.display())]
    ManifestHashMismatch {
        /// Snapshot path.
        path: PathBuf,
        /// Manifest's hash.
        expected: String,
        /// File's hash.
        actual: String,
    },

    /// The backup repository could not be read.
    #[error(transparent)]
    Repo(#[from] RepoError),

    /// Talking to etcd failed.
    #[error(transparent)]
    Etcd(#[from] EtcdError),

    /// Neither `etcdutl` nor `etcdctl` was found on a host.
    #[error("no etcdutl or etcdctl found on {host}")]
    NoEngine {
        /// Host searched.
        host: String,
    },

    /// A member's URL or data dir cannot be used; found while planning, before any change.
    #[error("member {member}: {reason}")]
    BadMember {
        /// Member name.
        member: String,
        /// What is wrong, with the value.
        reason: String,
    },

    /// A command or file operation of a step failed.
    #[error("step {step} failed on {host}")]
    Step {
        /// Step ID.
        step: String,
        /// Host.
        host: String,
        /// Cause.
        #[source]
        source: ExecError,
    },

    /// A command or file operation failed while the plan was being made.
    #[error(transparent)]
    Exec(#[from] ExecError),

    /// The cluster file could not be read or is invalid.
    #[error("invalid cluster file {}: {reason}", path.display())]
    ClusterFile {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The journal could not be written or read.
    #[error("failed to {action} journal {}", path.display())]
    Journal {
        /// What was being done.
        action: &'static str,
        /// Journal path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A journal line is not valid.
    #[error("journal {} is invalid at line {line}: {reason}", path.display())]
    BadJournal {
        /// Journal path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Parser's reason.
        reason: String,
    },

    /// No operation has that ID.
    #[error("operation {id} not found in {}", dir.display())]
    OpNotFound {
        /// Requested ID.
        id: String,
        /// Journal directory.
        dir: PathBuf,
    },

    /// Another process is still running the operation.
    #[error("operation {id} is still running as process {pid}")]
    OpRunning {
        /// Operation ID.
        id: String,
        /// Its process.
        pid: u32,
    },

    /// The operation already finished successfully.
    #[error("operation {id} has already finished")]
    OpFinished {
        /// Operation ID.
        id: String,
    },

    /// A post-restore check did not pass within its time.
    #[error("check {check} failed: {reason}")]
    CheckFailed {
        /// Check name, such as `healthy`.
        check: String,
        /// What was found.
        reason: String,
    },
}

impl Localize for RestoreError {
    fn message(&self) -> Message {
        let path_of = |p: &PathBuf| p.display().to_string();
        match self {
            RestoreError::SnapshotRead { path, source } => Message::new("restore.error.snapshot_read").arg("path", path_of(path)).arg("reason", source),
            RestoreError::NotBolt { path } => Message::new("restore.error.not_bolt").arg("path", path_of(path)),
            RestoreError::Truncated { path, size, expected } => {
                Message::new("restore.error.truncated").arg("path", path_of(path)).arg("size", size).arg("expected", expected)
            }
            RestoreError::NoAppendedHash { path } => Message::new("restore.error.no_hash").arg("path", path_of(path)),
            RestoreError::AppendedHashMismatch { path, expected, actual } => Message::new("restore.error.hash_mismatch")
                .arg("path", path_of(path))
                .arg("expected", expected)
                .arg("actual", actual),
            RestoreError::ManifestHashMismatch { path, expected, actual } => Message::new("restore.error.manifest_mismatch")
                .arg("path", path_of(path))
                .arg("expected", expected)
                .arg("actual", actual),
            RestoreError::Repo(inner) => inner.message(),
            RestoreError::Etcd(inner) => inner.message(),
            RestoreError::BadMember { member, reason } => Message::new("restore.error.bad_member").arg("member", member).arg("reason", reason),
            RestoreError::NoEngine { host } => Message::new("restore.error.no_engine").arg("host", host),
            RestoreError::Step { step, host, source } => Message::new("restore.error.step").arg("step", step).arg("host", host).arg("reason", source),
            RestoreError::Exec(inner) => Message::new("restore.error.exec").arg("reason", inner),
            RestoreError::ClusterFile { path, reason } => Message::new("restore.error.cluster_file").arg("path", path_of(path)).arg("reason", reason),
            RestoreError::Journal { action, path, source } => Message::new("restore.error.journal")
                .arg("action", action)
                .arg("path", path_of(path))
                .arg("reason", source),
            RestoreError::BadJournal { path, line, reason } => Message::new("restore.error.bad_journal")
                .arg("path", path_of(path))
                .arg("line", line)
                .arg("reason", reason),
            RestoreError::OpNotFound { id, dir } => Message::new("restore.error.op_not_found").arg("id", id).arg("dir", path_of(dir)),
            RestoreError::OpRunning { id, pid } => Message::new("restore.error.op_running").arg("id", id).arg("pid", pid),
            RestoreError::OpFinished { id } => Message::new("restore.error.op_finished").arg("id", id),
            RestoreError::CheckFailed { check, reason } => Message::new("restore.error.check_failed").arg("check", check).arg("reason", reason),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            RestoreError::NoAppendedHash { .. } => Some(Message::new("restore.hint.no_hash")),
            RestoreError::AppendedHashMismatch { .. } | RestoreError::ManifestHashMismatch { .. } | RestoreError::Truncated { .. } => {
                Some(Message::new("restore.hint.corrupted"))
            }
            RestoreError::NoEngine { .. } => Some(Message::new("restore.hint.no_engine")),
            RestoreError::BadMember { .. } => Some(Message::new("restore.hint.bad_member")),
            RestoreError::Step { .. } | RestoreError::CheckFailed { .. } => Some(Message::new("restore.hint.resume")),
            RestoreError::OpNotFound { .. } => Some(Message::new("restore.hint.ops_list")),
            RestoreError::Repo(inner) => inner.hint(),
            RestoreError::Etcd(inner) => inner.hint(),
            _ => None,
        }
    }
}
