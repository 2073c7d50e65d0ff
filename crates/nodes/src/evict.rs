//! Evicting the planned pods and waiting until their controllers run them Ready on other nodes.
//!
//! Every eviction goes through the eviction API, so the API server applies PodDisruptionBudgets
//! and returns HTTP 429 while a budget allows no disruption. The client must not retry 429 itself
//! (see [`crate::client::connect`]): this loop retries every few seconds instead and reports the
//! blocked pod and its budget, so the operator sees what the drain waits for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{EvictParams, ListParams};
use kube::Api;
use tracing::{info, info_span, Instrument};

use crate::budget::budgets_for;
use crate::drain::{owner_of, Owner, PlannedPod};
use crate::error::NodeError;

/// Timing of a drain.
#[derive(Debug, Clone, Copy)]
pub struct EvictOptions {
    /// When the whole drain (evictions and replacements) must be done.
    pub deadline: Instant,
    /// Pause between rounds of evictions and between checks.
    pub interval: Duration,
    /// How often a pod that stays blocked is reported again.
    pub report_every: Duration,
    /// Whether to wait until the evicted pods are deleted. The kubelet of an unreachable node
    /// never confirms the deletion, so `--unreachable` turns this off.
    pub wait_deleted: bool,
}

/// Progress of a drain, for the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// The eviction API accepted the eviction of a pod.
    Evicted {
        /// `namespace/name`.
        pod: String,
    },
    /// A PodDisruptionBudget refused the eviction of a pod; it is retried.
    Blocked {
        /// `namespace/name`.
        pod: String,
        /// Budgets that select the pod, as `namespace/name`; empty when none was found.
        budgets: Vec<String>,
        /// The API server's message.
        message: String,
    },
    /// Waiting for a controller's pods to run Ready on other nodes.
    Waiting {
        /// `Kind namespace/name`.
        controller: String,
        /// Ready pods on other nodes.
        ready: usize,
        /// Pods the controller ran before the drain.
        expected: usize,
    },
    /// Every controller runs its pods Ready on other nodes.
    Replaced {
        /// Controllers checked.
        controllers: usize,
    },
}

/// One controller whose evicted pods must come back elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Awaited {
    namespace: String,
    owner: Owner,
    /// Live pods of the controller, on any node, before the eviction.
    expected: usize,
}

impl Awaited {
    fn label(&self) -> String {
        format!("{} {}/{}", self.owner.kind, self.namespace, self.owner.name)
    }
}

/// Evicts `pods`, retrying those a budget blocks. Then waits until they are deleted (when
/// `options.wait_deleted` is set) and until each controller runs as many Ready pods outside
/// `drained_nodes` as it ran before.
///
/// # Errors
/// [`NodeError::EvictionTimeout`] naming the pods still blocked and their budgets,
/// [`NodeError::ReplacementTimeout`] naming the controllers short of Ready pods,
/// [`NodeError::Kube`] for other API failures.
pub async fn evict_and_replace(
    client: &kube::Client,
    pods: &[PlannedPod],
    drained_nodes: &[String],
    options: EvictOptions,
    observer: &mut (dyn FnMut(DrainEvent) + Send),
) -> Result<(), NodeError> {
    let span = info_span!("node.drain", pods = pods.len(), nodes = %drained_nodes.join(","));
    async move {
        let awaited = baseline(client, pods, drained_nodes).await?;
        evict_all(client, pods, options, observer).await?;
        if options.wait_deleted {
            wait_deleted(client, pods, options).await?;
        }
        wait_replaced(client, &awaited, drained_nodes, options, observer).await
    }
    .instrument(span)
    .await
}

/// Counts the live pods of every controller that has a pod to evict.
async fn baseline(client: &kube::Client, pods: &[PlannedPod], drained_nodes: &[String]) -> Result<Vec<Awaited>, NodeError> {
    let mut controllers: BTreeSet<(String, Owner)> = BTreeSet::new();
    for pod in pods.iter().filter(|p| p.needs_replacement()) {
        if let Some(owner) = &pod.owner {
            controllers.insert((pod.namespace.clone(), owner.clone()));
        }
    }
    let mut awaited = Vec::new();
    for (namespace, owner) in controllers {
        let live = controller_pods(client, &namespace, &owner).await?.iter().filter(|p| is_live(p)).count();
        awaited.push(Awaited { namespace, owner, expected: live });
    }
    tracing::debug!(controllers = awaited.len(), drained = drained_nodes.len(), "counted pods before the eviction");
    Ok(awaited)
}

async fn evict_all(client: &kube::Client, pods: &[PlannedPod], options: EvictOptions, observer: &mut (dyn FnMut(DrainEvent) + Send)) -> Result<(), NodeError> {
    let mut pending: Vec<&PlannedPod> = pods.iter().collect();
    let mut last_report: BTreeMap<String, Instant> = BTreeMap::new();
    let mut blocked: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();

    while !pending.is_empty() {
        let mut still_pending = Vec::new();
        for pod in pending {
            match evict_one(client, pod, options.deadline).await? {
                Outcome::Evicted => {
                    info!(pod = %pod.key(), "pod evicted");
                    blocked.remove(&pod.key());
                    observer(DrainEvent::Evicted { pod: pod.key() });
                }
                Outcome::Gone => {
                    blocked.remove(&pod.key());
                }
                Outcome::Blocked(message) => {
                    let due = last_report.get(&pod.key()).is_none_or(|at| at.elapsed() >= options.report_every);
                    if due {
                        // The budget's name only helps the operator, so a failed lookup does not stop the drain.
                        let budgets = budgets_for(client, &pod.namespace, &pod.labels).await.unwrap_or_else(|error| {
                            tracing::warn!(pod = %pod.key(), %error, "failed to look up the PodDisruptionBudgets of a blocked pod");
                            Vec::new()
                        });
                        let budgets: Vec<String> = budgets.iter().map(|b| format!("{}/{b}", pod.namespace)).collect();
                        info!(pod = %pod.key(), budgets = ?budgets, %message, "eviction blocked by a PodDisruptionBudget; retrying");
                        observer(DrainEvent::Blocked { pod: pod.key(), budgets: budgets.clone(), message: message.clone() });
                        last_report.insert(pod.key(), Instant::now());
                        blocked.insert(pod.key(), (budgets, message));
                    }
                    still_pending.push(pod);
                }
            }
        }
        pending = still_pending;
        if pending.is_empty() {
            break;
        }
        if Instant::now() + options.interval > options.deadline {
            let pods = pending
                .iter()
                .map(|pod| match blocked.get(&pod.key()) {
                    Some((budgets, _)) if !budgets.is_empty() => format!("{} ({})", pod.key(), budgets.join(", ")),
                    _ => pod.key(),
                })
                .collect();
            return Err(NodeError::EvictionTimeout { pods });
        }
        tokio::time::sleep(options.interval).await;
    }
    Ok(())
}

enum Outcome {
    Evicted,
    Gone,
    Blocked(String),
}

async fn evict_one(client: &kube::Client, pod: &PlannedPod, deadline: Instant) -> Result<Outcome, NodeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    // The pod may have been replaced under the same name (a StatefulSet pod): only the pod the
    // plan saw is evicted.
    match api.get_opt(&pod.name).await.map_err(|source| NodeError::Kube { action: format!("get pod {}", pod.key()), source })? {
        None => return Ok(Outcome::Gone),
        Some(current) if current.metadata.uid.as_deref() != Some(pod.uid.as_str()) || current.metadata.deletion_timestamp.is_some() => return Ok(Outcome::Gone),
        Some(_) => {}
    }
    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    let params = EvictParams::default();
    let request = api.evict(&pod.name, &params);
    let result = match tokio::time::timeout(remaining.min(Duration::from_secs(30)), request).await {
        Ok(result) => result,
        Err(_) => return Ok(Outcome::Blocked("the eviction request timed out".to_owned())),
    };
    match result {
        Ok(_) => Ok(Outcome::Evicted),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Outcome::Gone),
        Err(kube::Error::Api(status)) if status.code == 429 => {
            let causes: Vec<String> = status.details.iter().flat_map(|d| d.causes.iter()).map(|c| c.message.clone()).filter(|m| !m.is_empty()).collect();
            let message = if causes.is_empty() { status.message.clone() } else { format!("{} {}", status.message, causes.join("; ")) };
            Ok(Outcome::Blocked(message))
        }
        // Kubernetes returns 500 when several budgets select the pod. Waiting alone cannot fix
        // that, but an edited budget can, so it is retried like a blocking budget.
        Err(kube::Error::Api(status)) if status.code == 500 && status.message.contains("DisruptionBudget") => Ok(Outcome::Blocked(status.message.clone())),
        Err(source) => Err(NodeError::Kube { action: format!("evict pod {}", pod.key()), source }),
    }
}

async fn wait_deleted(client: &kube::Client, pods: &[PlannedPod], options: EvictOptions) -> Result<(), NodeError> {
    loop {
        let mut remaining = Vec::new();
        for pod in pods {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            let current = api.get_opt(&pod.name).await.map_err(|source| NodeError::Kube { action: format!("get pod {}", pod.key()), source })?;
            if current.is_some_and(|c| c.metadata.uid.as_deref() == Some(pod.uid.as_str())) {
                remaining.push(pod.key());
            }
        }
        if remaining.is_empty() {
            return Ok(());
        }
        if Instant::now() + options.interval > options.deadline {
            return Err(NodeError::DeletionTimeout { pods: remaining });
        }
        tokio::time::sleep(options.interval).await;
    }
}

async fn wait_replaced(
    client: &kube::Client,
    awaited: &[Awaited],
    drained_nodes: &[String],
    options: EvictOptions,
    observer: &mut (dyn FnMut(DrainEvent) + Send),
) -> Result<(), NodeError> {
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let mut short = Vec::new();
        for controller in awaited {
            let pods = controller_pods(client, &controller.namespace, &controller.owner).await?;
            let ready = pods.iter().filter(|p| is_live(p) && is_ready(p) && !on_nodes(p, drained_nodes)).count();
            if ready < controller.expected {
                if reported.get(&controller.label()) != Some(&ready) {
                    observer(DrainEvent::Waiting { controller: controller.label(), ready, expected: controller.expected });
                    reported.insert(controller.label(), ready);
                }
                short.push(format!("{} ({ready}/{})", controller.label(), controller.expected));
            }
        }
        if short.is_empty() {
            info!(controllers = awaited.len(), "evicted pods run Ready on other nodes");
            observer(DrainEvent::Replaced { controllers: awaited.len() });
            return Ok(());
        }
        if Instant::now() + options.interval > options.deadline {
            return Err(NodeError::ReplacementTimeout { controllers: short });
        }
        tokio::time::sleep(options.interval).await;
    }
}

async fn controller_pods(client: &kube::Client, namespace: &str, owner: &Owner) -> Result<Vec<Pod>, NodeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| NodeError::Kube { action: format!("list pods in {namespace}"), source })?;
    Ok(list.items.into_iter().filter(|p| owner_of(p).is_some_and(|o| o.uid == owner.uid)).collect())
}

fn is_live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    pod.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

fn is_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running") && status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn on_nodes(pod: &Pod, nodes: &[String]) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| nodes.contains(n))
}
