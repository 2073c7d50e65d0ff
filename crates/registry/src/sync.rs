//! Mirroring many images: the list file of `caasctl image sync --from-file` and a run of copies
//! with a limit on how many images are copied at once.
//!
//! The list has one image per line: a source reference, white space, and a destination (a whole
//! reference, a repository, or a registry alone, as [`Reference::map_to`] reads it). Empty lines
//! and text after `#` are ignored.

use std::path::Path;
use std::sync::Arc;

use caasctl_core::Progress;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::copy::{Copier, CopyReport};
use crate::error::RegistryError;
use crate::reference::Reference;

/// One image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncJob {
    /// Source image.
    pub source: Reference,
    /// Destination image.
    pub destination: Reference,
}

impl SyncJob {
    /// Builds a job from a source reference and a destination as [`Reference::map_to`] reads it.
    ///
    /// # Errors
    /// [`RegistryError::InvalidReference`] when either side does not parse.
    pub fn new(source: &str, destination: &str) -> Result<SyncJob, RegistryError> {
        let source = Reference::parse(source)?;
        let destination = source.map_to(destination)?;
        Ok(SyncJob { source, destination })
    }
}

/// Parses the text of a list file; `path` is only used in errors.
///
/// # Errors
/// [`RegistryError::InvalidListLine`] for a line without exactly two fields or with a reference
/// that does not parse.
pub fn parse_list(path: &Path, text: &str) -> Result<Vec<SyncJob>, RegistryError> {
    let mut jobs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let invalid = |reason: String| RegistryError::InvalidListLine { path: path.to_owned(), line: index + 1, reason };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [source, destination] = fields.as_slice() else {
            return Err(invalid(format!("expected SOURCE DESTINATION, found {} fields", fields.len())));
        };
        jobs.push(SyncJob::new(source, destination).map_err(|error| invalid(error.to_string()))?);
    }
    Ok(jobs)
}

/// Reads and parses a list file.
///
/// # Errors
/// [`RegistryError::ReadFile`], or the errors of [`parse_list`].
pub fn read_list(path: &Path) -> Result<Vec<SyncJob>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::ReadFile { path: path.to_owned(), source })?;
    parse_list(path, &text)
}

/// Creates the progress receiver of each image.
pub trait ProgressFactory: Send + Sync {
    /// Returns the receiver for the copy to `destination`.
    fn image(&self, destination: &str) -> Arc<dyn Progress>;
}

/// A [`ProgressFactory`] whose receivers report nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgressFactory;

impl ProgressFactory for NoProgressFactory {
    fn image(&self, _destination: &str) -> Arc<dyn Progress> {
        Arc::new(caasctl_core::NoProgress)
    }
}

/// Copies every job, at most `image_jobs` images at once, and returns a report per job in list
/// order. A failed image does not stop the others; its report has status `failed`.
pub async fn run(copier: Arc<Copier>, jobs: &[SyncJob], image_jobs: usize, progress: &dyn ProgressFactory) -> Vec<CopyReport> {
    let span = tracing::info_span!("registry.sync", images = jobs.len());
    run_jobs(copier, jobs, image_jobs, progress).instrument(span).await
}

async fn run_jobs(copier: Arc<Copier>, jobs: &[SyncJob], image_jobs: usize, progress: &dyn ProgressFactory) -> Vec<CopyReport> {
    let limit = Arc::new(Semaphore::new(image_jobs.max(1)));
    let started = std::time::Instant::now();
    tracing::info!(images = jobs.len(), image_jobs, "sync started");
    let tasks = jobs.iter().map(|job| {
        let limit = limit.clone();
        let copier = copier.clone();
        let receiver = progress.image(&job.destination.to_string());
        async move {
            let _permit = limit.acquire().await;
            let (report, error) = copier.copy(&job.source, &job.destination, receiver).await;
            if let Some(error) = error {
                tracing::error!(source = %job.source, destination = %job.destination, error = %crate::error::chain_text(&error), "image copy failed");
            }
            report
        }
    });
    let reports = futures::future::join_all(tasks).await;
    tracing::info!(images = reports.len(), elapsed_ms = started.elapsed().as_millis() as u64, "sync finished");
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_with_comments_and_mapping() {
        let text = "# component images\n\ndocker.io/99cloud/etcd:v3.4 10.0.0.5:5000   # mirror\n99cloud/router:v3.11\t10.0.0.5:5000/99cloud/router:v3.10\n";
        let jobs = parse_list(Path::new("images.txt"), text).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].destination.to_string(), "10.0.0.5:5000/99cloud/etcd:v3.4");
        assert_eq!(jobs[1].source.to_string(), "docker.io/99cloud/router:v3.11");
        assert_eq!(jobs[1].destination.to_string(), "10.0.0.5:5000/99cloud/router:v3.10");
    }

    #[test]
    fn list_line_errors_name_the_line() {
        let error = parse_list(Path::new("l"), "a:1 b.local\nonly-one\n").unwrap_err();
        assert!(matches!(error, RegistryError::InvalidListLine { line: 2, .. }), "{error}");
        let error = parse_list(Path::new("l"), "Bad:1 b.local\n").unwrap_err();
        assert!(matches!(error, RegistryError::InvalidListLine { line: 1, .. }), "{error}");
    }
}
