//! Free loopback ports for test servers.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

static NEXT: AtomicU16 = AtomicU16::new(0);

const FIRST: u16 = 20_000;
const LAST: u16 = 32_700;

/// Returns a port on 127.0.0.1 that was free when checked.
///
/// Ports are handed out from a per-process range, so parallel tests in one binary never receive
/// the same port; the range start depends on the PID, which keeps test binaries apart.
pub fn free_port() -> u16 {
    // Ports stay below Linux's default ephemeral range (32768-60999). A port inside it can be
    // taken by any outgoing connection while a test's server is stopped, and the restart fails.
    let _ = NEXT.compare_exchange(0, FIRST + (std::process::id() % 120) as u16 * 100, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= LAST {
            NEXT.store(FIRST, Ordering::SeqCst);
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
