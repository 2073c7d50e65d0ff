//! The `openstack` provider: Cinder volume snapshots and revert, Nova server stop and start.
//!
//! Cinder's revert (`POST /volumes/{id}/action {"revert": ...}`, microversion 3.40 and later)
//! has conditions of its own. The volume must be detached with status `available`, the snapshot
//! must be the volume's latest, and the volume must not have been resized since. [`check_rollback`]
//! checks them before anything changes. Because a fresh snapshot would become the latest and
//! block the revert, the copy kept before a rollback is a clone of the volume (`POST /volumes`
//! with `source_volid`), not a snapshot.
//!
//! [`check_rollback`]: SnapshotProvider::check_rollback

pub mod api;
pub mod auth;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{debug, info_span, Instrument};

use crate::config::OpenstackConfig;
use crate::error::CloudError;
use crate::model::{CreateRequest, Disk, Instance, ProviderKind, Snapshot, SnapshotStatus};
use crate::provider::{CloudResult, SafetyCopy, SafetyCopyKind, SnapshotProvider};
use crate::wait::PollState;

use self::api::{error_from_response, http_error, ServerBody, SnapshotBody, VolumeBody};
use self::auth::{authenticate, Credentials, Session};

/// The Cinder microversion that added revert to snapshot.
pub const REVERT_MICROVERSION: &str = "volume 3.40";

/// An OpenStack account.
pub struct OpenstackProvider {
    http: reqwest::Client,
    config: OpenstackConfig,
    credentials: Credentials,
    session: Mutex<Option<Session>>,
}

#[derive(Clone, Copy)]
enum Service {
    Volume,
    Compute,
}

impl OpenstackProvider {
    /// Builds the provider from `[cloud.openstack]`, reading the credentials it references.
    ///
    /// # Errors
    /// [`CloudError::Credential`] or [`CloudError::Config`].
    pub fn new(config: &OpenstackConfig) -> Result<OpenstackProvider, CloudError> {
        let credentials = Credentials::from_config(config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_seconds.unwrap_or(30)))
            .build()
            .map_err(|e| http_error(&config.auth_url, &e))?;
        Ok(OpenstackProvider { http, config: config.clone(), credentials, session: Mutex::new(None) })
    }

    async fn session(&self, renew: bool) -> CloudResult<Session> {
        let mut slot = self.session.lock().await;
        if renew || slot.is_none() {
            *slot = Some(authenticate(&self.http, &self.config, &self.credentials).await?);
        }
        slot.clone().ok_or_else(|| CloudError::Auth { provider: "openstack", message: "no token".to_owned() })
    }

    /// Sends one request, authenticating first and once more when the token has expired (401).
    /// Returns the response body, or `None` for an empty body.
    async fn call(&self, service: Service, method: reqwest::Method, path: &str, body: Option<serde_json::Value>, microversion: Option<&str>) -> CloudResult<Option<serde_json::Value>> {
        let operation = format!("{method} {path}");
        for attempt in 0..2 {
            let session = self.session(attempt > 0).await?;
            let base = match service {
                Service::Volume => &session.volume_url,
                Service::Compute => &session.compute_url,
            };
            let url = format!("{base}{path}");
            let mut request = self.http.request(method.clone(), &url).header("X-Auth-Token", session.token.expose()).header("Accept", "application/json");
            if let Some(version) = microversion {
                request = request.header("OpenStack-API-Version", version);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            debug!(%operation, "request");
            let response = request.send().await.map_err(|e| http_error(&url, &e))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                continue;
            }
            if !response.status().is_success() {
                return Err(error_from_response(&operation, response).await);
            }
            let text = response.text().await.map_err(|e| http_error(&url, &e))?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            let value = serde_json::from_str(&text).map_err(|e| CloudError::Parse { source_name: operation.clone(), reason: e.to_string() })?;
            return Ok(Some(value));
        }
        Err(CloudError::Auth { provider: "openstack", message: "the token was rejected twice".to_owned() })
    }

    async fn get<T: DeserializeOwned>(&self, service: Service, path: &str, key: &str) -> CloudResult<T> {
        let value = self.call(service, reqwest::Method::GET, path, None, None).await?.unwrap_or_default();
        field(value, key, path)
    }

    async fn volume(&self, id: &str) -> CloudResult<VolumeBody> {
        match self.get(Service::Volume, &format!("/volumes/{id}"), "volume").await {
            Err(CloudError::Api { status: 404, .. }) => Err(CloudError::DiskNotFound { disk: id.to_owned() }),
            other => other,
        }
    }
}

fn field<T: DeserializeOwned>(mut value: serde_json::Value, key: &str, operation: &str) -> CloudResult<T> {
    let inner = value.get_mut(key).map(serde_json::Value::take).unwrap_or_default();
    serde_json::from_value(inner).map_err(|e| CloudError::Parse { source_name: operation.to_owned(), reason: format!("{key}: {e}") })
}

impl SnapshotProvider for OpenstackProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Openstack
    }

    fn rollback_needs_stopped_instance(&self) -> bool {
        false
    }

    fn describe_disk<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Disk>> {
        async move { Ok(self.volume(disk).await?.to_disk()) }.boxed()
    }

    fn list_snapshots<'a>(&'a self, disk: &'a str) -> BoxFuture<'a, CloudResult<Vec<Snapshot>>> {
        async move {
            let bodies: Vec<SnapshotBody> = self.get(Service::Volume, &format!("/snapshots/detail?volume_id={disk}"), "snapshots").await?;
            let mut snapshots: Vec<Snapshot> = bodies.iter().filter(|b| b.volume_id == disk).map(SnapshotBody::to_snapshot).collect();
            snapshots.sort_by(|a, b| a.created_at.cmp(&b.created_at));
            Ok(snapshots)
        }
        .boxed()
    }

    fn get_snapshot<'a>(&'a self, disk: &'a str, id: &'a str) -> BoxFuture<'a, CloudResult<Snapshot>> {
        async move {
            match self.get::<SnapshotBody>(Service::Volume, &format!("/snapshots/{id}"), "snapshot").await {
                Ok(body) => Ok(body.to_snapshot()),
                Err(CloudError::Api { status: 404, .. }) => Err(CloudError::SnapshotNotFound { disk: disk.to_owned(), snapshot: id.to_owned() }),
                Err(other) => Err(other),
            }
        }
        .boxed()
    }

    fn create_snapshot<'a>(&'a self, disk: &'a str, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<Snapshot>> {
        let span = info_span!("cloud.openstack.snapshot.create", volume = %disk, name = %request.name);
        async move {
            let metadata: serde_json::Map<String, serde_json::Value> = request.tags.pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let body = json!({ "snapshot": {
                "volume_id": disk, "name": request.name, "description": request.description,
                "force": request.force, "metadata": metadata } });
            let value = self.call(Service::Volume, reqwest::Method::POST, "/snapshots", Some(body), None).await?.unwrap_or_default();
            Ok(field::<SnapshotBody>(value, "snapshot", "POST /snapshots")?.to_snapshot())
        }
        .instrument(span)
        .boxed()
    }

    fn delete_snapshot<'a>(&'a self, _disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.openstack.snapshot.delete", snapshot = %snapshot.id);
        async move {
            self.call(Service::Volume, reqwest::Method::DELETE, &format!("/snapshots/{}", snapshot.id), None, None).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn check_rollback<'a>(&'a self, disk: &'a Disk, snapshot: &'a Snapshot, all: &'a [Snapshot]) -> BoxFuture<'a, CloudResult<()>> {
        async move {
            if disk.raw_status != "available" {
                return Err(CloudError::VolumeNotAvailable { disk: disk.id.clone(), status: disk.raw_status.clone() });
            }
            let latest = all.iter().filter(|s| s.status != SnapshotStatus::Deleting).max_by(|a, b| a.created_at.cmp(&b.created_at));
            if let Some(latest) = latest {
                if latest.id != snapshot.id {
                    return Err(CloudError::SnapshotNotLatest { disk: disk.id.clone(), snapshot: snapshot.name.clone(), latest: latest.name.clone() });
                }
            }
            if let Some(size) = snapshot.disk_size_bytes {
                if size != disk.size_bytes {
                    return Err(CloudError::SizeMismatch { disk: disk.id.clone(), snapshot: snapshot.id.clone(), disk_size: disk.size_bytes, snapshot_size: size });
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn create_safety_copy<'a>(&'a self, disk: &'a Disk, request: &'a CreateRequest) -> BoxFuture<'a, CloudResult<SafetyCopy>> {
        let span = info_span!("cloud.openstack.volume.clone", volume = %disk.id, name = %request.name);
        async move {
            let metadata: serde_json::Map<String, serde_json::Value> = request.tags.pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let body = json!({ "volume": {
                "source_volid": disk.id, "name": request.name, "size": disk.size_bytes >> 30,
                "description": request.description, "metadata": metadata } });
            let value = self.call(Service::Volume, reqwest::Method::POST, "/volumes", Some(body), None).await?.unwrap_or_default();
            let clone: VolumeBody = field(value, "volume", "POST /volumes")?;
            Ok(SafetyCopy { kind: SafetyCopyKind::VolumeClone, id: clone.id, name: request.name.clone() })
        }
        .instrument(span)
        .boxed()
    }

    fn poll_safety_copy<'a>(&'a self, _disk: &'a str, copy: &'a SafetyCopy) -> BoxFuture<'a, CloudResult<PollState>> {
        async move {
            let volume = self.volume(&copy.id).await?;
            Ok(match volume.status.as_str() {
                "available" => PollState::Done,
                s if s.starts_with("error") => PollState::Failed(volume.status.clone()),
                _ => PollState::Pending(None),
            })
        }
        .boxed()
    }

    fn rollback<'a>(&'a self, disk: &'a str, snapshot: &'a Snapshot) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.openstack.volume.revert", volume = %disk, snapshot = %snapshot.id);
        async move {
            let body = json!({ "revert": { "snapshot_id": snapshot.id } });
            self.call(Service::Volume, reqwest::Method::POST, &format!("/volumes/{disk}/action"), Some(body), Some(REVERT_MICROVERSION)).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn describe_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<Instance>> {
        async move {
            match self.get::<ServerBody>(Service::Compute, &format!("/servers/{instance}"), "server").await {
                Ok(server) => Ok(server.to_instance()),
                Err(CloudError::Api { status: 404, .. }) => Err(CloudError::InstanceNotFound { instance: instance.to_owned() }),
                Err(other) => Err(other),
            }
        }
        .boxed()
    }

    fn stop_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.openstack.server.stop", server = %instance);
        async move {
            self.call(Service::Compute, reqwest::Method::POST, &format!("/servers/{instance}/action"), Some(json!({ "os-stop": null })), None).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }

    fn start_instance<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, CloudResult<()>> {
        let span = info_span!("cloud.openstack.server.start", server = %instance);
        async move {
            self.call(Service::Compute, reqwest::Method::POST, &format!("/servers/{instance}/action"), Some(json!({ "os-start": null })), None).await?;
            Ok(())
        }
        .instrument(span)
        .boxed()
    }
}
