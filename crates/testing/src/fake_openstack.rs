//! A stand-in for Keystone v3, Cinder v3 and Nova on a loopback port, for testing the snapshot
//! client where no OpenStack cloud can run. It is hand-written from the published API
//! references (Identity v3, Block Storage v3, Compute v2.1) and is not OpenStack.
//!
//! What it follows: `POST /v3/auth/tokens` with password or application-credential auth, returning
//! with 201, `X-Subject-Token` and a catalog (`volumev3`, `compute`), or 401. Every other call
//! needs a valid `X-Auth-Token`, else 401. Fault bodies are shaped `{"<fault>": {"message", "code"}}`.
//! Snapshot create returns 202. It answers 400 for a volume that is not `available` unless
//! `force` is true, and 404 for an unknown volume. Revert needs `OpenStack-API-Version: volume
//! 3.40` or later, and an older or missing version gets 404 as an unknown action. The volume
//! must be `available` and the snapshot must be its latest and of the same size, else 400.
//! `os-stop` and `os-start` return 202, or 409 when the server is already in that state.
//! Snapshots, clones, reverts and stops change state only after a set number of status reads.
//!
//! What it does not model: policies and roles, token expiry, pagination, microversions other than
//! the revert check, volume types and quotas, attachments made through the API, the real timing
//! of any backend, and the data itself. Each volume carries a `content` label that snapshots copy
//! and reverts restore, so that tests can tell which state a volume is in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A volume held by the fake.
#[derive(Debug, Clone)]
pub struct FakeVolume {
    /// Volume ID.
    pub id: String,
    /// Cinder status.
    pub status: String,
    /// Size in GiB.
    pub size: u64,
    /// Server it is attached to.
    pub server: Option<String>,
    /// Label standing in for the data; copied by snapshots, restored by revert.
    pub content: String,
    busy_reads: u32,
    settle_to: String,
}

/// A snapshot held by the fake.
#[derive(Debug, Clone)]
pub struct FakeSnapshot {
    /// Snapshot ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Source volume.
    pub volume_id: String,
    /// Cinder status.
    pub status: String,
    /// Size in GiB when taken.
    pub size: u64,
    /// Content label of the volume when taken.
    pub content: String,
    /// Metadata given at creation.
    pub metadata: Value,
    /// Sequence number standing in for the creation time.
    pub created: u64,
    reads_left: u32,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: Vec<String>,
    volumes: HashMap<String, FakeVolume>,
    snapshots: Vec<FakeSnapshot>,
    servers: HashMap<String, (String, u32, String)>,
    sequence: u64,
    reads_to_settle: u32,
    requests: Vec<String>,
}

/// The fake's shared state.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

/// Credentials the fake accepts.
pub const USER: &str = "ops";
/// Password of [`USER`].
pub const PASSWORD: &str = "ops-password";
/// Application credential ID the fake accepts.
pub const APP_CREDENTIAL_ID: &str = "app-cred-1";
/// Secret of [`APP_CREDENTIAL_ID`].
pub const APP_CREDENTIAL_SECRET: &str = "app-cred-secret";
/// Project the fake's catalog URLs carry.
pub const PROJECT_ID: &str = "p-1";

/// A running fake; the server task stops when this is dropped.
pub struct FakeOpenstack {
    /// Keystone v3 URL, such as `http://127.0.0.1:PORT/identity/v3`.
    pub auth_url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenstack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenstack {
    /// Starts the fake on a free loopback port. State changes settle after `reads_to_settle`
    /// status reads.
    pub async fn start(reads_to_settle: u32) -> FakeOpenstack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let shared = Shared::default();
        shared.0.lock().unwrap().reads_to_settle = reads_to_settle;
        let base = format!("http://{address}");
        let app = Router::new()
            .route("/identity/v3/auth/tokens", post(tokens))
            .route("/volume/v3/{project}/volumes", post(clone_volume))
            .route("/volume/v3/{project}/volumes/{id}", get(show_volume))
            .route("/volume/v3/{project}/volumes/{id}/action", post(volume_action))
            .route("/volume/v3/{project}/snapshots", post(create_snapshot))
            .route("/volume/v3/{project}/snapshots/detail", get(list_snapshots))
            .route("/volume/v3/{project}/snapshots/{id}", get(show_snapshot).delete(delete_snapshot))
            .route("/compute/v2.1/servers/{id}", get(show_server))
            .route("/compute/v2.1/servers/{id}/action", post(server_action))
            .with_state((shared.clone(), base.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenstack { auth_url: format!("{base}/identity/v3"), shared, task }
    }

    /// Adds a volume.
    pub fn add_volume(&self, id: &str, size_gib: u64, status: &str, server: Option<&str>, content: &str) {
        let volume = FakeVolume {
            id: id.to_owned(),
            status: status.to_owned(),
            size: size_gib,
            server: server.map(str::to_owned),
            content: content.to_owned(),
            busy_reads: 0,
            settle_to: status.to_owned(),
        };
        self.shared.0.lock().unwrap().volumes.insert(id.to_owned(), volume);
    }

    /// Adds a server in `status` (`ACTIVE`, `SHUTOFF`).
    pub fn add_server(&self, id: &str, status: &str) {
        self.shared.0.lock().unwrap().servers.insert(id.to_owned(), (status.to_owned(), 0, status.to_owned()));
    }

    /// Changes a volume's content label, as a write inside the VM would.
    pub fn write(&self, volume: &str, content: &str) {
        if let Some(v) = self.shared.0.lock().unwrap().volumes.get_mut(volume) {
            v.content = content.to_owned();
        }
    }

    /// Sets a volume's status and size, as an attach, detach or extend would.
    pub fn set_volume(&self, volume: &str, status: &str, size_gib: u64) {
        if let Some(v) = self.shared.0.lock().unwrap().volumes.get_mut(volume) {
            v.status = status.to_owned();
            v.settle_to = status.to_owned();
            v.size = size_gib;
        }
    }

    /// Returns a volume.
    pub fn volume(&self, id: &str) -> Option<FakeVolume> {
        self.shared.0.lock().unwrap().volumes.get(id).cloned()
    }

    /// Returns every volume.
    pub fn volumes(&self) -> Vec<FakeVolume> {
        self.shared.0.lock().unwrap().volumes.values().cloned().collect()
    }

    /// Returns every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<FakeSnapshot> {
        self.shared.0.lock().unwrap().snapshots.clone()
    }

    /// Returns a server's status.
    pub fn server_status(&self, id: &str) -> Option<String> {
        self.shared.0.lock().unwrap().servers.get(id).map(|s| s.0.clone())
    }

    /// Returns `METHOD PATH` of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().requests.clone()
    }
}

type AppState = (Shared, String);

fn fault(status: StatusCode, name: &str, message: &str) -> Response {
    (status, Json(json!({ name: { "message": message, "code": status.as_u16() } }))).into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    headers.get("x-auth-token").and_then(|v| v.to_str().ok()).is_some_and(|t| inner.tokens.iter().any(|k| k == t))
}

macro_rules! guard {
    ($inner:expr, $headers:expr, $what:expr) => {{
        $inner.requests.push($what);
        if !authorized(&$inner, &$headers) {
            return (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "message": "The request you have made requires authentication.", "code": 401, "title": "Unauthorized" } }))).into_response();
        }
    }};
}

async fn tokens(State((shared, base)): State<AppState>, Json(body): Json<Value>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    inner.requests.push("POST /v3/auth/tokens".to_owned());
    let identity = &body["auth"]["identity"];
    let ok = match identity["methods"][0].as_str() {
        Some("password") => {
            let user = &identity["password"]["user"];
            user["name"] == USER && user["password"] == PASSWORD && body["auth"]["scope"]["project"].is_object()
        }
        Some("application_credential") => {
            let credential = &identity["application_credential"];
            credential["id"] == APP_CREDENTIAL_ID && credential["secret"] == APP_CREDENTIAL_SECRET
        }
        _ => false,
    };
    if !ok {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "message": "The request you have made requires authentication.", "code": 401, "title": "Unauthorized" } }))).into_response();
    }
    inner.sequence += 1;
    let token = format!("gAAAA-token-{}", inner.sequence);
    inner.tokens.push(token.clone());
    let catalog = json!([
        { "type": "identity", "endpoints": [{ "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": format!("{base}/identity/v3") }] },
        { "type": "volumev3", "endpoints": [
            { "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": "http://192.0.2.1:8776/v3/p-1" },
            { "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": format!("{base}/volume/v3/{PROJECT_ID}") }] },
        { "type": "compute", "endpoints": [{ "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": format!("{base}/compute/v2.1") }] }
    ]);
    let mut response = (StatusCode::CREATED, Json(json!({ "token": { "catalog": catalog, "methods": [identity["methods"][0]] } }))).into_response();
    response.headers_mut().insert("x-subject-token", token.parse().expect("token is a header value"));
    response
}

/// Advances a volume's pending state change by one read.
fn settle_volume(volume: &mut FakeVolume) {
    if volume.busy_reads > 0 {
        volume.busy_reads -= 1;
        if volume.busy_reads == 0 {
            volume.status = volume.settle_to.clone();
        }
    }
}

fn volume_json(volume: &FakeVolume) -> Value {
    let attachments: Vec<Value> = volume.server.iter().map(|s| json!({ "server_id": s, "volume_id": volume.id })).collect();
    json!({ "id": volume.id, "name": format!("vol-{}", volume.id), "status": volume.status, "size": volume.size, "attachments": attachments })
}

async fn show_volume(State((shared, _)): State<AppState>, Path((_, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("GET /volumes/{id}"));
    match inner.volumes.get_mut(&id) {
        Some(volume) => {
            settle_volume(volume);
            Json(json!({ "volume": volume_json(volume) })).into_response()
        }
        None => fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Volume {id} could not be found.")),
    }
}

async fn clone_volume(State((shared, _)): State<AppState>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, "POST /volumes".to_owned());
    let source_id = body["volume"]["source_volid"].as_str().unwrap_or_default().to_owned();
    let Some(source) = inner.volumes.get(&source_id).cloned() else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Volume {source_id} could not be found."));
    };
    inner.sequence += 1;
    let id = format!("vol-clone-{}", inner.sequence);
    let reads = inner.reads_to_settle;
    let clone = FakeVolume {
        id: id.clone(),
        status: "creating".to_owned(),
        size: body["volume"]["size"].as_u64().unwrap_or(source.size),
        server: None,
        content: source.content.clone(),
        busy_reads: reads.max(1),
        settle_to: "available".to_owned(),
    };
    let response = json!({ "volume": volume_json(&clone) });
    inner.volumes.insert(id, clone);
    (StatusCode::ACCEPTED, Json(response)).into_response()
}

fn snapshot_json(snapshot: &FakeSnapshot) -> Value {
    let progress = if snapshot.status == "available" { "100%".to_owned() } else { format!("{}%", 100 / (snapshot.reads_left + 1)) };
    json!({
        "id": snapshot.id, "name": snapshot.name, "volume_id": snapshot.volume_id, "status": snapshot.status,
        "size": snapshot.size, "metadata": snapshot.metadata,
        "created_at": format!("2026-01-01T00:00:{:02}.000000", snapshot.created % 60),
        "os-extended-snapshot-attributes:progress": progress
    })
}

fn settle_snapshot(snapshot: &mut FakeSnapshot) {
    if snapshot.reads_left > 0 {
        snapshot.reads_left -= 1;
        if snapshot.reads_left == 0 {
            snapshot.status = "available".to_owned();
        }
    }
}

async fn create_snapshot(State((shared, _)): State<AppState>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, "POST /snapshots".to_owned());
    let request = &body["snapshot"];
    let volume_id = request["volume_id"].as_str().unwrap_or_default().to_owned();
    let Some(volume) = inner.volumes.get(&volume_id).cloned() else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Volume {volume_id} could not be found."));
    };
    let force = request["force"].as_bool().unwrap_or(false);
    if volume.status != "available" && !(force && volume.status == "in-use") {
        let message = format!("Invalid volume: Volume {volume_id} status must be available, but current status is: {}.", volume.status);
        return fault(StatusCode::BAD_REQUEST, "badRequest", &message);
    }
    inner.sequence += 1;
    let reads = inner.reads_to_settle;
    let snapshot = FakeSnapshot {
        id: format!("snap-{}", inner.sequence),
        name: request["name"].as_str().unwrap_or_default().to_owned(),
        volume_id,
        status: if reads == 0 { "available".to_owned() } else { "creating".to_owned() },
        size: volume.size,
        content: volume.content,
        metadata: request["metadata"].clone(),
        created: inner.sequence,
        reads_left: reads,
    };
    let response = json!({ "snapshot": snapshot_json(&snapshot) });
    inner.snapshots.push(snapshot);
    (StatusCode::ACCEPTED, Json(response)).into_response()
}

async fn list_snapshots(State((shared, _)): State<AppState>, headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, "GET /snapshots/detail".to_owned());
    let wanted = query.get("volume_id").cloned();
    let mut out = Vec::new();
    for snapshot in inner.snapshots.iter_mut().filter(|s| wanted.as_ref().is_none_or(|w| &s.volume_id == w)) {
        settle_snapshot(snapshot);
        out.push(snapshot_json(snapshot));
    }
    Json(json!({ "snapshots": out })).into_response()
}

async fn show_snapshot(State((shared, _)): State<AppState>, Path((_, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("GET /snapshots/{id}"));
    match inner.snapshots.iter_mut().find(|s| s.id == id) {
        Some(snapshot) => {
            settle_snapshot(snapshot);
            Json(json!({ "snapshot": snapshot_json(snapshot) })).into_response()
        }
        None => fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Snapshot {id} could not be found.")),
    }
}

async fn delete_snapshot(State((shared, _)): State<AppState>, Path((_, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("DELETE /snapshots/{id}"));
    let before = inner.snapshots.len();
    inner.snapshots.retain(|s| s.id != id);
    if inner.snapshots.len() == before {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Snapshot {id} could not be found."));
    }
    StatusCode::ACCEPTED.into_response()
}

/// Returns true when the header requests volume microversion 3.40 or later.
fn revert_allowed(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("openstack-api-version").and_then(|v| v.to_str().ok()) else { return false };
    let Some(version) = value.trim().strip_prefix("volume ") else { return false };
    let mut parts = version.trim().split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    version.trim() == "latest" || major > 3 || (major == 3 && minor >= 40)
}

async fn volume_action(State((shared, _)): State<AppState>, Path((_, id)): Path<(String, String)>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("POST /volumes/{id}/action"));
    let Some(snapshot_id) = body["revert"]["snapshot_id"].as_str().map(str::to_owned) else {
        return fault(StatusCode::BAD_REQUEST, "badRequest", "There is no such action.");
    };
    if !revert_allowed(&headers) {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", "The resource could not be found.");
    }
    let Some(volume) = inner.volumes.get(&id).cloned() else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Volume {id} could not be found."));
    };
    let Some(snapshot) = inner.snapshots.iter().find(|s| s.id == snapshot_id).cloned() else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Snapshot {snapshot_id} could not be found."));
    };
    let latest = inner.snapshots.iter().filter(|s| s.volume_id == id).max_by_key(|s| s.created).map(|s| s.id.clone());
    if volume.status != "available" {
        return fault(StatusCode::BAD_REQUEST, "badRequest", &format!("Invalid volume: Volume {id} status must be available, but current status is: {}.", volume.status));
    }
    if snapshot.volume_id != id || latest.as_deref() != Some(snapshot_id.as_str()) || snapshot.status != "available" {
        return fault(StatusCode::BAD_REQUEST, "badRequest", "Invalid snapshot: Snapshot must be the latest one and available to revert to.");
    }
    if snapshot.size != volume.size {
        return fault(StatusCode::BAD_REQUEST, "badRequest", "Invalid volume: Volume size and snapshot size differ.");
    }
    let reads = inner.reads_to_settle;
    if let Some(volume) = inner.volumes.get_mut(&id) {
        volume.content = snapshot.content.clone();
        volume.status = "reverting".to_owned();
        volume.busy_reads = reads.max(1);
        volume.settle_to = "available".to_owned();
    }
    StatusCode::ACCEPTED.into_response()
}

async fn show_server(State((shared, _)): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("GET /servers/{id}"));
    let Some(server) = inner.servers.get_mut(&id) else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Instance {id} could not be found."));
    };
    let mut task = Value::Null;
    if server.1 > 0 {
        server.1 -= 1;
        task = json!(if server.2 == "SHUTOFF" { "powering-off" } else { "powering-on" });
        if server.1 == 0 {
            server.0 = server.2.clone();
            task = Value::Null;
        }
    }
    Json(json!({ "server": { "id": id, "name": format!("vm-{id}"), "status": server.0, "OS-EXT-STS:task_state": task } })).into_response()
}

async fn server_action(State((shared, _)): State<AppState>, Path(id): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut inner = shared.0.lock().unwrap();
    guard!(inner, headers, format!("POST /servers/{id}/action"));
    let reads = inner.reads_to_settle.max(1);
    let Some(server) = inner.servers.get_mut(&id) else {
        return fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Instance {id} could not be found."));
    };
    let (from, to, action) = if body.get("os-stop").is_some() {
        ("ACTIVE", "SHUTOFF", "stop")
    } else if body.get("os-start").is_some() {
        ("SHUTOFF", "ACTIVE", "start")
    } else {
        return fault(StatusCode::BAD_REQUEST, "badRequest", "Unsupported action.");
    };
    if server.0 != from || server.1 > 0 {
        let message = format!("Cannot '{action}' instance {id} while it is in vm_state {}", server.0.to_lowercase());
        return fault(StatusCode::CONFLICT, "conflictingRequest", &message);
    }
    server.1 = reads;
    server.2 = to.to_owned();
    StatusCode::ACCEPTED.into_response()
}
