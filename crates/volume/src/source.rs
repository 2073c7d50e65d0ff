//! Finding what to back up: the pod, the container and its PersistentVolumeClaim mount, the
//! bound PersistentVolume and the node, all read from the API server.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::Api;

use crate::error::VolumeBackupError;

/// A pod's claim mount chosen for a backup or restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountTarget {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container.
    pub container: String,
    /// Mount path in the container.
    pub mount_path: String,
    /// Directory to archive or restore into, inside the container: the mount path or below it.
    pub path: String,
    /// Claim name.
    pub pvc: String,
    /// Node the pod is scheduled to.
    pub node: Option<String>,
}

/// Where a PersistentVolume's data lives on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeLocation {
    /// Mounted by the kubelet under `PODS_DIR/UID/volumes/PLUGIN/NAME`.
    PodsDir {
        /// PersistentVolume name.
        volume: String,
    },
    /// A `hostPath` or `local` volume, used in place at this node path.
    HostPath {
        /// PersistentVolume name.
        volume: String,
        /// The path on the node.
        path: String,
    },
}

impl VolumeLocation {
    /// Returns the PersistentVolume name.
    pub fn volume(&self) -> &str {
        match self {
            VolumeLocation::PodsDir { volume } | VolumeLocation::HostPath { volume, .. } => volume,
        }
    }
}

fn api_error(action: String) -> impl FnOnce(kube::Error) -> VolumeBackupError {
    move |source| VolumeBackupError::Kube(caasctl_kube::VolumeError::Api { action, source })
}

/// Lists the names of the pods in `namespace` that match a label selector, in name order.
///
/// # Errors
/// [`VolumeBackupError::NoPodsSelected`] when none matches, or the request fails.
pub async fn select_pods(client: &kube::Client, namespace: &str, selector: &str) -> Result<Vec<String>, VolumeBackupError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await.map_err(api_error(format!("list pods in {namespace} with selector {selector}")))?;
    let mut names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
    names.sort();
    if names.is_empty() {
        return Err(VolumeBackupError::NoPodsSelected { namespace: namespace.to_owned(), selector: selector.to_owned() });
    }
    Ok(names)
}

/// Picks the claim mount of `pod`: the one in `container` (when given) that contains `path`
/// (when given), else the only claim mount of the pod.
///
/// # Errors
/// [`VolumeBackupError::PodNotFound`], [`VolumeBackupError::NoClaimMount`],
/// [`VolumeBackupError::AmbiguousMount`], [`VolumeBackupError::PathOutsideMount`], or the
/// request fails.
pub async fn find_mount(client: &kube::Client, namespace: &str, pod_name: &str, container: Option<&str>, path: Option<&str>) -> Result<MountTarget, VolumeBackupError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods
        .get_opt(pod_name)
        .await
        .map_err(api_error(format!("get pod {namespace}/{pod_name}")))?
        .ok_or_else(|| VolumeBackupError::PodNotFound { namespace: namespace.to_owned(), pod: pod_name.to_owned() })?;
    pick_mount(&pod, container, path)
}

/// Picks the claim mount of a pod object; see [`find_mount`].
///
/// # Errors
/// As [`find_mount`], without the request errors.
pub fn pick_mount(pod: &Pod, container: Option<&str>, path: Option<&str>) -> Result<MountTarget, VolumeBackupError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let claims: Vec<(String, String)> =
        spec.volumes.iter().flatten().filter_map(|v| Some((v.name.clone(), v.persistent_volume_claim.as_ref()?.claim_name.clone()))).collect();

    // (container, mount path, claim) for every claim mount, regular containers first.
    let mut candidates = Vec::new();
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        if container.is_some_and(|wanted| wanted != c.name) {
            continue;
        }
        for mount in c.volume_mounts.iter().flatten() {
            let Some((_, claim)) = claims.iter().find(|(volume, _)| *volume == mount.name) else { continue };
            if mount.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
                // NOTE: a subPath mount shows only part of the volume; it is skipped so that a
                // backup always covers what the mount path shows.
                continue;
            }
            let inside = path.is_none_or(|p| p == mount.mount_path || p.starts_with(&format!("{}/", mount.mount_path.trim_end_matches('/'))));
            if inside {
                candidates.push((c.name.clone(), mount.mount_path.clone(), claim.clone()));
            }
        }
    }
    // Several containers of one pod often mount the same claim at the same path; that is one
    // mount for a backup, read through the first container.
    let mut distinct: Vec<(String, String, String)> = Vec::new();
    for candidate in candidates {
        if !distinct.iter().any(|(_, mount, claim)| *mount == candidate.1 && *claim == candidate.2) {
            distinct.push(candidate);
        }
    }
    let detail = match (container, path) {
        (Some(c), Some(p)) => format!(" in container {c} containing {p}"),
        (Some(c), None) => format!(" in container {c}"),
        (None, Some(p)) => format!(" containing {p}"),
        (None, None) => String::new(),
    };
    match distinct.len() {
        0 => Err(VolumeBackupError::NoClaimMount { namespace, pod: name, detail }),
        1 => {
            let (container, mount_path, pvc) = distinct.remove(0);
            let path = path.map(|p| p.trim_end_matches('/').to_owned()).filter(|p| !p.is_empty()).unwrap_or_else(|| mount_path.clone());
            if path.split('/').any(|part| part == "..") {
                return Err(VolumeBackupError::PathOutsideMount { path, mount_path });
            }
            Ok(MountTarget {
                namespace,
                pod: name,
                pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                container,
                mount_path,
                path,
                pvc,
                node: spec.node_name.clone(),
            })
        }
        _ => Err(VolumeBackupError::AmbiguousMount {
            namespace,
            pod: name,
            mounts: distinct.iter().map(|(c, m, p)| format!("{c}:{m} ({p})")).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Reads where the claim's PersistentVolume keeps its data on the node.
///
/// # Errors
/// [`VolumeBackupError::NotBound`] for a claim without a volume, or a request fails.
pub async fn volume_location(client: &kube::Client, namespace: &str, pvc: &str) -> Result<VolumeLocation, VolumeBackupError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims.get_opt(pvc).await.map_err(api_error(format!("get PersistentVolumeClaim {namespace}/{pvc}")))?;
    let volume = claim
        .and_then(|c| c.spec?.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| VolumeBackupError::NotBound { namespace: namespace.to_owned(), pvc: pvc.to_owned() })?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes.get_opt(&volume).await.map_err(api_error(format!("get PersistentVolume {volume}")))?;
    let spec = pv.and_then(|pv| pv.spec);
    let host_path = spec.as_ref().and_then(|s| s.host_path.as_ref().map(|h| h.path.clone()).or_else(|| s.local.as_ref().map(|l| l.path.clone())));
    Ok(match host_path {
        Some(path) => VolumeLocation::HostPath { volume, path },
        None => VolumeLocation::PodsDir { volume },
    })
}
