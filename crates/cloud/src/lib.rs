//! VM disk snapshots for caasctl: the runbook's "snapshot the VMs before risky work, roll a disk
//! back when it goes wrong", done through one interface instead of two web consoles.
//!
//! [`provider::SnapshotProvider`] is the interface. [`local`] implements it on qcow2 images
//! through `qemu-img`. [`ops`] creates, lists and deletes snapshots after checking the runbook's
//! preconditions, and [`rollback`] builds and applies a rollback plan that first copies the disk's
//! current state, so that a rollback can itself be undone. Waits on the clouds' asynchronous
//! operations report progress and end at a timeout ([`wait`]).
#![deny(missing_docs)]

pub mod aliyun;
pub mod config;
pub mod error;
pub mod openstack;
pub mod local;
pub mod model;
pub mod ops;
pub mod provider;
pub mod rollback;
pub mod rollback_steps;
pub mod wait;

pub use error::CloudError;
pub use provider::SnapshotProvider;
