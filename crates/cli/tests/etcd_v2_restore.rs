//! The v2 backup and restore against a real etcd 3.4 cluster of three members with mutual TLS and
//! `--enable-v2=true`. The cluster holds v2 keys (written over the v2 HTTP API) and v3 keys. One
//! member is backed up while stopped, the cluster is destroyed, and all three members are
//! restored: the first with `--force-new-cluster`, the others added one at a time.
//!
//! Members run from start and stop scripts (caasctl_testing::scripted), which caasctl drives as
//! the members' service, because no systemd or kubelet runs here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use caasctl_etcd::endpoints::TlsFiles;
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::v2_admin::V2Admin;
use caasctl_testing::etcd::ClusterOptions;
use caasctl_testing::scripted::ScriptedMembers;
use caasctl_testing::{require, EtcdCluster, EtcdVersion};

const V2_KEYS: usize = 40;
const V3_KEYS: usize = 300;

fn caasctl(state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_caasctl"));
    command.env("CAASCTL_STATE_DIR", state).env("CAASCTL_LANG", "en").env_remove("CAASCTL_REPO");
    command
}

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn tls(cluster: &EtcdCluster) -> TlsMaterial {
    let pki = cluster.pki.as_ref().unwrap();
    TlsMaterial::load(&TlsFiles { cacert: Some(pki.ca.clone()), cert: Some(pki.client_cert.clone()), key: Some(pki.client_key.clone()) }).unwrap()
}

fn admin(cluster: &EtcdCluster, index: usize) -> V2Admin {
    V2Admin::new(&cluster.members[index].client_url, &tls(cluster), Duration::from_secs(10)).unwrap()
}

/// Reads every v2 key and value below `/data` over the v2 HTTP API with etcdctl's v2 mode.
fn v2_values(cluster: &EtcdCluster) -> BTreeMap<String, String> {
    let pki = cluster.pki.as_ref().unwrap();
    let output = Command::new(EtcdVersion::V34.etcdctl_binary())
        .env("ETCDCTL_API", "2")
        .arg(format!("--endpoints={}", cluster.endpoints()))
        .arg(format!("--ca-file={}", pki.ca.display()))
        .arg(format!("--cert-file={}", pki.client_cert.display()))
        .arg(format!("--key-file={}", pki.client_key.display()))
        .args(["ls", "--recursive", "-p", "/data"])
        .output()
        .unwrap();
    assert!(output.status.success(), "etcdctl ls: {}", text(&output));
    let mut values = BTreeMap::new();
    for key in String::from_utf8_lossy(&output.stdout).lines().filter(|k| !k.ends_with('/')) {
        let get = Command::new(EtcdVersion::V34.etcdctl_binary())
            .env("ETCDCTL_API", "2")
            .arg(format!("--endpoints={}", cluster.endpoints()))
            .arg(format!("--ca-file={}", pki.ca.display()))
            .arg(format!("--cert-file={}", pki.client_cert.display()))
            .arg(format!("--key-file={}", pki.client_key.display()))
            .args(["get", key])
            .output()
            .unwrap();
        values.insert(key.to_owned(), String::from_utf8_lossy(&get.stdout).trim().to_owned());
    }
    values
}

/// Connects to every member's client URL, whichever process serves it now.
async fn v3_client(cluster: &EtcdCluster) -> etcd_client::Client {
    let pki = cluster.pki.as_ref().unwrap();
    let tls = etcd_client::TlsOptions::new()
        .domain_name("127.0.0.1")
        .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(&pki.ca).unwrap()))
        .identity(etcd_client::Identity::from_pem(std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap()));
    let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(5)).with_tls(tls);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_url.clone()).collect();
    etcd_client::Client::connect(endpoints, Some(options)).await.expect("connect")
}

/// Reads every v3 key and value, retrying while the cluster comes up.
async fn v3_values(cluster: &EtcdCluster) -> BTreeMap<String, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut client = v3_client(cluster).await;
        match client.get(vec![0u8], Some(etcd_client::GetOptions::new().with_from_key())).await {
            Ok(response) => return response.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec())).collect(),
            Err(error) if Instant::now() > deadline => panic!("cluster did not answer: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Waits until every member reports healthy.
async fn wait_healthy(cluster: &EtcdCluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for index in 0..cluster.members.len() {
        while !admin(cluster, index).healthy().await {
            assert!(Instant::now() < deadline, "member {index} is not healthy");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn cluster_file(cluster: &EtcdCluster, scripts: &ScriptedMembers, dir: &Path) -> PathBuf {
    let pki = cluster.pki.as_ref().unwrap();
    let mut toml = format!("[etcd]\ncacert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", pki.ca.display(), pki.client_cert.display(), pki.client_key.display());
    for (index, member) in cluster.members.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[etcd.members]]\nname = \"{}\"\npeer_url = \"{}\"\nclient_url = \"{}\"\ndata_dir = \"{}\"\nowner = \"\"\nservice = {{ kind = \"commands\", start = \"{}\", stop = \"{}\" }}\n",
            member.name,
            member.peer_url,
            member.client_url,
            member.data_dir.display(),
            scripts.members[index].start.display(),
            scripts.members[index].stop.display(),
        ));
    }
    let path = dir.join("caasctl.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn v2_backup_and_restore_three_members() {
    if !require(EtcdVersion::V34.available(), "etcd 3.4") {
        return;
    }
    let mut options = ClusterOptions::new(3, EtcdVersion::V34, true);
    options.extra_args.push("--enable-v2=true".to_owned());
    let mut cluster = EtcdCluster::start(options);
    let work = tempfile::Builder::new().prefix("caasctl-v2-restore-test-").tempdir().unwrap();
    let (repo, state) = (work.path().join("repo"), work.path().join("state"));

    // The harness's processes make way for scripted members, which caasctl stops and starts.
    cluster.stop_all();
    let scripts = ScriptedMembers::write(&cluster, &work.path().join("scripts"));
    scripts.start_all();
    let file = cluster_file(&cluster, &scripts, work.path());
    let rt = runtime();

    rt.block_on(wait_healthy(&cluster));
    let expected_v3 = rt.block_on(async {
        let admin = admin(&cluster, 0);
        for i in 0..V2_KEYS {
            admin.put(&format!("/data/dir{}/key{i:03}", i % 4), &format!("v2-value-{i}")).await.expect("v2 put");
        }
        let mut client = v3_client(&cluster).await;
        for i in 0..V3_KEYS {
            client.put(format!("/registry/things/key{i:04}"), format!("v3-value-{i}"), None).await.unwrap();
        }
        v3_values(&cluster).await
    });
    let expected_v2 = v2_values(&cluster);
    assert_eq!(expected_v2.len(), V2_KEYS);
    assert_eq!(expected_v3.len(), V3_KEYS);

    // Back up member m1: it is stopped, backed up and started again.
    let output = caasctl(&state)
        .args(["-o", "json", "etcd", "backup", "--api", "2", "--member", "m1", "--cluster"])
        .arg(&file)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert!(output.status.success(), "v2 backup failed: {}", text(&output));
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["kind"], "etcd-v2-backup");
    assert_eq!(manifest["v2"]["member"], "m1");
    assert!(manifest["etcd_version"].as_str().unwrap().starts_with("3.4"), "{manifest}");
    assert_eq!(manifest["v2"]["v2_keys"], V2_KEYS as u64);
    assert_eq!(manifest["key_count"], V3_KEYS as i64);
    assert!(manifest["v2"]["consistent_index"].as_u64().unwrap() > 0);
    let backup_id = manifest["id"].as_str().unwrap().to_owned();
    assert!(rt.block_on(admin(&cluster, 1).healthy()), "m1 is healthy again after its backup");

    let verify = caasctl(&state).args(["-o", "json", "etcd", "backups", "verify", &backup_id, "--repo"]).arg(&repo).output().unwrap();
    assert!(verify.status.success(), "verify failed: {}", text(&verify));

    // Destroy: writes after the backup, every member stopped, one data dir gone.
    rt.block_on(async {
        admin(&cluster, 0).put("/data/after-backup", "x").await.unwrap();
        let mut client = v3_client(&cluster).await;
        client.put("/registry/after-backup", "x", None).await.unwrap();
    });
    scripts.stop_all();
    std::fs::remove_dir_all(&cluster.members[0].data_dir).unwrap();

    let dry = caasctl(&state).args(["etcd", "restore", &backup_id, "--dry-run", "--cluster"]).arg(&file).arg("--repo").arg(&repo).output().unwrap();
    assert!(dry.status.success(), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("m0.force-new-cluster"), "{plan}");
    assert!(plan.contains("--force-new-cluster"), "{plan}");
    assert!(plan.contains("m2.member-add"), "{plan}");

    // The first run fails when m2 is to join, because its start script is missing; the resumed
    // run continues at that step once the script is back.
    let m2_start = &scripts.members[2].start;
    let hidden = m2_start.with_extension("hidden");
    std::fs::rename(m2_start, &hidden).unwrap();
    let output = caasctl(&state).args(["etcd", "restore", &backup_id, "--yes", "--cluster"]).arg(&file).arg("--repo").arg(&repo).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "the restore fails at m2: {}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("[m2.start-join] failed"), "{}", text(&output));
    let ops = caasctl(&state).args(["-o", "json", "ops", "list"]).output().unwrap();
    let ops: Vec<serde_json::Value> = serde_json::from_slice(&ops.stdout).unwrap();
    assert_eq!(ops[0]["kind"], "etcd-v2-restore");
    assert_eq!(ops[0]["status"], "failed");
    assert_eq!(ops[0]["next_step"], "m2.start-join");
    let op_id = ops[0]["id"].as_str().unwrap().to_owned();

    std::fs::rename(&hidden, m2_start).unwrap();
    let resumed = caasctl(&state).args(["ops", "resume", &op_id]).output().unwrap();
    assert!(resumed.status.success(), "resume failed: {}", text(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("[m2.member-add] already done"), "{}", text(&resumed));

    // Every v2 and v3 key is back, and nothing written after the backup.
    assert_eq!(v2_values(&cluster), expected_v2);
    let restored_v3 = rt.block_on(v3_values(&cluster));
    assert_eq!(restored_v3.len(), expected_v3.len(), "v3 key count after restore");
    assert!(restored_v3 == expected_v3, "v3 keys differ after restore");

    // Peer URLs are the addresses etcd listens on, and the cluster takes v3 writes again.
    let (_, members) = rt.block_on(admin(&cluster, 0).members()).unwrap();
    assert_eq!(members.len(), 3);
    for member in &cluster.members {
        let found = members.iter().find(|m| m.name == member.name).unwrap_or_else(|| panic!("{} is missing: {members:?}", member.name));
        assert_eq!(found.peer_urls, [member.peer_url.clone()], "peer URL of {}", member.name);
    }
    rt.block_on(async {
        let mut client = v3_client(&cluster).await;
        client.put("/registry/after-restore", "y", None).await.expect("a v3 write after the restore");
        let value = client.get("/registry/after-restore", None).await.unwrap();
        assert_eq!(value.kvs()[0].value(), b"y");
    });

    // Every old data dir was moved aside, never deleted.
    for member in &cluster.members[1..] {
        let parent = member.data_dir.parent().unwrap();
        let name = member.data_dir.file_name().unwrap().to_string_lossy().into_owned();
        let aside = std::fs::read_dir(parent).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.caasctl-2"))).count();
        assert_eq!(aside, 1, "the old data dir of {} is kept aside", member.name);
    }
}
