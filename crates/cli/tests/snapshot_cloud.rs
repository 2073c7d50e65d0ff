//! `caasctl snapshot` against the in-process stand-ins for ECS and OpenStack from
//! caasctl-testing, configured through a caasctl.toml whose credentials are references.

use assert_cmd::Command;
use caasctl_testing::fake_ecs::{self, FakeEcs};
use caasctl_testing::fake_openstack::{self, FakeOpenstack};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn caasctl(config: &std::path::Path) -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env("CAASCTL_LANG", "en").env("CAASCTL_NO_PROGRESS", "1").env("CAASCTL_CONFIG", config);
    // Rollbacks are journaled; their journals go beside the test's caasctl.toml.
    command.env("CAASCTL_STATE_DIR", config.with_file_name("state"));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_rollback_with_stop() {
    let fake = FakeEcs::start(1).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-1", 40, "i-1", "good");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("ak-secret");
    std::fs::write(&secret, fake_ecs::ACCESS_KEY_SECRET).unwrap();
    let config = dir.path().join("caasctl.toml");
    std::fs::write(
        &config,
        format!(
            "[cloud.aliyun]\nregion_id = \"cn-hangzhou\"\nendpoint = \"{}\"\naccess_key_id = {{ env = \"CAASCTL_TEST_AK\" }}\naccess_key_secret = {{ file = \"{}\" }}\n",
            fake.endpoint,
            secret.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = caasctl(&config);
        command.env("CAASCTL_TEST_AK", fake_ecs::ACCESS_KEY_ID).args(["snapshot"]).args(args).args(["--provider", "aliyun", "--disk", "d-1"]);
        command
    };

    run(&["create", "--name", "pre-upgrade", "--tag", "caasctl:cluster=prod", "--poll-interval", "0.01"]).assert().success().stdout(contains("pre-upgrade"));
    fake.write("d-1", "broken");

    run(&["rollback", "--name", "pre-upgrade"])
        .assert()
        .code(1)
        .stderr(contains("instance i-1 is Running").and(contains("--stop")));
    run(&["rollback", "--name", "pre-upgrade", "--stop", "--dry-run"]).assert().success().stdout(contains("stop instance i-1"));
    assert_eq!(fake.disk("d-1").unwrap().content, "broken", "dry run changed the disk");

    run(&["rollback", "--name", "pre-upgrade", "--stop", "--yes", "--poll-interval", "0.01"]).assert().success().stdout(contains("rolled back"));
    assert_eq!(fake.disk("d-1").unwrap().content, "good");
    assert_eq!(fake.instance_status("i-1").as_deref(), Some("Running"));

    let output = run(&["list", "-o", "json"]).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_config_and_missing_credential() {
    let fake = FakeOpenstack::start(0).await;
    fake.add_volume("v1", 10, "available", None, "a");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caasctl.toml");
    std::fs::write(
        &config,
        format!(
            "[cloud.openstack]\nauth_url = \"{}\"\nusername = \"{}\"\nproject_name = \"caas\"\npassword = {{ env = \"CAASCTL_TEST_OS_PASSWORD\" }}\n",
            fake.auth_url,
            fake_openstack::USER
        ),
    )
    .unwrap();

    caasctl(&config)
        .env_remove("CAASCTL_TEST_OS_PASSWORD")
        .args(["snapshot", "list", "--provider", "openstack", "--disk", "v1"])
        .assert()
        .code(2)
        .stderr(contains("env:CAASCTL_TEST_OS_PASSWORD"));

    caasctl(&config)
        .env("CAASCTL_TEST_OS_PASSWORD", fake_openstack::PASSWORD)
        .args(["snapshot", "create", "--provider", "openstack", "--disk", "v1", "--name", "s1"])
        .assert()
        .success();
    caasctl(&config)
        .env("CAASCTL_TEST_OS_PASSWORD", fake_openstack::PASSWORD)
        .args(["snapshot", "rollback", "--provider", "openstack", "--disk", "v1", "--name", "s1", "--yes", "-o", "json"])
        .assert()
        .success()
        .stdout(contains("\"volume-clone\"").and(contains(fake_openstack::PASSWORD).not()));
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    caasctl(&empty).args(["snapshot", "list", "--provider", "aliyun", "--disk", "d"]).assert().code(2).stderr(contains("no [cloud.aliyun] section"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_hosts_are_tagged_and_partial_failure_exits_3() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_instance("i-2", "Running");
    fake.add_disk("d-1", 40, "i-1", "a");
    fake.add_disk("d-2", 40, "i-2", "b");
    fake.add_disk("d-loose", 40, "", "c");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caasctl.toml");
    std::fs::write(
        &config,
        format!(
            "[cloud]\ncluster = \"prod\"\n\n[cloud.hosts.\"master1\"]\ndisks = [\"d-1\"]\ninstance = \"i-1\"\nrole = \"master\"\n\n\
             [cloud.hosts.\"etcd1\"]\ndisks = [\"d-2\", \"d-loose\"]\nrole = \"etcd\"\n\n\
             [cloud.aliyun]\nregion_id = \"cn-hangzhou\"\nendpoint = \"{}\"\naccess_key_id = {{ env = \"CAASCTL_TEST_AK\" }}\naccess_key_secret = {{ env = \"CAASCTL_TEST_SK\" }}\n",
            fake.endpoint
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = caasctl(&config);
        command.env("CAASCTL_TEST_AK", fake_ecs::ACCESS_KEY_ID).env("CAASCTL_TEST_SK", fake_ecs::ACCESS_KEY_SECRET).arg("snapshot").args(args);
        command
    };

    let output = run(&["create", "--provider", "aliyun", "--hosts", "master1,etcd1", "--name", "pre-upgrade", "-o", "json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 3);
    assert_eq!(results[2]["disk"], "d-loose");
    assert!(results[2]["error"].as_str().unwrap().contains("IncorrectDiskStatus"));

    let snapshots = fake.snapshots();
    assert_eq!(snapshots.len(), 2);
    let tags = &snapshots[1].tags;
    assert!(tags.contains(&("caasctl:cluster".to_owned(), "prod".to_owned())), "{tags:?}");
    assert!(tags.contains(&("caasctl:host".to_owned(), "etcd1".to_owned())), "{tags:?}");
    assert!(tags.contains(&("caasctl:role".to_owned(), "etcd".to_owned())), "{tags:?}");
    assert!(tags.iter().any(|(k, _)| k == "caasctl:time"), "{tags:?}");

    run(&["create", "--provider", "aliyun", "--hosts", "unknown", "--name", "x"]).assert().code(2).stderr(contains("host unknown has no disks"));
    run(&["rollback", "--provider", "aliyun", "--hosts", "master1", "--name", "x", "--yes"]).assert().code(2).stderr(contains("one disk at a time"));
    run(&["list", "--provider", "aliyun", "--hosts", "master1"]).assert().success().stdout(contains("pre-upgrade"));
}
