//! etcd access for caasctl.
//!
//! This crate finds a cluster's endpoints and TLS files (flags, `etcd.conf` or a static pod
//! manifest), checks the TLS material before any connection, reports per-endpoint health and the
//! member list over the v3 API, streams a snapshot into a local backup repository while hashing it,
//! and re-verifies stored backups.
#![deny(missing_docs)]

pub mod backup;
pub mod blob;
pub mod client;
pub mod config_archive;
pub mod endpoints;
pub mod error;
pub mod fetch;
pub mod health;
pub mod inspect;
pub mod repo;
pub mod retention;
pub mod s3;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod verify;
pub mod v2;
pub mod v2_admin;
pub mod v2_backup;

pub use error::EtcdError;
