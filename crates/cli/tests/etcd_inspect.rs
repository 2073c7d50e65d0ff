//! End-to-end tests of `caasctl etcd inspect` on backups taken with `caasctl etcd backup` from real
//! etcd 3.4 and 3.5 clusters. Kubernetes objects are written the way an API server writes them:
//! protobuf in the `k8s\0` envelope for built-in kinds (field layout of Kubernetes' generated
//! marshallers, empty strings included) and JSON for custom resources, under `/registry` and
//! under OpenShift 3's `/kubernetes.io`.

use std::path::{Path, PathBuf};
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "caasctl failed: {}{}", text(&output.stdout), text(&output.stderr));
    output
}

/// Protobuf encoding helpers, writing fields in the order and form of Kubernetes' generated code.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    pub fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
        varint(out, u64::from(field << 3 | 2));
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }

    pub fn int(out: &mut Vec<u8>, field: u32, value: u64) {
        varint(out, u64::from(field << 3));
        varint(out, value);
    }

    pub fn map_entry(out: &mut Vec<u8>, field: u32, key: &str, value: &[u8]) {
        let mut entry = Vec::new();
        bytes(&mut entry, 1, key.as_bytes());
        bytes(&mut entry, 2, value);
        bytes(out, field, &entry);
    }

    /// ObjectMeta as the API server stores it: resourceVersion and selfLink cleared.
    pub fn object_meta(name: &str, namespace: &str, uid: &str, created: u64, labels: &[(&str, &str)]) -> Vec<u8> {
        let mut meta = Vec::new();
        bytes(&mut meta, 1, name.as_bytes());
        bytes(&mut meta, 2, b"");
        bytes(&mut meta, 3, namespace.as_bytes());
        bytes(&mut meta, 4, b"");
        bytes(&mut meta, 5, uid.as_bytes());
        bytes(&mut meta, 6, b"");
        int(&mut meta, 7, 0);
        let mut time = Vec::new();
        int(&mut time, 1, created);
        int(&mut time, 2, 0);
        bytes(&mut meta, 8, &time);
        for (key, value) in labels {
            map_entry(&mut meta, 11, key, value.as_bytes());
        }
        // One managedFields entry (manager 1, operation 2), as server-side apply records it.
        let mut managed = Vec::new();
        bytes(&mut managed, 1, b"kubectl-create");
        bytes(&mut managed, 2, b"Update");
        bytes(&mut managed, 3, b"v1");
        bytes(&mut meta, 17, &managed);
        meta
    }

    /// `k8s\0` + runtime.Unknown around an encoded object.
    pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes(&mut type_meta, 1, api_version.as_bytes());
        bytes(&mut type_meta, 2, kind.as_bytes());
        let mut out = b"k8s\0".to_vec();
        bytes(&mut out, 1, &type_meta);
        bytes(&mut out, 2, raw);
        bytes(&mut out, 3, b"");
        bytes(&mut out, 4, b"");
        out
    }

    pub fn config_map(name: &str, namespace: &str, data: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        bytes(&mut raw, 1, &object_meta(name, namespace, "0b9c6c1e-4d8e-4c4e-9f7a-1a2b3c4d5e6f", 1_700_000_000, &[("app", "web")]));
        for (key, value) in data {
            map_entry(&mut raw, 2, key, value.as_bytes());
        }
        envelope("v1", "ConfigMap", &raw)
    }

    pub fn secret(name: &str, namespace: &str, data: &[(&str, &[u8])]) -> Vec<u8> {
        let mut raw = Vec::new();
        bytes(&mut raw, 1, &object_meta(name, namespace, "7e1f0a52-1111-4222-8333-944455556666", 1_700_000_100, &[]));
        for (key, value) in data {
            map_entry(&mut raw, 2, key, value);
        }
        bytes(&mut raw, 3, b"Opaque");
        envelope("v1", "Secret", &raw)
    }

    pub fn deployment(name: &str, namespace: &str) -> Vec<u8> {
        let mut raw = Vec::new();
        bytes(&mut raw, 1, &object_meta(name, namespace, "c0ffee00-0000-4000-8000-000000000001", 1_700_000_200, &[]));
        let mut spec = Vec::new();
        int(&mut spec, 1, 3);
        bytes(&mut raw, 2, &spec);
        envelope("apps/v1", "Deployment", &raw)
    }
}

const CUSTOM_RESOURCE: &str = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"team-a","uid":"u-1","creationTimestamp":"2024-01-01T00:00:00Z","managedFields":[{"manager":"kubectl"}]},"spec":{"size":2},"status":{"ready":true}}"#;

fn start(version: EtcdVersion) -> Option<EtcdCluster> {
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, false));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, 300, 200).await;
        let objects: Vec<(&str, Vec<u8>)> = vec![
            ("/registry/configmaps/team-a/web-config", pb::config_map("web-config", "team-a", &[("listen", "8080"), ("mode", "prod")])),
            ("/registry/secrets/team-a/db-password", pb::secret("db-password", "team-a", &[("password", b"s3cr\xffet")])),
            ("/registry/deployments/team-a/web", pb::deployment("web", "team-a")),
            ("/registry/example.com/widgets/team-a/w1", CUSTOM_RESOURCE.as_bytes().to_vec()),
            ("/kubernetes.io/configmaps/legacy/old-config", pb::config_map("old-config", "legacy", &[("k", "v")])),
        ];
        for (key, value) in objects {
            client.put(key, value, None).await.unwrap();
        }
        // A second version, so the first one is only reachable with --rev.
        client.put("/registry/configmaps/team-a/web-config", pb::config_map("web-config", "team-a", &[("listen", "9090")]), None).await.unwrap();
    });
    Some(cluster)
}

fn backup(cluster: &EtcdCluster, repo: &Path) -> String {
    let output = run_ok(caasctl().args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &cluster.endpoints(), "--repo"]).arg(repo));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    manifest["id"].as_str().unwrap().to_owned()
}

fn inspect(repo: &Path, args: &[&str]) -> Output {
    caasctl().args(["etcd", "inspect"]).args(args).arg("--repo").arg(repo).output().unwrap()
}

fn inspect_json(repo: &Path, args: &[&str]) -> Value {
    let output = caasctl().args(["-o", "json", "etcd", "inspect"]).args(args).arg("--repo").arg(repo).output().unwrap();
    assert!(output.status.success(), "inspect {args:?} failed: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn reference_status(version: EtcdVersion, path: &Path) -> Value {
    let mut command = match version {
        EtcdVersion::V34 => {
            let mut command = std::process::Command::new(version.etcdctl_binary());
            command.env("ETCDCTL_API", "3");
            command
        }
        EtcdVersion::V35 => std::process::Command::new(version.tool("etcdutl")),
    };
    let output = command.args(["snapshot", "status", "-w", "json"]).arg(path).output().unwrap();
    assert!(output.status.success(), "snapshot status failed: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn inspect_backups(version: EtcdVersion) {
    let Some(cluster) = start(version) else { return };
    let repo = tempfile::tempdir().unwrap();
    let first = backup(&cluster, repo.path());
    let snapshot: PathBuf = repo.path().join(&first).join("snapshot.db");

    // status: the same four values as the version's own tool, by backup ID and by file path.
    let ours = inspect_json(repo.path(), &[&first, "status"]);
    let theirs = reference_status(version, &snapshot);
    for field in ["hash", "revision", "totalKey", "totalSize"] {
        assert_eq!(ours[field], theirs[field], "{field}");
    }
    let by_path = inspect_json(repo.path(), &[snapshot.to_str().unwrap(), "status"]);
    assert_eq!(by_path["hash"], theirs["hash"]);

    // keys with a prefix.
    let keys = inspect_json(repo.path(), &[&first, "keys", "/registry/configmaps/team-a/"]);
    let names: Vec<&str> = keys.as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(names, ["/registry/configmaps/team-a/web-config"]);

    // get: the newest value, an older revision, every revision.
    let history = inspect_json(repo.path(), &[&first, "get", "/registry/configmaps/team-a/web-config", "--all-revisions"]);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    let first_revision = history[0]["revision"]["main"].as_i64().unwrap().to_string();
    let old = inspect_json(repo.path(), &[&first, "get", "/registry/configmaps/team-a/web-config", "--rev", &first_revision]);
    assert!(old["value"].as_str().unwrap().contains("8080"));
    let missing = inspect(repo.path(), &[&first, "get", "/registry/no/such/key"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("not in the snapshot"), "{}", text(&missing.stderr));

    // k8s get: protobuf ConfigMap, cleaned, as YAML.
    let yaml = run_ok(caasctl().args(["etcd", "inspect", &first, "k8s", "get", "cm", "-n", "team-a", "web-config", "--clean", "--repo"]).arg(repo.path()));
    let object: Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(object["metadata"]["name"], "web-config");
    assert_eq!(object["metadata"]["namespace"], "team-a");
    assert_eq!(object["metadata"]["labels"]["app"], "web");
    assert_eq!(object["data"]["listen"], "9090");
    for field in ["uid", "resourceVersion", "creationTimestamp", "managedFields"] {
        assert!(object["metadata"].get(field).is_none(), "--clean left {field}");
    }

    // Without --clean the server-set fields are there, resourceVersion from the mod revision.
    let full = inspect_json(repo.path(), &[&first, "k8s", "get", "configmaps", "-n", "team-a", "web-config"]);
    assert_eq!(full["metadata"]["uid"], "0b9c6c1e-4d8e-4c4e-9f7a-1a2b3c4d5e6f");
    assert_eq!(full["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert!(full["metadata"]["resourceVersion"].as_str().unwrap().parse::<i64>().unwrap() > 0);

    // Secret data comes out base64-encoded, binary bytes included.
    let secret = inspect_json(repo.path(), &[&first, "k8s", "get", "secret", "-n", "team-a", "db-password"]);
    assert_eq!(secret["data"]["password"], "czNjcv9ldA==");
    assert_eq!(secret["type"], "Opaque");

    // Every built-in kind decodes through the schema, spec included, without a note.
    let deployment = caasctl().args(["-o", "json", "etcd", "inspect", &first, "k8s", "get", "deploy", "web", "--repo"]).arg(repo.path()).output().unwrap();
    assert!(deployment.status.success());
    let deployment_json: Value = serde_json::from_slice(&deployment.stdout).unwrap();
    assert_eq!(deployment_json["kind"], "Deployment");
    assert_eq!(deployment_json["metadata"]["name"], "web");
    assert_eq!(deployment_json["spec"]["replicas"], 3);
    assert!(!text(&deployment.stderr).contains("left out"), "{}", text(&deployment.stderr));

    // JSON custom resource: everything kept, --clean drops status and server metadata.
    let widget = inspect_json(repo.path(), &[&first, "k8s", "get", "example.com/widgets", "-n", "team-a", "w1", "--clean"]);
    assert_eq!(widget["spec"]["size"], 2);
    assert!(widget.get("status").is_none());
    assert!(widget["metadata"].get("managedFields").is_none());

    // OpenShift 3 prefix, found by default and by --prefix.
    let legacy = inspect_json(repo.path(), &[&first, "k8s", "get", "cm", "-n", "legacy"]);
    assert_eq!(legacy["metadata"]["name"], "old-config");
    let only_registry = inspect(repo.path(), &[&first, "k8s", "get", "cm", "-n", "legacy", "--prefix", "/registry"]);
    assert_eq!(only_registry.status.code(), Some(1));

    // Several objects come out as a List. The harness's filler values are JSON followed by
    // padding, so they cannot be decoded: each is reported and the exit code is 3 (partial).
    let output = caasctl().args(["-o", "json", "etcd", "inspect", &first, "k8s", "get", "configmaps", "--repo"]).arg(repo.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("/registry/configmaps/ns1/obj-0000001"), "{}", text(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|item| item["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["old-config", "web-config"]);

    // diff: delete the ConfigMap and change the Secret, back up again, compare.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = cluster.client().await;
        client.delete("/registry/configmaps/team-a/web-config", None).await.unwrap();
        client.put("/registry/secrets/team-a/db-password", pb::secret("db-password", "team-a", &[("password", b"new")]), None).await.unwrap();
        client.put("/registry/configmaps/team-b/added", pb::config_map("added", "team-b", &[]), None).await.unwrap();
    });
    let second = backup(&cluster, repo.path());
    let diff = inspect_json(repo.path(), &[&first, "diff", &second]);
    assert_eq!((diff["added"].as_u64(), diff["removed"].as_u64(), diff["changed"].as_u64()), (Some(1), Some(1), Some(1)), "{diff}");
    let groups = diff["groups"].as_array().unwrap();
    let group = |resource: &str, namespace: &str| groups.iter().find(|g| g["resource"] == resource && g["namespace"] == namespace).unwrap_or_else(|| panic!("no group {resource} {namespace} in {diff}"));
    assert_eq!(group("configmaps", "team-a")["removed"][0], "/registry/configmaps/team-a/web-config");
    assert_eq!(group("secrets", "team-a")["changed"][0], "/registry/secrets/team-a/db-password");
    assert_eq!(group("configmaps", "team-b")["added"][0], "/registry/configmaps/team-b/added");

    // The deleted object is still in the first backup, and gone from the second.
    let gone = inspect(repo.path(), &[&second, "k8s", "get", "cm", "-n", "team-a", "web-config"]);
    assert_eq!(gone.status.code(), Some(1));
    let recovered = inspect_json(repo.path(), &[&first, "k8s", "get", "cm", "-n", "team-a", "web-config", "--clean"]);
    assert_eq!(recovered["data"]["listen"], "9090");
}

#[test]
fn inspect_backups_etcd34() {
    inspect_backups(EtcdVersion::V34);
}

#[test]
fn inspect_backups_etcd35() {
    inspect_backups(EtcdVersion::V35);
}

#[test]
fn damaged_snapshot_fails_naming_page() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bbolt/tests/fixtures/etcd34-overflow.db");
    let mut data = std::fs::read(fixture).unwrap();
    data.truncate(60_000);
    let path = dir.path().join("cut.db");
    std::fs::write(&path, data).unwrap();
    let output = caasctl().args(["etcd", "inspect"]).arg(&path).arg("status").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("page"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let chinese = caasctl().args(["--lang", "zh-CN", "etcd", "inspect"]).arg(&path).arg("status").output().unwrap();
    assert!(text(&chinese.stderr).contains("读取快照"), "{}", text(&chinese.stderr));
}

#[test]
fn unknown_backup_id_is_an_error() {
    let repo = tempfile::tempdir().unwrap();
    let output = inspect(repo.path(), &["no-such-backup", "status"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no-such-backup"), "{}", text(&output.stderr));
}
