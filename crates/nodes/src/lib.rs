//! Node lifecycle for caasctl: adding nodes, masters and etcd members through openshift-ansible's
//! scale-up playbooks, and draining, deleting and uninstalling nodes.
//!
//! [`add`] plans a scale-up on the operator's inventory and makes the two inventory edits around
//! the playbook. [`rules`] lists openshift-ansible's preconditions, all checked before any change.
//! [`playbook`] runs `ansible-playbook` with its output streamed and logged. [`cluster`] waits for
//! the new nodes to be Ready and labels them for fluentd through the Kubernetes API.
//!
//! Removal: [`drain`] sorts a node's pods, [`evict`] evicts them through the eviction API and
//! waits for their replacements, [`node_object`] cordons and deletes the node, and [`remove`]
//! makes the inventory edits and the uninstall inventory. [`migrate`] splits a migration into
//! batches.
#![deny(missing_docs)]

pub mod add;
pub mod budget;
pub mod client;
pub mod cluster;
pub mod drain;
pub mod error;
pub mod evict;
pub mod migrate;
pub mod node_object;
pub mod playbook;
pub mod remove;
pub mod rules;

pub use add::{AddPlan, AddRequest, NodeType};
pub use error::NodeError;
pub use rules::Violation;
