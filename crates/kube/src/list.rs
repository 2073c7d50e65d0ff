//! Pods with their persistent volume mounts: the `oc describe pod` reading of the runbook's data
//! backup step, joined with each claim's storage class, capacity and whether it can grow.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ListParams;
use kube::Api;
use tracing::{info, info_span, Instrument};

use crate::error::{api, VolumeError};

/// One container mount of a persistent volume claim.
///
/// JSON: `{namespace, pod, container, mount_path, read_only, pvc, storage_class, capacity,
/// expandable, phase, node}`; `storage_class`, `capacity` and `node` are `null` when unknown, and
/// `expandable` is `null` when the class is unknown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VolumeMount {
    /// Namespace of the pod and claim.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name (init containers included).
    pub container: String,
    /// Mount path inside the container.
    pub mount_path: String,
    /// Whether the container mounts it read-only.
    pub read_only: bool,
    /// Claim name.
    pub pvc: String,
    /// The claim's storage class.
    pub storage_class: Option<String>,
    /// `status.capacity.storage` of the claim, as the API server writes it (such as `10Gi`).
    pub capacity: Option<String>,
    /// Whether the class sets `allowVolumeExpansion: true`.
    pub expandable: Option<bool>,
    /// The claim's phase (`Bound`, `Pending`, `Lost`), or `Missing` when the claim does not exist.
    pub phase: String,
    /// Node the pod runs on.
    pub node: Option<String>,
}

/// Lists every container mount of a PVC in `namespace`, or in all namespaces when `None`,
/// ordered by namespace, pod and container.
///
/// # Errors
/// [`VolumeError::Api`] when listing pods, claims or storage classes fails.
pub async fn list_volume_mounts(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<VolumeMount>, VolumeError> {
    let span = info_span!("volume.list", namespace = namespace.unwrap_or("*"));
    async move {
        let (pods, claims): (Api<Pod>, Api<PersistentVolumeClaim>) = match namespace {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let classes: Api<StorageClass> = Api::all(client.clone());
        let pods = pods.list(&ListParams::default()).await.map_err(api("list pods"))?;
        let claims = claims.list(&ListParams::default()).await.map_err(api("list PersistentVolumeClaims"))?;
        let classes = classes.list(&ListParams::default()).await.map_err(api("list StorageClasses"))?;

        let expandable: BTreeMap<String, bool> =
            classes.items.iter().filter_map(|c| Some((c.metadata.name.clone()?, c.allow_volume_expansion.unwrap_or(false)))).collect();
        let claims: BTreeMap<(String, String), &PersistentVolumeClaim> = claims
            .items
            .iter()
            .filter_map(|c| Some(((c.metadata.namespace.clone()?, c.metadata.name.clone()?), c)))
            .collect();

        let mut rows = Vec::new();
        for pod in &pods.items {
            rows.extend(pod_mounts(pod, &claims, &expandable));
        }
        rows.sort_by(|a, b| (&a.namespace, &a.pod, &a.container, &a.mount_path).cmp(&(&b.namespace, &b.pod, &b.container, &b.mount_path)));
        info!(pods = pods.items.len(), mounts = rows.len(), "listed persistent volume mounts");
        Ok(rows)
    }
    .instrument(span)
    .await
}

fn pod_mounts(pod: &Pod, claims: &BTreeMap<(String, String), &PersistentVolumeClaim>, expandable: &BTreeMap<String, bool>) -> Vec<VolumeMount> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &pod.spec else { return Vec::new() };
    // Volume name -> claim name, for the pod's PVC volumes only.
    let pvc_volumes: BTreeMap<&str, &str> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_str(), v.persistent_volume_claim.as_ref()?.claim_name.as_str())))
        .collect();
    let containers = spec.init_containers.iter().flatten().chain(spec.containers.iter());
    let mut rows = Vec::new();
    for container in containers {
        for mount in container.volume_mounts.iter().flatten() {
            let Some(claim_name) = pvc_volumes.get(mount.name.as_str()) else { continue };
            let claim = claims.get(&(namespace.clone(), (*claim_name).to_owned()));
            let storage_class = claim.and_then(|c| c.spec.as_ref()?.storage_class_name.clone());
            rows.push(VolumeMount {
                namespace: namespace.clone(),
                pod: name.clone(),
                container: container.name.clone(),
                mount_path: mount.mount_path.clone(),
                read_only: mount.read_only.unwrap_or(false),
                pvc: (*claim_name).to_owned(),
                capacity: claim.and_then(|c| Some(c.status.as_ref()?.capacity.as_ref()?.get("storage")?.0.clone())),
                expandable: storage_class.as_ref().and_then(|class| expandable.get(class).copied()),
                storage_class,
                phase: claim.map(|c| c.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".to_owned())).unwrap_or_else(|| "Missing".to_owned()),
                node: spec.node_name.clone(),
            });
        }
    }
    rows
}
