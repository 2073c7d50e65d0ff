//! `caasctl volume` and the doctor's API server check against a real control plane
//! (kube-apiserver, controller-manager, scheduler and hollow nodes from `caasctl_testing::kube`),
//! shared by every test of this binary, each test in its own namespace.
//!
//! No resizer and no real kubelet run here, so the tests make their status changes as those
//! components would. The resizer sets the claim's `Resizing`, then grows the volume and sets
//! `FileSystemResizePending`. The kubelet writes `status.capacity` once the pod started again.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use caasctl_testing::kube::ControlPlane;
use serde_json::{json, Value};

fn plane() -> Option<&'static ControlPlane> {
    ControlPlane::shared(2)
}

/// Returns `caasctl ARGS --kubeconfig PLANE_KUBECONFIG` with English messages.
fn caasctl(plane: &ControlPlane, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env("CAASCTL_LANG", "en").env_remove("KUBECONFIG").args(args).arg("--kubeconfig").arg(&plane.kubeconfig);
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run caasctl");
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

/// Creates namespace `ns`, a storage class named after it, and a one-replica StatefulSet `es`
/// whose claim `data-es-0` of 1Gi binds to a pre-created hostPath volume. Waits until its pod is
/// scheduled and returns the pod's UID.
fn statefulset(plane: &ControlPlane, ns: &str, allow_expansion: bool) -> String {
    statefulset_of(plane, ns, allow_expansion, 1).remove(0)
}

/// Like [`statefulset`] with `replicas` pods, each with its claim `data-es-N` and volume
/// `NS-data-N`; returns the pods' UIDs by ordinal.
fn statefulset_of(plane: &ControlPlane, ns: &str, allow_expansion: bool, replicas: usize) -> Vec<String> {
    plane.json("POST", "/api/v1/namespaces", Some(json!({ "metadata": { "name": ns } })));
    let class = format!("{ns}-class");
    let body = json!({ "metadata": { "name": class }, "provisioner": "example.com/test", "allowVolumeExpansion": allow_expansion });
    plane.json("POST", "/apis/storage.k8s.io/v1/storageclasses", Some(body));
    for ordinal in 0..replicas {
        let volume = json!({
            "metadata": { "name": format!("{ns}-data-{ordinal}") },
            "spec": {
                "capacity": { "storage": "1Gi" },
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": { "path": format!("/tmp/caasctl-test-volumes/{ns}-{ordinal}") },
                "claimRef": { "namespace": ns, "name": format!("data-es-{ordinal}") },
            }
        });
        plane.json("POST", "/api/v1/persistentvolumes", Some(volume));
    }
    let set = json!({
        "metadata": { "name": "es" },
        "spec": {
            "replicas": replicas,
            "serviceName": "es",
            "selector": { "matchLabels": { "app": "es" } },
            "template": {
                "metadata": { "labels": { "app": "es" } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "elasticsearch",
                        "image": "registry.example.com/logging-elasticsearch:v3.11",
                        "volumeMounts": [{ "name": "data", "mountPath": "/elasticsearch/persistent" }]
                    }]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": { "requests": { "storage": "1Gi" } } }
            }]
        }
    });
    plane.json("POST", &format!("/apis/apps/v1/namespaces/{ns}/statefulsets"), Some(set));
    (0..replicas)
        .map(|ordinal| {
            wait_until(&format!("{ns}/data-es-{ordinal} bound and es-{ordinal} scheduled"), || {
                let (_, claim) = plane.get(&format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data-es-{ordinal}")).unwrap();
                let claim: Value = serde_json::from_str(&claim).unwrap_or_default();
                pod_uid(plane, ns, ordinal).filter(|_| claim["status"]["phase"] == "Bound")
            })
        })
        .collect()
}

/// Returns the UID of pod `es-ORDINAL` once it is scheduled.
fn pod_uid(plane: &ControlPlane, ns: &str, ordinal: usize) -> Option<String> {
    let (status, pod) = plane.get(&format!("/api/v1/namespaces/{ns}/pods/es-{ordinal}")).unwrap();
    let pod: Value = serde_json::from_str(&pod).unwrap_or_default();
    (status == 200 && pod["spec"]["nodeName"].is_string()).then(|| pod["metadata"]["uid"].as_str().unwrap().to_owned())
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn claim_path(ns: &str) -> String {
    claim_path_of(ns, 0)
}

fn claim_path_of(ns: &str, ordinal: usize) -> String {
    format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data-es-{ordinal}")
}

/// Acts as the resizer: waits for the new request, sets `Resizing`, grows the volume and sets
/// `FileSystemResizePending`.
fn resize_volume(plane: &ControlPlane, ns: &str) {
    resize_volume_of(plane, ns, 0);
}

fn resize_volume_of(plane: &ControlPlane, ns: &str, ordinal: usize) {
    let claim = claim_path_of(ns, ordinal);
    wait_until("the 2Gi request", || (plane.json("GET", &claim, None)["spec"]["resources"]["requests"]["storage"] == "2Gi").then_some(()));
    let resizing = json!({ "status": { "conditions": [{ "type": "Resizing", "status": "True" }] } });
    plane.json("PATCH", &format!("{claim}/status"), Some(resizing));
    std::thread::sleep(Duration::from_millis(500));
    plane.json("PATCH", &format!("/api/v1/persistentvolumes/{ns}-data-{ordinal}"), Some(json!({ "spec": { "capacity": { "storage": "2Gi" } } })));
    let pending = json!({ "status": { "conditions": [{
        "type": "FileSystemResizePending",
        "status": "True",
        "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
    }] } });
    plane.json("PATCH", &format!("{claim}/status"), Some(pending));
}

/// Acts as the kubelet after the file system grew: writes the capacity and drops the condition.
fn finish_file_system_resize(plane: &ControlPlane, ns: &str) {
    finish_file_system_resize_of(plane, ns, 0);
}

fn finish_file_system_resize_of(plane: &ControlPlane, ns: &str, ordinal: usize) {
    let done = json!({ "status": { "capacity": { "storage": "2Gi" }, "conditions": null } });
    plane.json("PATCH", &format!("{}/status", claim_path_of(ns, ordinal)), Some(done));
}

#[test]
fn list_json_shows_claim_mount() {
    let Some(plane) = plane() else { return };
    statefulset(plane, "cli-list", true);

    let output = run(&mut caasctl(plane, &["volume", "list", "-n", "cli-list", "-o", "json"]));

    assert!(output.status.success());
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["pod"], "es-0");
    assert_eq!(rows[0]["mount_path"], "/elasticsearch/persistent");
    assert_eq!(rows[0]["pvc"], "data-es-0");
    assert_eq!(rows[0]["storage_class"], "cli-list-class");
    assert_eq!(rows[0]["capacity"], "1Gi");
    assert_eq!(rows[0]["expandable"], true);
}

#[test]
fn expand_followed_to_capacity_with_restart() {
    let Some(plane) = plane() else { return };
    let old_uid = statefulset(plane, "cli-expand", true);

    let child = caasctl(plane, &["volume", "expand", "data-es-0", "--size", "2Gi", "-n", "cli-expand", "--restart-pod", "--yes", "--timeout", "120", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    resize_volume(plane, "cli-expand");
    // caasctl evicts es-0, and the StatefulSet controller starts it again with a new UID.
    wait_until("es-0 restarted", || {
        let (status, pod) = plane.get("/api/v1/namespaces/cli-expand/pods/es-0").unwrap();
        let pod: Value = serde_json::from_str(&pod).unwrap_or_default();
        (status == 200 && pod["metadata"]["uid"] != old_uid.as_str()).then_some(())
    });
    finish_file_system_resize(plane, "cli-expand");
    let output = child.wait_with_output().unwrap();
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));

    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["claims"][0]["state"], "done");
    assert_eq!(report["claims"][0]["capacity"], "2Gi");
    assert_eq!(report["restarted"], json!(["es-0"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for state in ["Requested", "Resizing", "FileSystemResizePending", "Done"] {
        assert!(stderr.contains(&format!("data-es-0: {state}")), "no {state} line: {stderr}");
    }
}

#[test]
fn statefulset_pods_restart_one_at_a_time() {
    let Some(plane) = plane() else { return };
    let uids = statefulset_of(plane, "cli-sts", true, 2);

    let child = caasctl(plane, &["volume", "expand", "--statefulset", "es", "--size", "2Gi", "-n", "cli-sts", "--restart-pod", "--yes", "--timeout", "150", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    resize_volume_of(plane, "cli-sts", 0);
    resize_volume_of(plane, "cli-sts", 1);
    wait_until("es-0 restarted", || pod_uid(plane, "cli-sts", 0).filter(|uid| *uid != uids[0]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pod_uid(plane, "cli-sts", 1).as_ref(), Some(&uids[1]), "es-1 must wait until data-es-0 is done");
    finish_file_system_resize_of(plane, "cli-sts", 0);
    wait_until("es-1 restarted", || pod_uid(plane, "cli-sts", 1).filter(|uid| *uid != uids[1]));
    finish_file_system_resize_of(plane, "cli-sts", 1);
    let output = child.wait_with_output().unwrap();
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));

    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["restarted"], json!(["es-0", "es-1"]));
    assert_eq!(report["claims"][0]["name"], "data-es-0");
    assert_eq!(report["claims"][1]["name"], "data-es-1");
    assert_eq!(report["claims"][1]["state"], "done");
}

#[test]
fn statefulset_partial_failure_exits_3() {
    let Some(plane) = plane() else { return };
    statefulset_of(plane, "cli-sts-partial", true, 2);

    let child = caasctl(plane, &["volume", "expand", "--statefulset", "es", "--size", "2Gi", "-n", "cli-sts-partial", "--yes", "--timeout", "8", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Only data-es-1 grows; no resizer ever acts on data-es-0, so it times out.
    let claim = claim_path_of("cli-sts-partial", 1);
    wait_until("the 2Gi request of data-es-1", || (plane.json("GET", &claim, None)["spec"]["resources"]["requests"]["storage"] == "2Gi").then_some(()));
    finish_file_system_resize_of(plane, "cli-sts-partial", 1);
    let output = child.wait_with_output().unwrap();
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));

    assert_eq!(output.status.code(), Some(3), "some claims failed, the rest finished");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["claims"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["claims"][0]["name"], "data-es-1");
    assert_eq!(report["claims"][0]["state"], "done");
    assert_eq!(report["failed"][0]["pvc"], "data-es-0");
    assert!(report["failed"][0]["error"].as_str().unwrap().contains("timed out"), "{report}");
}

#[test]
fn expand_without_restart_names_pod() {
    let Some(plane) = plane() else { return };
    statefulset(plane, "cli-no-restart", true);

    let child = caasctl(plane, &["volume", "expand", "data-es-0", "--size", "2Gi", "-n", "cli-no-restart", "--yes", "--timeout", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    resize_volume(plane, "cli-no-restart");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");

    assert_eq!(output.status.code(), Some(1), "a claim still waiting for a restart is a timeout");
    assert!(stderr.contains("Restart one of these pods: es-0"), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("FileSystemResizePending"), "{stderr}");
}

#[test]
fn expand_rejects_fixed_class() {
    let Some(plane) = plane() else { return };
    statefulset(plane, "cli-fixed", false);

    let fixed = run(&mut caasctl(plane, &["volume", "expand", "data-es-0", "--size", "2Gi", "-n", "cli-fixed", "--yes"]));

    assert_eq!(fixed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fixed.stderr).contains("does not allow volume expansion"));
    let claim = plane.json("GET", &claim_path("cli-fixed"), None);
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
}

#[test]
fn expand_dry_run_and_shrink_change_nothing() {
    let Some(plane) = plane() else { return };
    statefulset(plane, "cli-dry-run", true);

    let output = run(&mut caasctl(plane, &["volume", "expand", "--statefulset", "es", "--size", "3Gi", "-n", "cli-dry-run", "--dry-run"]));
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("data-es-0"), "{stdout}");
    assert!(stdout.contains("Dry run"), "{stdout}");

    let shrink = run(&mut caasctl(plane, &["volume", "expand", "--statefulset", "es", "--size", "512Mi", "-n", "cli-dry-run", "--yes"]));
    assert_eq!(shrink.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&shrink.stderr).contains("must be larger"));

    let claim = plane.json("GET", &claim_path("cli-dry-run"), None);
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
}

#[test]
fn doctor_reports_apiserver_healthz() {
    let Some(plane) = plane() else { return };

    let output = run(Command::cargo_bin("caasctl")
        .unwrap()
        .env("CAASCTL_LANG", "en")
        .args(["doctor", "-o", "json", "--endpoints", &plane.etcd_endpoints()])
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig));

    let checks: Value = serde_json::from_slice(&output.stdout).unwrap();
    let healthz: Vec<&Value> = checks.as_array().unwrap().iter().filter(|c| c["check"] == "kube.healthz").collect();
    assert_eq!(healthz.len(), 1, "{checks}");
    assert_eq!(healthz[0]["status"], "pass", "{checks}");
    assert!(output.status.success(), "every doctor check passes against the harness: {checks}");
}
