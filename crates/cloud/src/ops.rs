//! Snapshot create, list and delete for any provider, with the runbook's preconditions checked
//! before anything changes.
//!
//! The console steps in the runbook state their conditions in prose ("the disk is not released",
//! "no snapshot is being created"); here each is a check that fails with its own error, run
//! read-only before the one call that changes something.

use caasctl_core::Progress;
use serde::Serialize;
use tracing::{info, info_span, Instrument};

use crate::error::CloudError;
use crate::model::{CreateRequest, Disk, DiskStatus, Snapshot, SnapshotStatus};
use crate::provider::{snapshot_poll_state, CloudResult, SnapshotProvider};
use crate::wait::{wait_for, WaitOptions};

/// A disk and its snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotListing {
    /// Provider name.
    pub provider: &'static str,
    /// The disk.
    pub disk: Disk,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
}

/// Reads a disk that is about to be snapshotted or rolled back: it must exist, not be released
/// or failed, and not be in the middle of another change.
///
/// # Errors
/// [`CloudError::DiskNotFound`], [`CloudError::DiskUnusable`] or [`CloudError::DiskBusy`].
pub async fn usable_disk(provider: &dyn SnapshotProvider, disk: &str) -> CloudResult<Disk> {
    let state = provider.describe_disk(disk).await?;
    match state.status {
        DiskStatus::Released | DiskStatus::Error => Err(CloudError::DiskUnusable { disk: disk.to_owned(), status: state.raw_status }),
        DiskStatus::Busy => Err(CloudError::DiskBusy { disk: disk.to_owned(), status: state.raw_status }),
        DiskStatus::Available | DiskStatus::InUse => Ok(state),
    }
}

/// Fails when a snapshot of the disk is still being taken.
///
/// # Errors
/// [`CloudError::SnapshotInProgress`] naming the unfinished snapshot.
pub fn no_snapshot_in_progress(disk: &str, snapshots: &[Snapshot]) -> CloudResult<()> {
    match snapshots.iter().find(|s| s.status == SnapshotStatus::Creating) {
        Some(pending) => Err(CloudError::SnapshotInProgress { disk: disk.to_owned(), snapshot: pending.name.clone() }),
        None => Ok(()),
    }
}

/// Finds the snapshot named or identified by `reference` and checks it was taken from `disk`.
///
/// The disk's own list is searched first; a reference not found there is looked up as an ID,
/// so that a snapshot of another disk is reported as such instead of as missing.
///
/// # Errors
/// [`CloudError::SnapshotNotFound`], [`CloudError::SnapshotAmbiguous`] or
/// [`CloudError::SnapshotFromOtherDisk`].
pub async fn resolve_snapshot(provider: &dyn SnapshotProvider, disk: &str, snapshots: &[Snapshot], reference: &str) -> CloudResult<Snapshot> {
    let by_id: Vec<&Snapshot> = snapshots.iter().filter(|s| s.id == reference).collect();
    let by_name: Vec<&Snapshot> = snapshots.iter().filter(|s| s.name == reference).collect();
    // A reference that is one snapshot's ID and another's name (qemu-img numbers snapshots 1, 2,
    // ..., and a snapshot may be named "1") must not silently pick either of them.
    let found = match (by_id.as_slice(), by_name.as_slice()) {
        ([one], []) | ([], [one]) => (*one).clone(),
        ([by_id], [by_name]) if by_id.id == by_name.id => (*by_id).clone(),
        ([], []) => match provider.get_snapshot(disk, reference).await {
            Ok(snapshot) => snapshot,
            Err(CloudError::SnapshotNotFound { .. }) | Err(CloudError::Api { status: 404, .. }) => {
                return Err(CloudError::SnapshotNotFound { disk: disk.to_owned(), snapshot: reference.to_owned() })
            }
            Err(other) => return Err(other),
        },
        _ => return Err(CloudError::SnapshotAmbiguous { disk: disk.to_owned(), snapshot: reference.to_owned() }),
    };
    if found.disk_id != disk {
        return Err(CloudError::SnapshotFromOtherDisk { snapshot: found.id, source_disk: found.disk_id, disk: disk.to_owned() });
    }
    Ok(found)
}

/// Lists a disk's snapshots.
///
/// # Errors
/// [`CloudError::DiskNotFound`] and the provider's errors.
pub async fn list(provider: &dyn SnapshotProvider, disk: &str) -> CloudResult<SnapshotListing> {
    let span = info_span!("cloud.snapshot.list", provider = %provider.kind(), disk = %disk);
    async move {
        let state = provider.describe_disk(disk).await?;
        let snapshots = provider.list_snapshots(disk).await?;
        Ok(SnapshotListing { provider: provider.kind().name(), disk: state, snapshots })
    }
    .instrument(span)
    .await
}

/// Takes a snapshot and, when `wait` is given, waits until it is complete.
///
/// Preconditions: the disk exists, is not released, failed or busy, no snapshot of it is being
/// taken, and no snapshot of it carries the name already.
///
/// # Errors
/// A precondition's error, the provider's errors, or the wait's timeout.
pub async fn create(
    provider: &dyn SnapshotProvider,
    disk: &str,
    request: &CreateRequest,
    wait: Option<WaitOptions>,
    progress: &dyn Progress,
) -> CloudResult<Snapshot> {
    let span = info_span!("cloud.snapshot.create", provider = %provider.kind(), disk = %disk, name = %request.name);
    async move {
        usable_disk(provider, disk).await?;
        let existing = provider.list_snapshots(disk).await?;
        no_snapshot_in_progress(disk, &existing)?;
        if existing.iter().any(|s| s.name == request.name) {
            return Err(CloudError::SnapshotExists { disk: disk.to_owned(), snapshot: request.name.clone() });
        }

        info!("snapshot started");
        let created = provider.create_snapshot(disk, request).await?;
        let Some(wait) = wait else { return Ok(created) };
        let what = format!("snapshot {} of {disk}", created.name);
        wait_for(&what, wait, progress, || async { Ok(snapshot_poll_state(&provider.get_snapshot(disk, &created.id).await?)) }).await?;
        let done = provider.get_snapshot(disk, &created.id).await?;
        info!(id = %done.id, "snapshot finished");
        Ok(done)
    }
    .instrument(span)
    .await
}

/// Deletes a snapshot named or identified by `reference`, after checking it belongs to the disk.
///
/// # Errors
/// [`CloudError::SnapshotNotFound`], [`CloudError::SnapshotFromOtherDisk`] and the provider's errors.
pub async fn delete(provider: &dyn SnapshotProvider, disk: &str, reference: &str) -> CloudResult<Snapshot> {
    let span = info_span!("cloud.snapshot.delete", provider = %provider.kind(), disk = %disk, snapshot = %reference);
    async move {
        provider.describe_disk(disk).await?;
        let existing = provider.list_snapshots(disk).await?;
        let snapshot = resolve_snapshot(provider, disk, &existing, reference).await?;
        provider.delete_snapshot(disk, &snapshot).await?;
        info!(id = %snapshot.id, "snapshot deleted");
        Ok(snapshot)
    }
    .instrument(span)
    .await
}
