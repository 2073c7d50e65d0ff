//! The Kubernetes API server's `/healthz`, reached with kube's kubeconfig handling.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Calls `/healthz` on the API server of the kubeconfig's current context and returns the body.
///
/// # Errors
/// A text naming what failed: reading the kubeconfig, building the client or the request.
pub async fn healthz(kubeconfig: &Path) -> Result<String, String> {
    let raw = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let request = http::Request::get("/healthz").body(Vec::new()).map_err(|e| e.to_string())?;
    client.request_text(request).await.map_err(|e| e.to_string())
}
