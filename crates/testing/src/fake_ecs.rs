//! A stand-in for the Alibaba Cloud ECS RPC API (version 2014-05-26) on a loopback port, for
//! testing the snapshot client where no Alibaba Cloud endpoint can be reached. It is
//! hand-written from the published API reference and signature documentation. It is not ECS.
//!
//! What it follows: every request is a `GET /?...` with the common parameters (`Format=JSON`,
//! `Version`, `AccessKeyId`, `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`,
//! `SignatureNonce`, `Timestamp`). The fake recomputes the signature with its own HMAC-SHA1 (ring)
//! and rejects a mismatch, an unknown AccessKey or a reused nonce. Errors come back as
//! `{"RequestId", "Code", "Message"}`. A CreateSnapshot with a `ClientToken` already seen returns
//! the first snapshot again. ResetDisk needs the instance `Stopped` and a complete snapshot of the
//! same disk. StopInstance and StartInstance pass through `Stopping`/`Starting`, and snapshots
//! through `progressing`, for a set number of reads.
//!
//! What it does not model: the Timestamp's validity window, RAM policies, regions other than
//! the configured one, pagination beyond one page of 100, quotas, billing, disk categories,
//! encrypted disks and the data itself. Each disk carries a `content` label that snapshots copy
//! and ResetDisk restores. NOTE: the HTTP statuses of errors (400 for Throttling and signature
//! errors, 403 for Incorrect*Status, 404 for *.NotFound) follow the ECS error pages as far as they
//! list them. The client keys its behaviour on `Code`, not on the status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

/// AccessKey ID the fake accepts.
pub const ACCESS_KEY_ID: &str = "LTAI-test-id";
/// Secret of [`ACCESS_KEY_ID`].
pub const ACCESS_KEY_SECRET: &str = "test-secret";

/// A disk held by the fake.
#[derive(Debug, Clone)]
pub struct EcsDisk {
    /// Disk ID.
    pub id: String,
    /// ECS status (`In_use`, `Available`, `ReIniting`).
    pub status: String,
    /// Size in GiB.
    pub size: u64,
    /// Instance it is attached to, or empty.
    pub instance: String,
    /// Label standing in for the data.
    pub content: String,
    reads_left: u32,
}

/// A snapshot held by the fake.
#[derive(Debug, Clone)]
pub struct EcsSnapshot {
    /// Snapshot ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Source disk.
    pub disk: String,
    /// `progressing` or `accomplished`.
    pub status: String,
    /// Size of the disk in GiB when taken.
    pub size: u64,
    /// Content label of the disk when taken.
    pub content: String,
    /// Tags given at creation.
    pub tags: Vec<(String, String)>,
    /// Creation sequence number.
    pub created: u64,
    reads_left: u32,
    total_reads: u32,
}

#[derive(Debug, Default)]
struct Inner {
    disks: BTreeMap<String, EcsDisk>,
    snapshots: Vec<EcsSnapshot>,
    instances: HashMap<String, (String, u32, String)>,
    tokens: HashMap<String, String>,
    nonces: HashSet<String>,
    sequence: u64,
    reads_to_settle: u32,
    throttle_next: u32,
    fail_after_create: u32,
    actions: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake; the server task stops when this is dropped.
pub struct FakeEcs {
    /// Endpoint URL, such as `http://127.0.0.1:PORT`.
    pub endpoint: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEcs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEcs {
    /// Starts the fake on a free loopback port; state changes settle after `reads_to_settle` reads.
    pub async fn start(reads_to_settle: u32) -> FakeEcs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let shared: Shared = Arc::default();
        shared.lock().unwrap().reads_to_settle = reads_to_settle;
        let app = Router::new().route("/", get(handle)).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeEcs { endpoint: format!("http://{address}"), shared, task }
    }

    /// Adds an instance in `status` (`Running`, `Stopped`).
    pub fn add_instance(&self, id: &str, status: &str) {
        self.shared.lock().unwrap().instances.insert(id.to_owned(), (status.to_owned(), 0, status.to_owned()));
    }

    /// Adds a disk attached to `instance` (`In_use`), or detached (`Available`) when it is empty.
    pub fn add_disk(&self, id: &str, size_gib: u64, instance: &str, content: &str) {
        let status = if instance.is_empty() { "Available" } else { "In_use" };
        let disk = EcsDisk { id: id.to_owned(), status: status.to_owned(), size: size_gib, instance: instance.to_owned(), content: content.to_owned(), reads_left: 0 };
        self.shared.lock().unwrap().disks.insert(id.to_owned(), disk);
    }

    /// Changes a disk's content label, as a write inside the VM would.
    pub fn write(&self, disk: &str, content: &str) {
        if let Some(d) = self.shared.lock().unwrap().disks.get_mut(disk) {
            d.content = content.to_owned();
        }
    }

    /// Detaches a disk from its instance.
    pub fn detach(&self, disk: &str) {
        if let Some(d) = self.shared.lock().unwrap().disks.get_mut(disk) {
            d.instance.clear();
            d.status = "Available".to_owned();
        }
    }

    /// Rejects the next `count` requests with `Throttling`.
    pub fn throttle_next(&self, count: u32) {
        self.shared.lock().unwrap().throttle_next = count;
    }

    /// Makes the next `count` CreateSnapshot calls take the snapshot but return 503, as when a
    /// response is lost after the work was done.
    pub fn fail_after_create(&self, count: u32) {
        self.shared.lock().unwrap().fail_after_create = count;
    }

    /// Returns a disk.
    pub fn disk(&self, id: &str) -> Option<EcsDisk> {
        self.shared.lock().unwrap().disks.get(id).cloned()
    }

    /// Returns every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<EcsSnapshot> {
        self.shared.lock().unwrap().snapshots.clone()
    }

    /// Returns an instance's status.
    pub fn instance_status(&self, id: &str) -> Option<String> {
        self.shared.lock().unwrap().instances.get(id).map(|i| i.0.clone())
    }

    /// Returns the Action of every request received, in order.
    pub fn actions(&self) -> Vec<String> {
        self.shared.lock().unwrap().actions.clone()
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Computes the signature independently of the client, with ring.
fn expected_signature(params: &BTreeMap<String, String>) -> String {
    let canonical: Vec<String> = params.iter().filter(|(k, _)| *k != "Signature").map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let to_sign = format!("GET&%2F&{}", encode(&canonical.join("&")));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, format!("{ACCESS_KEY_SECRET}&").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "RequestId": "FAKE-REQUEST", "HostId": "ecs.fake", "Code": code, "Message": message }))).into_response()
}

fn ok(mut body: Value) -> Response {
    body["RequestId"] = json!("FAKE-REQUEST");
    Json(body).into_response()
}

fn ids(params: &BTreeMap<String, String>, name: &str) -> Option<Vec<String>> {
    params.get(name).map(|text| serde_json::from_str(text).unwrap_or_default())
}

async fn handle(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    let params: BTreeMap<String, String> = query.into_iter().collect();
    let mut inner = shared.lock().unwrap();
    let action = params.get("Action").cloned().unwrap_or_default();
    inner.actions.push(action.clone());

    for name in ["Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Signature"] {
        if !params.contains_key(name) {
            return error(StatusCode::BAD_REQUEST, &format!("Missing{name}"), &format!("{name} is mandatory for this action."));
        }
    }
    if params["Version"] != "2014-05-26" || params["SignatureMethod"] != "HMAC-SHA1" || params["SignatureVersion"] != "1.0" {
        return error(StatusCode::BAD_REQUEST, "InvalidParameter", "Version, SignatureMethod or SignatureVersion is not supported.");
    }
    if params["AccessKeyId"] != ACCESS_KEY_ID {
        return error(StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound", "Specified access key is not found.");
    }
    if params["Signature"] != expected_signature(&params) {
        return error(StatusCode::BAD_REQUEST, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.");
    }
    if !inner.nonces.insert(params["SignatureNonce"].clone()) {
        return error(StatusCode::BAD_REQUEST, "SignatureNonceUsed", "Specified signature nonce was used already.");
    }
    if inner.throttle_next > 0 {
        inner.throttle_next -= 1;
        return error(StatusCode::BAD_REQUEST, "Throttling", "Request was denied due to request throttling.");
    }
    match action.as_str() {
        "DescribeDisks" => describe_disks(&mut inner, &params),
        "DescribeSnapshots" => describe_snapshots(&mut inner, &params),
        "DescribeInstances" => describe_instances(&mut inner, &params),
        "CreateSnapshot" => create_snapshot(&mut inner, &params),
        "DeleteSnapshot" => delete_snapshot(&mut inner, &params),
        "ResetDisk" => reset_disk(&mut inner, &params),
        "StopInstance" => power(&mut inner, &params, "Running", "Stopped"),
        "StartInstance" => power(&mut inner, &params, "Stopped", "Running"),
        _ => error(StatusCode::BAD_REQUEST, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."),
    }
}

fn describe_disks(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    let wanted = ids(params, "DiskIds");
    let mut out = Vec::new();
    for disk in inner.disks.values_mut().filter(|d| wanted.as_ref().is_none_or(|w| w.contains(&d.id))) {
        if disk.reads_left > 0 {
            disk.reads_left -= 1;
            if disk.reads_left == 0 {
                disk.status = "In_use".to_owned();
            }
        }
        out.push(json!({ "DiskId": disk.id, "DiskName": format!("disk-{}", disk.id), "Status": disk.status, "Size": disk.size, "InstanceId": disk.instance, "Category": "cloud_essd" }));
    }
    ok(json!({ "TotalCount": out.len(), "PageNumber": 1, "PageSize": 10, "Disks": { "Disk": out } }))
}

fn describe_snapshots(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    let wanted = ids(params, "SnapshotIds");
    let disk = params.get("DiskId");
    let mut out = Vec::new();
    for snapshot in inner.snapshots.iter_mut() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&snapshot.id)) || disk.is_some_and(|d| d != &snapshot.disk) {
            continue;
        }
        if snapshot.reads_left > 0 {
            snapshot.reads_left -= 1;
            if snapshot.reads_left == 0 {
                snapshot.status = "accomplished".to_owned();
            }
        }
        let progress = if snapshot.total_reads == 0 { 100 } else { 100 * (snapshot.total_reads - snapshot.reads_left) / snapshot.total_reads };
        let tags: Vec<Value> = snapshot.tags.iter().map(|(k, v)| json!({ "TagKey": k, "TagValue": v })).collect();
        out.push(json!({
            "SnapshotId": snapshot.id, "SnapshotName": snapshot.name, "SourceDiskId": snapshot.disk,
            "SourceDiskSize": snapshot.size.to_string(), "Status": snapshot.status, "Progress": format!("{progress}%"),
            "CreationTime": format!("2026-01-01T00:{:02}:00Z", snapshot.created % 60), "Tags": { "Tag": tags }
        }));
    }
    ok(json!({ "TotalCount": out.len(), "PageNumber": 1, "PageSize": 100, "Snapshots": { "Snapshot": out } }))
}

fn describe_instances(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    let wanted = ids(params, "InstanceIds");
    let mut out = Vec::new();
    for (id, state) in inner.instances.iter_mut().filter(|(id, _)| wanted.as_ref().is_none_or(|w| w.contains(id))) {
        if state.1 > 0 {
            state.1 -= 1;
            if state.1 == 0 {
                state.0 = state.2.clone();
            }
        }
        out.push(json!({ "InstanceId": id, "InstanceName": format!("vm-{id}"), "Status": state.0 }));
    }
    ok(json!({ "TotalCount": out.len(), "Instances": { "Instance": out } }))
}

fn create_snapshot(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    if let Some(existing) = params.get("ClientToken").and_then(|t| inner.tokens.get(t)) {
        return ok(json!({ "SnapshotId": existing }));
    }
    let disk_id = params.get("DiskId").cloned().unwrap_or_default();
    let Some(disk) = inner.disks.get(&disk_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "InvalidDiskId.NotFound", "The specified disk does not exist.");
    };
    if disk.status != "In_use" {
        return error(StatusCode::FORBIDDEN, "IncorrectDiskStatus", "The current disk status does not support this operation.");
    }
    let instance_status = inner.instances.get(&disk.instance).map(|i| i.0.clone()).unwrap_or_default();
    if instance_status != "Running" && instance_status != "Stopped" {
        return error(StatusCode::FORBIDDEN, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.");
    }
    inner.sequence += 1;
    let mut tags = Vec::new();
    for n in 1..=20 {
        if let Some(key) = params.get(&format!("Tag.{n}.Key")) {
            tags.push((key.clone(), params.get(&format!("Tag.{n}.Value")).cloned().unwrap_or_default()));
        }
    }
    let reads = inner.reads_to_settle;
    let snapshot = EcsSnapshot {
        id: format!("s-fake{:06}", inner.sequence),
        name: params.get("SnapshotName").cloned().unwrap_or_default(),
        disk: disk_id,
        status: if reads == 0 { "accomplished".to_owned() } else { "progressing".to_owned() },
        size: disk.size,
        content: disk.content,
        tags,
        created: inner.sequence,
        reads_left: reads,
        total_reads: reads,
    };
    let id = snapshot.id.clone();
    if let Some(token) = params.get("ClientToken") {
        inner.tokens.insert(token.clone(), id.clone());
    }
    inner.snapshots.push(snapshot);
    if inner.fail_after_create > 0 {
        inner.fail_after_create -= 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.");
    }
    ok(json!({ "SnapshotId": id }))
}

fn delete_snapshot(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    let id = params.get("SnapshotId").cloned().unwrap_or_default();
    let before = inner.snapshots.len();
    inner.snapshots.retain(|s| s.id != id);
    if inner.snapshots.len() == before {
        return error(StatusCode::NOT_FOUND, "InvalidSnapshotId.NotFound", "The specified snapshot does not exist.");
    }
    ok(json!({}))
}

fn reset_disk(inner: &mut Inner, params: &BTreeMap<String, String>) -> Response {
    let disk_id = params.get("DiskId").cloned().unwrap_or_default();
    let snapshot_id = params.get("SnapshotId").cloned().unwrap_or_default();
    let Some(disk) = inner.disks.get(&disk_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "InvalidDiskId.NotFound", "The specified disk does not exist.");
    };
    let Some(snapshot) = inner.snapshots.iter().find(|s| s.id == snapshot_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "InvalidSnapshotId.NotFound", "The specified snapshot does not exist.");
    };
    if snapshot.disk != disk_id {
        return error(StatusCode::FORBIDDEN, "InvalidSnapshotId.NotMatch", "The specified snapshot was not created from the disk.");
    }
    if snapshot.status != "accomplished" {
        return error(StatusCode::FORBIDDEN, "IncorrectSnapshotStatus", "The current snapshot status does not support this operation.");
    }
    if disk.status != "In_use" {
        return error(StatusCode::FORBIDDEN, "IncorrectDiskStatus", "The current disk status does not support this operation.");
    }
    if inner.instances.get(&disk.instance).map(|i| i.0.as_str()) != Some("Stopped") {
        return error(StatusCode::FORBIDDEN, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.");
    }
    let reads = inner.reads_to_settle.max(1);
    if let Some(disk) = inner.disks.get_mut(&disk_id) {
        disk.content = snapshot.content;
        disk.status = "ReIniting".to_owned();
        disk.reads_left = reads;
    }
    ok(json!({}))
}

fn power(inner: &mut Inner, params: &BTreeMap<String, String>, from: &str, to: &str) -> Response {
    let id = params.get("InstanceId").cloned().unwrap_or_default();
    let reads = inner.reads_to_settle.max(1);
    let Some(state) = inner.instances.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist.");
    };
    if state.0 != from {
        return error(StatusCode::FORBIDDEN, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.");
    }
    state.0 = if to == "Stopped" { "Stopping".to_owned() } else { "Starting".to_owned() };
    state.1 = reads;
    state.2 = to.to_owned();
    ok(json!({}))
}
