//! An HTTP proxy for tests that sits in front of a real server and injects faults. It responds to
//! chosen requests itself with a status such as `429 Too Many Requests` (with `Retry-After`)
//! instead of forwarding them, and forwards everything else unchanged.
//!
//! It adds `Connection: close` to every forwarded request, so each connection carries one
//! request and every request is inspected; otherwise a client reusing a pooled connection would
//! slip later requests past the inspection. It does not model pipelining or `Expect: 100-continue`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ports::free_port;

/// A fault rule: the requests it matches and the response sent in their place.
#[derive(Debug, Clone)]
pub struct Fault {
    /// HTTP method to match, such as `GET`.
    pub method: String,
    /// Substring of the request path to match, such as `/blobs/`.
    pub path_contains: String,
    /// How many matching requests get the fault; later ones are forwarded.
    pub times: usize,
    /// Status line of the response, such as `429 Too Many Requests`.
    pub status: String,
    /// `Retry-After` header value, when set.
    pub retry_after: Option<String>,
}

/// A running proxy; its threads stop accepting when the guard drops.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub host: String,
    /// Faults injected so far.
    pub injected: Arc<AtomicUsize>,
    /// Requests forwarded so far.
    pub forwarded: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let injected = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (thread_injected, thread_forwarded, thread_stop) = (injected.clone(), forwarded.clone(), stop.clone());
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let (upstream, fault, injected, forwarded) = (upstream.clone(), fault.clone(), thread_injected.clone(), thread_forwarded.clone());
                        std::thread::spawn(move || handle(client, &upstream, &fault, &injected, &forwarded));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { host: format!("127.0.0.1:{port}"), injected, forwarded, stop }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(mut client: TcpStream, upstream: &str, fault: &Fault, injected: &AtomicUsize, forwarded: &AtomicUsize) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break position + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == fault.method && path.contains(&fault.path_contains) {
        let count = injected.fetch_add(1, Ordering::SeqCst);
        if count < fault.times {
            let retry_after = fault.retry_after.as_ref().map(|v| format!("Retry-After: {v}\r\n")).unwrap_or_default();
            let _ = write!(client, "HTTP/1.1 {}\r\n{retry_after}Content-Length: 0\r\nConnection: close\r\n\r\n", fault.status);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        injected.fetch_sub(1, Ordering::SeqCst);
    }
    forwarded.fetch_add(1, Ordering::SeqCst);
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let mut rewritten = format!("{request_line}\r\nConnection: close\r\n");
    for line in lines.filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:")) {
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("\r\n");
    if server.write_all(rewritten.as_bytes()).is_err() || server.write_all(&buffer[head_end..]).is_err() {
        return;
    }
    let (mut client_read, mut server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upload.join();
}
