//! `caasctl etcd inspect k8s get` on objects that a real Kubernetes API server encoded.
//!
//! The test creates objects of many kinds through the API server of the harness's control plane
//! and backs up the etcd behind it. It then compares what caasctl decodes from the backup with
//! what the API server returns for the same object at the same resourceVersion. Every field the
//! server returns must be there with the same value. Anything extra must be a zero value that
//! protobuf carries but the server's JSON leaves out.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::kube::ControlPlane;
use serde_json::{json, Value};

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env_remove("LANG").env_remove("LC_ALL").env("CAASCTL_NO_PROGRESS", "1").timeout(Duration::from_secs(120));
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const NS: &str = "inspect-real";

/// Objects to create: API path of the collection, and the object.
fn objects() -> Vec<(&'static str, Value)> {
    let labels = json!({"app": "web", "tier": "frontend"});
    vec![
        (
            "/api/v1/namespaces/inspect-real/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "labels": labels, "annotations": {"empty": ""}},
                   "data": {"listen": "9090", "blank": ""}, "binaryData": {"logo": "AAEC/w=="}}),
        ),
        (
            "/api/v1/namespaces/inspect-real/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque", "data": {"password": "czNjcjN0"}}),
        ),
        (
            "/apis/apps/v1/namespaces/inspect-real/deployments",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": labels},
                "spec": {
                    "replicas": 2, "revisionHistoryLimit": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "terminationGracePeriodSeconds": 5,
                            "hostIPC": false,
                            "containers": [{
                                "name": "web", "image": "registry.local:5000/web:1.2",
                                "args": ["--listen", ":9090"],
                                "ports": [{"containerPort": 9090, "name": "http", "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "prod"},
                                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 3},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}, {"name": "scratch", "mountPath": "/tmp"}]
                            }],
                            "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                                        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
                            "tolerations": [{"key": "node-role", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]
                        }
                    }
                }
            }),
        ),
        (
            "/api/v1/namespaces/inspect-real/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 8081, "targetPort": 9091}]}}),
        ),
        (
            "/apis/policy/v1beta1/namespaces/inspect-real/poddisruptionbudgets",
            json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                   "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "/apis/batch/v1beta1/namespaces/inspect-real/cronjobs",
            json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "prune"},
                   "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "OnFailure", "containers": [{"name": "prune", "image": "busybox", "command": ["true"]}]}}}}}}),
        ),
        (
            "/api/v1/namespaces/inspect-real/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/inspect-real/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
                   "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}]}),
        ),
    ]
}

/// Resource name for `inspect k8s get` and the API path of one object.
fn lookups() -> Vec<(&'static str, &'static str)> {
    vec![
        ("configmaps", "/api/v1/namespaces/inspect-real/configmaps/web-config"),
        ("secrets", "/api/v1/namespaces/inspect-real/secrets/db"),
        ("deployments", "/apis/apps/v1/namespaces/inspect-real/deployments/web"),
        ("services", "/api/v1/namespaces/inspect-real/services/web"),
        ("poddisruptionbudgets", "/apis/policy/v1beta1/namespaces/inspect-real/poddisruptionbudgets/web"),
        ("cronjobs", "/apis/batch/v1beta1/namespaces/inspect-real/cronjobs/prune"),
        ("persistentvolumeclaims", "/api/v1/namespaces/inspect-real/persistentvolumeclaims/data"),
        ("roles", "/apis/rbac.authorization.k8s.io/v1/namespaces/inspect-real/roles/reader"),
        // A custom resource, which the API server stores as JSON.
        ("example.com/widgets", "/apis/example.com/v1/namespaces/inspect-real/widgets/w1"),
    ]
}

/// Defines the Widget kind and creates one, retrying until the new API is served.
fn create_widget(plane: &ControlPlane) {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    plane.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(crd));
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 2, "colours": ["red", "blue"]}});
    for _ in 0..60 {
        let (status, body) = plane.send("POST", "/apis/example.com/v1/namespaces/inspect-real/widgets", Some(widget.clone())).unwrap();
        if status == 201 {
            return;
        }
        assert!(status == 404 || status == 503, "creating the widget returned {status}: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the widgets API was not served within 30 s");
}

fn backup(plane: &ControlPlane, repo: &Path) -> String {
    let output = caasctl().args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &plane.etcd_endpoints(), "--repo"]).arg(repo).output().unwrap();
    assert!(output.status.success(), "backup failed: {}", text(&output.stderr));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    manifest["id"].as_str().unwrap().to_owned()
}

fn decoded(repo: &Path, id: &str, resource: &str, name: &str) -> (Value, String) {
    let output = caasctl().args(["-o", "json", "etcd", "inspect", id, "k8s", "get", resource, "-n", NS, name, "--repo"]).arg(repo).output().unwrap();
    assert!(output.status.success(), "inspect {resource}/{name} failed: {}", text(&output.stderr));
    (serde_json::from_slice(&output.stdout).unwrap(), text(&output.stderr))
}

/// Fields that the API server's defaulting fills in when it reads an object, so they are not in
/// etcd: a claim's phase is stored empty until the binder sets it.
const FILLED_ON_READ: [&str; 1] = ["persistentvolumeclaims.status.phase"];

/// Returns true for a value that protobuf carries and the API server's JSON may leave out.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_zero),
    }
}

/// Checks that `ours` has everything `server` has, with equal values, and nothing else but zeros.
fn compare(path: &str, server: &Value, ours: Option<&Value>, problems: &mut Vec<String>) {
    if FILLED_ON_READ.contains(&path) {
        return;
    }
    match (server, ours) {
        (Value::Null, None | Some(Value::Null)) => {}
        (_, None) => problems.push(format!("{path}: missing, the API server has {server}")),
        (Value::Object(expected), Some(Value::Object(actual))) => {
            for (key, value) in expected {
                compare(&format!("{path}.{key}"), value, actual.get(key), problems);
            }
            for (key, value) in actual {
                if !expected.contains_key(key) && !is_zero(value) {
                    problems.push(format!("{path}.{key}: caasctl has {value}, the API server has nothing"));
                }
            }
        }
        (Value::Array(expected), Some(Value::Array(actual))) if expected.len() == actual.len() => {
            for (index, (e, a)) in expected.iter().zip(actual).enumerate() {
                compare(&format!("{path}[{index}]"), e, Some(a), problems);
            }
        }
        (expected, Some(actual)) if expected == actual => {}
        (expected, Some(actual)) => problems.push(format!("{path}: caasctl has {actual}, the API server has {expected}")),
    }
}

#[test]
fn apiserver_objects_decode_like_its_json() {
    let Some(plane) = ControlPlane::start_or_skip(0) else { return };
    let plane = &plane;
    plane.json("POST", "/api/v1/namespaces", Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})));
    for (path, object) in objects() {
        plane.json("POST", path, Some(object));
    }
    create_widget(plane);
    let repo = tempfile::tempdir().unwrap();

    // Controllers update some objects after creation (the Deployment's status and revision
    // annotation). Compare only an object whose resourceVersion is the one in the backup; take
    // another backup until every object has settled.
    let mut pending: Vec<(&str, &str)> = lookups();
    for attempt in 0..15 {
        std::thread::sleep(Duration::from_secs(if attempt == 0 { 3 } else { 2 }));
        let id = backup(plane, repo.path());
        let mut unsettled = Vec::new();
        for (resource, api_path) in pending {
            let server = plane.json("GET", api_path, None);
            let name = server["metadata"]["name"].as_str().unwrap().to_owned();
            let (ours, stderr) = decoded(repo.path(), &id, resource, &name);
            if ours["metadata"]["resourceVersion"] != server["metadata"]["resourceVersion"] {
                unsettled.push((resource, api_path));
                continue;
            }
            assert!(!stderr.contains("left out"), "{resource}: {stderr}");
            assert!(!stderr.contains("only apiVersion"), "{resource}: {stderr}");
            let mut problems = Vec::new();
            compare(resource, &server, Some(&ours), &mut problems);
            assert!(problems.is_empty(), "{resource} differs from the API server's JSON:\n{}\ncaasctl: {ours:#}", problems.join("\n"));
        }
        pending = unsettled;
        if pending.is_empty() {
            break;
        }
    }
    assert!(pending.is_empty(), "objects kept changing between backup and GET: {pending:?}");

    // --clean leaves an object that the API server accepts again under another name.
    let output = caasctl()
        .args(["-o", "json", "etcd", "inspect", &backup(plane, repo.path()), "k8s", "get", "deployments", "-n", NS, "web", "--clean", "--repo"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut restored: Value = serde_json::from_slice(&output.stdout).unwrap();
    restored["metadata"]["name"] = json!("web-restored");
    let created = plane.json("POST", "/apis/apps/v1/namespaces/inspect-real/deployments", Some(restored));
    assert_eq!(created["spec"]["template"]["spec"]["containers"][0]["image"], "registry.local:5000/web:1.2");
    assert_eq!(created["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
}
