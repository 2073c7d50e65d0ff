//! Test harness for caasctl: real etcd clusters on free loopback ports, certificates made in the
//! test, and Kubernetes-shaped data.
//!
//! Every server process is started here and stopped by its PID when its guard drops. Where a
//! server binary is missing, [`require`] skips the test, except under `CI=true`, where a missing
//! binary is a failure.

pub mod certs;
pub mod etcd;
pub mod exec_standin;
pub mod fake_ecs;
pub mod fake_openstack;
pub mod fault_proxy;
pub mod kube;
pub mod ports;
pub mod scripted;
pub mod sshd;
pub mod registry;
pub mod s3;
pub mod token_server;

pub use certs::TestPki;
pub use etcd::{EtcdCluster, EtcdVersion};

/// Returns true when the test may run; panics under `CI=true` when it may not.
///
/// `what` names the missing piece, such as a binary path, in the skip or failure message.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{what} is missing; CI=true requires it (run scripts/install-deps.sh)");
    }
    eprintln!("skipping: {what} is missing (run scripts/install-deps.sh)");
    false
}
