//! The one interface every snapshot backend implements.
//!
//! The methods are the primitives the runbook's console steps are made of: describe a disk and
//! its instance, list, create, delete and roll back to a snapshot, stop and start an instance.
//! Preconditions, plans, safety snapshots and waits are built on top of them once, in
//! [`crate::rollback`] and [`crate::ops`], so that a new provider only maps its API. The methods
//! return boxed futures so that the CLI can hold any provider as `Box<dyn SnapshotProvider>`.

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};

use crate::error::CloudError;
use crate::model::{CreateRequest, Disk, Instance, ProviderKind, Snapshot, SnapshotStatus};
use crate::wait::PollState;

/// Result of a provider call.
pub type CloudResult<T> = Result<T, CloudError>;

/// How the state of a disk was kept before a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SafetyCopyKind {
    /// A snapshot of the disk itself.
    Snapshot,
    /// A new volume cloned from the disk, because the provider reverts only to the latest
    /// snapshot and a fresh snapshot would become the latest (Cinder).
    VolumeClone,
}

/// A copy of a disk's state taken right before a rollback, so that the rollback can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyCopy {
    /// Snapshot or clone.
    pub kind: SafetyCopyKind,
    /// Provider ID of the snapshot or volume.
    pub id: String,
    /// Name given to it.
    pub name: String,
}

/// A snapshot backend: local qcow2 images, OpenStack or Alibaba Cloud ECS.
pub trait SnapshotProvider: Send + Sync {
    /// Returns which backend this is.
    fn kind(&self) -> ProviderKind;

    /// Returns whether a rollback needs the disk attached to an instance that is stopped
    /// (ECS, per its ResetDisk rules); otherwise the provider checks its own conditions.
    fn rollback_needs_stopped_instance(&self) -> bool;

    /// Reads the disk's state.
    ///
    /// # Errors
    /// [`CloudError::DiskNotFound`] when it does not exist or was released.
    fn describe_disk<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Disk>>;

    /// Lists the snapshots taken from the disk, oldest first.
    fn list_snapshots<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Vec<Snapshot>>>;

    /// Reads one snapshot by provider ID.
    fn get_snapshot<'a>(&'a self, disk: &'a str, id: &'a str) -> BoxFuture<'a, CloudResult<Snapshot>>;

    /// Starts taking a snapshot and returns it, possibly still [`crate::model::SnapshotStatus::Creating`].
    fn create_snapshot<'a>(&'a self, disk: &'a str, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<Snapshot>>;

    /// Deletes a snapshot.
    fn delete_snapshot<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>>;

    /// Checks the provider's own rollback conditions beyond the common ones, read-only.
    fn check_rollback<'a>(&'a self, disk: &'a Disk, snapshot: &'a Snapshot, all: &'a [Snapshot]) -> BoxFuture<'a, CloudResult<()>>;

    /// Rolls the disk back to the snapshot and returns when the provider accepted the request.
    fn rollback<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>>;

    /// Starts copying the disk's current state before a rollback; a snapshot unless the
    /// provider overrides it.
    fn create_safety_copy<'a>(&'a self, disk: &'a Disk, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<SafetyCopy>> {
        async move {
            let snapshot = self.create_snapshot(&disk.id, request).await?;
            Ok(SafetyCopy { kind: SafetyCopyKind::Snapshot, id: snapshot.id, name: snapshot.name })
        }
        .boxed()
    }

    /// Polls a safety copy until it is complete.
    fn poll_safety_copy<'a>(&'a self, disk: &'a str, copy: &'a SafetyCopy) -> BoxFuture<'a, CloudResult<PollState>> {
        async move {
            let snapshot = self.get_snapshot(disk, &copy.id).await?;
            Ok(snapshot_poll_state(&snapshot))
        }
        .boxed()
    }

    /// Reads an instance's state.
    fn describe_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<Instance>>;

    /// Asks the instance to stop.
    fn stop_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>>;

    /// Asks the instance to start.
    fn start_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>>;
}

/// Maps a snapshot's state onto a wait's poll result.
pub fn snapshot_poll_state(snapshot: &Snapshot) -> PollState {
    match snapshot.status {
        SnapshotStatus::Ready => PollState::Done,
        SnapshotStatus::Creating => PollState::Pending(snapshot.progress),
        SnapshotStatus::Deleting | SnapshotStatus::Error => PollState::Failed(snapshot.raw_status.clone()),
    }
}
