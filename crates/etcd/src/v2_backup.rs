//! Storing a v2 backup in the repository: the `.tar.gz` of the `member` directory that
//! `etcdctl backup --with-v3` wrote (WAL and snap files with new node and cluster IDs, and
//! `member/snap/db`), with a manifest of kind `etcd-v2-backup`.
//!
//! The archive is hashed on its way into the repository and, in a local repository, read back and
//! hashed again before the manifest is written, so a listed v2 backup was checked whole. The
//! revision, key count and consistent index come from reading `member/snap/db` offline.

use std::io::Read;
use std::path::{Path, PathBuf};

use caasctl_core::timefmt;
use tracing::{info, info_span, Instrument};

use crate::backup::BackupError;
use crate::blob::{BlobSink, StoredWriter};
use crate::config_archive::sha256_file;
use crate::health::MemberInfo;
use crate::repo::{Manifest, RepoError, SnapshotFile, SourceMember};
use crate::s3::S3Options;
use crate::store::Repository;

/// `kind` of the manifest of a v2 backup.
pub const V2_BACKUP_KIND: &str = "etcd-v2-backup";
/// File name of the archive inside the backup.
pub const V2_ARCHIVE: &str = "v2-backup.tar.gz";
/// Path of the v3 backend inside the archive.
pub const ARCHIVED_DB: &str = "member/snap/db";

/// Details of a v2 backup beyond the common manifest fields: the manifest's `v2` object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2Details {
    /// Member whose data dir was backed up.
    pub member: String,
    /// Host of that member.
    pub host: String,
    /// Its data dir.
    pub data_dir: String,
    /// The tool that rewrote the IDs, such as `ETCDCTL_API=2 /usr/bin/etcdctl backup`.
    pub tool: String,
    /// `consistent_index` of `member/snap/db`: the raft index up to which the v3 backend has
    /// applied entries. A restored cluster must pass it before a v3 write is applied.
    pub consistent_index: Option<u64>,
    /// v2 keys counted over the v2 API right before the member was stopped.
    pub v2_keys: Option<u64>,
}

/// A v2 backup ready to be stored.
#[derive(Debug, Clone)]
pub struct V2BackupInput {
    /// Repository directory or `s3://BUCKET/PREFIX`.
    pub repo: String,
    /// How to reach an S3 repository.
    pub s3: S3Options,
    /// The archive on this host.
    pub archive: PathBuf,
    /// Cluster ID, hex.
    pub cluster_id: String,
    /// Every member at backup time.
    pub members: Vec<MemberInfo>,
    /// Version of the member, when known.
    pub etcd_version: String,
    /// Member the data dir belongs to.
    pub source: SourceMember,
    /// The v2 details.
    pub details: V2Details,
    /// When the backup started.
    pub started: time::OffsetDateTime,
}

/// Reads `member/snap/db` out of the archive into `target` and returns its revision (as
/// `etcdutl snapshot status` computes it), its live v3 key count and its consistent index.
///
/// # Errors
/// [`BackupError::Config`] naming the archive when it has no readable db.
pub fn db_status(archive: &Path, target: &Path) -> Result<(i64, i64, Option<u64>), BackupError> {
    let fail = |source: std::io::Error| BackupError::Config { dir: archive.to_owned(), source };
    let file = std::fs::File::open(archive).map_err(fail)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = false;
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let path = entry.path().map_err(fail)?.to_path_buf();
        if path.strip_prefix(".").unwrap_or(&path) == Path::new(ARCHIVED_DB) {
            let mut out = std::fs::File::create(target).map_err(fail)?;
            std::io::copy(&mut entry, &mut out).map_err(fail)?;
            found = true;
            break;
        }
    }
    if !found {
        return Err(fail(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{ARCHIVED_DB} is missing from the archive"))));
    }
    let db = crate::inspect::open(target).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let invalid = |e: crate::inspect::InspectError| fail(std::io::Error::other(e.to_string()));
    let status = crate::inspect::status::status(&db, target).map_err(invalid)?;
    let live = crate::inspect::keyvalue::latest_state(&db, target).map_err(invalid)?.len();
    Ok((status.revision, live as i64, status.consistent_index))
}

/// Stores the archive in the repository and writes the manifest last.
///
/// # Errors
/// [`BackupError`]; the unfinished backup is removed on failure.
pub async fn store_v2_backup(input: V2BackupInput) -> Result<(Manifest, PathBuf), BackupError> {
    let span = info_span!("etcd.v2.backup.store", repo = %input.repo, member = %input.details.member);
    store(input).instrument(span).await
}

async fn store(input: V2BackupInput) -> Result<(Manifest, PathBuf), BackupError> {
    let (size, sha256) = sha256_file(&input.archive).map_err(|source| BackupError::Config { dir: input.archive.clone(), source })?;
    let scratch = tempfile_dir(&input.archive);
    let (revision, key_count, consistent_index) = db_status(&input.archive, &scratch.join("db"))?;
    let _ = std::fs::remove_file(scratch.join("db"));
    let mut details = input.details.clone();
    details.consistent_index = consistent_index;

    let repo = Repository::open(&input.repo, &input.s3)?;
    let work = repo.begin(&format!("etcd-v2-{}", timefmt::compact(input.started))).await?;
    let result = async {
        let sink = work.sink(V2_ARCHIVE).await?;
        let archive = input.archive.clone();
        // An upload sink blocks on the runtime, so the bytes are copied from a plain thread.
        let stored = std::thread::scope(|scope| scope.spawn(|| copy_into(sink, &archive)).join())
            .unwrap_or_else(|_| Err(std::io::Error::other("archive writer thread panicked")))
            .map_err(|source| RepoError::Io { action: "write", path: PathBuf::from(work.describe(V2_ARCHIVE)), source })?;
        work.publish(V2_ARCHIVE)?;
        if stored.sha256 != sha256 {
            return Err(hash_mismatch(&work.describe(V2_ARCHIVE), &sha256, &stored.sha256));
        }
        // A local copy is read back before it is listed, so a bad disk write never becomes a
        // listed backup.
        // NOTE: an S3 copy is not read back here; `etcd backups verify` re-reads it.
        if !repo.is_remote() {
            let path = PathBuf::from(work.describe(V2_ARCHIVE));
            let (_, reread) = sha256_file(&path).map_err(|source| RepoError::Io { action: "read", path: path.clone(), source })?;
            if reread != sha256 {
                return Err(hash_mismatch(&path.display().to_string(), &sha256, &reread));
            }
        }
        Ok::<(), BackupError>(())
    }
    .await;
    if let Err(error) = result {
        work.discard().await;
        return Err(error);
    }

    let manifest = Manifest {
        format: 1,
        id: work.id.clone(),
        kind: V2_BACKUP_KIND.to_owned(),
        cluster_id: input.cluster_id.clone(),
        members: input.members.clone(),
        etcd_version: input.etcd_version.clone(),
        revision,
        key_count,
        db_size: 0,
        snapshot: SnapshotFile { file: V2_ARCHIVE.to_owned(), size, sha256: sha256.clone(), db_sha256: sha256, ciphertext_size: None, ciphertext_sha256: None },
        source_member: input.source.clone(),
        caasctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: timefmt::rfc3339(input.started),
        finished_at: timefmt::rfc3339(timefmt::now()),
        config_archives: Vec::new(),
        encryption: None,
        v2: Some(details),
    };
    let id = manifest.id.clone();
    let path = work.commit(&manifest).await?;
    info!(id = %id, bytes = size, revision, key_count, "v2 backup stored");
    Ok((manifest, path))
}

fn tempfile_dir(archive: &Path) -> PathBuf {
    archive.parent().map(Path::to_owned).unwrap_or_else(std::env::temp_dir)
}

fn hash_mismatch(path: &str, expected: &str, actual: &str) -> BackupError {
    BackupError::Config {
        dir: PathBuf::from(path),
        source: std::io::Error::other(format!("stored copy hashes to {actual}, the archive to {expected}")),
    }
}

/// Copies a local file through `sink` and commits it.
fn copy_into(sink: Box<dyn BlobSink>, path: &Path) -> std::io::Result<crate::blob::StoredDigest> {
    let mut writer = StoredWriter::new(sink, &[])?;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(read) => read,
            Err(error) => {
                writer.abort();
                return Err(error);
            }
        };
        if read == 0 {
            break;
        }
        if let Err(error) = std::io::Write::write_all(&mut writer, &buffer[..read]) {
            writer.abort();
            return Err(error);
        }
    }
    writer.finish()
}
