//! Restarting a pod so that the kubelet grows a claim's file system: the pod is evicted through
//! the eviction API, so its PodDisruptionBudget is honoured, and its controller recreates it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::EvictParams;
use kube::Api;
use tracing::{info, info_span, Instrument};

use crate::error::{api, VolumeError};

/// Pause between eviction attempts that a PodDisruptionBudget blocked.
const EVICTION_RETRY: Duration = Duration::from_secs(2);

/// Returns the kind and name of the pod's controller, such as `("StatefulSet", "es")`.
pub fn controller_of(pod: &Pod) -> Option<(String, String)> {
    pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| (o.kind.clone(), o.name.clone()))
}

/// Evicts `name` and waits until the old pod is gone and, for a StatefulSet, until the pod of
/// the same name is back. Retries while a PodDisruptionBudget blocks the eviction (HTTP 429).
///
/// Refuses a pod without a controller, because nothing would start it again.
///
/// # Errors
/// [`VolumeError::PodUnmanaged`], [`VolumeError::Timeout`] when `deadline` passes,
/// [`VolumeError::Api`] when a request fails.
pub async fn restart_pod(client: &kube::Client, namespace: &str, name: &str, deadline: Instant) -> Result<(), VolumeError> {
    let span = info_span!("volume.pod.restart", namespace, pod = name);
    async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let Some(pod) = pods.get_opt(name).await.map_err(api(format!("get pod {namespace}/{name}")))? else {
            return Ok(());
        };
        let Some((kind, _)) = controller_of(&pod) else {
            return Err(VolumeError::PodUnmanaged { namespace: namespace.to_owned(), name: name.to_owned() });
        };
        let old_uid = pod.metadata.uid.clone();
        let started = Instant::now();
        let timeout = |what: &str, state: String| VolumeError::Timeout { what: format!("{what} of pod {namespace}/{name}"), seconds: started.elapsed().as_secs(), state };

        // kube's client already retries HTTP 429 with a growing backoff, so one call can take
        // minutes while a PodDisruptionBudget blocks; the deadline bounds every call.
        let blocked = "the eviction was refused with HTTP 429 until the deadline: a PodDisruptionBudget allows no disruption now".to_owned();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(result) = tokio::time::timeout(remaining, pods.evict(name, &EvictParams::default())).await else {
                return Err(timeout("eviction", blocked));
            };
            match result {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    info!(reason = %status.message, "eviction blocked by a PodDisruptionBudget; retrying");
                    if Instant::now() + EVICTION_RETRY > deadline {
                        return Err(timeout("eviction", format!("{}: {}", blocked, status.message)));
                    }
                    tokio::time::sleep(EVICTION_RETRY).await;
                }
                Err(source) => return Err(VolumeError::Api { action: format!("evict pod {namespace}/{name}"), source }),
            }
        }
        info!("pod evicted");

        loop {
            let current = pods.get_opt(name).await.map_err(api(format!("get pod {namespace}/{name}")))?;
            let replaced = match &current {
                None => kind != "StatefulSet",
                Some(pod) => pod.metadata.uid != old_uid && pod.metadata.deletion_timestamp.is_none(),
            };
            if replaced {
                info!(elapsed_ms = started.elapsed().as_millis() as u64, "pod restarted");
                return Ok(());
            }
            if Instant::now() > deadline {
                let state = match current {
                    None => "deleted, not yet recreated".to_owned(),
                    Some(pod) if pod.metadata.uid == old_uid => "still terminating".to_owned(),
                    Some(_) => "recreated, not yet started".to_owned(),
                };
                return Err(timeout("restart", state));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    .instrument(span)
    .await
}
