//! End-to-end tests of `caasctl doctor` against a real etcd cluster with mutual TLS.

use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::ClusterOptions;
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

fn doctor(cluster: &EtcdCluster, key: &std::path::Path) -> (Option<i32>, Vec<Value>) {
    let pki = cluster.pki.as_ref().unwrap();
    let output = Command::cargo_bin("caasctl")
        .unwrap()
        .env("HOME", "/nonexistent")
        .env_remove("KUBECONFIG")
        .args(["-o", "json", "--lang", "en", "doctor", "--endpoints", &cluster.endpoints()])
        .arg("--cacert")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(key)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let checks: Value = serde_json::from_slice(&output.stdout).unwrap();
    (output.status.code(), checks.as_array().unwrap().clone())
}

fn status_of<'a>(checks: &'a [Value], name: &str) -> Vec<&'a str> {
    checks.iter().filter(|c| c["check"] == name).map(|c| c["status"].as_str().unwrap()).collect()
}

#[test]
fn doctor_passes_on_healthy_cluster() {
    if !require(EtcdVersion::V35.available(), "etcd 3.5") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(3, EtcdVersion::V35, true));
    let (code, checks) = doctor(&cluster, &cluster.pki.as_ref().unwrap().client_key);
    assert_eq!(code, Some(0), "{checks:#?}");
    for name in ["tls.key-matches", "tls.cert.ca", "etcd.healthy", "etcd.alarms"] {
        assert_eq!(status_of(&checks, name), vec!["pass"], "{name}");
    }
    assert_eq!(status_of(&checks, "etcd.reachable"), vec!["pass"; 3]);
    assert_eq!(status_of(&checks, "etcd.db-quota"), vec!["pass"; 3]);
    assert!(checks.iter().all(|c| c["check"] != "kube.healthz"), "no kubeconfig, no API server check");
}

#[test]
fn doctor_fails_wrong_key_with_fix() {
    if !require(EtcdVersion::V34.available(), "etcd 3.4") {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, EtcdVersion::V34, true));
    let wrong_key = cluster.pki.as_ref().unwrap().write_wrong_key();
    let (code, checks) = doctor(&cluster, &wrong_key);
    assert_eq!(code, Some(1));
    let mismatch = checks.iter().find(|c| c["check"] == "tls.key-matches").unwrap();
    assert_eq!(mismatch["status"], "fail");
    assert!(mismatch["fix"].as_str().unwrap().contains("generated with this certificate"), "{mismatch}");
}
