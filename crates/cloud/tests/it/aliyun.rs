//! The aliyun provider against the fake ECS endpoint of caasctl-testing, which checks every
//! request's signature with its own HMAC-SHA1.

use std::time::Duration;

use caasctl_cloud::aliyun::AliyunProvider;
use caasctl_cloud::config::{AliyunConfig, SecretRef};
use caasctl_cloud::model::{CreateRequest, DiskStatus, SnapshotStatus, SnapshotTags};
use caasctl_cloud::rollback::{self, RollbackRequest, Step};
use caasctl_cloud::wait::WaitOptions;
use caasctl_cloud::{ops, CloudError, SnapshotProvider};
use caasctl_core::{Lang, Localize, NoProgress};
use caasctl_testing::fake_ecs::{self, FakeEcs};

const WAIT: WaitOptions = WaitOptions { timeout: Duration::from_secs(10), interval: Duration::from_millis(10) };

fn connect(fake: &FakeEcs, secret: &str) -> AliyunProvider {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    std::env::set_var("CAASCTL_IT_ALIYUN_AK", fake_ecs::ACCESS_KEY_ID);
    let config = AliyunConfig {
        region_id: "cn-hangzhou".into(),
        endpoint: Some(fake.endpoint.clone()),
        access_key_id: SecretRef::Env { env: "CAASCTL_IT_ALIYUN_AK".into() },
        access_key_secret: SecretRef::File { file: secret_file },
        request_timeout_seconds: Some(5),
    };
    let mut provider = AliyunProvider::new(&config).unwrap();
    provider.client_mut().backoff = Duration::from_millis(5);
    provider
}

fn request(name: &str) -> CreateRequest {
    CreateRequest { name: name.into(), description: Some("before upgrade".into()), force: false, tags: SnapshotTags::default() }
}

#[tokio::test]
async fn signed_calls_and_wrong_secret() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "v1");
    let disk = connect(&fake, fake_ecs::ACCESS_KEY_SECRET).describe_disk("d-1").await.unwrap();
    assert_eq!(disk.status, DiskStatus::InUse);
    assert_eq!(disk.instance.as_deref(), Some("i-1"));
    assert_eq!(disk.size_bytes, 40 << 30);

    let error = connect(&fake, "wrong").describe_disk("d-1").await.unwrap_err();
    assert!(matches!(error, CloudError::Api { ref code, .. } if code == "SignatureDoesNotMatch"), "{error:?}");
    assert!(error.message().render(Lang::En).contains("signature does not match"), "{}", error.message().render(Lang::En));

    let error = connect(&fake, fake_ecs::ACCESS_KEY_SECRET).describe_disk("d-gone").await.unwrap_err();
    assert!(matches!(error, CloudError::DiskNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn create_waits_with_progress_and_tags() {
    let fake = FakeEcs::start(4).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "v1");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);
    let mut tagged = request("pre-upgrade");
    tagged.tags.pairs.push(("caasctl:host".into(), "master1".into()));
    let snapshot = ops::create(&provider, "d-1", &tagged, Some(WAIT), &NoProgress).await.unwrap();
    assert_eq!(snapshot.status, SnapshotStatus::Ready);
    assert_eq!(snapshot.progress, Some(100));
    assert_eq!(fake.snapshots()[0].tags, vec![("caasctl:host".to_owned(), "master1".to_owned())]);
    assert!(fake.actions().iter().filter(|a| *a == "DescribeSnapshots").count() >= 4);
}

#[tokio::test]
async fn throttling_is_retried_and_client_token_dedupes() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "v1");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);

    fake.throttle_next(2);
    assert_eq!(provider.describe_disk("d-1").await.unwrap().id, "d-1");

    // The first CreateSnapshot takes the snapshot but its response is lost (503). The retry
    // carries the same ClientToken, so ECS returns the same snapshot instead of a second one.
    fake.fail_after_create(1);
    let snapshot = ops::create(&provider, "d-1", &request("once"), Some(WAIT), &NoProgress).await.unwrap();
    assert_eq!(fake.snapshots().len(), 1);
    assert_eq!(fake.snapshots()[0].id, snapshot.id);
    assert_eq!(fake.actions().iter().filter(|a| *a == "CreateSnapshot").count(), 2);

    fake.throttle_next(10);
    let error = provider.describe_disk("d-1").await.unwrap_err();
    assert!(matches!(error, CloudError::Api { ref code, .. } if code == "Throttling"), "{error:?}");
    assert!(error.hint().is_some());
}

#[tokio::test]
async fn rollback_stops_resets_and_starts() {
    let fake = FakeEcs::start(2).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "good");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);
    ops::create(&provider, "d-1", &request("good"), Some(WAIT), &NoProgress).await.unwrap();
    fake.write("d-1", "broken");

    let without_stop = RollbackRequest { disk: "d-1".into(), snapshot: "good".into(), ..Default::default() };
    let error = rollback::plan(&provider, &without_stop).await.unwrap_err();
    assert!(matches!(error, CloudError::InstanceNotStopped { ref instance, .. } if instance == "i-1"), "{error:?}");

    let with_stop = RollbackRequest { stop: true, ..without_stop };
    let plan = rollback::plan(&provider, &with_stop).await.unwrap();
    let actions: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::StopInstance { .. } => "stop",
            Step::SafetyCopy { .. } => "safety",
            Step::Rollback { .. } => "rollback",
            Step::StartInstance { .. } => "start",
        })
        .collect();
    assert_eq!(actions, ["stop", "safety", "rollback", "start"]);
    assert!(plan.checks.contains(&"cloud.check.attached"));

    let outcome = rollback::apply(&provider, plan, WAIT, &NoProgress).await.unwrap();
    assert_eq!(fake.disk("d-1").unwrap().content, "good");
    assert_eq!(fake.instance_status("i-1").as_deref(), Some("Running"));
    let safety = fake.snapshots().into_iter().find(|s| s.id == outcome.safety_copy.id).unwrap();
    assert_eq!(safety.content, "broken", "the safety snapshot must hold the state before the rollback");
    assert!(safety.name.starts_with("caasctl-pre-rollback-"));
}

#[tokio::test]
async fn rollback_preconditions() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Stopped");
    fake.add_disk("d-1", 40, "i-1", "a");
    fake.add_disk("d-2", 40, "i-1", "b");
    fake.add_disk("d-loose", 40, "", "c");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);
    let other = ops::create(&provider, "d-2", &request("on-d2"), Some(WAIT), &NoProgress).await.unwrap();

    let plan = |disk: &str, snapshot: &str| RollbackRequest { disk: disk.into(), snapshot: snapshot.into(), ..Default::default() };
    let error = rollback::plan(&provider, &plan("d-1", &other.id)).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotFromOtherDisk { .. }), "{error:?}");
    let error = rollback::plan(&provider, &plan("d-1", "s-missing")).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotNotFound { .. }), "{error:?}");
    let error = rollback::plan(&provider, &plan("d-released", "x")).await.unwrap_err();
    assert!(matches!(error, CloudError::DiskNotFound { .. }), "{error:?}");

    // ECS takes snapshots of attached disks only.
    let error = ops::create(&provider, "d-loose", &request("x"), Some(WAIT), &NoProgress).await.unwrap_err();
    assert!(matches!(error, CloudError::Api { ref code, .. } if code == "IncorrectDiskStatus"), "{error:?}");
    assert!(error.message().render(Lang::En).contains("disk is not in a state"));

    let slow = FakeEcs::start(1000).await;
    slow.add_instance("i-1", "Stopped");
    slow.add_disk("d-1", 40, "i-1", "a");
    let slow_provider = connect(&slow, fake_ecs::ACCESS_KEY_SECRET);
    let short = WaitOptions { timeout: Duration::from_millis(50), interval: Duration::from_millis(10) };
    let pending = ops::create(&slow_provider, "d-1", &request("pending"), Some(short), &NoProgress).await.unwrap_err();
    assert!(matches!(pending, CloudError::Timeout { .. }), "{pending:?}");
    let error = rollback::plan(&slow_provider, &plan("d-1", "pending")).await.unwrap_err();
    assert!(matches!(error, CloudError::SnapshotInProgress { .. }), "{error:?}");

    ops::create(&provider, "d-1", &request("s1"), Some(WAIT), &NoProgress).await.unwrap();
    fake.detach("d-1");
    let error = rollback::plan(&provider, &plan("d-1", "s1")).await.unwrap_err();
    assert!(matches!(error, CloudError::NotAttached { .. }), "{error:?}");
}

#[tokio::test]
async fn delete_and_not_found_message() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "a");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);
    let snapshot = ops::create(&provider, "d-1", &request("s1"), Some(WAIT), &NoProgress).await.unwrap();
    ops::delete(&provider, "d-1", "s1").await.unwrap();
    assert!(fake.snapshots().is_empty());
    let error = provider.delete_snapshot("d-1", &snapshot).await.unwrap_err();
    assert!(matches!(error, CloudError::Api { status: 404, ref code, .. } if code == "InvalidSnapshotId.NotFound"), "{error:?}");
    assert!(error.message().render(Lang::ZhCn).contains("快照不存在"));
}

#[tokio::test]
async fn failed_rollback_reports_what_was_left() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "good");
    let provider = connect(&fake, fake_ecs::ACCESS_KEY_SECRET);
    let target = ops::create(&provider, "d-1", &request("good"), Some(WAIT), &NoProgress).await.unwrap();
    let request = RollbackRequest { disk: "d-1".into(), snapshot: "good".into(), stop: true, ..Default::default() };
    let plan = rollback::plan(&provider, &request).await.unwrap();

    // The snapshot disappears between plan and apply, so the reset step fails after the stop.
    provider.delete_snapshot("d-1", &target).await.unwrap();
    let error = rollback::apply(&provider, plan, WAIT, &NoProgress).await.unwrap_err();
    let CloudError::RollbackInterrupted { step, instance_left_stopped, safety_copy, .. } = &error else {
        panic!("expected RollbackInterrupted, got {error:?}");
    };
    assert_eq!(*step, 3);
    assert_eq!(instance_left_stopped.as_deref(), Some("i-1"));
    assert!(safety_copy.as_deref().unwrap().starts_with("caasctl-pre-rollback-"));
    assert_eq!(fake.instance_status("i-1").as_deref(), Some("Stopped"));
    assert!(error.hint().unwrap().render(Lang::En).contains("i-1"));
}
