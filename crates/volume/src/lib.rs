//! Backups of the data on a pod's persistent volume, the runbook's `oc rsync` copy of a
//! monitoring or logging pod's data made verifiable.
//!
//! A backup is one tar stream of the mount, read either through the Kubernetes exec API from
//! `tar` in the container ([`exec`]) or from the volume's directory on the node over SSH
//! ([`node`]). The stream goes to the backup repository as it arrives (encrypted with age when
//! configured), while [`archive`] parses it and records every file with its size and SHA-256 in
//! the [`manifest`]. The stored archive is read back and its hash checked before the manifest is
//! written, so a listed backup is always whole. [`restore`] writes a backup into a directory or a
//! pod after checking that no entry escapes the target.

#![deny(missing_docs)]

pub mod archive;
pub mod backup;
pub mod error;
pub mod exec;
pub mod manifest;
pub mod node;
pub mod restore;
pub mod shell;
pub mod source;
pub mod store;

pub use error::VolumeBackupError;
pub use manifest::{ArchiveFile, FileEntry, VolumeManifest};
