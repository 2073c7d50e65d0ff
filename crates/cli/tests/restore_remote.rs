//! `caasctl etcd restore` from an S3 repository on a real s3s-fs server and from an encrypted
//! backup, against a real etcd 3.5 started by the harness: the backup is fetched, decrypted and
//! hash-checked before any data dir is written.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

const REPO: &str = "s3://backups/etcd/restore";

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A caasctl command with S3 credentials, the server's endpoint and a private state directory.
fn caasctl(server: &S3Server, state: &Path) -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command
        .env_remove("LANG")
        .env_remove("LC_ALL")
        .env_remove("CAASCTL_REPO")
        .env("CAASCTL_LANG", "en")
        .env("CAASCTL_NO_PROGRESS", "1")
        .env("CAASCTL_STATE_DIR", state)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("CAASCTL_S3_ENDPOINT", server.endpoint())
        .timeout(Duration::from_secs(120));
    command
}

fn write_identity(dir: &Path, name: &str) -> (age::x25519::Identity, PathBuf) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    (identity, path)
}

/// Runs a single-member restore of `id` into `data_dir` with extra options.
fn restore(server: &S3Server, state: &Path, id: &str, data_dir: &Path, extra: &[&str]) -> Output {
    let etcdutl = EtcdVersion::V35.tool("etcdutl");
    caasctl(server, state)
        .args(["etcd", "restore", id, "--repo", REPO, "--s3-path-style", "--name", "m0", "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--yes"])
        .arg("--etcdutl")
        .arg(&etcdutl)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .output()
        .unwrap()
}

/// Counts the live keys of a data dir offline.
fn key_count(server: &S3Server, state: &Path, data_dir: &Path) -> usize {
    let output = caasctl(server, state).args(["-o", "json", "etcd", "inspect"]).arg(data_dir).arg("keys").output().unwrap();
    assert!(output.status.success(), "inspect failed: {}", text(&output));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().len()
}

#[test]
fn s3_encrypted_backup_restores_with_identity() {
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    if !require(S3Server::available(), &caasctl_testing::s3::s3s_binary().display().to_string()) {
        return;
    }
    let server = S3Server::start(&["backups"]);
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, 400, 512).await;
    });
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let (identity, identity_file) = write_identity(work.path(), "key.txt");
    let (_, stranger_file) = write_identity(work.path(), "other.txt");

    // Backup, list and verify through S3.
    let backup = caasctl(&server, &state)
        .args(["-o", "json", "etcd", "backup", "--no-config", "--s3-path-style", "--endpoints", &cluster.endpoints(), "--repo", REPO])
        .args(["--recipient", &identity.to_public().to_string()])
        .args(cluster.tls_args())
        .output()
        .unwrap();
    assert!(backup.status.success(), "backup failed: {}", text(&backup));
    let manifest: Value = serde_json::from_slice(&backup.stdout).unwrap();
    let id = manifest["id"].as_str().unwrap().to_owned();
    let keys = manifest["key_count"].as_u64().unwrap() as usize;

    let list = caasctl(&server, &state).args(["-o", "json", "etcd", "backups", "list", "--s3-path-style", "--repo", REPO]).output().unwrap();
    assert!(list.status.success(), "list failed: {}", text(&list));
    let entries: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["state"], "complete");

    let verify = caasctl(&server, &state).args(["etcd", "backups", "verify", "--s3-path-style", "--repo", REPO, "--identity"]).arg(&identity_file).output().unwrap();
    assert!(verify.status.success(), "verify failed: {}", text(&verify));

    // Inspect reads the encrypted backup from S3 with the identity, and rejects it without.
    let status = caasctl(&server, &state)
        .args(["-o", "json", "etcd", "inspect", &id, "status", "--repo", REPO, "--s3-path-style", "--identity"])
        .arg(&identity_file)
        .output()
        .unwrap();
    assert!(status.status.success(), "inspect failed: {}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["revision"], manifest["revision"]);
    let locked = caasctl(&server, &state).args(["etcd", "inspect", &id, "status", "--repo", REPO, "--s3-path-style"]).output().unwrap();
    assert_eq!(locked.status.code(), Some(2), "{}", text(&locked));

    // Without the identity, and with a foreign one, nothing is written.
    let data_dir = work.path().join("restored");
    let no_identity = restore(&server, &state, &id, &data_dir, &[]);
    assert_eq!(no_identity.status.code(), Some(2), "{}", text(&no_identity));
    assert!(text(&no_identity).contains("is encrypted and no age identity was given"), "{}", text(&no_identity));
    assert!(text(&no_identity).contains("--identity FILE"), "the hint names the option: {}", text(&no_identity));
    assert!(!data_dir.exists(), "no data dir without the identity");

    let stranger = restore(&server, &state, &id, &data_dir, &["--identity", stranger_file.to_str().unwrap()]);
    assert_eq!(stranger.status.code(), Some(1), "{}", text(&stranger));
    assert!(text(&stranger).contains("failed to decrypt snapshot.db.age"), "{}", text(&stranger));
    assert!(!data_dir.exists(), "no data dir with a foreign identity");

    // With it, the restored data dir holds every key of the backup.
    let restored = restore(&server, &state, &id, &data_dir, &["--identity", identity_file.to_str().unwrap()]);
    assert!(restored.status.success(), "restore failed: {}", text(&restored));
    assert!(data_dir.join("member/snap/db").is_file(), "{}", text(&restored));
    assert_eq!(key_count(&server, &state, &data_dir), keys);
    assert!(!state.join("fetched").join(&id).exists(), "the decrypted copy is removed after success");
}

#[test]
fn s3_plain_backup_restores_and_damage_is_rejected() {
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    if !require(S3Server::available(), &caasctl_testing::s3::s3s_binary().display().to_string()) {
        return;
    }
    let server = S3Server::start(&["backups"]);
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, 300, 256).await;
    });
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");

    let backup = caasctl(&server, &state)
        .args(["-o", "json", "etcd", "backup", "--no-config", "--s3-path-style", "--endpoints", &cluster.endpoints(), "--repo", REPO])
        .args(cluster.tls_args())
        .output()
        .unwrap();
    assert!(backup.status.success(), "backup failed: {}", text(&backup));
    let manifest: Value = serde_json::from_slice(&backup.stdout).unwrap();
    let id = manifest["id"].as_str().unwrap().to_owned();

    let data_dir = work.path().join("restored");
    let restored = restore(&server, &state, "latest", &data_dir, &[]);
    assert!(restored.status.success(), "restore failed: {}", text(&restored));
    assert_eq!(key_count(&server, &state, &data_dir), manifest["key_count"].as_u64().unwrap() as usize);

    // A byte changed in the stored object is caught before any data dir is touched.
    let object = server.data_dir().join("backups/etcd/restore").join(&id).join("snapshot.db");
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[8_192] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let second = work.path().join("second");
    let damaged = restore(&server, &state, &id, &second, &[]);
    assert_eq!(damaged.status.code(), Some(1), "{}", text(&damaged));
    assert!(text(&damaged).contains("does not match its manifest"), "{}", text(&damaged));
    assert!(!second.exists(), "no data dir from a damaged backup");
}
