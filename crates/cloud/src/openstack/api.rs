//! HTTP plumbing shared by the Cinder and Nova calls: error bodies and the JSON shapes read.
//!
//! OpenStack services report an error as a JSON object with a single key naming the fault, such
//! as `{"badRequest": {"message": "...", "code": 400}}` or Keystone's
//! `{"error": {"message": "...", "code": 401, "title": "Unauthorized"}}`. The key becomes the
//! error code and the message is kept as the service wrote it.

use serde::Deserialize;

use crate::error::CloudError;
use crate::model::{parse_percent, Disk, DiskStatus, Instance, InstanceStatus, Snapshot, SnapshotStatus};

const GIB: u64 = 1 << 30;

/// Turns a transport failure into [`CloudError::Http`] without the query string.
pub fn http_error(url: &str, error: &reqwest::Error) -> CloudError {
    let endpoint = url.split('?').next().unwrap_or(url).to_owned();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    CloudError::Http { endpoint, reason }
}

/// Reads an error response into [`CloudError::Api`].
pub async fn error_from_response(operation: &str, response: reqwest::Response) -> CloudError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let (code, message) = parse_fault(&text).unwrap_or_else(|| (String::new(), text.chars().take(300).collect()));
    CloudError::Api { provider: "openstack", operation: operation.to_owned(), status, code, message }
}

/// Splits a fault body into its key and message.
pub fn parse_fault(text: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let (key, inner) = value.as_object()?.iter().next()?;
    let message = inner.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
    Some((key.clone(), message))
}

/// A Cinder volume as `GET /volumes/{id}` returns it.
#[derive(Debug, Deserialize)]
pub struct VolumeBody {
    /// Volume ID.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Cinder status word.
    pub status: String,
    /// Size in GiB.
    pub size: u64,
    /// Servers it is attached to.
    #[serde(default)]
    pub attachments: Vec<AttachmentBody>,
}

/// One attachment of a volume.
#[derive(Debug, Deserialize)]
pub struct AttachmentBody {
    /// Server ID.
    pub server_id: String,
}

impl VolumeBody {
    /// Maps the volume onto the common disk view.
    pub fn to_disk(&self) -> Disk {
        let status = match self.status.as_str() {
            "available" => DiskStatus::Available,
            "in-use" => DiskStatus::InUse,
            "deleting" => DiskStatus::Released,
            s if s.starts_with("error") => DiskStatus::Error,
            _ => DiskStatus::Busy,
        };
        Disk {
            id: self.id.clone(),
            name: self.name.clone().filter(|n| !n.is_empty()),
            size_bytes: self.size * GIB,
            status,
            raw_status: self.status.clone(),
            instance: self.attachments.first().map(|a| a.server_id.clone()),
        }
    }
}

/// A Cinder snapshot.
#[derive(Debug, Deserialize)]
pub struct SnapshotBody {
    /// Snapshot ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Source volume.
    pub volume_id: String,
    /// Cinder status word.
    pub status: String,
    /// Size of the volume when the snapshot was taken, in GiB.
    pub size: u64,
    /// Creation time as Cinder writes it (ISO 8601, often without a zone, meaning UTC).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Percent complete, from the extended snapshot attributes.
    #[serde(default, rename = "os-extended-snapshot-attributes:progress")]
    pub progress: Option<String>,
}

impl SnapshotBody {
    /// Maps the snapshot onto the common view.
    pub fn to_snapshot(&self) -> Snapshot {
        let status = match self.status.as_str() {
            "available" => SnapshotStatus::Ready,
            "creating" | "backing-up" | "restoring" => SnapshotStatus::Creating,
            "deleting" | "deleted" | "unmanaging" => SnapshotStatus::Deleting,
            _ => SnapshotStatus::Error,
        };
        Snapshot {
            id: self.id.clone(),
            name: self.name.clone().unwrap_or_default(),
            disk_id: self.volume_id.clone(),
            disk_size_bytes: Some(self.size * GIB),
            created_at: self.created_at.clone(),
            status,
            raw_status: self.status.clone(),
            progress: self.progress.as_deref().and_then(parse_percent),
        }
    }
}

/// A Nova server.
#[derive(Debug, Deserialize)]
pub struct ServerBody {
    /// Server ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Nova status word (`ACTIVE`, `SHUTOFF`, ...).
    pub status: String,
    /// Task in progress, such as `powering-off`.
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
}

impl ServerBody {
    /// Maps the server onto the common instance view; a running task means a transition.
    pub fn to_instance(&self) -> Instance {
        let status = match (self.status.as_str(), self.task_state.as_deref()) {
            (_, Some(_)) => InstanceStatus::Transition,
            ("ACTIVE", None) => InstanceStatus::Running,
            ("SHUTOFF", None) => InstanceStatus::Stopped,
            ("ERROR", None) => InstanceStatus::Error,
            _ => InstanceStatus::Transition,
        };
        let raw_status = match &self.task_state {
            Some(task) => format!("{} ({task})", self.status),
            None => self.status.clone(),
        };
        Instance { id: self.id.clone(), name: self.name.clone(), status, raw_status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_bodies() {
        assert_eq!(
            parse_fault(r#"{"badRequest": {"message": "Invalid volume", "code": 400}}"#),
            Some(("badRequest".into(), "Invalid volume".into()))
        );
        assert_eq!(
            parse_fault(r#"{"error": {"message": "The request you have made requires authentication.", "code": 401, "title": "Unauthorized"}}"#).unwrap().0,
            "error"
        );
        assert_eq!(parse_fault("<html>"), None);
    }

    #[test]
    fn server_task_state_is_transition() {
        let server = ServerBody { id: "s".into(), name: None, status: "ACTIVE".into(), task_state: Some("powering-off".into()) };
        assert_eq!(server.to_instance().status, InstanceStatus::Transition);
        let server = ServerBody { id: "s".into(), name: None, status: "SHUTOFF".into(), task_state: None };
        assert_eq!(server.to_instance().status, InstanceStatus::Stopped);
    }
}
