//! Errors of node lifecycle operations, with their catalogue messages.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};
use caasctl_inventory::InventoryError;

use crate::rules::Violation;

/// A node operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Reading or editing the inventory failed.
    #[error(transparent)]
    Inventory(#[from] InventoryError),

    /// The request breaks openshift-ansible's rules; every violation is listed.
    #[error("the scale-up breaks {} rule(s) of openshift-ansible", violations.len())]
    Rules {
        /// Every violation found.
        violations: Vec<Violation>,
    },

    /// `ansible-playbook` could not be started.
    #[error("failed to start {program}")]
    PlaybookSpawn {
        /// Program name or path.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The playbook ended with a non-zero status.
    #[error("playbook {} failed with {status}; output is in {}", playbook.display(), log.display())]
    PlaybookFailed {
        /// Playbook path.
        playbook: PathBuf,
        /// Exit status as text, such as `exit status 2`.
        status: String,
        /// Log file with the whole output.
        log: PathBuf,
    },

    /// The playbook log could not be written.
    #[error("failed to write the playbook log {}", path.display())]
    Log {
        /// Log file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The kubeconfig could not be loaded or the client not built.
    #[error("failed to load kubeconfig {}: {reason}", path.display())]
    KubeConfig {
        /// Kubeconfig path.
        path: PathBuf,
        /// Loader's reason.
        reason: String,
    },

    /// A Kubernetes API request failed.
    #[error("failed to {action} through the Kubernetes API")]
    Kube {
        /// What was being done, such as `label node node1`.
        action: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },

    /// New nodes did not become Ready in time.
    #[error("nodes not Ready after {seconds} s: {}", nodes.join(", "))]
    NotReady {
        /// Nodes still missing or not Ready.
        nodes: Vec<String>,
        /// The timeout in seconds.
        seconds: u64,
    },
}

impl Localize for NodeError {
    fn message(&self) -> Message {
        match self {
            NodeError::Inventory(inner) => inner.message(),
            NodeError::Rules { violations } => Message::new("node.error.rules").arg("count", violations.len()),
            NodeError::PlaybookSpawn { program, source } => Message::new("node.error.playbook_spawn").arg("program", program).arg("reason", source),
            NodeError::PlaybookFailed { playbook, status, log } => Message::new("node.error.playbook_failed")
                .arg("playbook", playbook.display())
                .arg("status", status)
                .arg("log", log.display()),
            NodeError::Log { path, source } => Message::new("node.error.log").arg("path", path.display()).arg("reason", source),
            NodeError::KubeConfig { path, reason } => Message::new("node.error.kubeconfig").arg("path", path.display()).arg("reason", reason),
            NodeError::Kube { action, source } => Message::new("node.error.kube").arg("action", action).arg("reason", source),
            NodeError::NotReady { nodes, seconds } => Message::new("node.error.not_ready").arg("nodes", nodes.join(", ")).arg("seconds", seconds),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            NodeError::Inventory(inner) => inner.hint(),
            NodeError::Rules { .. } => Some(Message::new("node.hint.rules")),
            NodeError::PlaybookSpawn { .. } => Some(Message::new("node.hint.install_ansible")),
            NodeError::PlaybookFailed { .. } => Some(Message::new("node.hint.playbook_failed")),
            NodeError::NotReady { .. } => Some(Message::new("node.hint.not_ready")),
            _ => None,
        }
    }
}
