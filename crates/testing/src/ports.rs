//! Free loopback ports for test servers.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

static NEXT: AtomicU16 = AtomicU16::new(0);

/// Returns a port on 127.0.0.1 that was free when checked.
///
/// Ports are handed out from a per-process range, so parallel tests in one binary never receive
/// the same port; the range start depends on the PID, which keeps test binaries apart.
pub fn free_port() -> u16 {
    let _ = NEXT.compare_exchange(0, 20_000 + (std::process::id() % 400) as u16 * 100, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= 60_000 {
            NEXT.store(20_000, Ordering::SeqCst);
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
