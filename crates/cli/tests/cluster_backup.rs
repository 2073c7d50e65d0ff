//! `caasctl etcd backup --cluster FILE` against a real etcd 3.5 cluster with mutual TLS: each
//! member's configuration directory is archived on its own host (one member through a real sshd
//! on loopback, one run as a static pod whose manifest is archived too), and a restore whose
//! cluster file names only hosts and services takes every member's name, URLs and data dir from
//! those archives.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::scripted::ScriptedMembers;
use caasctl_testing::sshd::Sshd;
use caasctl_testing::{EtcdCluster, EtcdVersion};

const KEYS: usize = 2_000;

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

/// Connects to every member's client URL, whichever process serves it now.
async fn connect(cluster: &EtcdCluster) -> etcd_client::Client {
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_url.clone()).collect();
    let pki = cluster.pki.as_ref().unwrap();
    let tls = etcd_client::TlsOptions::new()
        .domain_name("127.0.0.1")
        .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(&pki.ca).unwrap()))
        .identity(etcd_client::Identity::from_pem(std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap()));
    let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(5)).with_tls(tls);
    etcd_client::Client::connect(endpoints, Some(options)).await.expect("connect")
}

/// Reads every key and value, retrying while the cluster comes up.
async fn all_keys(cluster: &EtcdCluster) -> BTreeMap<String, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut client = connect(cluster).await;
            client.get(vec![0u8], Some(etcd_client::GetOptions::new().with_from_key())).await
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(response)) => {
                return response.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value().to_vec())).collect();
            }
            _ if Instant::now() > deadline => panic!("cluster did not answer"),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Writes member `index`'s configuration directory: an etcd.conf and a certificate. Member 2
/// leaves its peer URL out of etcd.conf; its static pod manifest passes it as a flag.
fn write_config_dir(cluster: &EtcdCluster, index: usize, dir: &Path) {
    let member = &cluster.members[index];
    std::fs::create_dir_all(dir).unwrap();
    let mut conf = format!(
        "# written by the test\nETCD_NAME={}\nETCD_DATA_DIR={}\nETCD_ADVERTISE_CLIENT_URLS={}\nETCD_INITIAL_CLUSTER_TOKEN=etcd-cluster-1\n",
        member.name,
        member.data_dir.display(),
        member.client_url,
    );
    if index != 2 {
        conf.push_str(&format!("ETCD_INITIAL_ADVERTISE_PEER_URLS={}\n", member.peer_url));
    }
    std::fs::write(dir.join("etcd.conf"), conf).unwrap();
    std::fs::copy(&cluster.pki.as_ref().unwrap().ca, dir.join("ca.crt")).unwrap();
}

fn manifest_yaml(cluster: &EtcdCluster) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - name: etcd\n    image: etcd\n    command:\n    - /bin/sh\n    - -c\n    - source /etc/etcd/etcd.conf && exec etcd --initial-advertise-peer-urls={}\n",
        cluster.members[2].peer_url
    )
}

fn tls_table(cluster: &EtcdCluster) -> String {
    let pki = cluster.pki.as_ref().unwrap();
    format!("[etcd]\ncacert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", pki.ca.display(), pki.client_cert.display(), pki.client_key.display())
}

fn ssh_lines(sshd: &Sshd) -> String {
    let options: Vec<String> = sshd.client_options().iter().map(|o| format!("\"{o}\"")).collect();
    format!("host = \"{}\"\nssh_port = {}\nssh_options = [{}]\n", sshd.target(), sshd.port, options.join(", "))
}

/// Returns the names of the files of a `.tar.gz`.
fn archive_entries(path: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()));
    let mut names = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
        names.push(name);
    }
    names
}

#[test]
fn cluster_backup_archives_members_and_restore_reads_them() {
    let version = EtcdVersion::V35;
    if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    if !caasctl_testing::require(Sshd::available(), "sshd and ssh") {
        return;
    }
    let sshd = Sshd::start();
    let mut cluster = EtcdCluster::start(ClusterOptions::new(3, version, true));
    let work = tempfile::Builder::new().prefix("caasctl-cluster-backup-").tempdir().unwrap();
    let repo = work.path().join("repo");
    let state = work.path().join("state");
    let rt = runtime();
    let expected = rt.block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, KEYS, 100).await;
        all_keys(&cluster).await
    });

    let config_dirs: Vec<PathBuf> = (0..3).map(|i| work.path().join(format!("etc-etcd-{i}"))).collect();
    for (index, dir) in config_dirs.iter().enumerate() {
        write_config_dir(&cluster, index, dir);
    }
    let pods = work.path().join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    std::fs::write(pods.join("etcd.yaml"), manifest_yaml(&cluster)).unwrap();

    // The backup's cluster file: m0 here, the second member over SSH with no name (its archive
    // is named after its host), m2 as a static pod.
    let mut backup_file = tls_table(&cluster);
    for (index, member) in cluster.members.iter().enumerate() {
        backup_file.push_str("\n[[etcd.members]]\n");
        if index != 1 {
            backup_file.push_str(&format!("name = \"{}\"\n", member.name));
        } else {
            backup_file.push_str(&ssh_lines(&sshd));
        }
        backup_file.push_str(&format!("client_url = \"{}\"\nconfig_dir = \"{}\"\n", member.client_url, config_dirs[index].display()));
        if index == 2 {
            backup_file.push_str(&format!("service = {{ kind = \"static-pod\", manifest = \"{}\" }}\n", pods.join("etcd.yaml").display()));
        } else {
            backup_file.push_str("service = { kind = \"systemd\", unit = \"etcd\" }\n");
        }
    }
    let backup_path = work.path().join("backup.toml");
    std::fs::write(&backup_path, backup_file).unwrap();

    let output = caasctl(&state).args(["-o", "json", "etcd", "backup", "--cluster"]).arg(&backup_path).arg("--repo").arg(&repo).output().unwrap();
    assert!(output.status.success(), "backup failed: {}", text(&output));
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backup_id = manifest["id"].as_str().unwrap().to_owned();
    let archives = manifest["config_archives"].as_array().unwrap();
    let members: Vec<&str> = archives.iter().map(|a| a["member"].as_str().unwrap()).collect();
    assert_eq!(members, ["m0", "127.0.0.1", "m2", "m2"], "{manifest:#}");
    let sources: Vec<&str> = archives.iter().map(|a| a["source"].as_str().unwrap()).collect();
    assert_eq!(sources[0], format!("local:{}", config_dirs[0].display()));
    assert_eq!(sources[1], format!("ssh:{}:{}:{}", sshd.target(), sshd.port, config_dirs[1].display()));
    assert_eq!(sources[3], format!("local:{}", pods.join("etcd.yaml").display()));
    let backup_dir = repo.join(&backup_id);
    let ssh_entries = archive_entries(&backup_dir.join(archives[1]["file"].as_str().unwrap()));
    assert!(ssh_entries.iter().any(|e| e.ends_with("etcd.conf")), "{ssh_entries:?}");
    assert!(ssh_entries.iter().any(|e| e.ends_with("ca.crt")), "{ssh_entries:?}");
    assert_eq!(archive_entries(&backup_dir.join(archives[3]["file"].as_str().unwrap())), ["etcd.yaml"]);

    // Destroy every member's data, then restore with a cluster file that names no URL and no
    // data dir, and leaves the SSH member's name to its archived etcd.conf.
    cluster.stop_all();
    for member in &cluster.members {
        std::fs::remove_dir_all(&member.data_dir).unwrap();
    }
    let scripts = ScriptedMembers::write(&cluster, &work.path().join("scripts"));
    let engine = version.tool("etcdutl");
    let mut restore_file = tls_table(&cluster);
    for (index, member) in cluster.members.iter().enumerate() {
        restore_file.push_str("\n[[etcd.members]]\n");
        if index == 1 {
            restore_file.push_str(&ssh_lines(&sshd));
        } else {
            restore_file.push_str(&format!("name = \"{}\"\n", member.name));
        }
        let script = &scripts.members[index];
        restore_file.push_str(&format!(
            "engine = \"{}\"\nservice = {{ kind = \"commands\", start = \"{}\", stop = \"{}\" }}\n",
            engine.display(),
            script.start.display(),
            script.stop.display()
        ));
    }
    let restore_path = work.path().join("restore.toml");
    std::fs::write(&restore_path, restore_file).unwrap();

    let dry = caasctl(&state).args(["etcd", "restore", &backup_id, "--dry-run", "--cluster"]).arg(&restore_path).arg("--repo").arg(&repo).output().unwrap();
    assert!(dry.status.success(), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout);
    let m2 = &cluster.members[2];
    assert!(plan.contains(&format!("--name m1 ")), "the SSH member's name comes from its etcd.conf: {plan}");
    assert!(plan.contains(&format!("--initial-advertise-peer-urls {}", m2.peer_url)), "m2's peer URL comes from its manifest: {plan}");

    let output = caasctl(&state).args(["etcd", "restore", &backup_id, "--yes", "--cluster"]).arg(&restore_path).arg("--repo").arg(&repo).output().unwrap();
    assert!(output.status.success(), "restore failed: {}", text(&output));
    let restored = rt.block_on(all_keys(&cluster));
    assert_eq!(restored.len(), expected.len(), "key count after restore");
    assert!(restored == expected, "keys or values differ after restore");
    drop(scripts);
}
