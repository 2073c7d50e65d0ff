//! Kubernetes access for caasctl's volume commands: which pods mount which persistent volume
//! claims, and PVC expansion checked, patched and followed until the new capacity is there.
//!
//! Everything goes through the API server with `kube`, using only APIs that Kubernetes 1.20 (the
//! test control plane) serves: core/v1, apps/v1, storage.k8s.io/v1 and the eviction subresource.
//! Dry runs use the API server's own dry run, so admission and validation still run.
//!
//! NOTE: OpenShift 3.11 runs Kubernetes 1.11, whose API server has no server-side dry run. There
//! `--dry-run` fails with the server's error instead of checking the patch (not tested here).

#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod expand;
pub mod list;
pub mod quantity;
pub mod restart;

pub use client::connect;
pub use error::VolumeError;
pub use expand::{ClaimPlan, ClaimStatus, ExpandPlan, ResizeState, Target};
pub use list::{list_volume_mounts, VolumeMount};
