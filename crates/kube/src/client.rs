//! Connecting to the API server: an explicit kubeconfig file, or kube's inference
//! (`$KUBECONFIG`, `~/.kube/config`, then the in-cluster service account).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::VolumeError;

/// Builds a client for the kubeconfig's current context, or the inferred configuration when
/// `kubeconfig` is `None`.
///
/// # Errors
/// [`VolumeError::KubeConfig`] when the configuration cannot be read or used.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, VolumeError> {
    let config_error = |reason: String| VolumeError::KubeConfig { path: kubeconfig.map(Path::to_owned), reason };
    let config = match kubeconfig {
        Some(path) => {
            let raw = Kubeconfig::read_from(path).map_err(|e| config_error(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await.map_err(|e| config_error(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| config_error(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))
}
