//! Copying a backup out of its repository into a local directory before it is used. The snapshot
//! and the configuration archives are read from the repository (a local directory or S3),
//! decrypted when the backup is encrypted, and checked against every hash the manifest recorded.
//!
//! Restore and the restore drill work on local files, so a backup in S3 or an encrypted one is
//! fetched first. Each file is written as `NAME.part` with mode 0600 and renamed only after its
//! hashes matched, so a file under its final name always holds the bytes the manifest describes.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caasctl_core::{Localize, Message, Progress};
use tracing::{info, info_span, Instrument};

use crate::blob::{HashingReader, Identities, AGE_SUFFIX};
use crate::repo::{create_private_dir, part_path, BackupEntry, Manifest};
use crate::snapshot::{SnapshotDigest, SnapshotHasher};
use crate::store::{Repository, StoreError};
use crate::verify::ProgressReader;

/// A backup that could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The backup is encrypted and no identity was given.
    #[error("backup {id} is encrypted and no age identity was given")]
    NeedsIdentity {
        /// Backup ID.
        id: String,
    },
    /// None of the identities opens the file, or its ciphertext is damaged.
    #[error("failed to decrypt {file} of backup {id}")]
    Decrypt {
        /// Backup ID.
        id: String,
        /// File inside the backup.
        file: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Reading a stored file failed.
    #[error("failed to read {file} of backup {id}")]
    Read {
        /// Backup ID.
        id: String,
        /// File inside the backup.
        file: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Writing the local copy failed.
    #[error("failed to write {}", path.display())]
    Write {
        /// Local file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A fetched file does not match the manifest.
    #[error("{file} of backup {id} does not match its manifest: {what} is {actual}, expected {expected}")]
    Mismatch {
        /// Backup ID.
        id: String,
        /// File inside the backup.
        file: String,
        /// The compared value: `size`, `sha256`, `ciphertext size`, `ciphertext sha256` or `appended hash`.
        what: &'static str,
        /// Value the manifest records.
        expected: String,
        /// Value of the fetched bytes.
        actual: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Localize for FetchError {
    fn message(&self) -> Message {
        match self {
            FetchError::NeedsIdentity { id } => Message::new("fetch.error.needs_identity").arg("id", id),
            FetchError::Decrypt { id, file, source } => Message::new("fetch.error.decrypt").arg("id", id).arg("file", file).arg("reason", source),
            FetchError::Read { id, file, source } => Message::new("fetch.error.read").arg("id", id).arg("file", file).arg("reason", source),
            FetchError::Write { path, source } => Message::new("fetch.error.write").arg("path", path.display()).arg("reason", source),
            FetchError::Mismatch { id, file, what, expected, actual } => Message::new("fetch.error.mismatch")
                .arg("id", id)
                .arg("file", file)
                .arg("what", what)
                .arg("expected", expected)
                .arg("actual", actual),
            FetchError::Store(inner) => inner.message(),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            FetchError::NeedsIdentity { .. } => Some(Message::new("fetch.hint.needs_identity")),
            FetchError::Decrypt { .. } => Some(Message::new("fetch.hint.decrypt")),
            FetchError::Mismatch { .. } => Some(Message::new("fetch.hint.mismatch")),
            FetchError::Read { .. } | FetchError::Write { .. } => None,
            FetchError::Store(inner) => inner.hint(),
        }
    }
}

/// A backup copied into a local directory, decrypted and checked.
#[derive(Debug, Clone)]
pub struct FetchedBackup {
    /// Directory holding the copy.
    pub dir: PathBuf,
    /// The manifest, with file names changed to the local plaintext copies (no `.age` suffix).
    pub manifest: Manifest,
    /// The local snapshot file.
    pub snapshot: PathBuf,
    /// Hashes of the local snapshot.
    pub digest: SnapshotDigest,
}

/// Returns the local name of a stored file: without the `.age` suffix of encrypted files.
fn plain_name(file: &str) -> &str {
    file.strip_suffix(AGE_SUFFIX).unwrap_or(file)
}

/// Copies a complete backup into `dest` (created with mode 0700): the snapshot and every config
/// archive, decrypted with `identities` when the backup is encrypted. Every size and hash the
/// manifest records is compared, including etcd's appended hash of the snapshot.
///
/// # Errors
/// [`FetchError`]; a file that failed its checks is removed, files already fetched stay in
/// `dest` for the caller to remove.
pub async fn fetch_backup(
    repo: &Repository,
    entry: &BackupEntry,
    identities: Option<Arc<Identities>>,
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<FetchedBackup, FetchError> {
    let manifest = entry.manifest.clone().expect("fetch takes complete entries");
    let span = info_span!("etcd.backup.fetch", id = %manifest.id, repo = %repo.display(), dest = %dest.display());
    async move {
        let encrypted = manifest.encryption.is_some();
        if encrypted && identities.is_none() {
            return Err(FetchError::NeedsIdentity { id: manifest.id.clone() });
        }
        create_private_dir(dest).map_err(|error| FetchError::Write { path: dest.to_owned(), source: io::Error::other(error) })?;
        info!("fetch started");

        let snapshot = manifest.snapshot.clone();
        let local_snapshot = dest.join(plain_name(&snapshot.file));
        let reader = repo.open_stored(entry, &snapshot.file).await?;
        let job = FileJob {
            id: manifest.id.clone(),
            file: snapshot.file.clone(),
            target: local_snapshot.clone(),
            ciphertext: snapshot.ciphertext_size.zip(snapshot.ciphertext_sha256.clone()),
            identities: identities.clone().filter(|_| encrypted),
            total: snapshot.ciphertext_size.unwrap_or(snapshot.size),
        };
        let digest = run_blocking(job, reader, progress).await?;
        check(&manifest.id, &snapshot.file, "size", &snapshot.size.to_string(), &digest.size.to_string(), &local_snapshot)?;
        check(&manifest.id, &snapshot.file, "sha256", &snapshot.sha256, &digest.file_sha256, &local_snapshot)?;
        if !digest.appended_hash_matches() {
            let _ = std::fs::remove_file(&local_snapshot);
            return Err(FetchError::Mismatch { id: manifest.id.clone(), file: snapshot.file, what: "appended hash", expected: digest.trailer, actual: digest.db_sha256 });
        }

        let mut local = manifest.clone();
        local.snapshot.file = plain_name(&snapshot.file).to_owned();
        for archive in &mut local.config_archives {
            let target = dest.join(plain_name(&archive.file));
            if let Some(parent) = target.parent() {
                create_private_dir(parent).map_err(|error| FetchError::Write { path: parent.to_owned(), source: io::Error::other(error) })?;
            }
            let reader = repo.open_stored(entry, &archive.file).await?;
            let job = FileJob {
                id: manifest.id.clone(),
                file: archive.file.clone(),
                target: target.clone(),
                ciphertext: archive.ciphertext_size.zip(archive.ciphertext_sha256.clone()),
                identities: identities.clone().filter(|_| encrypted),
                total: archive.ciphertext_size.unwrap_or(archive.size),
            };
            let fetched = run_blocking(job, reader, Arc::new(caasctl_core::NoProgress)).await?;
            check(&manifest.id, &archive.file, "sha256", &archive.sha256, &fetched.file_sha256, &target)?;
            archive.file = plain_name(&archive.file).to_owned();
        }
        info!(bytes = digest.size, archives = local.config_archives.len(), "fetch finished");
        Ok(FetchedBackup { dir: dest.to_owned(), manifest: local, snapshot: local_snapshot, digest })
    }
    .instrument(span)
    .await
}

/// Compares one value and removes the local file when it differs.
fn check(id: &str, file: &str, what: &'static str, expected: &str, actual: &str, local: &Path) -> Result<(), FetchError> {
    if expected == actual {
        return Ok(());
    }
    let _ = std::fs::remove_file(local);
    Err(FetchError::Mismatch { id: id.to_owned(), file: file.to_owned(), what, expected: expected.to_owned(), actual: actual.to_owned() })
}

/// One stored file to copy.
struct FileJob {
    id: String,
    file: String,
    target: PathBuf,
    /// Size and SHA-256 of the stored ciphertext, for encrypted backups.
    ciphertext: Option<(u64, String)>,
    /// Identities, for encrypted backups.
    identities: Option<Arc<Identities>>,
    total: u64,
}

/// Copies on a blocking thread, because S3 readers and age decryption are synchronous readers.
async fn run_blocking(job: FileJob, reader: Box<dyn Read + Send>, progress: Arc<dyn Progress>) -> Result<SnapshotDigest, FetchError> {
    match tokio::task::spawn_blocking(move || copy_file(&job, reader, progress.as_ref())).await {
        Ok(result) => result,
        Err(join) => Err(FetchError::Write { path: PathBuf::new(), source: io::Error::other(join.to_string()) }),
    }
}

/// Reads one stored file, hashes the stored bytes and the plaintext, and writes the plaintext to
/// `TARGET.part`, renamed to `TARGET` when the ciphertext hash (if any) matched.
fn copy_file(job: &FileJob, reader: Box<dyn Read + Send>, progress: &dyn Progress) -> Result<SnapshotDigest, FetchError> {
    let part = part_path(&job.target);
    let _ = std::fs::remove_file(&part);
    let file = create_private_file(&part).map_err(|source| FetchError::Write { path: part.clone(), source })?;

    progress.start(&job.file, Some(job.total));
    let counted = ProgressReader { inner: reader, progress };
    let stored = HashingReader::new(counted);
    let stored_digest = stored.handle();
    let copied = match &job.identities {
        None => copy_plain(stored, file, &part).map_err(|error| error.into_fetch(job)),
        Some(identities) => match identities.decrypt(BufReader::with_capacity(1 << 20, stored)) {
            Err(source) => Err(FetchError::Decrypt { id: job.id.clone(), file: job.file.clone(), source }),
            Ok(plain) => copy_plain(plain, file, &part).map_err(|error| error.into_fetch(job)),
        },
    };
    progress.finish();

    let digest = match copied {
        Ok(digest) => digest,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
    };
    if let Some((size, sha256)) = &job.ciphertext {
        let (stored_size, stored_sha256) = stored_digest.digest();
        check(&job.id, &job.file, "ciphertext size", &size.to_string(), &stored_size.to_string(), &part)?;
        check(&job.id, &job.file, "ciphertext sha256", sha256, &stored_sha256, &part)?;
    }
    std::fs::rename(&part, &job.target).map_err(|source| FetchError::Write { path: job.target.clone(), source })?;
    Ok(digest)
}

/// A failed copy, on the reading or on the writing side.
enum CopyError {
    Read(io::Error),
    Write(PathBuf, io::Error),
}

impl CopyError {
    fn into_fetch(self, job: &FileJob) -> FetchError {
        match self {
            // age reports a damaged or foreign ciphertext as a read error in the middle.
            CopyError::Read(source) if job.identities.is_some() && source.kind() == io::ErrorKind::InvalidData => {
                FetchError::Decrypt { id: job.id.clone(), file: job.file.clone(), source }
            }
            CopyError::Read(source) => FetchError::Read { id: job.id.clone(), file: job.file.clone(), source },
            CopyError::Write(path, source) => FetchError::Write { path, source },
        }
    }
}

fn copy_plain(mut reader: impl Read, mut file: std::fs::File, path: &Path) -> Result<SnapshotDigest, CopyError> {
    let mut hasher = SnapshotHasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyError::Read(error)),
        };
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).map_err(|error| CopyError::Write(path.to_owned(), error))?;
    }
    file.sync_all().map_err(|error| CopyError::Write(path.to_owned(), error))?;
    Ok(hasher.finish())
}

fn create_private_file(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

