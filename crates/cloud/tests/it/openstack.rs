//! The openstack provider against the fake Keystone, Cinder and Nova of caasctl-testing.

use std::time::Duration;

use caasctl_cloud::config::{OpenstackConfig, SecretRef};
use caasctl_cloud::model::{CreateRequest, DiskStatus, SnapshotStatus, SnapshotTags};
use caasctl_cloud::openstack::OpenstackProvider;
use caasctl_cloud::provider::SafetyCopyKind;
use caasctl_cloud::rollback::{self, RollbackRequest, Step};
use caasctl_cloud::wait::WaitOptions;
use caasctl_cloud::{ops, CloudError, SnapshotProvider};
use caasctl_core::NoProgress;
use caasctl_testing::fake_openstack::{self, FakeOpenstack};

const WAIT: WaitOptions = WaitOptions { timeout: Duration::from_secs(10), interval: Duration::from_millis(10) };

fn password_config(fake: &FakeOpenstack, variable: &str, password: &str) -> OpenstackConfig {
    std::env::set_var(variable, password);
    OpenstackConfig {
        auth_url: fake.auth_url.clone(),
        region: Some("RegionOne".into()),
        interface: "public".into(),
        username: Some(fake_openstack::USER.into()),
        user_domain_name: None,
        password: Some(SecretRef::Env { env: variable.into() }),
        project_name: Some("caas".into()),
        project_id: None,
        project_domain_name: None,
        application_credential_id: None,
        application_credential_secret: None,
        request_timeout_seconds: Some(5),
    }
}

fn request(name: &str) -> CreateRequest {
    CreateRequest { name: name.into(), description: None, force: false, tags: SnapshotTags::default() }
}

#[tokio::test]
async fn password_auth_and_wrong_password() {
    let fake = FakeOpenstack::start(0).await;
    fake.add_volume("v1", 10, "available", None, "data-1");
    let provider = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_1", fake_openstack::PASSWORD)).unwrap();
    let disk = provider.describe_disk("v1").await.unwrap();
    assert_eq!(disk.status, DiskStatus::Available);
    assert_eq!(disk.size_bytes, 10 << 30);

    let wrong = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_2", "wrong")).unwrap();
    let error = wrong.describe_disk("v1").await.unwrap_err();
    assert!(matches!(error, CloudError::Auth { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains("wrong"), "the password leaked into the error");
}

#[tokio::test]
async fn application_credential_auth() {
    let fake = FakeOpenstack::start(0).await;
    fake.add_volume("v1", 1, "available", None, "x");
    std::env::set_var("CAASCTL_IT_OS_APP_SECRET", fake_openstack::APP_CREDENTIAL_SECRET);
    let mut config = password_config(&fake, "CAASCTL_IT_OS_PW_3", "unused");
    config.username = None;
    config.password = None;
    config.application_credential_id = Some(fake_openstack::APP_CREDENTIAL_ID.into());
    config.application_credential_secret = Some(SecretRef::Env { env: "CAASCTL_IT_OS_APP_SECRET".into() });
    let provider = OpenstackProvider::new(&config).unwrap();
    assert_eq!(provider.describe_disk("v1").await.unwrap().id, "v1");
}

#[tokio::test]
async fn create_waits_and_needs_force_when_attached() {
    let fake = FakeOpenstack::start(3).await;
    fake.add_volume("v1", 10, "in-use", Some("srv-1"), "data-1");
    let provider = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_4", fake_openstack::PASSWORD)).unwrap();

    let error = ops::create(&provider, "v1", &request("s1"), Some(WAIT), &NoProgress).await.unwrap_err();
    assert!(matches!(error, CloudError::Api { status: 400, ref code, .. } if code == "badRequest"), "{error:?}");

    let mut forced = request("s1");
    forced.force = true;
    forced.tags.pairs.push(("caasctl:cluster".into(), "prod".into()));
    let snapshot = ops::create(&provider, "v1", &forced, Some(WAIT), &NoProgress).await.unwrap();
    assert_eq!(snapshot.status, SnapshotStatus::Ready);
    assert_eq!(fake.snapshots()[0].metadata["caasctl:cluster"], "prod");

    let listing = ops::list(&provider, "v1").await.unwrap();
    assert_eq!(listing.snapshots.len(), 1);
    assert_eq!(listing.disk.instance.as_deref(), Some("srv-1"));
}

#[tokio::test]
async fn rollback_reverts_with_microversion_and_keeps_clone() {
    let fake = FakeOpenstack::start(2).await;
    fake.add_volume("v1", 10, "available", None, "before");
    fake.add_server("srv-1", "ACTIVE");
    let provider = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_5", fake_openstack::PASSWORD)).unwrap();
    ops::create(&provider, "v1", &request("good"), Some(WAIT), &NoProgress).await.unwrap();
    fake.write("v1", "broken");

    let rollback_request = RollbackRequest { disk: "v1".into(), snapshot: "good".into(), stop: true, instance: Some("srv-1".into()), ..Default::default() };
    let plan = rollback::plan(&provider, &rollback_request).await.unwrap();
    assert!(matches!(plan.steps.first(), Some(Step::StopInstance { .. })));
    assert!(matches!(plan.steps.last(), Some(Step::StartInstance { .. })));

    let outcome = rollback::apply(&provider, plan, WAIT, &NoProgress).await.unwrap();
    assert_eq!(fake.volume("v1").unwrap().content, "before");
    assert_eq!(fake.volume("v1").unwrap().status, "available");
    assert_eq!(outcome.safety_copy.kind, SafetyCopyKind::VolumeClone);
    let clone = fake.volume(&outcome.safety_copy.id).unwrap();
    assert_eq!(clone.content, "broken", "the clone must keep the state from before the rollback");
    assert_eq!(fake.server_status("srv-1").as_deref(), Some("ACTIVE"));
    let requests = fake.requests();
    let stop = requests.iter().position(|r| r == "POST /servers/srv-1/action").unwrap();
    let revert = requests.iter().position(|r| r == "POST /volumes/v1/action").unwrap();
    let start = requests.iter().rposition(|r| r == "POST /servers/srv-1/action").unwrap();
    assert!(stop < revert, "{requests:?}");
    assert!(revert < start, "{requests:?}");
}

#[tokio::test]
async fn rollback_preconditions() {
    let fake = FakeOpenstack::start(0).await;
    fake.add_volume("v1", 10, "available", None, "a");
    fake.add_volume("v2", 10, "available", None, "b");
    fake.add_server("srv-1", "ACTIVE");
    let provider = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_6", fake_openstack::PASSWORD)).unwrap();
    let old = ops::create(&provider, "v1", &request("old"), Some(WAIT), &NoProgress).await.unwrap();
    ops::create(&provider, "v1", &request("new"), Some(WAIT), &NoProgress).await.unwrap();
    let other = ops::create(&provider, "v2", &request("other"), Some(WAIT), &NoProgress).await.unwrap();

    let plan = |snapshot: &str, stop: bool, instance: Option<&str>| RollbackRequest {
        disk: "v1".into(),
        snapshot: snapshot.into(),
        stop,
        instance: instance.map(str::to_owned),
        ..Default::default()
    };
    let error = rollback::plan(&provider, &plan(&old.id, false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotNotLatest { .. }), "{error:?}");
    let error = rollback::plan(&provider, &plan(&other.id, false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotFromOtherDisk { ref source_disk, .. } if source_disk == "v2"), "{error:?}");
    let error = rollback::plan(&provider, &plan("missing", false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotNotFound { .. }), "{error:?}");
    let error = rollback::plan(&provider, &plan("new", false, Some("srv-1"))).await.unwrap_err();
    assert!(matches!(error, CloudError::InstanceNotStopped { .. }), "{error:?}");

    fake.set_volume("v1", "in-use", 10);
    let error = rollback::plan(&provider, &plan("new", false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::VolumeNotAvailable { .. }), "{error:?}");
    fake.set_volume("v1", "available", 20);
    let error = rollback::plan(&provider, &plan("new", false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::SizeMismatch { .. }), "{error:?}");
    fake.set_volume("v1", "attaching", 10);
    let error = rollback::plan(&provider, &plan("new", false, None)).await.unwrap_err();
    assert!(matches!(error, CloudError::DiskBusy { .. }), "{error:?}");

    let error = rollback::plan(&provider, &RollbackRequest { disk: "gone".into(), snapshot: "x".into(), ..Default::default() }).await.unwrap_err();
    assert!(matches!(error, CloudError::DiskNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn revert_without_microversion_is_rejected() {
    // The fake rejects a revert without the microversion header as an unknown action (404).
    // The provider always sends the header; this raw request checks the fake's side of it.
    let fake = FakeOpenstack::start(0).await;
    let client = reqwest::Client::new();
    let auth = client
        .post(format!("{}/auth/tokens", fake.auth_url))
        .json(&serde_json::json!({ "auth": { "identity": { "methods": ["application_credential"], "application_credential": {
            "id": fake_openstack::APP_CREDENTIAL_ID, "secret": fake_openstack::APP_CREDENTIAL_SECRET } } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), 201);
    let token = auth.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let url = fake.auth_url.replace("/identity/v3", &format!("/volume/v3/{}/volumes/v1/action", fake_openstack::PROJECT_ID));
    let response = client.post(&url).header("X-Auth-Token", &token).json(&serde_json::json!({ "revert": { "snapshot_id": "s" } })).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["itemNotFound"]["code"], 404);
}

#[tokio::test]
async fn delete_snapshot_and_timeout() {
    let fake = FakeOpenstack::start(1000).await;
    fake.add_volume("v1", 1, "available", None, "x");
    let provider = OpenstackProvider::new(&password_config(&fake, "CAASCTL_IT_OS_PW_7", fake_openstack::PASSWORD)).unwrap();
    let short = WaitOptions { timeout: Duration::from_millis(100), interval: Duration::from_millis(10) };
    let error = ops::create(&provider, "v1", &request("slow"), Some(short), &NoProgress).await.unwrap_err();
    assert!(matches!(error, CloudError::Timeout { .. }), "{error:?}");

    let error = ops::create(&provider, "v1", &request("second"), Some(short), &NoProgress).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotInProgress { .. }), "{error:?}");

    ops::delete(&provider, "v1", "slow").await.unwrap();
    assert!(fake.snapshots().is_empty());
}
