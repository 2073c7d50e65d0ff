//! Offline snapshot reading compared with etcd's own tools: snapshots are taken from real etcd 3.4
//! and 3.5 clusters with `etcdctl snapshot save`, and `inspect::status` must print the values that
//! `etcdctl snapshot status` (3.4) and `etcdutl snapshot status` (3.5) print for the same file.

use std::path::{Path, PathBuf};
use std::process::Command;

use caasctl_etcd::inspect::{self, keys, status};
use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bbolt/tests/fixtures").join(name)
}

/// Runs the version's snapshot status tool on `path` and returns its JSON.
fn reference_status(version: EtcdVersion, path: &Path) -> Value {
    let (tool, env) = match version {
        EtcdVersion::V34 => (version.etcdctl_binary(), Some(("ETCDCTL_API", "3"))),
        EtcdVersion::V35 => (version.tool("etcdutl"), None),
    };
    let mut command = Command::new(&tool);
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    let output = command.args(["snapshot", "status", "-w", "json"]).arg(path).output().unwrap();
    assert!(output.status.success(), "{} failed: {}", tool.display(), String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_same_status(version: EtcdVersion, path: &Path) -> status::SnapshotStatus {
    let db = inspect::open(path).unwrap();
    let ours = status::status(&db, path).unwrap();
    let theirs = reference_status(version, path);
    assert_eq!(i64::from(ours.hash), theirs["hash"].as_i64().unwrap(), "hash of {}", path.display());
    assert_eq!(ours.revision, theirs["revision"].as_i64().unwrap(), "revision of {}", path.display());
    assert_eq!(ours.total_key as i64, theirs["totalKey"].as_i64().unwrap(), "totalKey of {}", path.display());
    assert_eq!(ours.total_size as i64, theirs["totalSize"].as_i64().unwrap(), "totalSize of {}", path.display());
    ours
}

/// Starts a one-member cluster, writes Kubernetes-shaped keys, overwrites and deletes some,
/// compacts, and saves a snapshot.
fn snapshot_of_busy_cluster(version: EtcdVersion, dir: &Path) -> Option<(PathBuf, i64)> {
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, false));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let compacted = runtime.block_on(async {
        let mut client = cluster.client().await;
        let keys = load_k8s_data(&mut client, 600, 300).await;
        for key in keys.iter().step_by(5) {
            client.put(key.as_str(), "rewritten", None).await.unwrap();
        }
        let compact_at = client.get("x", None).await.unwrap().header().unwrap().revision();
        for key in keys.iter().step_by(7) {
            client.delete(key.as_str(), None).await.unwrap();
        }
        client.compact(compact_at, None).await.unwrap();
        client.put("/registry/configmaps/default/after-compaction", "v1", None).await.unwrap();
        client.put("/registry/configmaps/default/after-compaction", "v2", None).await.unwrap();
        compact_at
    });
    let path = dir.join(format!("snapshot-{}.db", version.label()));
    let output = cluster.etcdctl(&["snapshot", "save", path.to_str().unwrap()]);
    assert!(output.status.success(), "snapshot save failed: {}", String::from_utf8_lossy(&output.stderr));
    Some((path, compacted))
}

#[test]
fn status_matches_etcd_tools_on_fixtures() {
    for name in ["etcd34-small.db", "etcd34-overflow.db"] {
        for version in [EtcdVersion::V34, EtcdVersion::V35] {
            let tool = match version {
                EtcdVersion::V34 => version.etcdctl_binary(),
                EtcdVersion::V35 => version.tool("etcdutl"),
            };
            if require(tool.exists(), &tool.display().to_string()) {
                assert_same_status(version, &fixture(name));
            }
        }
    }
}

fn status_matches_on_live_snapshot(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let Some((path, compacted)) = snapshot_of_busy_cluster(version, dir.path()) else { return };
    let ours = assert_same_status(version, &path);
    // Both tools read any snapshot, so the other version's tool must agree as well.
    let other = if version == EtcdVersion::V34 { EtcdVersion::V35 } else { EtcdVersion::V34 };
    if other.available() {
        assert_same_status(other, &path);
    }
    assert_eq!(ours.compact_revision, Some(compacted));
    assert!(ours.consistent_index.is_some_and(|c| c > 0));

    let db = inspect::open(&path).unwrap();
    let live = keys::list(&db, &path, b"/registry/").unwrap();
    // 600 keys, every 7th deleted (86), plus one put after the compaction.
    assert_eq!(live.len(), 600 - 86 + 1);
    let history = keys::history(&db, &path, b"/registry/configmaps/default/after-compaction").unwrap();
    let values: Vec<&[u8]> = history.iter().map(|change| change.value.as_slice()).collect();
    assert_eq!(values, [b"v1".as_slice(), b"v2".as_slice()]);
    assert_eq!(history[1].version, 2);
}

#[test]
fn status_matches_etcdctl_on_etcd34_snapshot() {
    status_matches_on_live_snapshot(EtcdVersion::V34);
}

#[test]
fn status_matches_etcdutl_on_etcd35_snapshot() {
    status_matches_on_live_snapshot(EtcdVersion::V35);
}

#[test]
fn damaged_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = std::fs::read(fixture("etcd34-overflow.db")).unwrap();
    data.truncate(100_000);
    let path = dir.path().join("truncated.db");
    std::fs::write(&path, &data).unwrap();
    let error = inspect::open(&path).unwrap_err();
    assert!(error.to_string().contains("truncated.db"), "{error}");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("page"), "{source}");
}
