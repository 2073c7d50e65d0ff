//! The provider-neutral view of disks, snapshots and instances.
//!
//! Each provider maps its own status words (Cinder's `in-use`, ECS's `In_use`, a qcow2 file's
//! write lock) onto these types, so that the rollback preconditions are written once, in
//! [`crate::rollback`], and read the same for every cloud. The provider's own word is kept in a
//! `raw_status` field for messages and JSON output.

use serde::{Deserialize, Serialize};

/// Which snapshot backend a disk lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// qcow2 image files on this host, through `qemu-img`.
    Local,
    /// OpenStack: Cinder volumes and Nova servers.
    Openstack,
    /// Alibaba Cloud ECS disks and instances.
    Aliyun,
}

impl ProviderKind {
    /// Returns the name used on the command line and in caasctl.toml.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Openstack => "openstack",
            ProviderKind::Aliyun => "aliyun",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// State of a disk as far as snapshots and rollbacks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskStatus {
    /// Not attached and not busy.
    Available,
    /// Attached to an instance, or (local) opened by a running VM.
    InUse,
    /// Being created, attached, detached, restored or otherwise changed.
    Busy,
    /// Released or deleted; nothing can be done with it.
    Released,
    /// In an error state.
    Error,
}

/// A disk: a qcow2 file, a Cinder volume or an ECS disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// File path, volume ID or disk ID.
    pub id: String,
    /// Display name, when the provider has one.
    pub name: Option<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Status mapped onto the common states.
    pub status: DiskStatus,
    /// The provider's own status word.
    pub raw_status: String,
    /// Instance the disk is attached to, when the provider tells.
    pub instance: Option<String>,
}

/// State of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotStatus {
    /// Complete and usable for a rollback.
    Ready,
    /// Still being taken.
    Creating,
    /// Being deleted.
    Deleting,
    /// Failed; cannot be used.
    Error,
}

/// A snapshot of one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Provider ID: the qcow2 snapshot ID, a Cinder snapshot UUID or an ECS snapshot ID.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Disk the snapshot was taken from.
    pub disk_id: String,
    /// Size of the source disk when the snapshot was taken, in bytes, when known.
    pub disk_size_bytes: Option<u64>,
    /// Creation time, RFC 3339 in UTC, when known.
    pub created_at: Option<String>,
    /// Status mapped onto the common states.
    pub status: SnapshotStatus,
    /// The provider's own status word.
    pub raw_status: String,
    /// Percent complete while the snapshot is being taken.
    pub progress: Option<u8>,
}

impl Snapshot {
    /// Returns true when `reference` is this snapshot's ID or name.
    pub fn matches(&self, reference: &str) -> bool {
        self.id == reference || self.name == reference
    }
}

/// State of an instance (server, VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceStatus {
    /// Running.
    Running,
    /// Stopped (Nova `SHUTOFF`, ECS `Stopped`).
    Stopped,
    /// Starting, stopping or otherwise changing.
    Transition,
    /// In an error state.
    Error,
}

/// An instance a disk is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Server or instance ID.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Status mapped onto the common states.
    pub status: InstanceStatus,
    /// The provider's own status word.
    pub raw_status: String,
}

/// Labels attached to a snapshot where the provider supports them (Cinder metadata, ECS tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTags {
    /// Key/value pairs, such as `caasctl:cluster = prod`.
    pub pairs: Vec<(String, String)>,
}

/// What to snapshot and how.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Snapshot name.
    pub name: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Take the snapshot even though the disk is attached (Cinder's `force`).
    pub force: bool,
    /// Labels to attach.
    pub tags: SnapshotTags,
}

/// Parses a percentage such as `"45%"` or `"45"`.
pub fn parse_percent(text: &str) -> Option<u8> {
    text.trim().trim_end_matches('%').trim().parse::<f64>().ok().map(|value| value.clamp(0.0, 100.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_forms() {
        assert_eq!(parse_percent("45%"), Some(45));
        assert_eq!(parse_percent("100"), Some(100));
        assert_eq!(parse_percent(" 7.5% "), Some(7));
        assert_eq!(parse_percent("n/a"), None);
    }
}
