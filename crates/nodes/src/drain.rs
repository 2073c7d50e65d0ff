//! Draining a node the way `kubectl drain` does, through the eviction API.
//!
//! [`plan_drain`] sorts the node's pods before anything changes. DaemonSet pods and mirror pods
//! are skipped, because their controller or the kubelet would start them again on the same node.
//! Pods without a controller or with `emptyDir` data are rejected unless forced, because their
//! data or the pod itself is lost for good. Pods that already finished are deleted like any other
//! pod and are not waited for.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;

use crate::error::NodeError;

/// Annotation the kubelet puts on the API copy of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The controller that owns a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Kind, such as `ReplicaSet`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// UID, which differs for a recreated controller of the same name.
    pub uid: String,
}

/// The drain's decision about a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodAction {
    /// Evicted through the eviction API.
    Evict,
    /// Left alone: its DaemonSet runs it on every node.
    SkipDaemonSet,
    /// Left alone: a mirror of a static pod, which only the kubelet's manifest controls.
    SkipMirror,
    /// Rejected: evicting it loses data or the pod itself; `--force` evicts it anyway.
    NeedsForce,
}

/// One pod on the node and the drain's decision about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID when the plan was made.
    pub uid: String,
    /// Controlling owner, if any.
    pub owner: Option<Owner>,
    /// Decision.
    pub action: PodAction,
    /// Names of the pod's `emptyDir` volumes, whose data is lost on eviction.
    pub empty_dir: Vec<String>,
    /// True when no controller would recreate the pod.
    pub unmanaged: bool,
    /// True when the pod has already succeeded or failed.
    pub finished: bool,
    /// Pod labels, for finding its PodDisruptionBudget.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

impl PlannedPod {
    /// Returns `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Returns true when the drain must wait for a replacement of this pod elsewhere.
    pub fn needs_replacement(&self) -> bool {
        !self.finished && self.owner.as_ref().is_some_and(|owner| REPLACING_KINDS.contains(&owner.kind.as_str()))
    }
}

/// Controllers that start a new pod for an evicted one. Job pods run to completion, so a
/// replacement is not something to wait for.
const REPLACING_KINDS: [&str; 3] = ["ReplicaSet", "ReplicationController", "StatefulSet"];

/// The pods of one node and what happens to each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DrainPlan {
    /// Node name.
    pub node: String,
    /// Every pod bound to the node, sorted by namespace and name.
    pub pods: Vec<PlannedPod>,
    /// Whether `--force` was given.
    pub force: bool,
}

impl DrainPlan {
    /// Returns the pods to evict.
    pub fn to_evict(&self) -> impl Iterator<Item = &PlannedPod> {
        self.pods.iter().filter(|p| p.action == PodAction::Evict)
    }

    /// Returns the pods that stop the drain unless forced.
    pub fn needs_force(&self) -> impl Iterator<Item = &PlannedPod> {
        self.pods.iter().filter(|p| p.action == PodAction::NeedsForce)
    }
}

/// Returns the controlling owner of `pod`.
pub fn owner_of(pod: &Pod) -> Option<Owner> {
    pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| Owner {
        kind: o.kind.clone(),
        name: o.name.clone(),
        uid: o.uid.clone(),
    })
}

/// Decides what the drain does with one pod.
pub fn classify(pod: &Pod, force: bool) -> PlannedPod {
    let owner = owner_of(pod);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    let finished = phase == "Succeeded" || phase == "Failed";
    let mirror = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    let empty_dir: Vec<String> =
        pod.spec.iter().flat_map(|spec| spec.volumes.iter().flatten()).filter(|v| v.empty_dir.is_some()).map(|v| v.name.clone()).collect();
    let unmanaged = owner.is_none();

    let action = if mirror {
        PodAction::SkipMirror
    } else if owner.as_ref().is_some_and(|o| o.kind == "DaemonSet") {
        PodAction::SkipDaemonSet
    } else if !finished && !force && (unmanaged || !empty_dir.is_empty()) {
        PodAction::NeedsForce
    } else {
        PodAction::Evict
    };
    PlannedPod {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        owner,
        action,
        empty_dir,
        unmanaged,
        finished,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    }
}

/// Lists the pods bound to `node`.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn node_pods(client: &kube::Client, node: &str) -> Result<Vec<Pod>, NodeError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|source| NodeError::Kube { action: format!("list pods on node {node}"), source })?;
    Ok(list.items)
}

/// Lists the pods of `node` and decides what happens to each.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn plan_drain(client: &kube::Client, node: &str, force: bool) -> Result<DrainPlan, NodeError> {
    let mut pods: Vec<PlannedPod> = node_pods(client, node).await?.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| classify(p, force)).collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(DrainPlan { node: node.to_owned(), pods, force })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("valid pod")
    }

    fn owned(kind: &str) -> serde_json::Value {
        serde_json::json!([{ "apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "u1", "controller": true }])
    }

    #[test]
    fn classify_skips_daemonset_and_mirror() {
        let daemon = pod(serde_json::json!({ "metadata": { "name": "fluentd", "namespace": "logging", "ownerReferences": owned("DaemonSet") } }));
        assert_eq!(classify(&daemon, false).action, PodAction::SkipDaemonSet);

        let mirror = pod(serde_json::json!({ "metadata": { "name": "etcd-m1", "namespace": "kube-system", "annotations": { MIRROR_ANNOTATION: "abc" } } }));
        assert_eq!(classify(&mirror, true).action, PodAction::SkipMirror, "force never evicts a mirror pod");
    }

    #[test]
    fn classify_rejects_bare_and_empty_dir_without_force() {
        let bare = pod(serde_json::json!({ "metadata": { "name": "bare", "namespace": "ns" } }));
        let planned = classify(&bare, false);
        assert_eq!(planned.action, PodAction::NeedsForce);
        assert!(planned.unmanaged);
        assert_eq!(classify(&bare, true).action, PodAction::Evict);

        let scratch = pod(serde_json::json!({
            "metadata": { "name": "cache", "namespace": "ns", "ownerReferences": owned("ReplicaSet") },
            "spec": { "containers": [], "volumes": [{ "name": "scratch", "emptyDir": {} }, { "name": "cfg", "configMap": { "name": "c" } }] }
        }));
        let planned = classify(&scratch, false);
        assert_eq!(planned.action, PodAction::NeedsForce);
        assert_eq!(planned.empty_dir, ["scratch"]);
        assert!(planned.needs_replacement());
    }

    #[test]
    fn classify_evicts_finished_bare_pod() {
        let done = pod(serde_json::json!({ "metadata": { "name": "job-x", "namespace": "ns" }, "status": { "phase": "Succeeded" } }));
        let planned = classify(&done, false);
        assert_eq!(planned.action, PodAction::Evict);
        assert!(!planned.needs_replacement());
    }
}
