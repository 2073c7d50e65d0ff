//! One interface over the two kinds of backup repository: a local directory ([`LocalRepo`]) and
//! S3-compatible object storage ([`ObjectRepo`]). Commands list, verify, prune and write backups
//! through [`Repository`] and [`Work`] without caring where the bytes live.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use caasctl_core::{Localize, Message, Progress};

use crate::blob::{BlobSink, FileSink, Identities};
use crate::repo::{part_path, BackupEntry, LocalRepo, Manifest, RepoError, VerifyRecord, MANIFEST, VERIFY_RECORD, VOLUMES_AREA};
use crate::s3::{ObjectRepo, S3Error, S3Options, DELETING_MARKER};
use crate::verify::{verify_stored, VerifyReport};

/// Problem text of an S3 backup that has objects but no manifest yet.
pub const UNFINISHED: &str = "no manifest: unfinished";

/// A repository error of either kind.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The local repository failed.
    #[error(transparent)]
    Local(#[from] RepoError),
    /// The object store failed.
    #[error(transparent)]
    S3(#[from] S3Error),
}

impl StoreError {
    /// Returns true for a mistake in the repository's settings (its URL, endpoint or
    /// credentials) rather than a failure of the store.
    pub fn is_usage(&self) -> bool {
        match self {
            StoreError::S3(S3Error::BadUrl { .. } | S3Error::BadEndpoint { .. } | S3Error::NoCredentials) => true,
            StoreError::Local(inner) => inner.is_usage(),
            StoreError::S3(_) => false,
        }
    }
}

impl Localize for StoreError {
    fn message(&self) -> Message {
        match self {
            StoreError::Local(inner) => inner.message(),
            StoreError::S3(S3Error::BadUrl { url }) => Message::new("s3.error.bad_url").arg("url", url),
            StoreError::S3(S3Error::NoCredentials) => Message::new("s3.error.no_credentials"),
            StoreError::S3(S3Error::BadEndpoint { value }) => Message::new("s3.error.bad_endpoint").arg("value", value),
            StoreError::S3(error @ S3Error::Request { action, location, .. }) if error.is_auth() => {
                Message::new("s3.error.auth").arg("action", action).arg("location", location)
            }
            StoreError::S3(S3Error::Request { action, location, source }) => {
                Message::new("s3.error.request").arg("action", action).arg("location", location).arg("reason", source)
            }
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            StoreError::Local(inner) => inner.hint(),
            StoreError::S3(S3Error::NoCredentials) => Some(Message::new("s3.hint.no_credentials")),
            StoreError::S3(S3Error::BadEndpoint { .. }) => Some(Message::new("s3.hint.endpoint")),
            StoreError::S3(error) if error.is_auth() => Some(Message::new("s3.hint.auth")),
            StoreError::S3(S3Error::BadUrl { .. }) => Some(Message::new("s3.hint.url")),
            StoreError::S3(_) => Some(Message::new("s3.hint.request")),
        }
    }
}

/// A backup repository.
#[derive(Debug, Clone)]
pub enum Repository {
    /// A local directory.
    Local(LocalRepo),
    /// S3-compatible object storage.
    S3(ObjectRepo),
}

impl Repository {
    /// Opens `location`: `s3://BUCKET/PREFIX` or a directory (created when missing).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(location: &str, s3: &S3Options) -> Result<Repository, StoreError> {
        if location.starts_with("s3://") {
            Ok(Repository::S3(ObjectRepo::open(location, s3)?))
        } else {
            Ok(Repository::Local(LocalRepo::open(Path::new(location))?))
        }
    }

    /// Opens `location` for reading: like [`Self::open`], but a local directory must exist.
    ///
    /// # Errors
    /// [`StoreError`]; a missing directory is [`RepoError::Missing`].
    pub fn open_existing(location: &str, s3: &S3Options) -> Result<Repository, StoreError> {
        if location.starts_with("s3://") {
            Ok(Repository::S3(ObjectRepo::open(location, s3)?))
        } else {
            Ok(Repository::Local(LocalRepo::open_existing(Path::new(location))?))
        }
    }

        /// Returns true for object storage.
    pub fn is_remote(&self) -> bool {
        matches!(self, Repository::S3(_))
    }

    /// Returns the directory or URL.
    pub fn display(&self) -> String {
        match self {
            Repository::Local(repo) => repo.root().display().to_string(),
            Repository::S3(repo) => repo.url(),
        }
    }

    /// Lists every backup and leftover, sorted by ID.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn list(&self) -> Result<Vec<BackupEntry>, StoreError> {
        match self {
            Repository::Local(repo) => Ok(repo.list()?),
            Repository::S3(repo) => list_objects(repo).await,
        }
    }

    /// Finds a complete backup by ID; `latest` names the newest one.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] inside [`StoreError`], or the listing failed.
    pub async fn get(&self, id: &str) -> Result<BackupEntry, StoreError> {
        let entries = self.list().await?;
        let complete = entries.into_iter().filter(|e| e.state == "complete");
        let found = if id == "latest" { complete.last() } else { complete.into_iter().find(|e| e.id == id) };
        found.ok_or_else(|| RepoError::NotFound { id: id.to_owned(), repo: PathBuf::from(self.display()) }.into())
    }

    /// Re-reads every stored file of a complete backup and checks its hashes.
    ///
    /// # Errors
    /// [`StoreError`] when a file cannot be opened on S3; local read failures are reported as
    /// problems in the report.
    pub async fn verify(&self, entry: &BackupEntry, identities: Option<&Identities>, progress: &dyn Progress) -> Result<VerifyReport, StoreError> {
        let manifest = entry.manifest.as_ref().expect("verify takes complete entries");
        match self {
            Repository::Local(_) => {
                let dir = entry.path.clone();
                let open = move |file: &str| -> std::io::Result<Box<dyn Read + Send>> { Ok(Box::new(std::fs::File::open(dir.join(file))?)) };
                Ok(verify_stored(&open, manifest, identities, progress))
            }
            Repository::S3(repo) => {
                let mut readers = BTreeMap::new();
                let files = std::iter::once(manifest.snapshot.file.clone()).chain(manifest.config_archives.iter().map(|a| a.file.clone()));
                for file in files {
                    let reader = repo.reader(&format!("{}/{file}", entry.id)).await?;
                    readers.insert(file, std::sync::Mutex::new(Some(reader)));
                }
                let open = |file: &str| -> std::io::Result<Box<dyn Read + Send>> {
                    readers.get(file).and_then(|slot| slot.lock().ok()?.take()).ok_or_else(|| std::io::Error::other("object opened twice"))
                };
                // The readers block on the runtime from this thread, so it must not be a worker.
                Ok(std::thread::scope(|scope| scope.spawn(|| verify_stored(&open, manifest, identities, progress)).join().expect("verify thread panicked")))
            }
        }
    }

    /// Opens the stored file `file` (relative to the backup) of a complete backup for reading from
    /// a thread outside the runtime, because S3 readers block on it.
    ///
    /// # Errors
    /// [`StoreError`] when the file or object cannot be opened.
    pub async fn open_stored(&self, entry: &BackupEntry, file: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        match self {
            Repository::Local(_) => {
                let path = entry.path.join(file);
                let opened = std::fs::File::open(&path).map_err(|source| RepoError::Io { action: "open", path, source })?;
                Ok(Box::new(opened))
            }
            Repository::S3(repo) => Ok(repo.reader(&format!("{}/{file}", entry.id)).await?),
        }
    }

    /// Records a verification result beside the backup's manifest.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_verification(&self, entry: &BackupEntry, record: &VerifyRecord) -> Result<(), StoreError> {
        match self {
            Repository::Local(repo) => Ok(repo.record_verification(&entry.path, record)?),
            Repository::S3(repo) => {
                let json = serde_json::to_vec_pretty(record).expect("record serialises");
                Ok(repo.put_bytes(&format!("{}/{VERIFY_RECORD}", entry.id), json).await?)
            }
        }
    }

    /// Removes a backup or leftover, so that no partial state is ever listed as complete.
    ///
    /// # Errors
    /// [`StoreError`]; the next prune finishes a removal cut short.
    pub async fn remove(&self, entry: &BackupEntry) -> Result<(), StoreError> {
        match self {
            Repository::Local(repo) => Ok(repo.remove(entry)?),
            Repository::S3(repo) => {
                repo.put_bytes(&format!("{}/{DELETING_MARKER}", entry.id), Vec::new()).await?;
                repo.delete(&format!("{}/{MANIFEST}", entry.id)).await?;
                let prefix = format!("{}/", entry.id);
                for (name, _, _) in repo.list_objects().await? {
                    if name.starts_with(&prefix) && name != format!("{}/{DELETING_MARKER}", entry.id) {
                        repo.delete(&name).await?;
                    }
                }
                Ok(repo.delete(&format!("{}/{DELETING_MARKER}", entry.id)).await?)
            }
        }
    }

    /// Starts writing a new backup named after `base_id` (a suffix keeps IDs unique).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn begin(&self, base_id: &str) -> Result<Work, StoreError> {
        match self {
            Repository::Local(repo) => {
                let (id, dir) = repo.begin(base_id)?;
                Ok(Work { repo: self.clone(), id, dir: Some(dir) })
            }
            Repository::S3(repo) => {
                let taken: Vec<String> = repo.list_objects().await?.into_iter().filter_map(|(name, _, _)| name.split('/').next().map(str::to_owned)).collect();
                let mut id = base_id.to_owned();
                let mut counter = 1;
                while taken.contains(&id) {
                    counter += 1;
                    id = format!("{base_id}-{counter}");
                }
                Ok(Work { repo: self.clone(), id, dir: None })
            }
        }
    }
}

/// Groups the objects below the prefix into backups.
async fn list_objects(repo: &ObjectRepo) -> Result<Vec<BackupEntry>, StoreError> {
    let mut groups: BTreeMap<String, (bool, bool, SystemTime)> = BTreeMap::new();
    for (name, _, modified) in repo.list_objects().await? {
        let Some((id, rest)) = name.split_once('/') else { continue };
        if id == VOLUMES_AREA {
            continue;
        }
        let group = groups.entry(id.to_owned()).or_insert((false, false, SystemTime::UNIX_EPOCH));
        group.0 |= rest == MANIFEST;
        group.1 |= rest == DELETING_MARKER;
        group.2 = group.2.max(modified);
    }
    let mut entries = Vec::new();
    for (id, (has_manifest, deleting, modified)) in groups {
        let path = PathBuf::from(format!("{}/{id}", repo.url()));
        let leftover = |state: &'static str, problem: String| BackupEntry {
            id: id.clone(),
            path: path.clone(),
            state,
            manifest: None,
            problem: Some(problem),
            verification: None,
            modified: Some(modified),
        };
        if deleting {
            entries.push(leftover("deleting", "removal was interrupted".to_owned()));
            continue;
        }
        if !has_manifest {
            entries.push(leftover("incomplete", UNFINISHED.to_owned()));
            continue;
        }
        let bytes = repo.get_bytes(&format!("{id}/{MANIFEST}")).await?;
        match serde_json::from_slice::<Manifest>(&bytes) {
            Err(error) => entries.push(leftover("incomplete", format!("manifest is invalid: {error}"))),
            Ok(manifest) => {
                let verification = match repo.get_bytes(&format!("{id}/{VERIFY_RECORD}")).await {
                    Ok(bytes) => serde_json::from_slice(&bytes).ok(),
                    Err(_) => None,
                };
                entries.push(BackupEntry { id: id.clone(), path, state: "complete", manifest: Some(manifest), problem: None, verification, modified: Some(modified) });
            }
        }
    }
    Ok(entries)
}

/// A backup being written.
#[derive(Debug)]
pub struct Work {
    repo: Repository,
    /// Final backup ID.
    pub id: String,
    /// Working directory of a local backup.
    dir: Option<PathBuf>,
}

impl Work {
    /// Opens a sink for the stored file `name` (relative to the backup). Call [`Work::publish`]
    /// after the sink was committed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn sink(&self, name: &str) -> Result<Box<dyn BlobSink>, StoreError> {
        match (&self.repo, &self.dir) {
            (Repository::S3(repo), _) => Ok(repo.upload(&format!("{}/{name}", self.id)).await?),
            (Repository::Local(_), Some(dir)) => {
                let target = dir.join(name);
                if let Some(parent) = target.parent() {
                    crate::repo::create_private_dir(parent)?;
                }
                let part = part_path(&target);
                let _ = std::fs::remove_file(&part);
                FileSink::create(&part).map(|s| Box::new(s) as Box<dyn BlobSink>).map_err(|source| RepoError::Io { action: "create", path: part, source }.into())
            }
            (Repository::Local(_), None) => unreachable!("local work has a directory"),
        }
    }

    /// Makes a committed file visible under its name: renames the local part file.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn publish(&self, name: &str) -> Result<(), StoreError> {
        if let Some(dir) = &self.dir {
            let target = dir.join(name);
            let part = part_path(&target);
            std::fs::rename(&part, &target).map_err(|source| RepoError::Io { action: "rename", path: part, source })?;
        }
        Ok(())
    }

    /// Names the destination of `name` for logs.
    pub fn describe(&self, name: &str) -> String {
        match &self.dir {
            Some(dir) => dir.join(name).display().to_string(),
            None => format!("{}/{}/{name}", self.repo.display(), self.id),
        }
    }

    /// Writes the manifest last, which makes the backup complete, and returns where it lives.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn commit(self, manifest: &Manifest) -> Result<PathBuf, StoreError> {
        match (&self.repo, &self.dir) {
            (Repository::Local(repo), Some(dir)) => Ok(repo.commit(dir, manifest)?),
            (Repository::S3(repo), _) => {
                let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
                repo.put_bytes(&format!("{}/{MANIFEST}", self.id), json).await?;
                Ok(PathBuf::from(format!("{}/{}", repo.url(), self.id)))
            }
            (Repository::Local(_), None) => unreachable!("local work has a directory"),
        }
    }

    /// Writes `json` as the manifest last, like [`Work::commit`], for backups whose manifest is
    /// not an etcd [`Manifest`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn commit_json(self, json: Vec<u8>) -> Result<PathBuf, StoreError> {
        match (&self.repo, &self.dir) {
            (Repository::Local(repo), Some(dir)) => Ok(repo.commit_json(dir, &self.id, &json)?),
            (Repository::S3(repo), _) => {
                repo.put_bytes(&format!("{}/{MANIFEST}", self.id), json).await?;
                Ok(PathBuf::from(format!("{}/{}", repo.url(), self.id)))
            }
            (Repository::Local(_), None) => unreachable!("local work has a directory"),
        }
    }

    /// Removes everything written so far.
    pub async fn discard(self) {
        match (&self.repo, &self.dir) {
            (Repository::Local(_), Some(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            (Repository::S3(repo), _) => {
                let prefix = format!("{}/", self.id);
                if let Ok(objects) = repo.list_objects().await {
                    for (name, _, _) in objects.into_iter().filter(|(n, _, _)| n.starts_with(&prefix)) {
                        if let Err(error) = repo.delete(&name).await {
                            tracing::warn!(object = %name, error = %error, "failed to delete a part of a failed backup");
                        }
                    }
                }
            }
            (Repository::Local(_), None) => {}
        }
    }
}
