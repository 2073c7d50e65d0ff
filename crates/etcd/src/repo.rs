//! The local backup repository.
//!
//! Layout: `REPO/ID/manifest.json`, `REPO/ID/snapshot.db` and `REPO/ID/config/NAME.tar.gz`. A
//! backup is built in `REPO/.incomplete-ID/` and the directory is renamed to `REPO/ID` only after
//! the snapshot's hash was checked and the manifest was fsynced, so a listed backup is always
//! whole. Directories are mode 0700 and files 0600, because a snapshot contains every Secret of
//! the cluster.
//!
//! `etcd backups verify` leaves its result in `REPO/ID/verify.json`, which retention reads. Prune
//! removes a backup by renaming it to `REPO/.deleting-ID` first, so that a removal cut short
//! never leaves a partly deleted backup under its listed name.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use caasctl_core::{Localize, Message};

use crate::health::MemberInfo;

pub use crate::verify::{verify_backup, VerifyReport};

/// Name of the manifest file in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// Name of the snapshot file in a backup directory.
pub const SNAPSHOT: &str = "snapshot.db";
/// Prefix of a backup directory still being written.
pub const INCOMPLETE_PREFIX: &str = ".incomplete-";
/// Prefix of a backup directory being removed.
pub const DELETING_PREFIX: &str = ".deleting-";
/// Name of the last verification result in a backup directory.
pub const VERIFY_RECORD: &str = "verify.json";
/// Top-level directory (or S3 prefix) that contains the backups of pod volumes. etcd listing,
/// verification and prune skip it, because its backups have their own manifest format.
pub const VOLUMES_AREA: &str = "volumes";

/// A repository error.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A file or directory operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done, such as `create`.
        action: &'static str,
        /// Path acted on.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A repository opened for reading does not exist.
    #[error("backup repository {} does not exist", path.display())]
    Missing {
        /// The directory given.
        path: PathBuf,
    },

    /// No backup has that ID.
    #[error("backup {id} not found in {}", repo.display())]
    NotFound {
        /// Requested ID.
        id: String,
        /// Repository.
        repo: PathBuf,
    },

    /// A manifest cannot be parsed.
    #[error("manifest {} is invalid: {reason}", path.display())]
    BadManifest {
        /// Manifest path.
        path: PathBuf,
        /// Parser's reason.
        reason: String,
    },
}

impl RepoError {
    /// Returns true for a repository path that does not exist, which is a mistake in the
    /// command line rather than a failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, RepoError::Missing { .. })
    }
}

impl Localize for RepoError {
    fn message(&self) -> Message {
        match self {
            RepoError::Io { action, path, source } => Message::new("repo.error.io")
                .arg("action", action)
                .arg("path", path.display())
                .arg("reason", source),
            RepoError::Missing { path } => Message::new("repo.error.missing").arg("path", path.display()),
            RepoError::NotFound { id, repo } => Message::new("repo.error.not_found").arg("id", id).arg("repo", repo.display()),
            RepoError::BadManifest { path, reason } => Message::new("repo.error.bad_manifest").arg("path", path.display()).arg("reason", reason),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            RepoError::NotFound { .. } => Some(Message::new("repo.hint.list")),
            RepoError::Missing { .. } => Some(Message::new("repo.hint.missing")),
            _ => None,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RepoError + 'a {
    move |source| RepoError::Io { action, path: path.to_owned(), source }
}

/// One archived configuration directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigArchive {
    /// Member or host the directory came from.
    pub member: String,
    /// Directory that was archived.
    pub source: String,
    /// File name inside the backup, relative to the backup directory.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the archive, hex; of the plaintext when the file is encrypted.
    pub sha256: String,
    /// Size of the stored (encrypted) file, for encrypted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_size: Option<u64>,
    /// SHA-256 of the stored (encrypted) file, hex, for encrypted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_sha256: Option<String>,
}

/// The snapshot file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    /// File name inside the backup directory.
    pub file: String,
    /// Size in bytes, including etcd's appended hash.
    pub size: u64,
    /// SHA-256 of the whole file, hex; `sha256sum snapshot.db` prints the same.
    pub sha256: String,
    /// SHA-256 of the database part, which equals the hash etcd appended, hex.
    pub db_sha256: String,
    /// Size of the stored (encrypted) file, for encrypted backups; `size` and the hashes above
    /// then describe the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_size: Option<u64>,
    /// SHA-256 of the stored (encrypted) file, hex, for encrypted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_sha256: Option<String>,
}

/// How the files of a backup are encrypted, the manifest's `encryption` object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    /// `age`.
    pub scheme: String,
    /// Public keys (`age1...`) the files were encrypted to.
    pub recipients: Vec<String>,
}

/// The member a snapshot was streamed from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMember {
    /// Member name.
    pub name: String,
    /// Member ID, hex.
    pub id: String,
    /// Endpoint the stream came from.
    pub endpoint: String,
}

/// The manifest of a backup, `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// Backup ID, the directory name.
    pub id: String,
    /// Kind of backup: `etcd-v3-snapshot`.
    pub kind: String,
    /// Cluster ID, hex.
    pub cluster_id: String,
    /// Every member at backup time.
    pub members: Vec<MemberInfo>,
    /// Version of the member the snapshot came from.
    pub etcd_version: String,
    /// Keyspace revision read right before the snapshot stream started.
    pub revision: i64,
    /// Live keys read right before the snapshot stream started.
    pub key_count: i64,
    /// Backend size the member reported, in bytes.
    pub db_size: i64,
    /// The snapshot file.
    pub snapshot: SnapshotFile,
    /// Member the snapshot came from.
    pub source_member: SourceMember,
    /// caasctl version that wrote the backup.
    pub caasctl_version: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// End time, RFC 3339.
    pub finished_at: String,
    /// Archived configuration directories.
    pub config_archives: Vec<ConfigArchive>,
    /// Encryption of the files; `null` for plain files.
    pub encryption: Option<serde_json::Value>,
    /// What a v2 backup (kind `etcd-v2-backup`) records beyond the fields above; absent for v3
    /// snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<crate::v2_backup::V2Details>,
}

impl Manifest {
    /// Returns the encryption of the backup's files, `None` for plain files.
    pub fn encryption_info(&self) -> Option<Encryption> {
        self.encryption.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// A backup found in the repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupEntry {
    /// Backup ID.
    pub id: String,
    /// Directory of the backup.
    pub path: PathBuf,
    /// `complete`, `incomplete` (unfinished or unreadable) or `deleting` (removal cut short).
    pub state: &'static str,
    /// Manifest, for complete backups.
    pub manifest: Option<Manifest>,
    /// Why an entry is not usable.
    pub problem: Option<String>,
    /// The last recorded verification, for complete backups that were verified.
    pub verification: Option<VerifyRecord>,
    /// Last modification of the directory.
    #[serde(skip)]
    pub modified: Option<std::time::SystemTime>,
}

impl BackupEntry {
    /// Returns true for a complete backup whose last recorded verification failed.
    pub fn failed_verification(&self) -> bool {
        self.verification.as_ref().is_some_and(|v| !v.ok)
    }
}

/// The result of the last `etcd backups verify` of a backup, `verify.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyRecord {
    /// When the check ran, RFC 3339.
    pub checked_at: String,
    /// True when every check passed.
    pub ok: bool,
    /// `full` when the plaintext was checked, `ciphertext` when only the stored bytes were.
    pub scope: String,
    /// Each failed check, in English.
    pub problems: Vec<String>,
}

/// A local backup repository rooted at a directory.
#[derive(Debug, Clone)]
pub struct LocalRepo {
    root: PathBuf,
}

/// Creates `path` (and parents) with mode 0700 and tightens an existing directory to 0700.
///
/// # Errors
/// [`RepoError::Io`].
pub fn create_private_dir(path: &Path) -> Result<(), RepoError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io("create", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io("chmod", path))
}

impl LocalRepo {
    /// Opens (and creates when missing) the repository at `root`.
    ///
    /// # Errors
    /// [`RepoError::Io`] when the directory cannot be created.
    pub fn open(root: &Path) -> Result<LocalRepo, RepoError> {
        create_private_dir(root)?;
        Ok(LocalRepo { root: root.to_owned() })
    }

    /// Opens the repository at `root` for reading; unlike [`Self::open`] it creates nothing.
    ///
    /// # Errors
    /// [`RepoError::Missing`] when `root` is not a directory.
    pub fn open_existing(root: &Path) -> Result<LocalRepo, RepoError> {
        if !root.is_dir() {
            return Err(RepoError::Missing { path: root.to_owned() });
        }
        Ok(LocalRepo { root: root.to_owned() })
    }

    /// Returns the repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the working directory of a new backup and returns its final ID and the directory.
    ///
    /// # Errors
    /// [`RepoError::Io`].
    pub fn begin(&self, base_id: &str) -> Result<(String, PathBuf), RepoError> {
        let mut id = base_id.to_owned();
        let mut counter = 1;
        while self.root.join(&id).exists() || self.root.join(format!("{INCOMPLETE_PREFIX}{id}")).exists() {
            counter += 1;
            id = format!("{base_id}-{counter}");
        }
        let work = self.root.join(format!("{INCOMPLETE_PREFIX}{id}"));
        create_private_dir(&work)?;
        Ok((id, work))
    }

    /// Writes the manifest into the working directory and renames it to its final name.
    ///
    /// # Errors
    /// [`RepoError::Io`].
    pub fn commit(&self, work: &Path, manifest: &Manifest) -> Result<PathBuf, RepoError> {
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        self.commit_json(work, &manifest.id, &json)
    }

    /// Writes `json` as the manifest of the working directory `work` and renames the directory
    /// to `id`, for backups whose manifest is not an etcd [`Manifest`].
    ///
    /// # Errors
    /// [`RepoError::Io`].
    pub fn commit_json(&self, work: &Path, id: &str, json: &[u8]) -> Result<PathBuf, RepoError> {
        write_file_atomic(&work.join(MANIFEST), json)?;
        let target = self.root.join(id);
        fs::rename(work, &target).map_err(io("rename", work))?;
        sync_dir(&self.root)?;
        Ok(target)
    }

    /// Lists every backup, complete ones and leftovers of interrupted runs, sorted by ID.
    ///
    /// # Errors
    /// [`RepoError::Io`] when the repository cannot be read.
    pub fn list(&self) -> Result<Vec<BackupEntry>, RepoError> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io("read", &self.root))? {
            let entry = entry.map_err(io("read", &self.root))?;
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            let leftover = |id: &str, state: &'static str, problem: &str| BackupEntry {
                id: id.to_owned(),
                path: entry.path(),
                state,
                manifest: None,
                problem: Some(problem.to_owned()),
                verification: None,
                modified,
            };
            if let Some(id) = name.strip_prefix(INCOMPLETE_PREFIX) {
                entries.push(leftover(id, "incomplete", "interrupted before its hash was checked"));
                continue;
            }
            if let Some(id) = name.strip_prefix(DELETING_PREFIX) {
                entries.push(leftover(id, "deleting", "removal was interrupted"));
                continue;
            }
            if name.starts_with('.') || name == VOLUMES_AREA {
                continue;
            }
            match read_manifest(&entry.path()) {
                Ok(manifest) => entries.push(BackupEntry {
                    id: name,
                    path: entry.path(),
                    state: "complete",
                    manifest: Some(manifest),
                    problem: None,
                    verification: read_verify_record(&entry.path()),
                    modified,
                }),
                Err(error) => entries.push(leftover(&name, "incomplete", &error.to_string())),
            }
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// Records the result of a verification in the backup directory `dir`.
    ///
    /// # Errors
    /// [`RepoError::Io`].
    pub fn record_verification(&self, dir: &Path, record: &VerifyRecord) -> Result<(), RepoError> {
        let json = serde_json::to_vec_pretty(record).expect("record serialises");
        write_file_atomic(&dir.join(VERIFY_RECORD), &json)
    }

    /// Removes a backup or leftover directory: renamed to `.deleting-ID` first, then deleted.
    ///
    /// # Errors
    /// [`RepoError::Io`]; a failure after the rename leaves a `.deleting-ID` directory that the
    /// next prune removes.
    pub fn remove(&self, entry: &BackupEntry) -> Result<(), RepoError> {
        let doomed = self.root.join(format!("{DELETING_PREFIX}{}", entry.id));
        if entry.path != doomed {
            if doomed.exists() {
                fs::remove_dir_all(&doomed).map_err(io("remove", &doomed))?;
            }
            fs::rename(&entry.path, &doomed).map_err(io("rename", &entry.path))?;
            sync_dir(&self.root)?;
        }
        fs::remove_dir_all(&doomed).map_err(io("remove", &doomed))?;
        sync_dir(&self.root)
    }

    /// Finds a complete backup by ID; `latest` names the newest one.
    ///
    /// # Errors
    /// [`RepoError::NotFound`], or the manifest cannot be read.
    pub fn get(&self, id: &str) -> Result<(PathBuf, Manifest), RepoError> {
        if id == "latest" {
            let newest = self.list()?.into_iter().filter(|e| e.state == "complete").last();
            return match newest {
                Some(entry) => Ok((entry.path, entry.manifest.expect("complete entries have manifests"))),
                None => Err(RepoError::NotFound { id: id.to_owned(), repo: self.root.clone() }),
            };
        }
        let path = self.root.join(id);
        if id.contains('/') || id.starts_with('.') || !path.join(MANIFEST).exists() {
            return Err(RepoError::NotFound { id: id.to_owned(), repo: self.root.clone() });
        }
        let manifest = read_manifest(&path)?;
        Ok((path, manifest))
    }
}

/// Reads and parses `DIR/manifest.json`.
///
/// # Errors
/// [`RepoError::Io`] or [`RepoError::BadManifest`].
pub fn read_manifest(dir: &Path) -> Result<Manifest, RepoError> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(io("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| RepoError::BadManifest { path, reason: e.to_string() })
}

/// Reads `DIR/verify.json`; `None` when the backup was never verified or the record is unreadable.
pub fn read_verify_record(dir: &Path) -> Option<VerifyRecord> {
    let bytes = fs::read(dir.join(VERIFY_RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `bytes` to `path` through `path.part`, with mode 0600, fsync and rename.
///
/// # Errors
/// [`RepoError::Io`].
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let part = part_path(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .map_err(io("create", &part))?;
    file.write_all(bytes).map_err(io("write", &part))?;
    file.sync_all().map_err(io("fsync", &part))?;
    fs::rename(&part, path).map_err(io("rename", &part))
}

/// Returns `path` with `.part` appended to its file name.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// Fsyncs a directory so that renames inside it survive a crash.
///
/// # Errors
/// [`RepoError::Io`].
pub fn sync_dir(path: &Path) -> Result<(), RepoError> {
    fs::File::open(path).and_then(|d| d.sync_all()).map_err(io("fsync", path))
}

