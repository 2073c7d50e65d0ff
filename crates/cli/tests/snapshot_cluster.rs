//! `caasctl snapshot create` for the hosts of an Ansible inventory group: disks found through
//! `[cloud.hosts]` or the `host_disks` name templates of caasctl.toml, roles from the inventory
//! groups, tags on the fake ECS endpoint, and an etcd backup taken first with
//! `--with-etcd-backup` against a real etcd 3.5 member.

use std::path::Path;
use std::process::{Command, Output};

use caasctl_testing::etcd::ClusterOptions;
use caasctl_testing::fake_ecs::{self, FakeEcs};
use caasctl_testing::{EtcdCluster, EtcdVersion};

const INVENTORY: &str = "[OSEv3:children]\nmasters\nnodes\netcd\n\n[masters]\nmaster1.example.com\n\n[etcd]\netcd1.example.com\n\n[nodes]\nmaster1.example.com\netcd1.example.com\n";

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn caasctl(dir: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_caasctl"));
    command
        .env("CAASCTL_LANG", "en")
        .env("CAASCTL_NO_PROGRESS", "1")
        .env("CAASCTL_CONFIG", config)
        .env("CAASCTL_STATE_DIR", dir.join("state"))
        .env_remove("CAASCTL_REPO");
    command
}

fn qcow2(path: &Path) -> bool {
    Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(path).arg("4M").status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn group_with_etcd_backup_first() {
    let version = EtcdVersion::V35;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let found = Command::new("qemu-img").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !caasctl_testing::require(found, "qemu-img (Debian package qemu-utils)") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, false));
    assert!(cluster.etcdctl(&["put", "/registry/pods/ns/p1", "v1"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    assert!(qcow2(&images.join("master1-root.qcow2")));
    assert!(qcow2(&images.join("etcd1.qcow2")));
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let etc_etcd = dir.path().join("etc-etcd");
    std::fs::create_dir(&etc_etcd).unwrap();
    std::fs::write(etc_etcd.join("etcd.conf"), format!("ETCD_NAME=m0\nETCD_ADVERTISE_CLIENT_URLS={}\n", cluster.members[0].client_url)).unwrap();
    let repo = dir.path().join("repo");

    // master1 is mapped explicitly; etcd1 by the template, from its short name.
    let config = dir.path().join("caasctl.toml");
    std::fs::write(
        &config,
        format!(
            "[backup]\nrepo = \"{repo}\"\n\n[etcd]\n[[etcd.members]]\nname = \"m0\"\nclient_url = \"{url}\"\nconfig_dir = \"{etc}\"\nservice = {{ kind = \"systemd\", unit = \"etcd\" }}\n\n\
             [cloud]\ncluster = \"prod\"\nhost_disks = [\"{images}/{{short}}.qcow2\"]\n\n[cloud.hosts.\"master1.example.com\"]\ndisks = [\"{images}/master1-root.qcow2\"]\n",
            repo = repo.display(),
            url = cluster.members[0].client_url,
            etc = etc_etcd.display(),
            images = images.display(),
        ),
    )
    .unwrap();

    let output = caasctl(dir.path(), &config)
        .args(["-o", "json", "snapshot", "create", "--provider", "local", "--group", "nodes", "-i"])
        .arg(&inventory)
        .args(["--name", "pre-upgrade", "--with-etcd-backup"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let snapshots = result["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2, "{result:#}");
    assert_eq!(snapshots[0]["host"], "master1.example.com");
    assert_eq!(snapshots[0]["role"], "master");
    assert_eq!(snapshots[0]["disk"], images.join("master1-root.qcow2").display().to_string());
    assert_eq!(snapshots[1]["host"], "etcd1.example.com");
    assert_eq!(snapshots[1]["role"], "etcd");
    assert_eq!(snapshots[1]["disk"], images.join("etcd1.qcow2").display().to_string());
    assert_eq!(snapshots[1]["snapshot"]["name"], "pre-upgrade");

    let backup_id = result["etcd_backup"]["id"].as_str().expect("etcd backup reported").to_owned();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(repo.join(&backup_id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config_archives"][0]["member"], "m0");
    assert!(manifest["revision"].as_i64().unwrap() > 0);

    // Without a disk mapping or template, a host is named in the error.
    std::fs::write(&config, "[cloud]\ncluster = \"prod\"\n").unwrap();
    let unmapped = caasctl(dir.path(), &config).args(["snapshot", "create", "--provider", "local", "--group", "etcd", "-i"]).arg(&inventory).args(["--name", "x"]).output().unwrap();
    assert_eq!(unmapped.status.code(), Some(2), "{}", text(&unmapped));
    assert!(String::from_utf8_lossy(&unmapped.stderr).contains("host etcd1.example.com has no disks"), "{}", text(&unmapped));
    let empty = caasctl(dir.path(), &config).args(["snapshot", "create", "--provider", "local", "--group", "lb", "-i"]).arg(&inventory).args(["--name", "x"]).output().unwrap();
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("group lb has no hosts"), "{}", text(&empty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_snapshots_tagged_on_ecs() {
    let fake = FakeEcs::start(0).await;
    fake.add_instance("i-1", "Running");
    fake.add_disk("d-etcd1", 40, "i-1", "a");
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let config = dir.path().join("caasctl.toml");
    std::fs::write(
        &config,
        format!(
            "[cloud]\ncluster = \"prod\"\n\n[cloud.hosts.\"etcd1.example.com\"]\ndisks = [\"d-etcd1\"]\ninstance = \"i-1\"\n\n\
             [cloud.aliyun]\nregion_id = \"cn-hangzhou\"\nendpoint = \"{}\"\naccess_key_id = {{ env = \"CAASCTL_TEST_AK\" }}\naccess_key_secret = {{ env = \"CAASCTL_TEST_SK\" }}\n",
            fake.endpoint
        ),
    )
    .unwrap();
    let output = caasctl(dir.path(), &config)
        .env("CAASCTL_TEST_AK", fake_ecs::ACCESS_KEY_ID)
        .env("CAASCTL_TEST_SK", fake_ecs::ACCESS_KEY_SECRET)
        .args(["snapshot", "create", "--provider", "aliyun", "--group", "etcd", "-i"])
        .arg(&inventory)
        .args(["--name", "pre-upgrade", "--poll-interval", "0.01"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let snapshots = fake.snapshots();
    assert_eq!(snapshots.len(), 1);
    let tags = &snapshots[0].tags;
    assert!(tags.contains(&("caasctl:cluster".to_owned(), "prod".to_owned())), "{tags:?}");
    assert!(tags.contains(&("caasctl:host".to_owned(), "etcd1.example.com".to_owned())), "{tags:?}");
    assert!(tags.contains(&("caasctl:role".to_owned(), "etcd".to_owned())), "the role comes from the inventory group: {tags:?}");
    assert!(tags.iter().any(|(k, _)| k == "caasctl:time"), "{tags:?}");
}
