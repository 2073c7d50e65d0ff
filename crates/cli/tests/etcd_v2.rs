//! `etcd health --api 2` and `etcd members --api 2` against a real etcd 3.4 cluster serving the
//! v2 API (`--enable-v2=true`) with mutual TLS.

use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::ClusterOptions;
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

fn v2_cluster() -> Option<EtcdCluster> {
    if !require(EtcdVersion::V34.available(), "etcd 3.4") {
        return None;
    }
    let mut options = ClusterOptions::new(3, EtcdVersion::V34, true);
    options.extra_args.push("--enable-v2=true".to_owned());
    Some(EtcdCluster::start(options))
}

fn caasctl(cluster: &EtcdCluster, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("caasctl")
        .unwrap()
        .args(["--lang", "en"])
        .args(args)
        .args(["--api", "2", "--endpoints", &cluster.endpoints()])
        .args(cluster.tls_args())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn v2_health_reports_every_member() {
    let Some(mut cluster) = v2_cluster() else { return };

    let output = caasctl(&cluster, &["-o", "json", "etcd", "health"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["healthy"], true);
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m["is_leader"] == true).count(), 1);

    let text = caasctl(&cluster, &["etcd", "health"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("cluster is healthy"), "{stdout}");

    cluster.kill_member(1);
    std::thread::sleep(Duration::from_secs(2));
    let degraded = caasctl(&cluster, &["etcd", "health"]);
    let stdout = String::from_utf8_lossy(&degraded.stdout);
    assert_eq!(degraded.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("is unhealthy"), "{stdout}");
    assert!(stdout.contains("cluster is unhealthy"), "{stdout}");
}

#[test]
fn v2_members_lists_names() {
    let Some(cluster) = v2_cluster() else { return };
    let output = caasctl(&cluster, &["-o", "json", "etcd", "members"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let members: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut names: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["m0", "m1", "m2"]);
}
