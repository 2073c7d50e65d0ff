//! The Node object: cordon, look up and delete.

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;

use crate::error::NodeError;

/// Returns the node, or `None` when it does not exist.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn get_node(client: &kube::Client, name: &str) -> Result<Option<Node>, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get_opt(name).await.map_err(|source| NodeError::Kube { action: format!("get node {name}"), source })
}

/// Marks the node unschedulable, as `oc adm manage-node --schedulable=false` does.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn cordon(client: &kube::Client, name: &str) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "spec": { "unschedulable": true } });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError::Kube { action: format!("cordon node {name}"), source })?;
    tracing::info!(node = name, "node cordoned");
    Ok(())
}

/// Deletes the node object and returns false when it was already gone.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn delete_node(client: &kube::Client, name: &str) -> Result<bool, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(node = name, "node deleted");
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(NodeError::Kube { action: format!("delete node {name}"), source }),
    }
}
