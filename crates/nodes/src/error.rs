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
    #[error("the request breaks {} rule(s) of openshift-ansible or caasctl", violations.len())]
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

    /// Pods on the node would lose data or never come back, and `--force` was not given.
    #[error("{} pod(s) on node {node} have no controller or use emptyDir data: {}", pods.len(), pods.join(", "))]
    NeedsForce {
        /// The node.
        node: String,
        /// The pods, as `namespace/name`.
        pods: Vec<String>,
    },

    /// The node to remove is not in the cluster and `--unreachable` was not given.
    #[error("node {node} not found in the cluster")]
    NodeNotFound {
        /// The node.
        node: String,
    },

    /// Evictions stayed blocked until the timeout.
    #[error("timed out evicting {}", pods.join(", "))]
    EvictionTimeout {
        /// Pods still on the node, each with the budgets that blocked it.
        pods: Vec<String>,
    },

    /// Evicted pods were not deleted before the timeout.
    #[error("timed out waiting for evicted pods to be deleted: {}", pods.join(", "))]
    DeletionTimeout {
        /// Pods still present, as `namespace/name`.
        pods: Vec<String>,
    },

    /// Controllers did not run their pods Ready on other nodes before the timeout.
    #[error("timed out waiting for replacement pods to be Ready on other nodes: {}", controllers.join(", "))]
    ReplacementTimeout {
        /// Controllers with their Ready and expected pod counts.
        controllers: Vec<String>,
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
            NodeError::NeedsForce { node, pods } => Message::new("node.error.needs_force").arg("node", node).arg("count", pods.len()).arg("pods", pods.join(", ")),
            NodeError::NodeNotFound { node } => Message::new("node.error.node_not_found").arg("node", node),
            NodeError::EvictionTimeout { pods } => Message::new("node.error.eviction_timeout").arg("pods", pods.join(", ")),
            NodeError::DeletionTimeout { pods } => Message::new("node.error.deletion_timeout").arg("pods", pods.join(", ")),
            NodeError::ReplacementTimeout { controllers } => Message::new("node.error.replacement_timeout").arg("controllers", controllers.join(", ")),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            NodeError::Inventory(inner) => inner.hint(),
            NodeError::Rules { .. } => Some(Message::new("node.hint.rules")),
            NodeError::PlaybookSpawn { .. } => Some(Message::new("node.hint.install_ansible")),
            NodeError::PlaybookFailed { .. } => Some(Message::new("node.hint.playbook_failed")),
            NodeError::NotReady { .. } => Some(Message::new("node.hint.not_ready")),
            NodeError::NeedsForce { .. } => Some(Message::new("node.hint.needs_force")),
            NodeError::NodeNotFound { .. } => Some(Message::new("node.hint.node_not_found")),
            NodeError::EvictionTimeout { .. } => Some(Message::new("node.hint.eviction_timeout")),
            NodeError::DeletionTimeout { .. } => Some(Message::new("node.hint.deletion_timeout")),
            NodeError::ReplacementTimeout { .. } => Some(Message::new("node.hint.replacement_timeout")),
            _ => None,
        }
    }
}
