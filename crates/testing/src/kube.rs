//! A real Kubernetes control plane for tests: etcd 3.4, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kubemark hollow nodes, all built from Debian's `kubernetes` 1.20.2 source
//! package by `scripts/build-kube.sh`.
//!
//! Hollow nodes are kubelets with a fake container runtime: they register as Ready nodes and run
//! scheduled pods as Running, but mount nothing and run no container. They report this machine's
//! non-loopback address as their InternalIP and their kubelet listens on 0.0.0.0, so tests must
//! never call exec, attach, logs, port-forward or the node proxy on their pods: the API server
//! would then connect to that address. Nodes, pods, evictions, PDBs, PVCs and watches stay between
//! processes on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::etcd::{ClusterOptions, EtcdCluster, EtcdVersion};
use crate::ports::free_port;

/// Kubernetes version that `scripts/build-kube.sh` builds, and the cache directory's key.
pub const KUBE_VERSION: &str = "1.20.2";

/// The four server binaries the harness runs.
const BINARIES: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubemark"];

/// Returns the directory with the Kubernetes binaries: `$CAASCTL_KUBE_BIN`, else
/// `$CAASCTL_TOOLS_DIR/kube-1.20.2/bin` (tools dir default `~/.cache/caasctl-tools`).
pub fn kube_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAASCTL_KUBE_BIN") {
        return PathBuf::from(dir);
    }
    let tools = std::env::var_os("CAASCTL_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/caasctl-tools"));
    tools.join(format!("kube-{KUBE_VERSION}")).join("bin")
}

/// Returns true when all four Kubernetes binaries and etcd 3.4 are installed.
pub fn available() -> bool {
    let dir = kube_bin_dir();
    BINARIES.iter().all(|b| dir.join(b).is_file()) && EtcdVersion::V34.available()
}

/// A process of the control plane with its log file.
#[derive(Debug)]
struct Server {
    name: String,
    log: PathBuf,
    child: Option<Child>,
}

/// A running control plane. Every process is stopped by PID when it drops (SIGTERM, then
/// SIGKILL after five seconds), hollow nodes first and etcd last.
#[derive(Debug)]
pub struct ControlPlane {
    /// URL of the API server's secure port, such as `https://127.0.0.1:PORT`.
    pub server: String,
    /// Bearer token of a `system:masters` user.
    pub token: String,
    /// Kubeconfig for that user; it trusts the API server's self-signed certificate.
    pub kubeconfig: PathBuf,
    /// Names of the hollow nodes.
    pub nodes: Vec<String>,
    /// The etcd behind the API server.
    pub etcd: EtcdCluster,
    servers: Vec<Server>,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts a control plane with `nodes` hollow nodes when the binaries are installed.
    ///
    /// Returns `None` when they are missing, after [`crate::require`] printed the skip; under
    /// `CI=true` a missing binary panics instead.
    ///
    /// # Panics
    /// When a server does not come up within two minutes; the logs of every server are printed.
    pub fn start_or_skip(nodes: usize) -> Option<ControlPlane> {
        let what = format!("Kubernetes {KUBE_VERSION} binaries in {} (scripts/build-kube.sh) or etcd 3.4", kube_bin_dir().display());
        if !crate::require(available(), &what) {
            return None;
        }
        Some(ControlPlane::start(nodes))
    }

    /// Starts a control plane with `nodes` hollow nodes and waits until the API server is healthy
    /// and every node is Ready.
    ///
    /// # Panics
    /// When a binary is missing or a server does not come up within two minutes.
    pub fn start(nodes: usize) -> ControlPlane {
        let dir = tempfile::Builder::new().prefix("caasctl-kube-").tempdir().unwrap();
        let etcd = EtcdCluster::start(ClusterOptions::new(1, EtcdVersion::V34, false));
        let token = format!("caasctl-test-token-{:016x}", rand::random::<u64>());
        let port = free_port();
        let server = format!("https://127.0.0.1:{port}");
        let node_names: Vec<String> = (0..nodes).map(|i| format!("hollow-node-{i}")).collect();
        let mut plane = ControlPlane { server, token, kubeconfig: dir.path().join("admin.kubeconfig"), nodes: node_names, etcd, servers: Vec::new(), dir };
        let deadline = Instant::now() + Duration::from_secs(120);

        plane.write_credentials();
        plane.start_apiserver(port);
        plane.wait_for("API server /healthz", deadline, |plane| plane.get("/healthz").map(|(status, body)| status == 200 && body.trim() == "ok").unwrap_or(false));
        plane.write_kubeconfig();

        let kubeconfig = plane.kubeconfig.display().to_string();
        let controller_manager_args = vec![
            format!("--kubeconfig={kubeconfig}"),
            "--port=0".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", free_port()),
            "--leader-elect=false".to_owned(),
            format!("--service-account-private-key-file={}", plane.sa_key().display()),
            "--use-service-account-credentials=false".to_owned(),
            format!("--cert-dir={}", plane.dir.path().join("controller-manager-certs").display()),
        ];
        plane.spawn("kube-controller-manager", "kube-controller-manager", &controller_manager_args);
        let scheduler_args = vec![
            format!("--kubeconfig={kubeconfig}"),
            "--port=0".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", free_port()),
            "--leader-elect=false".to_owned(),
            format!("--cert-dir={}", plane.dir.path().join("scheduler-certs").display()),
        ];
        plane.spawn("kube-scheduler", "kube-scheduler", &scheduler_args);
        for name in plane.nodes.clone() {
            let args = vec![
                "--morph=kubelet".to_owned(),
                format!("--name={name}"),
                format!("--kubeconfig={kubeconfig}"),
                format!("--kubelet-port={}", free_port()),
                format!("--kubelet-read-only-port={}", free_port()),
                "--kube-api-content-type=application/json".to_owned(),
            ];
            plane.spawn(&name, "kubemark", &args);
        }

        plane.wait_for("every hollow node Ready", deadline, |plane| plane.ready_nodes() >= plane.nodes.len());
        plane.wait_for("the default service account", deadline, |plane| plane.get("/api/v1/namespaces/default/serviceaccounts/default").map(|(status, _)| status == 200).unwrap_or(false));
        plane
    }

    /// Returns a control plane shared by every test of this test binary, started on first use with
    /// `nodes` hollow nodes, or `None` when the binaries are missing (see [`Self::start_or_skip`]).
    ///
    /// Statics are never dropped, so the servers are stopped by PID from an `atexit` handler when
    /// the test binary exits. Tests share the cluster, so each works in its own namespace.
    pub fn shared(nodes: usize) -> Option<&'static ControlPlane> {
        static SHARED: OnceLock<Option<ControlPlane>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let plane = ControlPlane::start_or_skip(nodes)?;
                let mut pids: Vec<u32> = plane.servers.iter().rev().filter_map(|s| s.child.as_ref().map(Child::id)).collect();
                pids.extend(plane.etcd.member_pid(0));
                *SHARED_PIDS.lock().unwrap() = pids;
                *SHARED_DIRS.lock().unwrap() = vec![plane.dir.path().to_owned(), plane.etcd.path().to_owned()];
                // SAFETY: registering a plain `extern "C"` function without captured state.
                unsafe {
                    libc::atexit(stop_shared);
                }
                Some(plane)
            })
            .as_ref()
    }

    /// Returns the harness's temporary directory (logs, certificates, kubeconfig).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the URL of the etcd the API server stores into.
    pub fn etcd_endpoints(&self) -> String {
        self.etcd.endpoints()
    }

    /// Returns the last `max_bytes` of every server's log, for failure messages.
    pub fn logs(&self, max_bytes: usize) -> String {
        let mut out = String::new();
        for server in &self.servers {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            let start = text.len().saturating_sub(max_bytes);
            let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            out.push_str(&format!("===== {} ({})\n{}\n", server.name, server.log.display(), &text[start..]));
        }
        out
    }

    /// Sends a GET with the admin token to the API server and returns the status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        self.send("GET", path, None)
    }

    /// Sends a request with the admin token to the API server and returns the status and body.
    /// A body goes out as JSON, except for PATCH, where it is a JSON merge patch.
    ///
    /// The request runs on its own thread and runtime, so it works from sync and async tests.
    pub fn send(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.server);
        let token = self.token.clone();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                // The serving certificate is self-signed and the kubeconfig that trusts it is written
                // after the first healthy response, so this client accepts any certificate.
                let client = reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                let content_type = if method == reqwest::Method::PATCH { "application/merge-patch+json" } else { "application/json" };
                let mut request = client.request(method, &url).bearer_auth(&token);
                if let Some(body) = body {
                    request = request.header("content-type", content_type).body(body.to_string());
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = response.text().await.map_err(|e| e.to_string())?;
                Ok((status, body))
            })
        })
        .join()
        .unwrap_or_else(|_| Err("request thread panicked".to_owned()))
    }

    /// Sends a request like [`Self::send`] and returns the response as JSON.
    ///
    /// # Panics
    /// When the request fails or the status is not 2xx; the message shows the response body.
    pub fn json(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let (status, text) = self.send(method, path, body).unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        assert!((200..300).contains(&status), "{method} {path} returned {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path} returned invalid JSON ({e}): {text}"))
    }

    fn sa_key(&self) -> PathBuf {
        self.dir.path().join("service-account.key")
    }

    fn sa_public_key(&self) -> PathBuf {
        self.dir.path().join("service-account.pub")
    }

    fn write_credentials(&self) {
        // An ECDSA P-256 key: the API server (1.20) signs and verifies service account tokens with
        // RSA or ECDSA keys, and rcgen generates ECDSA without a helper process.
        let key = rcgen::KeyPair::generate().expect("generate service account key");
        std::fs::write(self.sa_key(), key.serialize_pem()).unwrap();
        // The API server reads public keys from PKIX "PUBLIC KEY" blocks, not from PKCS#8 keys.
        std::fs::write(self.sa_public_key(), key.public_key_pem()).unwrap();
        let tokens = format!("{},caasctl-admin,caasctl-admin,\"system:masters\"\n", self.token);
        std::fs::write(self.dir.path().join("tokens.csv"), tokens).unwrap();
    }

    fn start_apiserver(&mut self, port: u16) {
        let dir = self.dir.path();
        let args = vec![
            format!("--etcd-servers={}", self.etcd.endpoints()),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            "--insecure-port=0".to_owned(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", self.sa_public_key().display()),
            format!("--service-account-signing-key-file={}", self.sa_key().display()),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            "--authorization-mode=AlwaysAllow".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
        ];
        self.spawn("kube-apiserver", "kube-apiserver", &args);
    }

    fn write_kubeconfig(&self) {
        let cert = self.dir.path().join("apiserver-certs/apiserver.crt");
        let pem = std::fs::read(&cert).unwrap_or_else(|e| panic!("read {}: {e}", cert.display()));
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(pem);
        // JSON is YAML, so serde_json writes a valid kubeconfig.
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "caasctl-test", "cluster": { "server": self.server, "certificate-authority-data": ca } }],
            "users": [{ "name": "caasctl-admin", "user": { "token": self.token } }],
            "contexts": [{ "name": "caasctl-test", "context": { "cluster": "caasctl-test", "user": "caasctl-admin", "namespace": "default" } }],
            "current-context": "caasctl-test",
        });
        std::fs::write(&self.kubeconfig, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }

    fn spawn(&mut self, name: &str, binary: &str, args: &[String]) {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        // kubemark creates its root directory and fake runtime socket under TMPDIR; keeping them in
        // the harness directory removes them with it.
        let tmp = self.dir.path().join("tmp").join(name);
        std::fs::create_dir_all(&tmp).unwrap();
        let path = kube_bin_dir().join(binary);
        let child = Command::new(&path)
            .args(args)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", path.display()));
        self.servers.push(Server { name: name.to_owned(), log, child: Some(child) });
    }

    fn ready_nodes(&self) -> usize {
        let Ok((200, body)) = self.get("/api/v1/nodes") else { return 0 };
        let Ok(list) = serde_json::from_str::<serde_json::Value>(&body) else { return 0 };
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|node| {
                        node["status"]["conditions"]
                            .as_array()
                            .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    fn wait_for(&mut self, what: &str, deadline: Instant, ready: impl Fn(&ControlPlane) -> bool) {
        loop {
            if ready(self) {
                return;
            }
            let exited: Vec<String> = self
                .servers
                .iter_mut()
                .filter_map(|s| match s.child.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(status))) => Some(format!("{} exited with {status}", s.name)),
                    _ => None,
                })
                .collect();
            if !exited.is_empty() || Instant::now() > deadline {
                let logs = self.logs(6000);
                self.stop_all();
                panic!("control plane: waiting for {what} failed ({}); logs:\n{logs}", if exited.is_empty() { "timed out".to_owned() } else { exited.join(", ") });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops every server in reverse start order, then etcd.
    pub fn stop_all(&mut self) {
        for server in self.servers.iter_mut().rev() {
            if let Some(child) = server.child.take() {
                crate::etcd::stop(child);
            }
        }
        self.etcd.stop_all();
    }
}

static SHARED_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static SHARED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Stops the shared control plane's processes at exit: SIGTERM to each, SIGKILL to those still
/// running after five seconds, then removes its directories.
extern "C" fn stop_shared() {
    let pids = std::mem::take(&mut *SHARED_PIDS.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in &pids {
        // SAFETY: signalling a PID this process spawned and has not reaped.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut running = pids;
    while !running.is_empty() && Instant::now() < deadline {
        // SAFETY: waitpid with WNOHANG on our own children only reaps them.
        running.retain(|pid| unsafe { libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) } == 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &running {
        // SAFETY: as above.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    }
    for dir in std::mem::take(&mut *SHARED_DIRS.lock().unwrap_or_else(|e| e.into_inner())) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_all();
    }
}
