//! `caasctl serve` as a real process against a real etcd 3.5 (mutual TLS) started by the harness,
//! with a schedule of every few seconds. The tests scrape the metrics over HTTP, check the keep
//! rules, the restore drill and the JSON log lines, and send SIGTERM in the middle of a backup.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::ports::free_port;
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

/// A running `caasctl serve`, stopped by its PID when dropped.
struct Serve {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Serve {
    fn start(config: &Path, state: &Path, port: u16) -> Serve {
        let log = config.with_file_name("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_caasctl"))
            .args(["serve", "--config"])
            .arg(config)
            .env("CAASCTL_STATE_DIR", state)
            .env_remove("RUST_LOG")
            .env_remove("CAASCTL_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Serve { child: Some(child), port, log }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, body)| body).unwrap_or_default()
    }

    /// Scrapes until `condition` holds on the metrics text, or panics after `limit`.
    fn wait_for(&self, limit: Duration, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.metrics();
            if condition(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; metrics:\n{text}\nlog:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and returns the exit code, panicking when the process outlives `limit`.
    fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        // SAFETY: the PID belongs to the child this test started and has not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not stop within {limit:?} after SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Returns the value of the sample `name` (with its labels) in a metrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn start_cluster(keys: usize, value_size: usize) -> Option<EtcdCluster> {
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, keys, value_size).await;
    });
    Some(cluster)
}

/// Writes a configuration file with the `[backup]` and `[serve]` tables; `extra` is appended.
fn write_config(dir: &Path, cluster: &EtcdCluster, port: u16, serve: &str, extra: &str) -> PathBuf {
    let pki = cluster.pki.as_ref().unwrap();
    let text = format!(
        "[backup]\nrepo = {repo:?}\n\n[serve]\nlisten = \"127.0.0.1:{port}\"\nendpoints = {endpoints:?}\ncacert = {ca:?}\ncert = {cert:?}\nkey = {key:?}\n{serve}\n{extra}",
        repo = dir.join("repo").display().to_string(),
        endpoints = cluster.endpoints(),
        ca = pki.ca.display().to_string(),
        cert = pki.client_cert.display().to_string(),
        key = pki.client_key.display().to_string(),
    );
    let path = dir.join("caasctl.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Lists the repository with `caasctl -o json etcd backups list`.
fn list(repo: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_caasctl")).args(["-o", "json", "etcd", "backups", "list", "--repo"]).arg(repo).output().unwrap();
    assert!(output.status.success(), "list failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

fn count(entries: &[Value], state: &str) -> usize {
    entries.iter().filter(|e| e["state"] == state).count()
}

#[test]
fn serve_schedules_backups_prune_and_drill() {
    let Some(cluster) = start_cluster(300, 512) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let version = EtcdVersion::V35;
    let drill = format!(
        "[serve.drill]\nenabled = true\netcd = {etcd:?}\netcdutl = {etcdutl:?}\nscratch_dir = {scratch:?}\ntimeout_seconds = 30\n",
        etcd = version.etcd_binary().display().to_string(),
        etcdutl = version.tool("etcdutl").display().to_string(),
        scratch = dir.path().join("drill").display().to_string(),
    );
    let config = write_config(dir.path(), &cluster, port, "schedule = \"*/3 * * * * *\"\n\n[serve.retention]\nkeep_last = 2\n", &drill);
    let mut serve = Serve::start(&config, &dir.path().join("state"), port);

    // The first run: a backup, then a drill that matches.
    let text = serve.wait_for(Duration::from_secs(90), "a drill result", |t| sample(t, "caasctl_drill_last_success").is_some());
    assert_eq!(sample(&text, "caasctl_drill_last_success"), Some(1.0), "the drill matches: {text}\n{}", serve.log_text());
    assert_eq!(sample(&text, "caasctl_drill_total{result=\"success\"}"), Some(1.0), "{text}");
    assert!(sample(&text, "caasctl_backup_success_total").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, "caasctl_backup_last_size_bytes").unwrap() > 0.0, "{text}");
    assert!(sample(&text, "caasctl_backup_last_duration_seconds").unwrap() > 0.0, "{text}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let last = sample(&text, "caasctl_backup_last_success_timestamp_seconds").unwrap();
    assert!((now - last).abs() < 120.0, "last success {last} is recent (now {now})");
    assert_eq!(sample(&text, "caasctl_backup_failures_total{reason=\"etcd\"}"), Some(0.0), "{text}");
    assert!(text.contains("# TYPE caasctl_backup_failures_total counter"), "{text}");
    assert_eq!(serve.get("/healthz"), Some((200, "ok\n".to_owned())));
    assert!(dir.path().join("drill").read_dir().unwrap().next().is_some(), "the drill's data stays in the scratch dir");

    // More runs: the keep rules leave two complete backups.
    let text = serve.wait_for(Duration::from_secs(90), "a pruned backup", |t| sample(t, "caasctl_prune_removed_total").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "caasctl_backup_success_total").unwrap() >= 3.0, "{text}");
    let code = serve.terminate(Duration::from_secs(90));
    assert_eq!(code, Some(0), "{}", serve.log_text());
    let entries = list(&dir.path().join("repo"));
    assert_eq!(count(&entries, "complete"), 2, "{entries:?}");

    // Every log line is a JSON object, and the runs were logged.
    let log = serve.log_text();
    let lines: Vec<Value> = log.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    for expected in ["serve started", "scheduled backup finished", "drill result", "serve stopped"] {
        assert!(messages.contains(&expected), "{expected:?} missing in {messages:?}");
    }
}

#[test]
fn serve_sigterm_abandons_or_finishes_backup() {
    // About 6 MiB at 1 MiB/s: each backup runs for several seconds.
    let Some(cluster) = start_cluster(1_500, 4_096) else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");

    // A short grace period: the backup is abandoned and nothing of it stays.
    let port = free_port();
    let config = write_config(dir.path(), &cluster, port, "schedule = \"*/2 * * * * *\"\nrate_limit_mib = 1.0\nshutdown_grace_seconds = 1\n", "");
    let mut serve = Serve::start(&config, &dir.path().join("state"), port);
    serve.wait_for(Duration::from_secs(60), "a backup in progress", |t| sample(t, "caasctl_backup_in_progress") == Some(1.0));
    std::thread::sleep(Duration::from_secs(1));
    let code = serve.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", serve.log_text());
    let entries = list(&repo);
    assert_eq!(count(&entries, "complete"), 0, "no abandoned backup is listed as complete: {entries:?}");
    assert_eq!(count(&entries, "incomplete"), 0, "the abandoned backup was removed: {entries:?}");
    assert!(serve.log_text().contains("backup abandoned at shutdown"), "{}", serve.log_text());

    // A long grace period: the backup in progress finishes and is complete and whole.
    let port = free_port();
    let config = write_config(dir.path(), &cluster, port, "schedule = \"*/2 * * * * *\"\nrate_limit_mib = 1.0\nshutdown_grace_seconds = 120\n", "");
    let mut serve = Serve::start(&config, &dir.path().join("state"), port);
    serve.wait_for(Duration::from_secs(60), "a backup in progress", |t| sample(t, "caasctl_backup_in_progress") == Some(1.0));
    std::thread::sleep(Duration::from_secs(1));
    let code = serve.terminate(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{}", serve.log_text());
    let entries = list(&repo);
    assert_eq!(count(&entries, "complete"), 1, "the backup in progress finished: {entries:?}");
    assert_eq!(count(&entries, "incomplete"), 0, "{entries:?}");
    let verify = Command::new(env!("CARGO_BIN_EXE_caasctl")).args(["etcd", "backups", "verify", "--repo"]).arg(&repo).output().unwrap();
    assert!(verify.status.success(), "the finished backup verifies: {}", String::from_utf8_lossy(&verify.stdout));
}
