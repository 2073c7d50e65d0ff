//! The `local` provider: internal snapshots of qcow2 images on this host, through `qemu-img`.
//!
//! This is the libvirt host's version of the runbook's console steps. A qcow2 file keeps its
//! snapshots inside itself, so a snapshot always belongs to the file it is listed in. A running
//! VM holds a write lock on its image (QEMU 2.10 and later), and `qemu-img info` without `-U`
//! then fails with "Failed to get shared "write" lock": that failure is how this provider tells
//! that a disk is in use, and every change is refused while it holds.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use tokio::process::Command;
use tracing::{debug, info_span, Instrument};

use crate::error::CloudError;
use crate::model::{CreateRequest, Disk, DiskStatus, Instance, ProviderKind, Snapshot, SnapshotStatus};
use crate::provider::{CloudResult, SnapshotProvider};

/// Snapshots of qcow2 files through `qemu-img snapshot`.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    qemu_img: PathBuf,
}

impl Default for LocalProvider {
    fn default() -> Self {
        LocalProvider { qemu_img: PathBuf::from("qemu-img") }
    }
}

/// What `qemu-img info --output=json` reports, reduced to the fields used here.
#[derive(Debug, Deserialize)]
struct ImageInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(default)]
    snapshots: Vec<ImageSnapshot>,
}

#[derive(Debug, Deserialize)]
struct ImageSnapshot {
    id: String,
    name: String,
    #[serde(rename = "date-sec")]
    date_sec: i64,
}

/// An image's info and whether another process holds its write lock.
struct Inspected {
    info: ImageInfo,
    locked: bool,
}

impl LocalProvider {
    /// Uses `qemu_img` instead of the `qemu-img` found on `PATH`.
    pub fn with_binary(qemu_img: impl Into<PathBuf>) -> Self {
        LocalProvider { qemu_img: qemu_img.into() }
    }

    async fn run(&self, args: &[&str]) -> CloudResult<std::process::Output> {
        let command_line = format!("{} {}", self.qemu_img.display(), args.join(" "));
        debug!(command = %command_line, "running");
        Command::new(&self.qemu_img)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| CloudError::ToolMissing { tool: self.qemu_img.display().to_string(), source })
    }

    async fn run_checked(&self, args: &[&str]) -> CloudResult<Vec<u8>> {
        let output = self.run(args).await?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if is_lock_failure(&stderr) {
            if let Some(path) = args.last() {
                return Err(CloudError::DiskLocked { disk: PathBuf::from(path) });
            }
        }
        Err(CloudError::ToolFailed { command: format!("{} {}", self.qemu_img.display(), args.join(" ")), stderr })
    }

    /// Reads the image's info; a write lock held elsewhere is reported, not treated as failure.
    async fn inspect(&self, path: &str) -> CloudResult<Inspected> {
        if !Path::new(path).exists() {
            return Err(CloudError::DiskNotFound { disk: path.to_owned() });
        }
        let output = self.run(&["info", "--output=json", path]).await?;
        let (stdout, locked) = if output.status.success() {
            (output.stdout, false)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if !is_lock_failure(&stderr) {
                return Err(CloudError::ToolFailed { command: format!("{} info --output=json {path}", self.qemu_img.display()), stderr });
            }
            // -U (force share) reads the header without taking the lock, as `virsh` users do.
            (self.run_checked(&["info", "-U", "--output=json", path]).await?, true)
        };
        let info: ImageInfo = serde_json::from_slice(&stdout).map_err(|e| CloudError::Parse { source_name: "qemu-img info".to_owned(), reason: e.to_string() })?;
        Ok(Inspected { info, locked })
    }

    /// Inspects an image that is about to change: it must be qcow2 and not locked.
    async fn inspect_writable(&self, path: &str) -> CloudResult<Inspected> {
        let inspected = self.inspect(path).await?;
        if inspected.info.format != "qcow2" {
            return Err(CloudError::NotQcow2 { disk: PathBuf::from(path), format: inspected.info.format });
        }
        if inspected.locked {
            return Err(CloudError::DiskLocked { disk: PathBuf::from(path) });
        }
        Ok(inspected)
    }
}

/// Returns true when qemu-img failed because another process holds the image's lock.
fn is_lock_failure(stderr: &str) -> bool {
    stderr.contains("Failed to get") && stderr.contains("lock")
}

fn to_snapshot(path: &str, snapshot: &ImageSnapshot) -> Snapshot {
    let created_at = time::OffsetDateTime::from_unix_timestamp(snapshot.date_sec).ok().map(caasctl_core::timefmt::rfc3339);
    Snapshot {
        id: snapshot.id.clone(),
        name: snapshot.name.clone(),
        disk_id: path.to_owned(),
        disk_size_bytes: None,
        created_at,
        status: SnapshotStatus::Ready,
        raw_status: "ready".to_owned(),
        progress: Some(100),
    }
}

fn unsupported<T: Send + 'static>(operation: &'static str) -> BoxFuture<'static, CloudResult<T>> {
    async move { Err(CloudError::Unsupported { provider: "local", operation }) }.boxed()
}

impl SnapshotProvider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn rollback_needs_stopped_instance(&self) -> bool {
        false
    }

    fn describe_disk<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Disk>> {
        async move {
            let inspected = self.inspect(disk).await?;
            Ok(Disk {
                id: disk.to_owned(),
                name: None,
                size_bytes: inspected.info.virtual_size,
                status: if inspected.locked { DiskStatus::InUse } else { DiskStatus::Available },
                raw_status: if inspected.locked { "locked".to_owned() } else { "unlocked".to_owned() },
                instance: None,
            })
        }
        .boxed()
    }

    fn list_snapshots<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Vec<Snapshot>>> {
        async move {
            let inspected = self.inspect(disk).await?;
            if inspected.info.format != "qcow2" {
                return Err(CloudError::NotQcow2 { disk: PathBuf::from(disk), format: inspected.info.format });
            }
            Ok(inspected.info.snapshots.iter().map(|s| to_snapshot(disk, s)).collect())
        }
        .boxed()
    }

    fn get_snapshot<'a>(&'a self, disk: &'a str, id: &'a str) -> BoxFuture<'a, CloudResult<Snapshot>> {
        async move {
            let all = self.list_snapshots(disk).await?;
            all.into_iter()
                .find(|s| s.id == id)
                .ok_or_else(|| CloudError::SnapshotNotFound { disk: disk.to_owned(), snapshot: id.to_owned() })
        }
        .boxed()
    }

    fn create_snapshot<'a>(&'a self, disk: &'a str, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<Snapshot>> {
        let span = info_span!("cloud.local.snapshot.create", disk = %disk, name = %request.name);
        async move {
            let inspected = self.inspect_writable(disk).await?;
            if inspected.info.snapshots.iter().any(|s| s.name == request.name) {
                return Err(CloudError::SnapshotExists { disk: disk.to_owned(), snapshot: request.name.clone() });
            }
            self.run_checked(&["snapshot", "-c", &request.name, disk]).await?;
            let all = self.list_snapshots(disk).await?;
            all.into_iter()
                .rev()
                .find(|s| s.name == request.name)
                .ok_or_else(|| CloudError::Parse { source_name: "qemu-img snapshot -l".to_owned(), reason: format!("snapshot {} missing after creation", request.name) })
        }
        .instrument(span)
        .boxed()
    }

    fn delete_snapshot<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.local.snapshot.delete", disk = %disk, name = %snapshot.name);
        async move {
            self.inspect_writable(disk).await?;
            self.run_checked(&["snapshot", "-d", &snapshot.name, disk]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn check_rollback<'a>(&'a self, disk: &'a Disk, _snapshot: &'a Snapshot, _all: &'a [Snapshot]) -> BoxFuture<'a, CloudResult<()>> {
        async move {
            if disk.status == DiskStatus::InUse {
                return Err(CloudError::DiskLocked { disk: PathBuf::from(&disk.id) });
            }
            Ok(())
        }
        .boxed()
    }

    fn rollback<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.local.snapshot.apply", disk = %disk, name = %snapshot.name);
        async move {
            self.inspect_writable(disk).await?;
            self.run_checked(&["snapshot", "-a", &snapshot.name, disk]).await?;
            // A consistency check of the image after the apply; qemu-img check exits non-zero on
            // corruption and on leaked clusters it could not account for.
            self.run_checked(&["check", "-q", disk]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn describe_instance<'a>(&'a self, _instance: &'a str) -> BoxFuture<'a, CloudResult<Instance>> {
        unsupported("describe-instance")
    }

    fn stop_instance<'a>(&'a self, _instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        unsupported("stop-instance")
    }

    fn start_instance<'a>(&'a self, _instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        unsupported("start-instance")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_failure_text() {
        assert!(is_lock_failure("qemu-img: Could not open 'a.qcow2': Failed to get shared \"write\" lock\nIs another process using the image [a.qcow2]?"));
        assert!(!is_lock_failure("qemu-img: Could not open 'a.qcow2': No such file or directory"));
    }

    #[test]
    fn info_json_parses() {
        let text = r#"{"snapshots":[{"icount":0,"vm-clock-nsec":0,"name":"s1","date-sec":1700000000,"date-nsec":0,"vm-clock-sec":0,"id":"1","vm-state-size":0}],
            "virtual-size":16777216,"filename":"t.qcow2","cluster-size":65536,"format":"qcow2","dirty-flag":false}"#;
        let info: ImageInfo = serde_json::from_str(text).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size, 16 << 20);
        let snapshot = to_snapshot("t.qcow2", &info.snapshots[0]);
        assert_eq!(snapshot.name, "s1");
        assert_eq!(snapshot.created_at.as_deref(), Some("2023-11-14T22:13:20Z"));
    }
}
