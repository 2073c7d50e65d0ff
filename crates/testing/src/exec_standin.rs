//! A stand-in for the Kubernetes exec endpoint, for tests of commands that stream through
//! `pods/exec`. The hollow nodes of [`crate::kube`] run no containers and must never be asked to
//! exec, so this proxy sits in front of the real API server: it serves
//! `GET /api/v1/namespaces/NS/pods/POD/exec` itself and forwards every other request unchanged.
//!
//! What it models:
//! - the WebSocket upgrade with subprotocol `v4.channel.k8s.io`, which Kubernetes 1.20 picks from
//!   kube's offer of v5 and v4;
//! - one-byte channel prefixes (0 stdin, 1 stdout, 2 stderr, 3 status), and an empty message per
//!   open channel at the start;
//! - the API server's pod and container checks, made against the real API server with the
//!   caller's token: 404 for a missing pod, 400 for a wrong or missing container name;
//! - the exit as a `metav1.Status` on channel 3: `Success`, or `Failure` with reason
//!   `NonZeroExitCode` and the exit code as an `ExitCode` cause. The command runs locally with the container's file system replaced by a
//! directory that the test registers: every absolute-path argument (such as tar's `-C /data`)
//! is resolved under that directory, and the command starts there.
//!
//! What it does not model: TTYs and the resize channel (4); protocol v5 and its stdin close
//! (channel 255); the kubelet's streaming server and its timeouts; container images, users,
//! mounts and namespaces (the command runs as this test's user, with this machine's binaries);
//! absolute paths written inside a `sh -c` script (only separate arguments are rewritten);
//! authorization of `pods/exec` (the pod lookup uses the caller's token, nothing more); and
//! SPDY. attach, port-forward, logs and the node proxy are refused with 403, so a test can never
//! reach a hollow node through it. Forwarded requests use one connection each; chunked request
//! bodies are not supported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;

use crate::kube::ControlPlane;

/// The subprotocol the stand-in speaks.
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// One exec request that reached the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Container, after defaulting.
    pub container: String,
    /// The command as requested, before path rewriting.
    pub command: Vec<String>,
    /// Exit code of the command; `None` while it runs or when it could not start.
    pub exit_code: Option<i32>,
}

#[derive(Default)]
struct State {
    upstream: String,
    roots: Mutex<HashMap<String, PathBuf>>,
    execs: Mutex<Vec<ExecRecord>>,
    forwarded: Mutex<usize>,
}

/// A running stand-in; its server thread stops when the guard drops.
pub struct ExecStandIn {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A kubeconfig that points at the stand-in with the control plane's admin token.
    pub kubeconfig: PathBuf,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl ExecStandIn {
    /// Starts the stand-in in front of the control plane's API server.
    pub fn start(plane: &ControlPlane) -> ExecStandIn {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the exec stand-in");
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let state = Arc::new(State { upstream: plane.server.clone(), ..State::default() });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_state = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("stand-in runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().expect("upstream client");
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(serve(stream, thread_state.clone(), client.clone()));
                        }
                    }
                }
            });
        });

        let dir = tempfile::Builder::new().prefix("caasctl-exec-standin-").tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let url = format!("http://127.0.0.1:{port}");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "exec-standin", "cluster": { "server": url } }],
            "users": [{ "name": "caasctl-admin", "user": { "token": plane.token } }],
            "contexts": [{ "name": "exec-standin", "context": { "cluster": "exec-standin", "user": "caasctl-admin", "namespace": "default" } }],
            "current-context": "exec-standin",
        });
        std::fs::write(&kubeconfig, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        ExecStandIn { url, kubeconfig, state, stop: Some(stop), thread: Some(thread), _dir: dir }
    }

    /// Makes `root` the file system of a container: commands exec'd there run under it.
    pub fn set_root(&self, namespace: &str, pod: &str, container: &str, root: &Path) {
        self.state.roots.lock().unwrap().insert(format!("{namespace}/{pod}/{container}"), root.to_owned());
    }

    /// Returns every exec request so far.
    pub fn execs(&self) -> Vec<ExecRecord> {
        self.state.execs.lock().unwrap().clone()
    }

    /// Returns how many requests were forwarded to the API server.
    pub fn forwarded(&self) -> usize {
        *self.state.forwarded.lock().unwrap()
    }
}

impl Drop for ExecStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    length: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Peeks at the request head without consuming it, so that the WebSocket handshake can read
/// the same bytes afterwards.
async fn peek_head(stream: &TcpStream) -> Option<Head> {
    let mut buffer = vec![0u8; 64 * 1024];
    for _ in 0..2000 {
        let n = stream.peek(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buffer[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let mut first = lines.next()?.split_whitespace();
            let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
            let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
            return Some(Head { method, target, headers, length: end + 4 });
        }
        if n == buffer.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn serve(mut stream: TcpStream, state: Arc<State>, client: reqwest::Client) {
    let Some(head) = peek_head(&stream).await else { return };
    let path = head.path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is_pod_sub = parts.len() == 7 && parts[..3] == ["api", "v1", "namespaces"] && parts[4] == "pods";
    if is_pod_sub && parts[6] == "exec" {
        let (namespace, pod) = (parts[3].to_owned(), parts[5].to_owned());
        exec(stream, head, &state, &client, namespace, pod).await;
        return;
    }
    let refused = (is_pod_sub && ["attach", "portforward", "log", "proxy"].contains(&parts[6])) || path.contains("/proxy");
    if refused {
        let _ = discard_head(&mut stream, &head).await;
        let body = status_json(403, "Forbidden", &format!("the exec stand-in refuses {path}: it would reach a hollow node"));
        let _ = respond(&mut stream, 403, "application/json", &body).await;
        return;
    }
    *state.forwarded.lock().unwrap() += 1;
    forward(stream, head, &state, &client).await;
}

async fn discard_head(stream: &mut TcpStream, head: &Head) -> std::io::Result<()> {
    let mut consumed = vec![0u8; head.length];
    stream.read_exact(&mut consumed).await.map(|_| ())
}

fn status_json(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code }).to_string()
}

async fn respond(stream: &mut TcpStream, code: u16, content_type: &str, body: &str) -> std::io::Result<()> {
    let reason = StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("Status");
    let text = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

/// Sends the request to the API server and streams the response back with chunked encoding.
async fn forward(mut stream: TcpStream, head: Head, state: &State, client: &reqwest::Client) {
    if discard_head(&mut stream, &head).await.is_err() {
        return;
    }
    if head.header("transfer-encoding").is_some() {
        let _ = respond(&mut stream, 501, "text/plain", "chunked request bodies are not supported by the exec stand-in").await;
        return;
    }
    let length: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    if stream.read_exact(&mut body).await.is_err() {
        return;
    }

    let Ok(method) = reqwest::Method::from_bytes(head.method.as_bytes()) else { return };
    let mut request = client.request(method, format!("{}{}", state.upstream, head.target));
    const SKIPPED: [&str; 6] = ["host", "connection", "content-length", "keep-alive", "accept-encoding", "upgrade"];
    for (name, value) in &head.headers {
        if !SKIPPED.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let mut response = match request.body(body).send().await {
        Ok(response) => response,
        Err(error) => {
            let _ = respond(&mut stream, 502, "text/plain", &format!("upstream request failed: {error}")).await;
            return;
        }
    };

    let status = response.status();
    let mut text = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("Status"));
    for (name, value) in response.headers() {
        let name = name.as_str();
        if ["transfer-encoding", "connection", "content-length"].contains(&name) {
            continue;
        }
        text.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    text.push_str("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    if stream.write_all(text.as_bytes()).await.is_err() {
        return;
    }

    while let Ok(Some(chunk)) = response.chunk().await {
        if chunk.is_empty() {
            continue;
        }
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let _ = stream.shutdown().await;
}

/// Resolves an absolute-path argument under the container's root directory.
fn rewrite(argument: &str, root: &Path) -> String {
    match argument.strip_prefix('/') {
        Some(rest) => root.join(rest).display().to_string(),
        None => argument.to_owned(),
    }
}

async fn exec(mut stream: TcpStream, head: Head, state: &State, client: &reqwest::Client, namespace: String, pod: String) {
    let query = head.target.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let command: Vec<String> = pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let flag = |name: &str| pairs.iter().any(|(k, v)| k == name && (v == "true" || v == "1"));
    let (want_stdin, want_stdout, want_stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    let requested_container = pairs.iter().find(|(k, _)| k == "container").map(|(_, v)| v.clone()).filter(|c| !c.is_empty());

    // The API server checks the pod and the container before it upgrades the connection.
    let mut lookup = client.get(format!("{}/api/v1/namespaces/{namespace}/pods/{pod}", state.upstream));
    if let Some(auth) = head.header("authorization") {
        lookup = lookup.header("authorization", auth);
    }
    let (code, body) = match lookup.send().await {
        Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
        Err(error) => (502, status_json(502, "BadGateway", &error.to_string())),
    };
    if code != 200 {
        let _ = discard_head(&mut stream, &head).await;
        let _ = respond(&mut stream, code, "application/json", &body).await;
        return;
    }
    let pod_json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let names: Vec<String> = pod_json["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect();
    let container = match requested_container {
        Some(name) if names.contains(&name) => name,
        Some(name) => {
            let _ = discard_head(&mut stream, &head).await;
            let _ = respond(&mut stream, 400, "application/json", &status_json(400, "BadRequest", &format!("container {name} is not valid for pod {pod}"))).await;
            return;
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            let message = format!("a container name must be specified for pod {pod}, choose one of: [{}]", names.join(" "));
            let _ = discard_head(&mut stream, &head).await;
            let _ = respond(&mut stream, 400, "application/json", &status_json(400, "BadRequest", &message)).await;
            return;
        }
    };
    let root = state.roots.lock().unwrap().get(&format!("{namespace}/{pod}/{container}")).cloned();
    let Some(root) = root else {
        let _ = discard_head(&mut stream, &head).await;
        let message = format!("the exec stand-in has no directory for {namespace}/{pod} container {container}; call set_root first");
        let _ = respond(&mut stream, 500, "application/json", &status_json(500, "InternalError", &message)).await;
        return;
    };

    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let offered = request.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !offered.split(',').any(|p| p.trim() == PROTOCOL) {
            let mut refusal = ErrorResponse::new(Some(format!("subprotocol {PROTOCOL} required")));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(PROTOCOL));
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let index = {
        let mut execs = state.execs.lock().unwrap();
        execs.push(ExecRecord { namespace, pod, container, command: command.clone(), exit_code: None });
        execs.len() - 1
    };

    let (mut sink, mut incoming) = socket.split();
    let (out, mut out_queue) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_queue.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    for (channel, open) in [(0u8, want_stdin), (1, want_stdout), (2, want_stderr), (3, true)] {
        if open {
            let _ = out.send(Message::binary(vec![channel]));
        }
    }

    let Some((program, arguments)) = command.split_first() else {
        let _ = out.send(Message::binary([&[3u8][..], status_json(400, "BadRequest", "no command given").as_bytes()].concat()));
        let _ = out.send(Message::Close(None));
        let _ = writer.await;
        return;
    };
    let spawned = tokio::process::Command::new(program)
        .args(arguments.iter().map(|a| rewrite(a, &root)))
        .current_dir(&root)
        .stdin(if want_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let message = format!("failed to start {program}: {error}");
            let _ = out.send(Message::binary([&[3u8][..], status_json(500, "InternalError", &message).as_bytes()].concat()));
            let _ = out.send(Message::Close(None));
            let _ = writer.await;
            return;
        }
    };

    let mut stdin = child.stdin.take();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Binary(data) if data.first() == Some(&0) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&data[1..]).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        // Without v5's close channel, the end of the connection is the end of stdin.
        drop(stdin);
    });
    let pump = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, channel: u8| {
        let out = out.clone();
        tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = vec![0u8; 32 * 1024];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut framed = Vec::with_capacity(n + 1);
                framed.push(channel);
                framed.extend_from_slice(&chunk[..n]);
                if out.send(Message::binary(framed)).is_err() {
                    break;
                }
            }
        })
    };
    let stdout_pump = pump(child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), 1);
    let stderr_pump = pump(child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), 2);
    let _ = stdout_pump.await;
    let _ = stderr_pump.await;
    let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
    state.execs.lock().unwrap()[index].exit_code = Some(code);

    let status = if code == 0 {
        serde_json::json!({ "metadata": {}, "status": "Success" })
    } else {
        serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] }
        })
    };
    let _ = out.send(Message::binary([&[3u8][..], status.to_string().as_bytes()].concat()));
    let _ = out.send(Message::Close(None));
    let _ = writer.await;
    reader.abort();
}
