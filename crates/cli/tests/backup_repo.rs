//! End-to-end tests of the backup repository beyond one local backup: retention (`backups prune`),
//! encryption with age, and S3 repositories on a real s3s-fs server, against real etcd started by
//! the harness on loopback ports.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env_remove("LANG").env_remove("LC_ALL").env("CAASCTL_NO_PROGRESS", "1").timeout(Duration::from_secs(120));
    command
}

fn start(keys: usize) -> Option<EtcdCluster> {
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, keys, 512).await;
    });
    Some(cluster)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn backup(cluster: &EtcdCluster, repo: &str, extra: &[&str]) -> Output {
    caasctl()
        .args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &cluster.endpoints(), "--repo", repo])
        .args(cluster.tls_args())
        .args(extra)
        .output()
        .unwrap()
}

fn backup_id(output: &Output) -> String {
    assert!(output.status.success(), "backup failed: {}", text(&output.stderr));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    manifest["id"].as_str().unwrap().to_owned()
}

fn list(repo: &str, extra: &[&str]) -> Vec<Value> {
    let output = caasctl().args(["-o", "json", "etcd", "backups", "list", "--repo", repo]).args(extra).output().unwrap();
    assert!(output.status.success(), "list failed: {}", text(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

fn ids(entries: &[Value], state: &str) -> Vec<String> {
    entries.iter().filter(|e| e["state"] == state).map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

fn prune(repo: &str, args: &[&str]) -> Output {
    caasctl().args(["--lang", "en", "etcd", "backups", "prune", "--repo", repo]).args(args).output().unwrap()
}

/// Sets the modification time of `path` to `seconds` ago.
fn age(path: &Path, seconds: u64) {
    let status = std::process::Command::new("touch").arg("-d").arg(format!("@{}", now() - seconds)).arg(path).status().unwrap();
    assert!(status.success());
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn prune_keeps_by_rule_and_spares_failed_backups() {
    let Some(cluster) = start(100) else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().to_str().unwrap();
    let made: Vec<String> = (0..3).map(|_| backup_id(&backup(&cluster, repo, &[]))).collect();

    // The oldest backup is corrupted and fails verification, which is recorded.
    let snapshot = dir.path().join(&made[0]).join("snapshot.db");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[4_096] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let verify = caasctl().args(["etcd", "backups", "verify", "--repo", repo]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stdout));
    assert!(dir.path().join(&made[0]).join("verify.json").exists(), "the failure is recorded");

    // Leftovers: an old and a recent unfinished backup, and an interrupted removal.
    for name in [".incomplete-old", ".incomplete-fresh", ".deleting-gone"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
    }
    age(&dir.path().join(".incomplete-old"), 7_200);

    let dry = prune(repo, &["--keep-last", "1", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let plan = text(&dry.stdout);
    assert!(plan.contains("newest verified backup"), "{plan}");
    assert!(plan.contains("failed verification; removed only with --include-failed"), "{plan}");
    assert!(plan.contains("3 to remove, 3 to keep"), "{plan}");
    assert_eq!(ids(&list(repo, &[]), "complete").len(), 3, "a dry run removes nothing");

    let refused = prune(repo, &["--keep-last", "1"]);
    assert_eq!(refused.status.code(), Some(2), "removal off a terminal needs --yes");
    assert_eq!(ids(&list(repo, &[]), "complete").len(), 3);

    let done = prune(repo, &["--keep-last", "1", "--yes"]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let entries = list(repo, &[]);
    let mut complete = ids(&entries, "complete");
    complete.sort();
    let mut want = vec![made[0].clone(), made[2].clone()];
    want.sort();
    assert_eq!(complete, want, "the newest and the failed one stay");
    assert_eq!(ids(&entries, "incomplete"), vec!["fresh".to_owned()], "only the recent leftover stays");
    assert!(ids(&entries, "deleting").is_empty());

    let with_failed = prune(repo, &["--keep-last", "1", "--include-failed", "--yes"]);
    assert!(with_failed.status.success(), "{}", text(&with_failed.stderr));
    assert_eq!(ids(&list(repo, &[]), "complete"), vec![made[2].clone()]);
}
