//! openshift-ansible 3.11's preconditions for a scale-up, checked before anything changes.
//!
//! The scale-up playbooks stop late, one problem at a time, when these are broken. The first
//! master (`oo_first_master` in `playbooks/init/evaluate_groups.yml`) issues the new hosts'
//! certificates, so `masters` must have a host. `playbooks/openshift-etcd/scaleup.yml` fails when
//! a `new_etcd` host is also in `new_masters` or `new_nodes`. Every node needs
//! `openshift_node_group_name` to pick its node configuration. caasctl checks all rules on the
//! inventory as it would be after the edit and reports every violation at once.

use caasctl_core::{Localize, Message};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Violation {
    /// The inventory has no `[OSEv3:children]` section to add `new_<type>` under.
    NoOsev3Children,
    /// A group the scale-up needs is missing or has no host.
    MissingGroup {
        /// The group, such as `masters`.
        group: String,
    },
    /// A host is already part of the cluster or already waiting in a `new_*` group.
    AlreadyInCluster {
        /// The host.
        host: String,
        /// The group it is in.
        group: String,
    },
    /// A `new_*` group still holds hosts from an earlier scale-up that was not finished.
    PendingScaleUp {
        /// The group.
        group: String,
        /// Its hosts.
        hosts: Vec<String>,
    },
    /// An etcd host being added is also in `new_masters` or `new_nodes`.
    EtcdHostAlsoNew {
        /// The host.
        host: String,
        /// The other `new_*` group.
        group: String,
    },
    /// A node has no `openshift_node_group_name` from its line, its groups or `--var`.
    MissingNodeGroupName {
        /// The host.
        host: String,
    },
    /// The scale-up playbook does not exist under the playbook directory.
    PlaybookMissing {
        /// The expected path.
        path: String,
    },
    /// A `--var` is not `KEY=VALUE` with a variable name as key.
    InvalidVar {
        /// The argument.
        text: String,
    },
    /// A host argument is not a host name.
    InvalidHost {
        /// The argument.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The host to remove is in no group of the inventory.
    HostNotInInventory {
        /// The host.
        host: String,
    },
    /// The host to remove is a master or an etcd member, which `node remove` does not handle.
    ControlPlaneHost {
        /// The host.
        host: String,
        /// The control plane group it is in.
        group: String,
    },
    /// The host to remove comes from a range or a line naming several hosts.
    HostFromRange {
        /// The host.
        host: String,
        /// The group of the section.
        group: String,
        /// Line number, from 1.
        line: usize,
    },
}

impl Localize for Violation {
    fn message(&self) -> Message {
        match self {
            Violation::NoOsev3Children => Message::new("node.rule.no_osev3_children"),
            Violation::MissingGroup { group } => Message::new("node.rule.missing_group").arg("group", group),
            Violation::AlreadyInCluster { host, group } => Message::new("node.rule.already_in_cluster").arg("host", host).arg("group", group),
            Violation::PendingScaleUp { group, hosts } => {
                Message::new("node.rule.pending_scale_up").arg("group", group).arg("hosts", hosts.join(", "))
            }
            Violation::EtcdHostAlsoNew { host, group } => Message::new("node.rule.etcd_host_also_new").arg("host", host).arg("group", group),
            Violation::MissingNodeGroupName { host } => Message::new("node.rule.missing_node_group_name").arg("host", host),
            Violation::PlaybookMissing { path } => Message::new("node.rule.playbook_missing").arg("path", path),
            Violation::InvalidVar { text } => Message::new("node.rule.invalid_var").arg("text", text),
            Violation::InvalidHost { text, reason } => Message::new("node.rule.invalid_host").arg("text", text).arg("reason", reason),
            Violation::HostNotInInventory { host } => Message::new("node.rule.host_not_in_inventory").arg("host", host),
            Violation::ControlPlaneHost { host, group } => Message::new("node.rule.control_plane_host").arg("host", host).arg("group", group),
            Violation::HostFromRange { host, group, line } => {
                Message::new("node.rule.host_from_range").arg("host", host).arg("group", group).arg("line", line)
            }
        }
    }
}

/// Returns true when `key` is a valid Ansible variable name.
pub fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        assert!(is_variable_name("openshift_node_group_name"));
        assert!(is_variable_name("_x1"));
        assert!(!is_variable_name("1x"));
        assert!(!is_variable_name("a-b"));
        assert!(!is_variable_name(""));
    }
}
