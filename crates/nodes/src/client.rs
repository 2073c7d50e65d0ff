//! The Kubernetes client of node removal and migration.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::NodeError;

/// Builds a client for the current context of the kubeconfig at `path`.
///
/// kube's default retry of HTTP 429 is turned off. The eviction API returns 429 while a
/// PodDisruptionBudget blocks, and the drain loop retries it itself so it can report the budget.
///
/// # Errors
/// [`NodeError::KubeConfig`] when the file cannot be read or names no usable cluster.
pub async fn connect(path: &Path) -> Result<kube::Client, NodeError> {
    let config_error = |reason: String| NodeError::KubeConfig { path: path.to_owned(), reason };
    let raw = Kubeconfig::read_from(path).map_err(|e| config_error(e.to_string()))?;
    let mut config = kube::Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await.map_err(|e| config_error(e.to_string()))?;
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))
}
