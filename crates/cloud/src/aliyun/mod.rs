//! The `aliyun` provider: ECS disk snapshots and ResetDisk, with instance stop and start.
//!
//! The actions used are CreateSnapshot, DescribeSnapshots, DescribeDisks, DescribeInstances,
//! StopInstance, StartInstance, ResetDisk and DeleteSnapshot, all of API version 2014-05-26.
//! ResetDisk needs the disk attached to an instance that is stopped, which is what the runbook's
//! console steps require too, so [`SnapshotProvider::rollback_needs_stopped_instance`] is true.
//! CreateSnapshot carries a `ClientToken`, so a retried call never takes a second snapshot.

pub mod client;
pub mod sign;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::Value;
use tracing::{info_span, Instrument};

use crate::config::AliyunConfig;
use crate::error::CloudError;
use crate::model::{parse_percent, CreateRequest, Disk, DiskStatus, Instance, InstanceStatus, ProviderKind, Snapshot, SnapshotStatus};
use crate::provider::{CloudResult, SnapshotProvider};

use self::client::{client_token, EcsClient};

const GIB: u64 = 1 << 30;

/// An Alibaba Cloud account in one region.
pub struct AliyunProvider {
    client: EcsClient,
    region: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DiskBody {
    disk_id: String,
    #[serde(default)]
    disk_name: String,
    status: String,
    size: u64,
    #[serde(default)]
    instance_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnapshotBody {
    snapshot_id: String,
    #[serde(default)]
    snapshot_name: String,
    #[serde(default)]
    source_disk_id: String,
    #[serde(default)]
    source_disk_size: Value,
    status: String,
    #[serde(default)]
    progress: String,
    #[serde(default)]
    creation_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceBody {
    instance_id: String,
    #[serde(default)]
    instance_name: String,
    status: String,
}

impl DiskBody {
    fn to_disk(&self) -> Disk {
        let status = match self.status.as_str() {
            "In_use" => DiskStatus::InUse,
            "Available" => DiskStatus::Available,
            "Attaching" | "Detaching" | "Creating" | "ReIniting" => DiskStatus::Busy,
            _ => DiskStatus::Error,
        };
        Disk {
            id: self.disk_id.clone(),
            name: Some(self.disk_name.clone()).filter(|n| !n.is_empty()),
            size_bytes: self.size * GIB,
            status,
            raw_status: self.status.clone(),
            instance: Some(self.instance_id.clone()).filter(|i| !i.is_empty()),
        }
    }
}

impl SnapshotBody {
    fn to_snapshot(&self) -> Snapshot {
        let status = match self.status.as_str() {
            "accomplished" => SnapshotStatus::Ready,
            "progressing" => SnapshotStatus::Creating,
            _ => SnapshotStatus::Error,
        };
        // SourceDiskSize is documented as a string of GiB; some responses carry a number.
        let size = match &self.source_disk_size {
            Value::String(text) => text.parse::<u64>().ok(),
            Value::Number(number) => number.as_u64(),
            _ => None,
        };
        Snapshot {
            id: self.snapshot_id.clone(),
            name: self.snapshot_name.clone(),
            disk_id: self.source_disk_id.clone(),
            disk_size_bytes: size.map(|s| s * GIB),
            created_at: self.creation_time.clone(),
            status,
            raw_status: self.status.clone(),
            progress: parse_percent(&self.progress),
        }
    }
}

impl InstanceBody {
    fn to_instance(&self) -> Instance {
        let status = match self.status.as_str() {
            "Running" => InstanceStatus::Running,
            "Stopped" => InstanceStatus::Stopped,
            "Starting" | "Stopping" | "Pending" => InstanceStatus::Transition,
            _ => InstanceStatus::Error,
        };
        Instance { id: self.instance_id.clone(), name: Some(self.instance_name.clone()).filter(|n| !n.is_empty()), status, raw_status: self.status.clone() }
    }
}

/// Reads the list at `outer.inner` of an ECS response, such as `Disks.Disk`.
fn items<T: for<'de> Deserialize<'de>>(value: &Value, outer: &str, inner: &str, action: &str) -> CloudResult<Vec<T>> {
    let list = value.get(outer).and_then(|v| v.get(inner)).cloned().unwrap_or(Value::Array(Vec::new()));
    serde_json::from_value(list).map_err(|e| CloudError::Parse { source_name: format!("ECS {action}"), reason: e.to_string() })
}

fn id_list(id: &str) -> String {
    serde_json::to_string(&[id]).unwrap_or_default()
}

impl AliyunProvider {
    /// Builds the provider from `[cloud.aliyun]`, reading the AccessKey it references.
    ///
    /// # Errors
    /// [`CloudError::Credential`] or [`CloudError::Http`].
    pub fn new(config: &AliyunConfig) -> Result<AliyunProvider, CloudError> {
        let endpoint = config.endpoint.clone().unwrap_or_else(|| format!("https://ecs.{}.aliyuncs.com", config.region_id));
        let timeout = Duration::from_secs(config.request_timeout_seconds.unwrap_or(30));
        let client = EcsClient::new(&endpoint, config.access_key_id.resolve()?, config.access_key_secret.resolve()?, timeout)?;
        Ok(AliyunProvider { client, region: config.region_id.clone() })
    }

    /// Returns the client, to tune retries.
    pub fn client_mut(&mut self) -> &mut EcsClient {
        &mut self.client
    }

    async fn snapshots(&self, filter: (&str, String)) -> CloudResult<Vec<Snapshot>> {
        let mut out = Vec::new();
        for page in 1.. {
            let params = [("RegionId", self.region.clone()), filter.clone(), ("PageSize", "100".to_owned()), ("PageNumber", page.to_string())];
            let response = self.client.call("DescribeSnapshots", &params).await?;
            let bodies: Vec<SnapshotBody> = items(&response, "Snapshots", "Snapshot", "DescribeSnapshots")?;
            let count = bodies.len();
            out.extend(bodies.iter().map(SnapshotBody::to_snapshot));
            let total = response.get("TotalCount").and_then(Value::as_u64).unwrap_or(0) as usize;
            if count < 100 || out.len() >= total {
                break;
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(out)
    }
}

impl SnapshotProvider for AliyunProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aliyun
    }

    fn rollback_needs_stopped_instance(&self) -> bool {
        true
    }

    fn describe_disk<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Disk>> {
        async move {
            let response = self.client.call("DescribeDisks", &[("RegionId", self.region.clone()), ("DiskIds", id_list(disk))]).await?;
            let disks: Vec<DiskBody> = items(&response, "Disks", "Disk", "DescribeDisks")?;
            // A released disk is no longer listed, so absence covers "released" too.
            disks.first().map(DiskBody::to_disk).ok_or_else(|| CloudError::DiskNotFound { disk: disk.to_owned() })
        }
        .boxed()
    }

    fn list_snapshots<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Vec<Snapshot>>> {
        async move { self.snapshots(("DiskId", disk.to_owned())).await }.boxed()
    }

    fn get_snapshot<'a>(&'a self, disk: &'a str, id: &'a str) -> BoxFuture<'a, CloudResult<Snapshot>> {
        async move {
            let found = self.snapshots(("SnapshotIds", id_list(id))).await?;
            found.into_iter().next().ok_or_else(|| CloudError::SnapshotNotFound { disk: disk.to_owned(), snapshot: id.to_owned() })
        }
        .boxed()
    }

    fn create_snapshot<'a>(&'a self, disk: &'a str, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<Snapshot>> {
        let span = info_span!("cloud.aliyun.snapshot.create", disk = %disk, name = %request.name);
        async move {
            let mut params = vec![("DiskId", disk.to_owned()), ("SnapshotName", request.name.clone()), ("ClientToken", client_token())];
            if let Some(description) = &request.description {
                params.push(("Description", description.clone()));
            }
            let tag_names: Vec<(String, String)> = (1..=request.tags.pairs.len()).map(|n| (format!("Tag.{n}.Key"), format!("Tag.{n}.Value"))).collect();
            for ((key_name, value_name), (key, value)) in tag_names.iter().zip(&request.tags.pairs) {
                params.push((key_name.as_str(), key.clone()));
                params.push((value_name.as_str(), value.clone()));
            }
            let response = self.client.call("CreateSnapshot", &params).await?;
            let id = response.get("SnapshotId").and_then(Value::as_str).unwrap_or_default().to_owned();
            if id.is_empty() {
                return Err(CloudError::Parse { source_name: "ECS CreateSnapshot".to_owned(), reason: "no SnapshotId".to_owned() });
            }
            self.get_snapshot(disk, &id).await
        }
        .instrument(span)
        .boxed()
    }

    fn delete_snapshot<'a>(&'a self, _disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.aliyun.snapshot.delete", snapshot = %snapshot.id);
        async move {
            self.client.call("DeleteSnapshot", &[("SnapshotId", snapshot.id.clone())]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn check_rollback<'a>(&'a self, _disk: &'a Disk, _snapshot: &'a Snapshot, _all: &'a [Snapshot]) -> BoxFuture<'a, CloudResult<()>> {
        // The attachment and the stopped instance are checked for every provider that needs them.
        async { Ok(()) }.boxed()
    }

    fn rollback<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.aliyun.disk.reset", disk = %disk, snapshot = %snapshot.id);
        async move {
            self.client.call("ResetDisk", &[("DiskId", disk.to_owned()), ("SnapshotId", snapshot.id.clone())]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn describe_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<Instance>> {
        async move {
            let response = self.client.call("DescribeInstances", &[("RegionId", self.region.clone()), ("InstanceIds", id_list(instance))]).await?;
            let found: Vec<InstanceBody> = items(&response, "Instances", "Instance", "DescribeInstances")?;
            found.first().map(InstanceBody::to_instance).ok_or_else(|| CloudError::InstanceNotFound { instance: instance.to_owned() })
        }
        .boxed()
    }

    fn stop_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.aliyun.instance.stop", instance = %instance);
        async move {
            self.client.call("StopInstance", &[("InstanceId", instance.to_owned())]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn start_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.aliyun.instance.start", instance = %instance);
        async move {
            self.client.call("StartInstance", &[("InstanceId", instance.to_owned())]).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }
}
