//! `caasctl etcd restore` and `caasctl ops` against real etcd 3.4 and 3.5 clusters with mutual
//! TLS holding 50,000 keys: a whole cluster restored from a backup (one member through a real
//! sshd on loopback), an operation killed mid-way and resumed, a corrupted snapshot rejected, a db copied out of a data
//! dir restored with `--skip-hash-check`, and a `localhost` peer URL corrected.
//!
//! Members run from start and stop scripts (caasctl_testing::scripted), which caasctl drives as
//! the members' service, because no systemd or kubelet runs here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use caasctl_testing::etcd::{load_k8s_data_parallel, ClusterOptions, Member};
use caasctl_testing::scripted::ScriptedMembers;
use caasctl_testing::sshd::Sshd;
use caasctl_testing::{EtcdCluster, EtcdVersion};

/// Keys in the cluster that is backed up and restored.
const KEYS: usize = 50_000;
/// Bytes per value, kept small so that loading and reading 50,000 keys stays fast.
const VALUE_SIZE: usize = 100;
/// Keys read per range request, so that no response exceeds the gRPC client's 4 MiB default.
const PAGE: i64 = 10_000;

fn caasctl(state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_caasctl"));
    command.env("CAASCTL_STATE_DIR", state).env("CAASCTL_LANG", "en").env_remove("CAASCTL_REPO");
    command
}

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn engine(version: EtcdVersion) -> PathBuf {
    match version {
        EtcdVersion::V34 => version.etcdctl_binary(),
        EtcdVersion::V35 => version.tool("etcdutl"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Connects to the members' client URLs, whichever process serves them now.
async fn connect(cluster: &EtcdCluster, members: &[&Member]) -> etcd_client::Client {
    let endpoints: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    let mut options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(5));
    if let Some(pki) = &cluster.pki {
        options = options.with_tls(
            etcd_client::TlsOptions::new()
                .domain_name("127.0.0.1")
                .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(&pki.ca).unwrap()))
                .identity(etcd_client::Identity::from_pem(std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap())),
        );
    }
    etcd_client::Client::connect(endpoints, Some(options)).await.expect("connect")
}

/// Reads every key and value in pages of [`PAGE`] keys.
async fn read_all(client: &mut etcd_client::Client) -> Result<BTreeMap<String, Vec<u8>>, etcd_client::Error> {
    let mut all = BTreeMap::new();
    let mut start = vec![0u8];
    loop {
        let options = etcd_client::GetOptions::new().with_from_key().with_limit(PAGE);
        let response = client.get(start.clone(), Some(options)).await?;
        for kv in response.kvs() {
            all.insert(String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec());
        }
        match response.kvs().last() {
            Some(last) if response.more() => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => return Ok(all),
        }
    }
}

/// Reads every key and value, retrying while the cluster comes up.
async fn all_keys(cluster: &EtcdCluster) -> BTreeMap<String, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members: Vec<&Member> = cluster.members.iter().collect();
        let mut client = connect(cluster, &members).await;
        match read_all(&mut client).await {
            Ok(all) => return all,
            Err(error) if Instant::now() > deadline => panic!("cluster did not answer: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// A 3-member TLS cluster with data, backed up by caasctl, then changed and stopped.
struct Destroyed {
    cluster: EtcdCluster,
    work: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
    expected: BTreeMap<String, Vec<u8>>,
    backup_id: String,
}

fn back_up_and_destroy(version: EtcdVersion) -> Destroyed {
    let mut cluster = EtcdCluster::start(ClusterOptions::new(3, version, true));
    let work = tempfile::Builder::new().prefix("caasctl-restore-test-").tempdir().unwrap();
    let repo = work.path().join("repo");
    let state = work.path().join("state");
    let rt = runtime();
    let loading = Instant::now();
    let expected = rt.block_on(async {
        let client = cluster.client().await;
        load_k8s_data_parallel(&client, KEYS, VALUE_SIZE, 4).await;
        all_keys(&cluster).await
    });
    eprintln!("loaded {KEYS} keys in {:.1} s", loading.elapsed().as_secs_f64());
    assert_eq!(expected.len(), KEYS);

    let mut backup = caasctl(&state);
    backup.args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &cluster.endpoints()]).args(cluster.tls_args()).arg("--repo").arg(&repo);
    let output = backup.output().unwrap();
    assert!(output.status.success(), "backup failed: {}", text(&output));
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backup_id = manifest["id"].as_str().unwrap().to_owned();

    // Destroy: writes and deletes after the backup, then every member stopped and one data dir gone.
    rt.block_on(async {
        let mut client = cluster.client().await;
        for key in expected.keys().take(100) {
            client.delete(key.as_str(), None).await.unwrap();
        }
        client.put("/registry/after-backup", "x", None).await.unwrap();
    });
    cluster.stop_all();
    std::fs::remove_dir_all(&cluster.members[2].data_dir).unwrap();
    Destroyed { cluster, work, repo, state, expected, backup_id }
}

/// Writes the cluster file: member `ssh_member` through sshd, member `localhost_member` restored
/// with a `localhost` peer URL.
fn cluster_file(d: &Destroyed, scripts: &ScriptedMembers, version: EtcdVersion, sshd: Option<&Sshd>, ssh_member: usize, localhost_member: Option<usize>) -> PathBuf {
    let pki = d.cluster.pki.as_ref().unwrap();
    let mut toml = format!(
        "[etcd]\ntoken = \"restored-{}\"\ncacert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        std::process::id(),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    for (index, member) in d.cluster.members.iter().enumerate() {
        let script = &scripts.members[index];
        toml.push_str(&format!(
            "\n[[etcd.members]]\nname = \"{}\"\npeer_url = \"{}\"\nclient_url = \"{}\"\ndata_dir = \"{}\"\nengine = \"{}\"\nservice = {{ kind = \"commands\", start = \"{}\", stop = \"{}\" }}\n",
            member.name,
            member.peer_url,
            member.client_url,
            member.data_dir.display(),
            engine(version).display(),
            script.start.display(),
            script.stop.display(),
        ));
        if let (Some(sshd), true) = (sshd, index == ssh_member) {
            let options: Vec<String> = sshd.client_options().iter().map(|o| format!("\"{o}\"")).collect();
            toml.push_str(&format!("host = \"{}\"\nssh_port = {}\nssh_options = [{}]\n", sshd.target(), sshd.port, options.join(", ")));
        }
        if localhost_member == Some(index) {
            toml.push_str(&format!("advertise_peer_url = \"{}\"\n", member.peer_url.replace("127.0.0.1", "localhost")));
        }
    }
    let path = d.work.path().join("caasctl.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn ops_list(state: &Path) -> Vec<serde_json::Value> {
    let output = caasctl(state).args(["-o", "json", "ops", "list"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
}

fn assert_restored(d: &Destroyed) {
    let rt = runtime();
    let restored = rt.block_on(all_keys(&d.cluster));
    assert_eq!(restored.len(), d.expected.len(), "key count after restore");
    let differing: Vec<&String> = d.expected.iter().filter(|(k, v)| restored.get(*k) != Some(*v)).map(|(k, _)| k).take(5).collect();
    assert!(differing.is_empty(), "keys that differ after restore: {differing:?}");

    let peers = rt.block_on(async {
        let members: Vec<&Member> = d.cluster.members.iter().collect();
        let mut client = connect(&d.cluster, &members).await;
        let list = client.member_list().await.unwrap();
        list.members().iter().map(|m| (m.name().to_owned(), m.peer_urls().to_vec())).collect::<BTreeMap<_, _>>()
    });
    for member in &d.cluster.members {
        assert_eq!(peers.get(&member.name), Some(&vec![member.peer_url.clone()]), "peer URL of {}", member.name);
    }
    for member in &d.cluster.members[..2] {
        let parent = member.data_dir.parent().unwrap();
        let name = member.data_dir.file_name().unwrap().to_string_lossy().into_owned();
        let aside = std::fs::read_dir(parent).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.caasctl-2"))).count();
        assert_eq!(aside, 1, "the old data dir of {} is kept aside", member.name);
    }
}

fn restore_whole_cluster(version: EtcdVersion) {
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let sshd = caasctl_testing::require(Sshd::available(), "sshd and ssh").then(Sshd::start);
    let d = back_up_and_destroy(version);
    let scripts = ScriptedMembers::write(&d.cluster, &d.work.path().join("scripts"));
    let localhost = (version == EtcdVersion::V34).then_some(0);
    let file = cluster_file(&d, &scripts, version, sshd.as_ref(), 1, localhost);

    let dry = caasctl(&d.state).args(["etcd", "restore", "latest", "--dry-run", "--cluster"]).arg(&file).arg("--repo").arg(&d.repo).output().unwrap();
    assert!(dry.status.success(), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("NOTE: the data is written by etcd's own tool"), "{plan}");
    assert!(plan.contains("m1.upload") == sshd.is_some(), "{plan}");
    assert!(ops_list(&d.state).is_empty(), "a dry run writes no journal");

    let output = caasctl(&d.state).args(["etcd", "restore", &d.backup_id, "--yes", "--cluster"]).arg(&file).arg("--repo").arg(&d.repo).output().unwrap();
    assert!(output.status.success(), "restore failed: {}", text(&output));
    if localhost.is_some() {
        assert!(String::from_utf8_lossy(&output.stderr).contains("[cluster.peer-urls] done"), "{}", text(&output));
    }
    assert_restored(&d);
    let ops = ops_list(&d.state);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["status"], "succeeded");
    drop(scripts);
}

#[test]
fn whole_cluster_restore_etcd34() {
    restore_whole_cluster(EtcdVersion::V34);
}

#[test]
fn whole_cluster_restore_etcd35() {
    restore_whole_cluster(EtcdVersion::V35);
}

fn journal_shows(state: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(state.join("ops")) else { return false };
    entries.flatten().any(|e| std::fs::read_to_string(e.path()).map(|t| t.lines().any(|l| l.contains("step-finished") && l.contains(needle))).unwrap_or(false))
}

#[test]
fn killed_restore_resumes() {
    let version = EtcdVersion::V35;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let d = back_up_and_destroy(version);
    let scripts = ScriptedMembers::write(&d.cluster, &d.work.path().join("scripts"));
    let file = cluster_file(&d, &scripts, version, None, usize::MAX, None);

    let mut child = caasctl(&d.state)
        .args(["etcd", "restore", "latest", "--yes", "--parallel", "1", "--cluster"])
        .arg(&file)
        .arg("--repo")
        .arg(&d.repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal_shows(&d.state, "\"step\":\"m1.install\"") {
        assert!(Instant::now() < deadline, "the second member was never installed");
        assert!(child.try_wait().unwrap().is_none(), "caasctl ended before the second member was installed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Let a restore tool started by the killed process finish before the resume retries its step.
    std::thread::sleep(Duration::from_secs(1));

    let ops = ops_list(&d.state);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["status"], "interrupted");
    let id = ops[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(ops[0]["next_step"], serde_json::Value::Null);

    let show = caasctl(&d.state).args(["ops", "show", &id]).output().unwrap();
    assert!(show.status.success(), "{}", text(&show));
    assert!(String::from_utf8_lossy(&show.stdout).contains("interrupted"), "{}", text(&show));

    let resumed = caasctl(&d.state).args(["ops", "resume", &id]).output().unwrap();
    assert!(resumed.status.success(), "resume failed: {}", text(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("[m0.install] already done"), "{}", text(&resumed));
    assert_restored(&d);
    assert_eq!(ops_list(&d.state)[0]["status"], "succeeded");

    let again = caasctl(&d.state).args(["ops", "resume", &id]).output().unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"), "{}", text(&again));
    drop(scripts);
}

/// A one-member plain cluster with a few keys, and its snapshot saved by etcdctl.
fn small_cluster(version: EtcdVersion) -> (EtcdCluster, PathBuf) {
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, false));
    for i in 0..200 {
        assert!(cluster.etcdctl(&["put", &format!("/registry/k{i:04}"), &format!("v{i}")]).status.success());
    }
    let snap = cluster.path().join("snap.db");
    let saved = cluster.etcdctl(&["snapshot", "save", &snap.display().to_string()]);
    assert!(saved.status.success(), "{}", text(&saved));
    (cluster, snap)
}

fn single_restore_args(cluster: &EtcdCluster, snapshot: &Path, data_dir: &Path, version: EtcdVersion) -> Vec<String> {
    let member = &cluster.members[0];
    vec![
        "etcd".into(),
        "restore".into(),
        snapshot.display().to_string(),
        "--name".into(),
        member.name.clone(),
        "--initial-advertise-peer-urls".into(),
        member.peer_url.clone(),
        "--initial-cluster-token".into(),
        cluster.token.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--etcdutl".into(),
        engine(version).display().to_string(),
    ]
}

#[test]
fn corrupted_snapshot_leaves_data_dir() {
    let version = EtcdVersion::V35;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let (cluster, snap) = small_cluster(version);
    let mut bytes = std::fs::read(&snap).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let corrupted = cluster.path().join("corrupted.db");
    std::fs::write(&corrupted, &bytes).unwrap();

    let data_dir = cluster.path().join("target.etcd");
    std::fs::create_dir_all(data_dir.join("member")).unwrap();
    std::fs::write(data_dir.join("member/marker"), "old data").unwrap();
    let state = cluster.path().join("state");
    let output = caasctl(&state).args(single_restore_args(&cluster, &corrupted, &data_dir, version)).arg("--yes").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is corrupted"), "{stderr}");
    assert_eq!(std::fs::read_to_string(data_dir.join("member/marker")).unwrap(), "old data");
    let siblings: Vec<String> = std::fs::read_dir(cluster.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("target.etcd")).collect();
    assert_eq!(siblings, ["target.etcd"], "nothing was created beside the data dir");
    assert!(ops_list(&state).is_empty(), "a rejected snapshot starts no operation");

    // Truncated: reported as such, even with --skip-hash-check.
    let truncated = cluster.path().join("truncated.db");
    std::fs::write(&truncated, &std::fs::read(&snap).unwrap()[..middle + 100]).unwrap();
    let output = caasctl(&state).args(single_restore_args(&cluster, &truncated, &data_dir, version)).args(["--yes", "--skip-hash-check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is truncated"), "{}", text(&output));
}

#[test]
fn copied_db_needs_skip_hash_check() {
    let version = EtcdVersion::V34;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let (mut cluster, _) = small_cluster(version);
    let expected = runtime().block_on(all_keys(&cluster));
    cluster.stop_all();
    let copied = cluster.path().join("db");
    std::fs::copy(cluster.members[0].data_dir.join("member/snap/db"), &copied).unwrap();
    let state = cluster.path().join("state");
    let data_dir = cluster.members[0].data_dir.clone();

    let output = caasctl(&state).args(single_restore_args(&cluster, &copied, &data_dir, version)).arg("--yes").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--skip-hash-check"), "{}", text(&output));

    let output = caasctl(&state).args(single_restore_args(&cluster, &copied, &data_dir, version)).args(["--yes", "--skip-hash-check"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));

    let scripts = ScriptedMembers::write(&cluster, &cluster.path().join("scripts"));
    scripts.start_all();
    let restored = runtime().block_on(all_keys(&cluster));
    assert_eq!(restored, expected);
    scripts.stop_all();
}

#[test]
fn running_members_data_dir_is_refused() {
    let version = EtcdVersion::V35;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let (cluster, snap) = small_cluster(version);
    let state = tempfile::tempdir().unwrap();
    let data_dir = cluster.members[0].data_dir.clone();
    let output = caasctl(state.path()).args(single_restore_args(&cluster, &snap, &data_dir, version)).arg("--yes").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("is in use"), "{}", text(&output));

    // The data dir stays where it was and the member keeps serving.
    assert!(data_dir.join("member/snap/db").is_file());
    let siblings: Vec<_> = std::fs::read_dir(data_dir.parent().unwrap()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(!siblings.iter().any(|name| name.to_string_lossy().contains("caasctl-")), "{siblings:?}");
    assert!(cluster.etcdctl(&["get", "/registry/k0001"]).status.success());
}
