//! Restoring etcd members and whole clusters from a snapshot, the way an operator does it by hand,
//! with the checks a hurried operator skips.
//!
//! A restore is built as a [`plan::Plan`]: ordered steps, each naming its host, what it does, how
//! its success is checked and how a person undoes it. [`apply::apply`] runs the steps through an
//! [`exec::Executor`] (this host or a host over OpenSSH) and writes each step to a
//! [`journal::Journal`] before and after it runs, so an interrupted restore can be resumed at the
//! first unfinished step. The data itself is written by etcd's own tool (`etcdutl snapshot
//! restore` of 3.5, or `etcdctl snapshot restore` of 3.4), after [`check`] has read the snapshot
//! and its hashes.
#![deny(missing_docs)]

pub mod actions;
pub mod apply;
pub mod check;
pub mod cluster;
pub mod conf;
pub mod describe;
pub mod drill;
pub mod engine;
pub mod error;
pub mod exec;
pub mod journal;
pub mod member_config;
pub mod plan;
pub mod pod;
pub mod procedure;
pub mod ssh;
pub mod v2;
pub mod verify;

pub use error::RestoreError;

/// Flattens an error and its sources into one line for the journal.
pub use caasctl_core::error::chain_text as error_chain;
