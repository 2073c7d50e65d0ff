//! Errors of snapshot providers, with their catalogue messages and hints.
//!
//! Every failed precondition of a snapshot or a rollback has its own variant. The message then
//! names the condition that did not hold (the disk is in use, a snapshot is still being taken,
//! the snapshot belongs to another disk), and callers can tell the cases apart.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};

/// A failed snapshot operation or a precondition that did not hold.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The disk does not exist, or was released.
    #[error("disk {disk} not found (it does not exist or was released)")]
    DiskNotFound {
        /// Disk path or ID.
        disk: String,
    },

    /// The disk is released, deleted or in an error state.
    #[error("disk {disk} cannot be used: its status is {status}")]
    DiskUnusable {
        /// Disk ID.
        disk: String,
        /// Provider's status word.
        status: String,
    },

    /// A local image is opened for writing by another process, normally a running VM.
    #[error("disk {disk} is in use: another process (a running VM?) holds its write lock")]
    DiskLocked {
        /// Image path.
        disk: PathBuf,
    },

    /// A local file is not a qcow2 image, so it has no internal snapshots.
    #[error("{} is a {format} image; internal snapshots need qcow2", disk.display())]
    NotQcow2 {
        /// Image path.
        disk: PathBuf,
        /// Format reported by qemu-img.
        format: String,
    },

    /// The disk is being changed (attached, detached, restored) and cannot be snapshotted now.
    #[error("disk {disk} is busy: its status is {status}")]
    DiskBusy {
        /// Disk ID.
        disk: String,
        /// Provider's status word.
        status: String,
    },

    /// A snapshot of the disk is still being taken.
    #[error("snapshot {snapshot} of disk {disk} is still being taken")]
    SnapshotInProgress {
        /// Disk ID.
        disk: String,
        /// The unfinished snapshot.
        snapshot: String,
    },

    /// No snapshot with that name or ID exists for the disk.
    #[error("snapshot {snapshot} not found for disk {disk}")]
    SnapshotNotFound {
        /// Disk ID.
        disk: String,
        /// Name or ID given.
        snapshot: String,
    },

    /// Two snapshots of the disk carry the name given.
    #[error("more than one snapshot of disk {disk} is named {snapshot}")]
    SnapshotAmbiguous {
        /// Disk ID.
        disk: String,
        /// Name given.
        snapshot: String,
    },

    /// The snapshot was taken from another disk.
    #[error("snapshot {snapshot} was taken from disk {source_disk}, not from {disk}")]
    SnapshotFromOtherDisk {
        /// Snapshot ID.
        snapshot: String,
        /// Disk the snapshot was taken from.
        source_disk: String,
        /// Disk to roll back.
        disk: String,
    },

    /// A snapshot with this name already exists on the disk.
    #[error("disk {disk} already has a snapshot named {snapshot}")]
    SnapshotExists {
        /// Disk ID.
        disk: String,
        /// Name given.
        snapshot: String,
    },

    /// The snapshot is not complete, or failed.
    #[error("snapshot {snapshot} is not ready: its status is {status}")]
    SnapshotNotReady {
        /// Snapshot ID.
        snapshot: String,
        /// Provider's status word.
        status: String,
    },

    /// Cinder reverts a volume only to its latest snapshot.
    #[error("snapshot {snapshot} is not the latest snapshot of volume {disk} (the latest is {latest})")]
    SnapshotNotLatest {
        /// Volume ID.
        disk: String,
        /// Snapshot requested.
        snapshot: String,
        /// Latest snapshot.
        latest: String,
    },

    /// The volume was resized after the snapshot; Cinder reverts only to a snapshot of the same size.
    #[error("volume {disk} has {disk_size} bytes but snapshot {snapshot} was taken at {snapshot_size} bytes")]
    SizeMismatch {
        /// Volume ID.
        disk: String,
        /// Snapshot ID.
        snapshot: String,
        /// Current size in bytes.
        disk_size: u64,
        /// Size when the snapshot was taken, in bytes.
        snapshot_size: u64,
    },

    /// Cinder reverts only a detached volume whose status is `available`.
    #[error("volume {disk} is {status}; a revert needs it detached and available")]
    VolumeNotAvailable {
        /// Volume ID.
        disk: String,
        /// Cinder status.
        status: String,
    },

    /// The disk is attached to no instance, where the provider's rollback needs one.
    #[error("disk {disk} is not attached to an instance")]
    NotAttached {
        /// Disk ID.
        disk: String,
    },

    /// The instance must be stopped before the rollback.
    #[error("instance {instance} is {status}; stop it before the rollback, or pass --stop")]
    InstanceNotStopped {
        /// Instance ID.
        instance: String,
        /// Provider's status word.
        status: String,
    },

    /// The instance was not found.
    #[error("instance {instance} not found")]
    InstanceNotFound {
        /// Instance ID.
        instance: String,
    },

    /// The provider cannot do this operation.
    #[error("the {provider} provider does not support {operation}")]
    Unsupported {
        /// Provider name.
        provider: &'static str,
        /// Operation name.
        operation: &'static str,
    },

    /// A wait ended before the resource reached the state needed.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// The awaited state, such as `snapshot s-1 to be ready`.
        what: String,
        /// Seconds waited.
        seconds: u64,
    },

    /// A resource went into an error state while being waited on.
    #[error("{what} failed: status {status}")]
    WaitFailed {
        /// The awaited state.
        what: String,
        /// Provider's status word.
        status: String,
    },

    /// A rollback failed after it changed something. The fields name what was left behind.
    #[error("the rollback of {disk} stopped at step {step}")]
    RollbackInterrupted {
        /// Disk being rolled back.
        disk: String,
        /// Number of the failed step, from 1.
        step: usize,
        /// Instance caasctl stopped and did not start again.
        instance_left_stopped: Option<String>,
        /// Name of the safety copy taken before the failure.
        safety_copy: Option<String>,
        /// The step's error.
        #[source]
        source: Box<CloudError>,
    },

    /// A local tool such as qemu-img could not be started.
    #[error("failed to run {tool}")]
    ToolMissing {
        /// Program name.
        tool: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A local tool exited with an error.
    #[error("{command} failed: {stderr}")]
    ToolFailed {
        /// Command line run.
        command: String,
        /// What the tool wrote to stderr.
        stderr: String,
    },

    /// A tool's output or an API response could not be parsed.
    #[error("unexpected output from {source_name}: {reason}")]
    Parse {
        /// Tool or endpoint.
        source_name: String,
        /// What was wrong.
        reason: String,
    },

    /// The cloud section of caasctl.toml is missing or invalid.
    #[error("invalid cloud configuration in {}: {reason}", path.display())]
    Config {
        /// Config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A credential reference could not be resolved.
    #[error("credential {reference} is not available: {reason}")]
    Credential {
        /// `env:NAME` or `file:PATH`; never the secret.
        reference: String,
        /// Why it could not be read.
        reason: String,
    },

    /// The request did not reach the endpoint or the response broke off.
    #[error("request to {endpoint} failed: {reason}")]
    Http {
        /// URL without query.
        endpoint: String,
        /// Transport's error text.
        reason: String,
    },

    /// Authentication was rejected.
    #[error("{provider} rejected the credentials: {message}")]
    Auth {
        /// Provider name.
        provider: &'static str,
        /// Server's message.
        message: String,
    },

    /// The API returned an error.
    #[error("{provider} {operation} failed with HTTP {status} {code}: {message}")]
    Api {
        /// Provider name.
        provider: &'static str,
        /// API operation, such as `CreateSnapshot` or `POST /snapshots`.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Error code (`IncorrectDiskStatus`, `badRequest`).
        code: String,
        /// Server's message.
        message: String,
    },
}

impl CloudError {
    /// Returns true for a failure that a later retry may not hit (throttling, 5xx, transport).
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudError::Http { .. } => true,
            CloudError::Api { status, code, .. } => *status >= 500 || code.starts_with("Throttling") || *status == 429,
            _ => false,
        }
    }

    /// Returns true when the error is a failed precondition, found before anything changed.
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            CloudError::DiskNotFound { .. }
                | CloudError::DiskUnusable { .. }
                | CloudError::DiskLocked { .. }
                | CloudError::NotQcow2 { .. }
                | CloudError::DiskBusy { .. }
                | CloudError::SnapshotInProgress { .. }
                | CloudError::SnapshotNotFound { .. }
                | CloudError::SnapshotAmbiguous { .. }
                | CloudError::SnapshotFromOtherDisk { .. }
                | CloudError::SnapshotExists { .. }
                | CloudError::SnapshotNotReady { .. }
                | CloudError::SnapshotNotLatest { .. }
                | CloudError::SizeMismatch { .. }
                | CloudError::VolumeNotAvailable { .. }
                | CloudError::NotAttached { .. }
                | CloudError::InstanceNotStopped { .. }
                | CloudError::InstanceNotFound { .. }
        )
    }
}

impl Localize for CloudError {
    fn message(&self) -> Message {
        match self {
            CloudError::DiskNotFound { disk } => Message::new("cloud.error.disk_not_found").arg("disk", disk),
            CloudError::DiskUnusable { disk, status } => Message::new("cloud.error.disk_unusable").arg("disk", disk).arg("status", status),
            CloudError::DiskLocked { disk } => Message::new("cloud.error.disk_locked").arg("disk", disk.display()),
            CloudError::NotQcow2 { disk, format } => Message::new("cloud.error.not_qcow2").arg("disk", disk.display()).arg("format", format),
            CloudError::DiskBusy { disk, status } => Message::new("cloud.error.disk_busy").arg("disk", disk).arg("status", status),
            CloudError::SnapshotInProgress { disk, snapshot } => {
                Message::new("cloud.error.snapshot_in_progress").arg("disk", disk).arg("snapshot", snapshot)
            }
            CloudError::SnapshotNotFound { disk, snapshot } => {
                Message::new("cloud.error.snapshot_not_found").arg("disk", disk).arg("snapshot", snapshot)
            }
            CloudError::SnapshotAmbiguous { disk, snapshot } => {
                Message::new("cloud.error.snapshot_ambiguous").arg("disk", disk).arg("snapshot", snapshot)
            }
            CloudError::SnapshotFromOtherDisk { snapshot, source_disk, disk } => Message::new("cloud.error.snapshot_other_disk")
                .arg("snapshot", snapshot)
                .arg("source_disk", source_disk)
                .arg("disk", disk),
            CloudError::SnapshotExists { disk, snapshot } => Message::new("cloud.error.snapshot_exists").arg("disk", disk).arg("snapshot", snapshot),
            CloudError::SnapshotNotReady { snapshot, status } => {
                Message::new("cloud.error.snapshot_not_ready").arg("snapshot", snapshot).arg("status", status)
            }
            CloudError::SnapshotNotLatest { disk, snapshot, latest } => Message::new("cloud.error.snapshot_not_latest")
                .arg("disk", disk)
                .arg("snapshot", snapshot)
                .arg("latest", latest),
            CloudError::SizeMismatch { disk, snapshot, disk_size, snapshot_size } => Message::new("cloud.error.size_mismatch")
                .arg("disk", disk)
                .arg("snapshot", snapshot)
                .arg("disk_size", disk_size)
                .arg("snapshot_size", snapshot_size),
            CloudError::VolumeNotAvailable { disk, status } => {
                Message::new("cloud.error.volume_not_available").arg("disk", disk).arg("status", status)
            }
            CloudError::NotAttached { disk } => Message::new("cloud.error.not_attached").arg("disk", disk),
            CloudError::InstanceNotStopped { instance, status } => {
                Message::new("cloud.error.instance_not_stopped").arg("instance", instance).arg("status", status)
            }
            CloudError::InstanceNotFound { instance } => Message::new("cloud.error.instance_not_found").arg("instance", instance),
            CloudError::Unsupported { provider, operation } => {
                Message::new("cloud.error.unsupported").arg("provider", provider).arg("operation", operation)
            }
            CloudError::Timeout { what, seconds } => Message::new("cloud.error.timeout").arg("what", what).arg("seconds", seconds),
            CloudError::WaitFailed { what, status } => Message::new("cloud.error.wait_failed").arg("what", what).arg("status", status),
            CloudError::RollbackInterrupted { disk, step, .. } => Message::new("cloud.error.rollback_interrupted").arg("disk", disk).arg("step", step),
            CloudError::ToolMissing { tool, source } => Message::new("cloud.error.tool_missing").arg("tool", tool).arg("reason", source),
            CloudError::ToolFailed { command, stderr } => Message::new("cloud.error.tool_failed").arg("command", command).arg("stderr", stderr),
            CloudError::Parse { source_name, reason } => Message::new("cloud.error.parse").arg("source", source_name).arg("reason", reason),
            CloudError::Config { path, reason } => Message::new("cloud.error.config").arg("path", path.display()).arg("reason", reason),
            CloudError::Credential { reference, reason } => {
                Message::new("cloud.error.credential").arg("reference", reference).arg("reason", reason)
            }
            CloudError::Http { endpoint, reason } => Message::new("cloud.error.http").arg("endpoint", endpoint).arg("reason", reason),
            CloudError::Auth { provider, message } => Message::new("cloud.error.auth").arg("provider", provider).arg("message", message),
            CloudError::Api { provider, operation, status, code, message } => Message::new(api_key(code))
                .arg("provider", provider)
                .arg("operation", operation)
                .arg("status", status)
                .arg("code", code)
                .arg("message", message),
        }
    }

    fn hint(&self) -> Option<Message> {
        let key = match self {
            // The local provider names disks by path; the clouds name them by ID.
            CloudError::DiskNotFound { disk } if disk.contains('/') => "cloud.hint.disk_file_not_found",
            CloudError::DiskNotFound { .. } => "cloud.hint.disk_not_found",
            CloudError::DiskLocked { .. } => "cloud.hint.disk_locked",
            CloudError::NotQcow2 { .. } => "cloud.hint.not_qcow2",
            CloudError::DiskBusy { .. } | CloudError::SnapshotInProgress { .. } => "cloud.hint.wait_and_retry",
            CloudError::SnapshotNotFound { .. } | CloudError::SnapshotAmbiguous { .. } => "cloud.hint.list",
            CloudError::SnapshotFromOtherDisk { .. } => "cloud.hint.other_disk",
            CloudError::SnapshotExists { .. } => "cloud.hint.snapshot_exists",
            CloudError::SnapshotNotLatest { .. } => "cloud.hint.not_latest",
            CloudError::SizeMismatch { .. } => "cloud.hint.size_mismatch",
            CloudError::VolumeNotAvailable { .. } => "cloud.hint.volume_not_available",
            CloudError::NotAttached { .. } => "cloud.hint.not_attached",
            CloudError::InstanceNotStopped { .. } => "cloud.hint.instance_not_stopped",
            CloudError::Timeout { .. } => "cloud.hint.timeout",
            CloudError::ToolMissing { .. } => "cloud.hint.tool_missing",
            CloudError::Config { .. } => "cloud.hint.config",
            CloudError::Credential { .. } => "cloud.hint.credential",
            CloudError::Auth { .. } => "cloud.hint.auth",
            CloudError::Api { code, .. } => return api_hint(code).map(Message::new),
            CloudError::RollbackInterrupted { instance_left_stopped, safety_copy, .. } => {
                let none = "-".to_owned();
                return Some(
                    Message::new("cloud.hint.rollback_interrupted")
                        .arg("instance", instance_left_stopped.as_ref().unwrap_or(&none))
                        .arg("copy", safety_copy.as_ref().unwrap_or(&none)),
                );
            }
            _ => return None,
        };
        Some(Message::new(key))
    }
}

/// Picks the message for an API error code: the codes the runbook's preconditions map to get
/// their own sentence, the rest the generic one.
fn api_key(code: &str) -> &'static str {
    match code {
        "IncorrectDiskStatus" | "IncorrectDiskStatus.Initializing" => "cloud.api.incorrect_disk_status",
        "IncorrectInstanceStatus" => "cloud.api.incorrect_instance_status",
        "InvalidSnapshotId.NotFound" | "InvalidSnapshot.NotFound" => "cloud.api.snapshot_not_found",
        "InvalidDiskId.NotFound" | "InvalidDisk.NotFound" => "cloud.api.disk_not_found",
        "InvalidInstanceId.NotFound" => "cloud.api.instance_not_found",
        "Throttling" | "Throttling.User" | "Throttling.Api" => "cloud.api.throttling",
        "InvalidAccessKeyId.NotFound" | "SignatureDoesNotMatch" | "InvalidAccessKeyId" => "cloud.api.auth",
        "IncorrectSnapshotStatus" | "SnapshotCreatedDisk" | "SnapshotCreatedImage" => "cloud.api.incorrect_snapshot_status",
        "QuotaExceed.Snapshot" => "cloud.api.snapshot_quota",
        _ => "cloud.error.api",
    }
}

fn api_hint(code: &str) -> Option<&'static str> {
    match api_key(code) {
        "cloud.api.incorrect_disk_status" => Some("cloud.hint.wait_and_retry"),
        "cloud.api.incorrect_instance_status" => Some("cloud.hint.instance_not_stopped"),
        "cloud.api.snapshot_not_found" => Some("cloud.hint.list"),
        "cloud.api.throttling" => Some("cloud.hint.throttling"),
        "cloud.api.auth" => Some("cloud.hint.auth"),
        _ => None,
    }
}
