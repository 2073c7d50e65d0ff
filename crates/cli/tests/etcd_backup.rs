//! End-to-end tests of `etcd health`, `etcd members`, `etcd backup` and `etcd backups` against real
//! etcd 3.4 and 3.5 clusters started by the harness on loopback ports.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

const SECRET_MARKER: &str = "caasctl-test-secret-";

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env_remove("LANG").env_remove("LC_ALL").env("CAASCTL_NO_PROGRESS", "1").timeout(Duration::from_secs(120));
    command
}

fn start(version: EtcdVersion, members: usize, keys: usize, value_size: usize) -> Option<EtcdCluster> {
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(members, version, true));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, keys, value_size).await;
    });
    Some(cluster)
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Returns (revision, count) of the whole keyspace as etcdctl reports them. Debian's etcdctl 3.4
/// has no `--count-only`, so the 3.5 client sends the request, which works against both servers.
fn etcdctl_counts(cluster: &EtcdCluster) -> (i64, i64) {
    let output = std::process::Command::new(EtcdVersion::V35.etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", cluster.endpoints()))
        .args(cluster.tls_args())
        .args(["get", "", "--prefix", "--count-only", "-w", "fields"])
        .output()
        .unwrap();
    assert!(output.status.success(), "etcdctl get failed: {}", text(&output.stderr));
    let fields = text(&output.stdout);
    let field = |name: &str| -> i64 {
        let line = fields.lines().find(|l| l.starts_with(&format!("\"{name}\""))).unwrap_or_else(|| panic!("no {name} in {fields}"));
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    };
    (field("Revision"), field("Count"))
}

fn backup(cluster: &EtcdCluster, repo: &Path, extra: &[&str]) -> Output {
    let config = if extra.contains(&"--config-dir") { None } else { Some("--no-config") };
    run(caasctl()
        .args(["-o", "json", "etcd", "backup", "--endpoints", &cluster.endpoints()])
        .args(config)
        .arg("--repo")
        .arg(repo)
        .args(cluster.tls_args())
        .args(extra))
}

fn backup_three_member_tls(version: EtcdVersion) {
    let Some(cluster) = start(version, 3, 2_000, 1_024) else { return };
    let repo = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("etcd.conf"), "ETCD_NAME=m0\n").unwrap();

    let output = backup(&cluster, repo.path(), &["--config-dir", config.path().to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "backup failed: {stderr}");
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();

    let (revision, count) = etcdctl_counts(&cluster);
    assert_eq!(manifest["revision"].as_i64().unwrap(), revision, "manifest revision");
    assert_eq!(manifest["key_count"].as_i64().unwrap(), count, "manifest key count");
    assert_eq!(manifest["members"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["etcd_version"].as_str().unwrap().get(..3), Some(version.label()));
    assert_eq!(manifest["config_archives"].as_array().unwrap().len(), 1);

    let id = manifest["id"].as_str().unwrap();
    let dir = repo.path().join(id);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for file in ["snapshot.db", "manifest.json"] {
        let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} mode");
    }

    // The file stays usable by the standard tool.
    let status = std::process::Command::new(version.etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(dir.join("snapshot.db"))
        .output()
        .unwrap();
    let status_text = text(&status.stdout) + &text(&status.stderr);
    assert!(status.status.success() || status_text.contains("etcdutl"), "etcdctl snapshot status: {status_text}");

    let verify = run(caasctl().args(["etcd", "backups", "verify", "--repo"]).arg(repo.path()));
    assert!(verify.status.success(), "verify failed: {}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains(id));
}

#[test]
fn backup_three_member_tls_v34() {
    backup_three_member_tls(EtcdVersion::V34);
}

#[test]
fn backup_three_member_tls_v35() {
    backup_three_member_tls(EtcdVersion::V35);
}

#[test]
fn backup_survives_member_killed_mid_stream() {
    let Some(mut cluster) = start(EtcdVersion::V34, 3, 1_500, 10_240) else { return };
    let repo = tempfile::tempdir().unwrap();

    // The first follower in endpoint order is the first snapshot source.
    let status = cluster.etcdctl(&["endpoint", "status", "-w", "json"]);
    let statuses: Value = serde_json::from_slice(&status.stdout).unwrap();
    let source = statuses
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["Status"]["leader"] != s["Status"]["header"]["member_id"])
        .unwrap();
    let source_url = cluster.members[source].client_url.clone();
    let pid = cluster.member_pid(source).unwrap();

    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1_500));
        // SAFETY: the PID belongs to a child process this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let output = backup(&cluster, repo.path(), &["--rate-limit", "4"]);
    killer.join().unwrap();
    cluster.kill_member(source);

    let list = run(caasctl().args(["-o", "json", "etcd", "backups", "list", "--repo"]).arg(repo.path()));
    let entries: Value = serde_json::from_slice(&list.stdout).unwrap();
    if output.status.success() {
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_ne!(manifest["source_member"]["endpoint"].as_str().unwrap(), source_url, "the killed member cannot be the source");
        assert!(text(&output.stderr).contains("trying the next healthy member"), "the stream broke and was retried: {}", text(&output.stderr));
        let verify = run(caasctl().args(["etcd", "backups", "verify", "--repo"]).arg(repo.path()));
        assert!(verify.status.success(), "verify failed: {}", text(&verify.stdout));
    } else {
        let complete = entries.as_array().unwrap().iter().filter(|e| e["state"] == "complete").count();
        assert_eq!(complete, 0, "a failed backup must not be listed as complete");
    }
    assert!(entries.as_array().unwrap().iter().all(|e| e["state"] == "complete"), "no incomplete leftovers: {entries}");
}

#[test]
fn verify_catches_truncated_and_flipped_snapshots() {
    let Some(cluster) = start(EtcdVersion::V35, 1, 500, 512) else { return };
    let repo = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let output = backup(&cluster, repo.path(), &[]);
        assert!(output.status.success(), "backup failed: {}", text(&output.stderr));
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        ids.push(manifest["id"].as_str().unwrap().to_owned());
    }

    let truncated = repo.path().join(&ids[0]).join("snapshot.db");
    let length = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&truncated).unwrap().set_len(length - 4_096).unwrap();

    let flipped = repo.path().join(&ids[1]).join("snapshot.db");
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[8_192] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();

    for id in &ids {
        let output = run(caasctl().args(["--lang", "en", "etcd", "backups", "verify", "--repo"]).arg(repo.path()).arg(id));
        assert_eq!(output.status.code(), Some(1), "verify of {id} must fail");
        assert!(text(&output.stdout).contains(&format!("backup {id}: FAILED")), "{}", text(&output.stdout));
        let listed = run(caasctl().args(["--lang", "en", "etcd", "backups", "list", "--repo"]).arg(repo.path()));
        let row = text(&listed.stdout).lines().find(|line| line.starts_with(id.as_str())).map(str::to_owned).unwrap_or_default();
        assert!(row.contains("FAILED"), "backups list shows the failed verification: {}", text(&listed.stdout));
        assert!(text(&output.stderr).contains(id.as_str()), "the error names the backup: {}", text(&output.stderr));
    }

    // inspect still reads the flipped backup, which may be all an operator has, but warns first.
    let inspected = run(caasctl().args(["--lang", "en", "etcd", "inspect", &ids[1], "--repo"]).arg(repo.path()).arg("status"));
    assert!(text(&inspected.stderr).contains("does not match its manifest"), "{}", text(&inspected.stderr));
}

#[test]
fn tls_problems_have_clear_messages() {
    let Some(cluster) = start(EtcdVersion::V34, 1, 10, 64) else { return };
    let pki = cluster.pki.clone().unwrap();
    let other_ca = pki.write_other_ca();
    let wrong_key = pki.write_wrong_key();
    let (expired_cert, expired_key) = pki.write_expired_client();

    let health = |cacert: &Path, cert: &Path, key: &Path, lang: &str| {
        run(caasctl()
            .args(["--lang", lang, "etcd", "health", "--endpoints", &cluster.endpoints()])
            .arg("--cacert")
            .arg(cacert)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key))
    };

    let ok = health(&pki.ca, &pki.client_cert, &pki.client_key, "en");
    assert!(ok.status.success(), "healthy cluster: {}", text(&ok.stdout));

    let wrong_ca = health(&other_ca, &pki.client_cert, &pki.client_key, "en");
    assert_eq!(wrong_ca.status.code(), Some(1));
    assert!(text(&wrong_ca.stdout).contains("not signed by a trusted CA"), "{}", text(&wrong_ca.stdout));

    // A key that does not fit the certificate, or an expired certificate, is a configuration
    // mistake found before any request: exit code 2.
    let mismatch = health(&pki.ca, &pki.client_cert, &wrong_key, "en");
    assert_eq!(mismatch.status.code(), Some(2));
    assert!(text(&mismatch.stderr).contains("does not match certificate"), "{}", text(&mismatch.stderr));

    let mismatch_zh = health(&pki.ca, &pki.client_cert, &wrong_key, "zh-CN");
    assert!(text(&mismatch_zh.stderr).contains("不匹配"), "{}", text(&mismatch_zh.stderr));

    let expired = health(&pki.ca, &expired_cert, &expired_key, "en");
    assert_eq!(expired.status.code(), Some(2));
    assert!(text(&expired.stderr).contains("expired on"), "{}", text(&expired.stderr));

    // No client certificate: etcd ends the handshake, and the hint names --cert and --key.
    let no_client = run(caasctl().args(["--lang", "en", "etcd", "health", "--endpoints", &cluster.endpoints()]).arg("--cacert").arg(&pki.ca));
    assert_eq!(no_client.status.code(), Some(1));
    let shown = format!("{}{}", text(&no_client.stdout), text(&no_client.stderr));
    assert!(shown.contains("--cert and --key") || shown.contains("client certificate"), "{shown}");

    // http:// to a TLS port is named as a scheme mismatch.
    let plain = cluster.endpoints().replace("https://", "http://");
    let mismatch = run(caasctl().args(["--lang", "en", "etcd", "health", "--endpoints", &plain]));
    assert_eq!(mismatch.status.code(), Some(1));
    let shown = format!("{}{}", text(&mismatch.stdout), text(&mismatch.stderr));
    assert!(shown.contains("TLS and plain HTTP do not match"), "{shown}");
}

#[test]
fn secret_values_never_reach_logs() {
    let Some(cluster) = start(EtcdVersion::V34, 1, 200, 256) else { return };
    let repo = tempfile::tempdir().unwrap();
    let output = run(caasctl()
        .env("RUST_LOG", "trace")
        .args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &cluster.endpoints(), "--repo"])
        .arg(repo.path())
        .args(cluster.tls_args()));
    assert!(output.status.success(), "backup failed: {}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.lines().count() > 5, "trace logging produced output");
    assert!(!stderr.contains(SECRET_MARKER), "a secret value reached the log");
    assert!(!text(&output.stdout).contains(SECRET_MARKER), "a secret value reached stdout");
    let key_pem = std::fs::read_to_string(&cluster.pki.as_ref().unwrap().client_key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!stderr.contains(key_body), "the private key reached the log");
}

#[test]
fn endpoints_from_conf_and_manifest() {
    let Some(cluster) = start(EtcdVersion::V35, 3, 10, 64) else { return };
    let pki = cluster.pki.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("etcd.conf");
    std::fs::write(
        &conf,
        format!(
            "# test\nETCD_ADVERTISE_CLIENT_URLS=\"{}\"\nETCD_TRUSTED_CA_FILE='{}'\nETCD_CERT_FILE={}\nETCD_KEY_FILE={}\n",
            cluster.endpoints(),
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    )
    .unwrap();
    let output = run(caasctl().args(["-o", "json", "etcd", "health", "--etcd-conf"]).arg(&conf));
    assert!(output.status.success(), "health failed: {} {}", text(&output.stdout), text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 3);
    assert_eq!(report.as_array().unwrap().iter().filter(|h| h["is_leader"] == true).count(), 1);
    assert!(report[0]["quota_bytes"].as_u64().unwrap() > 0, "quota read from metrics");

    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --advertise-client-urls={}\n    - --trusted-ca-file={}\n    - --cert-file={}\n    - --key-file={}\n",
            cluster.members[0].client_url,
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    )
    .unwrap();
    let output = run(caasctl().args(["-o", "json", "etcd", "members", "--static-pod-manifest"]).arg(&manifest));
    assert!(output.status.success(), "members failed: {}", text(&output.stderr));
    let members: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = members["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3);
    for name in ["m0", "m1", "m2"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    let bad = run(caasctl().args(["--lang", "en", "etcd", "health", "--endpoints", "127.0.0.1:2379"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("\"127.0.0.1:2379\""), "the error names the value: {}", text(&bad.stderr));
}

#[test]
fn unhealthy_member_reported_partial() {
    let Some(mut cluster) = start(EtcdVersion::V34, 3, 10, 64) else { return };
    cluster.kill_member(2);
    // A killed leader leaves the others without one until they elect a new one.
    std::thread::sleep(Duration::from_secs(3));
    let output = run(caasctl()
        .args(["--lang", "en", "etcd", "health", "--dial-timeout", "2", "--endpoints", &cluster.endpoints()])
        .args(cluster.tls_args()));
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("connection refused"), "{}", text(&output.stdout));
}

#[test]
fn backup_names_down_member() {
    let Some(mut cluster) = start(EtcdVersion::V34, 3, 10, 64) else { return };
    cluster.kill_member(2);
    std::thread::sleep(Duration::from_secs(3));
    let repo = tempfile::tempdir().unwrap();
    let output = backup(&cluster, repo.path(), &["--dial-timeout", "2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let down = cluster.endpoints().split(',').nth(2).unwrap().to_owned();
    assert!(stderr.contains("was not used"), "{stderr}");
    assert!(stderr.contains(&down), "{stderr}");
}
