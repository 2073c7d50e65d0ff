//! Node lifecycle for caasctl: adding nodes, masters and etcd members through openshift-ansible's
//! scale-up playbooks.
//!
//! [`add`] plans a scale-up on the operator's inventory and makes the two inventory edits around
//! the playbook. [`rules`] lists openshift-ansible's preconditions, all checked before any change.
//! [`playbook`] runs `ansible-playbook` with its output streamed and logged. [`cluster`] waits for
//! the new nodes to be Ready and labels them for fluentd through the Kubernetes API.
//!
//! NOTE: the Kubernetes side is unit-tested against a stand-in of [`cluster::NodeApi`] only; tests
//! against a real API server with hollow nodes are still to be written.
#![deny(missing_docs)]

pub mod add;
pub mod error;
pub mod cluster;
pub mod playbook;
pub mod rules;

pub use add::{AddPlan, AddRequest, NodeType};
pub use error::NodeError;
pub use rules::Violation;
