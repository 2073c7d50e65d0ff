//! PVC expansion: the runbook's "edit `spec.resources.requests` and watch `oc describe pvc`"
//! as a checked plan, a patch, and a follow of the claim until its capacity reaches the new size.
//!
//! Expansion runs in two stages that other components perform. The resizer (an in-tree
//! controller or a CSI external-resizer) grows the volume in the storage backend and sets the
//! claim's `Resizing` condition, then `FileSystemResizePending`. The kubelet grows the file system
//! when a pod using the claim starts on its node, then writes `status.capacity` and drops the
//! condition. [`plan`] checks what the API server's admission would reject anyway (bound claim, a
//! class with `allowVolumeExpansion`, a larger size), so that nothing is patched for a set of
//! claims when one of them cannot grow.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::Api;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::{api, VolumeError};
use crate::quantity::parse_bytes;

/// The claims to expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One claim by name.
    Claim(String),
    /// Every claim of a StatefulSet, optionally only those of one claim template.
    StatefulSet {
        /// Set name.
        name: String,
        /// Claim template name (`volumeClaimTemplates[].metadata.name`).
        template: Option<String>,
    },
}

/// One claim to expand, as checked by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClaimPlan {
    /// Namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Storage class, which allows expansion.
    pub storage_class: String,
    /// Bound PersistentVolume.
    pub volume: Option<String>,
    /// Current `spec.resources.requests.storage`.
    pub current_request: String,
    /// Current `status.capacity.storage`.
    pub current_capacity: Option<String>,
    /// Size to request.
    pub new_size: String,
    /// True when the claim already requests `new_size` and only the follow remains.
    pub already_requested: bool,
    /// Pods that mount the claim, in name order; one of them must start to grow the file system.
    pub pods: Vec<String>,
}

/// The checked plan of an expansion. JSON: `{namespace, size, statefulset, claims: [ClaimPlan]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpandPlan {
    /// Namespace of every claim.
    pub namespace: String,
    /// Requested size, as given.
    pub size: String,
    /// The StatefulSet whose claims are expanded, if any.
    pub statefulset: Option<String>,
    /// Claims in order (StatefulSet claims by ordinal).
    pub claims: Vec<ClaimPlan>,
}

/// Progress of a claim's expansion, read from its conditions and capacity. Variants are ordered
/// by progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeState {
    /// The new size is requested and no resizer has acted on it yet.
    Requested,
    /// The resizer is growing the volume in the storage backend (condition `Resizing`).
    Resizing,
    /// The volume grew and the file system grows when a pod using the claim starts
    /// (condition `FileSystemResizePending`).
    FileSystemResizePending,
    /// `status.capacity` reached the new size.
    Done,
}

impl std::fmt::Display for ResizeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResizeState::Requested => "Requested",
            ResizeState::Resizing => "Resizing",
            ResizeState::FileSystemResizePending => "FileSystemResizePending",
            ResizeState::Done => "Done",
        })
    }
}

/// A claim's observed expansion status. JSON: `{namespace, name, state, capacity, message}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClaimStatus {
    /// Namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Progress of the expansion.
    pub state: ResizeState,
    /// Current `status.capacity.storage`.
    pub capacity: Option<String>,
    /// Message of the active resize condition, when the resizer wrote one.
    pub message: Option<String>,
}

impl std::fmt::Display for ClaimStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (capacity {})", self.state, self.capacity.as_deref().unwrap_or("-"))?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Reads the expansion status of `pvc` towards `target_bytes`.
pub fn claim_status(pvc: &PersistentVolumeClaim, target_bytes: u128) -> ClaimStatus {
    let status = pvc.status.as_ref();
    let capacity = status.and_then(|s| Some(s.capacity.as_ref()?.get("storage")?.0.clone()));
    let active = |kind: &str| status.and_then(|s| s.conditions.as_ref()?.iter().find(|c| c.type_ == kind && c.status == "True"));
    let grown = capacity.as_deref().and_then(|c| parse_bytes(c).ok()).is_some_and(|bytes| bytes >= target_bytes);
    let (state, message) = if grown {
        (ResizeState::Done, None)
    } else if let Some(condition) = active("FileSystemResizePending") {
        (ResizeState::FileSystemResizePending, condition.message.clone())
    } else if let Some(condition) = active("Resizing") {
        (ResizeState::Resizing, condition.message.clone())
    } else {
        (ResizeState::Requested, None)
    };
    ClaimStatus { namespace: pvc.metadata.namespace.clone().unwrap_or_default(), name: pvc.metadata.name.clone().unwrap_or_default(), state, capacity, message }
}

fn storage_request(pvc: &PersistentVolumeClaim) -> Option<String> {
    Some(pvc.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")?.0.clone())
}

/// Checks every claim of `target` in `namespace` and returns the plan; writes nothing.
///
/// # Errors
/// [`VolumeError::InvalidSize`] for a bad `size`; for any claim: [`VolumeError::PvcNotFound`],
/// [`VolumeError::NotBound`], [`VolumeError::NoStorageClass`],
/// [`VolumeError::StorageClassNotFound`], [`VolumeError::ExpansionNotAllowed`] or
/// [`VolumeError::NotGrowing`]; [`VolumeError::StatefulSetNotFound`] or
/// [`VolumeError::NoClaims`] for a set; [`VolumeError::Api`] when a request fails.
pub async fn plan(client: &kube::Client, namespace: &str, target: &Target, size: &str) -> Result<ExpandPlan, VolumeError> {
    let span = info_span!("volume.expand.plan", namespace, size);
    async move {
        let target_bytes = parse_bytes(size)?;
        let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let (names, statefulset) = match target {
            Target::Claim(name) => (vec![name.clone()], None),
            Target::StatefulSet { name, template } => (statefulset_claims(client, namespace, name, template.as_deref()).await?, Some(name.clone())),
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pods = pods.list(&ListParams::default()).await.map_err(api(format!("list pods in {namespace}")))?;
        let classes: Api<StorageClass> = Api::all(client.clone());

        let mut claims = Vec::new();
        for name in names {
            let pvc = claims_api
                .get_opt(&name)
                .await
                .map_err(api(format!("get PersistentVolumeClaim {namespace}/{name}")))?
                .ok_or_else(|| VolumeError::PvcNotFound { namespace: namespace.to_owned(), name: name.clone() })?;
            let phase = pvc.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".to_owned());
            if phase != "Bound" {
                return Err(VolumeError::NotBound { namespace: namespace.to_owned(), name, phase });
            }
            let spec = pvc.spec.as_ref();
            let class = spec
                .and_then(|s| s.storage_class_name.clone())
                .filter(|c| !c.is_empty())
                .ok_or_else(|| VolumeError::NoStorageClass { namespace: namespace.to_owned(), name: name.clone() })?;
            let storage_class = classes
                .get_opt(&class)
                .await
                .map_err(api(format!("get StorageClass {class}")))?
                .ok_or_else(|| VolumeError::StorageClassNotFound { class: class.clone() })?;
            if storage_class.allow_volume_expansion != Some(true) {
                return Err(VolumeError::ExpansionNotAllowed { namespace: namespace.to_owned(), name, class });
            }
            let current_request = storage_request(&pvc).unwrap_or_else(|| "0".to_owned());
            let request_bytes = parse_bytes(&current_request)?;
            let status = claim_status(&pvc, target_bytes);
            // The same size again is a resume of an expansion that has not finished yet.
            let already_requested = request_bytes == target_bytes && status.state != ResizeState::Done;
            if target_bytes <= request_bytes && !already_requested {
                return Err(VolumeError::NotGrowing { namespace: namespace.to_owned(), name, current: current_request, requested: size.to_owned() });
            }
            let mut users: Vec<String> = pods.items.iter().filter(|p| mounts_claim(p, &name)).filter_map(|p| p.metadata.name.clone()).collect();
            users.sort();
            claims.push(ClaimPlan {
                namespace: namespace.to_owned(),
                storage_class: class,
                volume: spec.and_then(|s| s.volume_name.clone()),
                current_request,
                current_capacity: status.capacity,
                new_size: size.to_owned(),
                already_requested,
                pods: users,
                name,
            });
        }
        info!(claims = claims.len(), "expansion plan ready");
        Ok(ExpandPlan { namespace: namespace.to_owned(), size: size.to_owned(), statefulset, claims })
    }
    .instrument(span)
    .await
}

/// Returns true when `pod` mounts the claim `claim` through one of its volumes.
pub fn mounts_claim(pod: &Pod, claim: &str) -> bool {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()).any(|v| v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name == claim))
}

/// Lists the pods of `namespace` that mount the claim `claim`, in name order.
///
/// # Errors
/// [`VolumeError::Api`] when listing pods fails.
pub async fn pods_using(client: &kube::Client, namespace: &str, claim: &str) -> Result<Vec<String>, VolumeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods.list(&ListParams::default()).await.map_err(api(format!("list pods in {namespace}")))?;
    let mut names: Vec<String> = pods.items.iter().filter(|p| mounts_claim(p, claim)).filter_map(|p| p.metadata.name.clone()).collect();
    names.sort();
    Ok(names)
}

/// Returns the claims of a StatefulSet that exist, by template then ordinal: a set's claim is
/// named `TEMPLATE-SET-ORDINAL`.
async fn statefulset_claims(client: &kube::Client, namespace: &str, name: &str, template: Option<&str>) -> Result<Vec<String>, VolumeError> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let set = sets
        .get_opt(name)
        .await
        .map_err(api(format!("get StatefulSet {namespace}/{name}")))?
        .ok_or_else(|| VolumeError::StatefulSetNotFound { namespace: namespace.to_owned(), name: name.to_owned() })?;
    let templates: Vec<String> = set
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .filter_map(|t| t.metadata.name.clone())
        .filter(|t| template.is_none_or(|wanted| wanted == t))
        .collect();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let existing = claims.list_metadata(&ListParams::default()).await.map_err(api(format!("list PersistentVolumeClaims in {namespace}")))?;
    let mut found: Vec<(String, u32, String)> = Vec::new();
    for claim in existing.items.iter().filter_map(|c| c.metadata.name.clone()) {
        for template in &templates {
            let ordinal = claim.strip_prefix(&format!("{template}-{name}-")).and_then(|rest| rest.parse::<u32>().ok());
            if let Some(ordinal) = ordinal {
                found.push((template.clone(), ordinal, claim.clone()));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(VolumeError::NoClaims { namespace: namespace.to_owned(), name: name.to_owned(), template: template.map(str::to_owned) });
    }
    Ok(found.into_iter().map(|(_, _, claim)| claim).collect())
}

/// Sets `spec.resources.requests.storage` of a claim to `size` with a merge patch; with
/// `dry_run` the API server runs admission and validation and stores nothing.
///
/// # Errors
/// [`VolumeError::Rejected`] when the API server's admission (403) or validation (422) refuses
/// the new size, [`VolumeError::PvcNotFound`] for a missing claim, [`VolumeError::Api`] otherwise.
pub async fn patch_request(client: &kube::Client, namespace: &str, name: &str, size: &str, dry_run: bool) -> Result<PersistentVolumeClaim, VolumeError> {
    let span = info_span!("volume.expand.patch", namespace, pvc = name, size, dry_run);
    async move {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let patch = serde_json::json!({ "spec": { "resources": { "requests": { "storage": size } } } });
        let params = PatchParams { dry_run, ..PatchParams::default() };
        match claims.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(pvc) => {
                info!("storage request patched");
                Ok(pvc)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Err(VolumeError::PvcNotFound { namespace: namespace.to_owned(), name: name.to_owned() }),
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                Err(VolumeError::Rejected { namespace: namespace.to_owned(), name: name.to_owned(), code: status.code, reason: status.message.clone() })
            }
            Err(source) => Err(VolumeError::Api { action: format!("patch PersistentVolumeClaim {namespace}/{name}"), source }),
        }
    }
    .instrument(span)
    .await
}

/// Follows a claim towards the capacity `target_bytes` until its state reaches `until` or goes
/// past it. `on_change` receives every new status, starting with the current one.
///
/// Waits on a watch of the claim, not a poll, so a state change shows at once.
///
/// # Errors
/// [`VolumeError::Timeout`] with the last state when `deadline` passes,
/// [`VolumeError::PvcNotFound`] when the claim is deleted, [`VolumeError::Api`] when a get fails.
pub async fn follow(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    target_bytes: u128,
    until: ResizeState,
    deadline: Instant,
    on_change: &mut (dyn FnMut(&ClaimStatus) + Send),
) -> Result<ClaimStatus, VolumeError> {
    let span = info_span!("volume.expand.follow", namespace, pvc = name);
    async move {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let started = Instant::now();
        let mut last: Option<ClaimStatus> = None;
        loop {
            let pvc = claims
                .get_opt(name)
                .await
                .map_err(api(format!("get PersistentVolumeClaim {namespace}/{name}")))?
                .ok_or_else(|| VolumeError::PvcNotFound { namespace: namespace.to_owned(), name: name.to_owned() })?;
            let status = claim_status(&pvc, target_bytes);
            if last.as_ref() != Some(&status) {
                info!(state = %status.state, capacity = status.capacity.as_deref().unwrap_or("-"), "claim state");
                on_change(&status);
            }
            if status.state >= until {
                return Ok(status);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(VolumeError::Timeout {
                    what: format!("PersistentVolumeClaim {namespace}/{name} to reach its new capacity"),
                    seconds: started.elapsed().as_secs(),
                    state: status.to_string(),
                });
            }
            last = Some(status);
            let version = pvc.metadata.resource_version.clone().unwrap_or_default();
            if let Ok(Err(error)) = tokio::time::timeout(remaining, next_change(&claims, name, &version, remaining)).await {
                // A broken or expired watch is reopened from a fresh get; the pause keeps a
                // failing API server from being hammered.
                warn!(%error, "watch of the claim failed; reading it again");
                tokio::time::sleep(remaining.min(Duration::from_secs(1))).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Waits for the next event on the claim after `version`.
async fn next_change(claims: &Api<PersistentVolumeClaim>, name: &str, version: &str, remaining: Duration) -> Result<(), kube::Error> {
    // The server ends a watch after its timeout; 290 s stays below common proxy idle limits.
    let seconds = remaining.as_secs().clamp(1, 290) as u32;
    let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(seconds).disable_bookmarks();
    let mut stream = claims.watch(&params, version).await?.boxed();
    while let Some(event) = stream.try_next().await? {
        match event {
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(status) => return Err(kube::Error::Api(status)),
            _ => {
                debug!("claim changed");
                return Ok(());
            }
        }
    }
    Ok(())
}
