//! Copying one image between registries with every platform and unchanged digests.
//!
//! The copy reads the source manifest as bytes and finds every child manifest and blob it needs.
//! It copies the blobs the destination lacks: present ones are skipped, ones that another
//! repository of the destination contains are mounted, and the rest are uploaded in parallel
//! under a shared limit. Then it pushes child manifests by digest and finally the top manifest
//! under the destination tag. Before it moves a tag that points at other content, it stores the old manifest under a
//! backup tag, so a rollout can be undone by copying the backup tag back.

mod blobs;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use caasctl_core::Progress;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::Registries;
use crate::error::RegistryError;
use crate::manifest::{Descriptor, Manifest, ManifestKind};
use crate::reference::Reference;

/// Marker between a tag and the timestamp in backup tags: `v3.4-caasctl-prev-20261204T205500`.
pub const BACKUP_TAG_MARKER: &str = "-caasctl-prev-";

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Only report what would be copied.
    pub dry_run: bool,
    /// Upload blobs larger than this many bytes in chunks of this size; `None` sends every blob
    /// in one request.
    pub chunk_size: Option<u64>,
    /// Blob transfers running at once, over all images.
    pub blob_jobs: usize,
    /// Keep the manifest a tag pointed at before it is overwritten, under a backup tag.
    pub backup_tags: bool,
    /// Timestamp in backup tag names, `YYYYMMDDTHHMMSS` in UTC.
    pub timestamp: String,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { dry_run: false, chunk_size: None, blob_jobs: 4, backup_tags: true, timestamp: backup_timestamp() }
    }
}

/// Returns the current UTC time as `YYYYMMDDTHHMMSS`, the form used in backup tags.
pub fn backup_timestamp() -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_else(|_| "0".to_owned())
}

/// Returns the backup tag for `tag`, shortened so that the whole stays within the 128
/// characters a tag may have.
pub fn backup_tag(tag: &str, timestamp: &str) -> String {
    let suffix = format!("{BACKUP_TAG_MARKER}{timestamp}");
    let keep = 128usize.saturating_sub(suffix.len()).min(tag.len());
    format!("{}{suffix}", &tag[..keep])
}

/// Outcome of one image copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyStatus {
    /// Content was copied and the destination tag now has the source digest.
    Copied,
    /// The destination already had the source digest under that tag.
    UpToDate,
    /// Dry run: the copy would change the destination.
    WouldCopy,
    /// The copy failed; see `error`.
    Failed,
}

/// Result of one image copy. This is the JSON of `caasctl image sync -o json` (one per image).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyReport {
    /// Source reference.
    pub source: String,
    /// Destination reference.
    pub destination: String,
    /// Outcome.
    pub status: CopyStatus,
    /// Digest of the top manifest, the same on both sides after a copy.
    pub digest: Option<String>,
    /// Media type of the top manifest.
    pub media_type: Option<String>,
    /// Platforms of a manifest list or index; empty for a single-platform image.
    pub platforms: Vec<String>,
    /// Digest the destination tag had before, when it differed.
    pub previous_digest: Option<String>,
    /// Tag under which the previous manifest was kept.
    pub backup_tag: Option<String>,
    /// Manifests pushed (children and top), 0 when up to date.
    pub manifests_pushed: usize,
    /// Distinct blobs the image needs.
    pub blobs_total: usize,
    /// Blobs uploaded (or, in a dry run, missing in the destination).
    pub blobs_copied: usize,
    /// Blobs linked from another repository of the destination.
    pub blobs_mounted: usize,
    /// Blobs the destination repository already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded (or, in a dry run, that would be uploaded).
    pub bytes_copied: u64,
    /// Milliseconds the copy took.
    pub elapsed_ms: u64,
    /// Error text when `status` is `failed`.
    pub error: Option<String>,
}

impl CopyReport {
    /// Creates a report for a copy that has not started.
    pub fn new(source: &Reference, destination: &Reference) -> CopyReport {
        CopyReport {
            source: source.to_string(),
            destination: destination.to_string(),
            status: CopyStatus::Failed,
            digest: None,
            media_type: None,
            platforms: Vec::new(),
            previous_digest: None,
            backup_tag: None,
            manifests_pushed: 0,
            blobs_total: 0,
            blobs_copied: 0,
            blobs_mounted: 0,
            blobs_skipped: 0,
            bytes_copied: 0,
            elapsed_ms: 0,
            error: None,
        }
    }
}

/// Per (destination registry, digest): a repository known to hold the blob, behind an async
/// mutex that makes a second image wait for a running upload of the same blob instead of
/// repeating it.
type Placements = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<Option<String>>>>>;

/// Copier of images. One copier is shared by all images of a run, so the blob limit is global,
/// and a blob uploaded for one image is mounted for the next instead of uploaded again.
#[derive(Debug)]
pub struct Copier {
    registries: Arc<Registries>,
    options: CopyOptions,
    blob_limit: Arc<Semaphore>,
    placements: Placements,
    cancel: CancellationToken,
}

impl Copier {
    /// Creates a copier.
    pub fn new(registries: Arc<Registries>, options: CopyOptions, cancel: CancellationToken) -> Copier {
        let blob_limit = Arc::new(Semaphore::new(options.blob_jobs.max(1)));
        Copier { registries, options, blob_limit, placements: Mutex::new(HashMap::new()), cancel }
    }

    /// Returns the options.
    pub fn options(&self) -> &CopyOptions {
        &self.options
    }

    /// Copies `source` to `destination` and returns what was done; on failure the report has
    /// status `failed` and the error is returned alongside.
    pub async fn copy(&self, source: &Reference, destination: &Reference, progress: Arc<dyn Progress>) -> (CopyReport, Option<RegistryError>) {
        let started = Instant::now();
        let mut report = CopyReport::new(source, destination);
        let span = tracing::info_span!("registry.mirror", source = %source, destination = %destination);
        let result = self.copy_inner(source, destination, &mut report, progress.clone()).instrument(span).await;
        progress.finish();
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => {
                tracing::info!(source = %source, destination = %destination, status = ?report.status, blobs_copied = report.blobs_copied, bytes = report.bytes_copied, elapsed_ms = report.elapsed_ms, "image copy finished");
                (report, None)
            }
            Err(error) => {
                report.status = CopyStatus::Failed;
                report.error = Some(crate::error::chain_text(&error));
                (report, Some(error))
            }
        }
    }

    async fn copy_inner(&self, source: &Reference, destination: &Reference, report: &mut CopyReport, progress: Arc<dyn Progress>) -> Result<(), RegistryError> {
        let src = self.registries.client(&source.registry);
        let dst = self.registries.client(&destination.registry);
        let top = src.get_manifest(&source.repository, source.reference()).await?;
        report.digest = Some(top.digest.clone());
        report.media_type = Some(top.media_type.clone());
        if let Some(wanted) = &destination.digest {
            if *wanted != top.digest {
                return Err(RegistryError::DigestMismatch { what: format!("destination {destination}"), expected: top.digest.clone(), actual: wanted.clone() });
            }
        }
        if let ManifestKind::Index { manifests } = &top.kind {
            report.platforms = manifests.iter().filter_map(|m| m.platform.as_ref().map(ToString::to_string)).collect();
        }

        let current = dst.head_manifest(&destination.repository, destination.reference()).await?;
        if current.as_deref() == Some(top.digest.as_str()) {
            report.status = CopyStatus::UpToDate;
            return Ok(());
        }
        report.previous_digest = current.clone();

        let children = self.fetch_children(source, &top).await?;
        let mut seen = HashSet::new();
        let blobs: Vec<Descriptor> = children
            .iter()
            .chain(std::iter::once(&top))
            .flat_map(|m| m.blobs().into_iter().cloned())
            .filter(|blob| seen.insert(blob.digest.clone()))
            .collect();
        report.blobs_total = blobs.len();

        if self.options.dry_run {
            for blob in &blobs {
                if dst.blob_exists(&destination.repository, &blob.digest).await?.is_some() {
                    report.blobs_skipped += 1;
                } else {
                    report.blobs_copied += 1;
                    report.bytes_copied += blob.size;
                }
            }
            report.status = CopyStatus::WouldCopy;
            report.backup_tag = self.backup_name(destination, current.as_deref());
            return Ok(());
        }

        progress.start(&destination.to_string(), Some(blobs.iter().map(|b| b.size).sum()));
        let transfers = blobs.iter().map(|blob| self.copy_blob(source, destination, blob, progress.clone()));
        for outcome in futures::future::join_all(transfers).await {
            match outcome? {
                blobs::BlobOutcome::Skipped => report.blobs_skipped += 1,
                blobs::BlobOutcome::Mounted => report.blobs_mounted += 1,
                blobs::BlobOutcome::Uploaded(bytes) => {
                    report.blobs_copied += 1;
                    report.bytes_copied += bytes;
                }
            }
        }

        for child in &children {
            self.check_cancel()?;
            dst.put_manifest(&destination.repository, &child.digest, child).await?;
            report.manifests_pushed += 1;
        }
        if let (Some(previous), Some(name)) = (current.as_deref(), self.backup_name(destination, current.as_deref())) {
            let old = dst.get_manifest(&destination.repository, previous).await?;
            dst.put_manifest(&destination.repository, &name, &old).await?;
            tracing::info!(destination = %destination, previous, backup_tag = %name, "kept the previous manifest under a backup tag");
            report.backup_tag = Some(name);
        }
        self.check_cancel()?;
        dst.put_manifest(&destination.repository, destination.tag.as_deref().unwrap_or(destination.reference()), &top).await?;
        report.manifests_pushed += 1;

        let stored = dst.head_manifest(&destination.repository, destination.reference()).await?;
        if stored.as_deref() != Some(top.digest.as_str()) {
            return Err(RegistryError::DigestMismatch {
                what: format!("destination {destination}"),
                expected: top.digest.clone(),
                actual: stored.unwrap_or_else(|| "(missing)".to_owned()),
            });
        }
        report.status = CopyStatus::Copied;
        Ok(())
    }

    fn backup_name(&self, destination: &Reference, current: Option<&str>) -> Option<String> {
        match (current, &destination.tag) {
            (Some(_), Some(tag)) if self.options.backup_tags && destination.digest.is_none() => Some(backup_tag(tag, &self.options.timestamp)),
            _ => None,
        }
    }

    /// Fetches the child manifests of an index (and of nested indexes), deepest first, which is
    /// the order in which the destination accepts them.
    async fn fetch_children(&self, source: &Reference, top: &Manifest) -> Result<Vec<Manifest>, RegistryError> {
        let src = self.registries.client(&source.registry);
        let mut levels: Vec<Vec<Manifest>> = Vec::new();
        let mut pending: Vec<String> = child_digests(top);
        let mut seen: HashSet<String> = HashSet::new();
        while !pending.is_empty() {
            pending.retain(|digest| seen.insert(digest.clone()));
            let fetches = pending.iter().map(|digest| src.get_manifest(&source.repository, digest));
            let level: Vec<Manifest> = futures::future::try_join_all(fetches).await?;
            pending = level.iter().flat_map(child_digests).collect();
            levels.push(level);
        }
        Ok(levels.into_iter().rev().flatten().collect())
    }

    fn check_cancel(&self) -> Result<(), RegistryError> {
        if self.cancel.is_cancelled() {
            Err(RegistryError::Cancelled)
        } else {
            Ok(())
        }
    }
}

fn child_digests(manifest: &Manifest) -> Vec<String> {
    match &manifest.kind {
        ManifestKind::Index { manifests } => manifests.iter().map(|m| m.digest.clone()).collect(),
        ManifestKind::Image { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_tag_fits_tag_limit() {
        assert_eq!(backup_tag("v3.4", "20261204T205500"), "v3.4-caasctl-prev-20261204T205500");
        let long = "a".repeat(128);
        let name = backup_tag(&long, "20261204T205500");
        assert_eq!(name.len(), 128);
        assert!(name.ends_with("-caasctl-prev-20261204T205500"));
    }

    #[test]
    fn backup_timestamp_shape() {
        let stamp = backup_timestamp();
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert_eq!(&stamp[8..9], "T");
    }
}
