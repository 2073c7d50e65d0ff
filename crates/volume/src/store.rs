//! Volume backups in the backup repository, under its `volumes/` area: `volumes/ID/manifest.json`
//! and `volumes/ID/data.tar[.age]`, in a local directory or below an S3 prefix. The etcd
//! commands skip that area, and this module lists only it.
//!
//! A local backup is written in `volumes/.incomplete-ID/` and renamed when its manifest is in
//! place; on S3 the manifest is the last object written. Either way a backup without a manifest
//! is never listed as complete.

use std::io::Read;
use std::path::{Path, PathBuf};

use caasctl_etcd::repo::{LocalRepo, INCOMPLETE_PREFIX, MANIFEST, VOLUMES_AREA};
use caasctl_etcd::s3::{ObjectRepo, S3Options};
use caasctl_etcd::store::Repository;

use crate::error::VolumeBackupError;
use crate::manifest::VolumeManifest;

/// A volume backup found in the repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeEntry {
    /// Backup ID.
    pub id: String,
    /// `complete` or `incomplete`.
    pub state: &'static str,
    /// Directory or `s3://...` URL of the backup.
    pub location: String,
    /// The manifest of a complete backup.
    pub manifest: Option<VolumeManifest>,
    /// Reason an entry is not usable.
    pub problem: Option<String>,
}

/// Opens the `volumes/` area of the repository at `location` as a repository of its own.
///
/// # Errors
/// The URL is invalid, credentials are missing, or the directory cannot be created.
pub fn open_area(location: &str, s3: &S3Options) -> Result<Repository, VolumeBackupError> {
    let area = if location.starts_with("s3://") {
        format!("{}/{VOLUMES_AREA}", location.trim_end_matches('/'))
    } else {
        Path::new(location).join(VOLUMES_AREA).display().to_string()
    };
    Ok(Repository::open(&area, s3)?)
}

/// Lists the volume backups of the area, sorted by ID.
///
/// # Errors
/// The repository cannot be listed.
pub async fn list(area: &Repository) -> Result<Vec<VolumeEntry>, VolumeBackupError> {
    let mut entries = match area {
        Repository::Local(repo) => list_local(repo)?,
        Repository::S3(repo) => list_s3(repo).await?,
    };
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

fn parse_manifest(id: &str, bytes: &[u8]) -> Result<VolumeManifest, String> {
    let manifest: VolumeManifest = serde_json::from_slice(bytes).map_err(|e| format!("manifest is invalid: {e}"))?;
    if manifest.id != id {
        return Err(format!("manifest names backup {} instead of {id}", manifest.id));
    }
    Ok(manifest)
}

fn list_local(repo: &LocalRepo) -> Result<Vec<VolumeEntry>, VolumeBackupError> {
    let root = repo.root();
    let read = std::fs::read_dir(root).map_err(|source| VolumeBackupError::Io { action: "read", path: root.to_owned(), source })?;
    let mut entries = Vec::new();
    for entry in read.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let location = entry.path().display().to_string();
        if let Some(id) = name.strip_prefix(INCOMPLETE_PREFIX) {
            entries.push(VolumeEntry { id: id.to_owned(), state: "incomplete", location, manifest: None, problem: Some("interrupted before its hash was checked".to_owned()) });
            continue;
        }
        if name.starts_with('.') {
            continue;
        }
        let parsed = std::fs::read(entry.path().join(MANIFEST)).map_err(|e| e.to_string()).and_then(|bytes| parse_manifest(&name, &bytes));
        entries.push(match parsed {
            Ok(manifest) => VolumeEntry { id: name, state: "complete", location, manifest: Some(manifest), problem: None },
            Err(problem) => VolumeEntry { id: name, state: "incomplete", location, manifest: None, problem: Some(problem) },
        });
    }
    Ok(entries)
}

async fn list_s3(repo: &ObjectRepo) -> Result<Vec<VolumeEntry>, VolumeBackupError> {
    let objects = repo.list_objects().await.map_err(caasctl_etcd::store::StoreError::from)?;
    let mut ids: Vec<(String, bool)> = Vec::new();
    for (name, _, _) in objects {
        let Some((id, rest)) = name.split_once('/') else { continue };
        match ids.iter_mut().find(|(known, _)| known == id) {
            Some(found) => found.1 |= rest == MANIFEST,
            None => ids.push((id.to_owned(), rest == MANIFEST)),
        }
    }
    let mut entries = Vec::new();
    for (id, has_manifest) in ids {
        let location = format!("{}/{id}", repo.url());
        if !has_manifest {
            entries.push(VolumeEntry { id, state: "incomplete", location, manifest: None, problem: Some("no manifest: unfinished".to_owned()) });
            continue;
        }
        let bytes = repo.get_bytes(&format!("{id}/{MANIFEST}")).await.map_err(caasctl_etcd::store::StoreError::from)?;
        entries.push(match parse_manifest(&id, &bytes) {
            Ok(manifest) => VolumeEntry { id, state: "complete", location, manifest: Some(manifest), problem: None },
            Err(problem) => VolumeEntry { id, state: "incomplete", location, manifest: None, problem: Some(problem) },
        });
    }
    Ok(entries)
}

/// Finds a complete volume backup by ID; `latest` names the newest one.
///
/// # Errors
/// [`VolumeBackupError::BackupNotFound`], or the listing fails.
pub async fn get(area: &Repository, id: &str) -> Result<VolumeManifest, VolumeBackupError> {
    let complete = list(area).await?.into_iter().filter_map(|e| e.manifest);
    let found = if id == "latest" { complete.last() } else { complete.into_iter().find(|m| m.id == id) };
    found.ok_or_else(|| VolumeBackupError::BackupNotFound { id: id.to_owned(), repo: area.display() })
}

/// Opens a stored file of a complete backup for reading from a thread outside the runtime.
///
/// # Errors
/// The file or object cannot be opened.
pub async fn open_file(area: &Repository, id: &str, file: &str) -> Result<Box<dyn Read + Send>, VolumeBackupError> {
    match area {
        Repository::Local(repo) => {
            let path: PathBuf = repo.root().join(id).join(file);
            let handle = std::fs::File::open(&path).map_err(|source| VolumeBackupError::Io { action: "open", path, source })?;
            Ok(Box::new(handle))
        }
        Repository::S3(repo) => Ok(repo.reader(&format!("{id}/{file}")).await.map_err(caasctl_etcd::store::StoreError::from)?),
    }
}

/// Opens a file of a backup still being written (before its commit), for the hash check.
///
/// # Errors
/// The file or object cannot be opened.
pub async fn open_unpublished(area: &Repository, id: &str, file: &str) -> Result<Box<dyn Read + Send>, VolumeBackupError> {
    match area {
        Repository::Local(repo) => {
            let path: PathBuf = repo.root().join(format!("{INCOMPLETE_PREFIX}{id}")).join(file);
            let handle = std::fs::File::open(&path).map_err(|source| VolumeBackupError::Io { action: "open", path, source })?;
            Ok(Box::new(handle))
        }
        Repository::S3(_) => open_file(area, id, file).await,
    }
}
