//! The Kubernetes side of a scale-up: new nodes Ready, and the fluentd label where logging runs.
//!
//! [`NodeApi`] is the small surface the scale-up needs, so that the waiting and labelling logic
//! can be tested without a cluster; [`KubeNodes`] implements it with `kube`.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Api;

use crate::error::NodeError;

/// Label that lets OpenShift 3.11's logging DaemonSet schedule fluentd on a node.
pub const FLUENTD_LABEL: &str = "logging-infra-fluentd";

/// The Kubernetes API calls a scale-up needs.
pub trait NodeApi {
    /// Returns `None` when the node does not exist, else whether its `Ready` condition is `True`.
    fn node_ready(&self, name: &str) -> impl Future<Output = Result<Option<bool>, NodeError>> + Send;

    /// Sets one label on a node.
    fn label_node(&self, name: &str, key: &str, value: &str) -> impl Future<Output = Result<(), NodeError>> + Send;

    /// Returns true when cluster logging (EFK) is deployed.
    fn logging_deployed(&self) -> impl Future<Output = Result<bool, NodeError>> + Send;
}

/// Polls every `interval` until all `names` are Ready or `timeout` passes.
///
/// # Errors
/// [`NodeError::NotReady`] naming the nodes still missing or not Ready at the timeout; API errors
/// as they come.
pub async fn wait_ready<A: NodeApi>(api: &A, names: &[String], timeout: Duration, interval: Duration) -> Result<(), NodeError> {
    let _span = tracing::info_span!("node.wait_ready", nodes = names.len()).entered();
    let started = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for name in names {
            if api.node_ready(name).await? != Some(true) {
                waiting.push(name.clone());
            }
        }
        if waiting.is_empty() {
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "nodes ready");
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(NodeError::NotReady { nodes: waiting, seconds: timeout.as_secs() });
        }
        tracing::debug!(waiting = ?waiting, "nodes not ready yet");
        tokio::time::sleep(interval).await;
    }
}

/// Outcome of [`verify_new_nodes`] once the nodes were Ready.
#[derive(Debug, Default)]
pub struct Verified {
    /// Whether cluster logging was found.
    pub logging_deployed: bool,
    /// Nodes given the fluentd label.
    pub labelled: Vec<String>,
    /// Failures after the Ready check: the logging lookup or a label.
    pub failures: Vec<NodeError>,
}

/// Waits for `names` to be Ready, then labels them `logging-infra-fluentd=true` when logging is
/// deployed, because OpenShift 3.11's fluentd DaemonSet runs only on nodes with that label.
///
/// # Errors
/// Those of [`wait_ready`]. Label and lookup failures are collected in [`Verified::failures`],
/// because the nodes are already in the cluster by then.
pub async fn verify_new_nodes<A: NodeApi>(api: &A, names: &[String], timeout: Duration, interval: Duration) -> Result<Verified, NodeError> {
    wait_ready(api, names, timeout, interval).await?;
    let mut verified = Verified::default();
    match api.logging_deployed().await {
        Ok(deployed) => verified.logging_deployed = deployed,
        Err(error) => verified.failures.push(error),
    }
    if verified.logging_deployed {
        for name in names {
            match api.label_node(name, FLUENTD_LABEL, "true").await {
                Ok(()) => verified.labelled.push(name.clone()),
                Err(error) => verified.failures.push(error),
            }
        }
    }
    Ok(verified)
}

/// [`NodeApi`] over a real API server.
#[derive(Clone)]
pub struct KubeNodes {
    client: kube::Client,
}

impl KubeNodes {
    /// Connects with the current context of the kubeconfig at `path`.
    ///
    /// # Errors
    /// [`NodeError::KubeConfig`] when the file cannot be read or names no usable cluster.
    pub async fn from_kubeconfig(path: &Path) -> Result<KubeNodes, NodeError> {
        let config_error = |reason: String| NodeError::KubeConfig { path: path.to_owned(), reason };
        let raw = Kubeconfig::read_from(path).map_err(|e| config_error(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default()).await.map_err(|e| config_error(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?;
        Ok(KubeNodes { client })
    }
}

impl NodeApi for KubeNodes {
    async fn node_ready(&self, name: &str) -> Result<Option<bool>, NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get_opt(name).await.map_err(|source| NodeError::Kube { action: format!("get node {name}"), source })?;
        Ok(node.map(|node| {
            node.status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        }))
    }

    async fn label_node(&self, name: &str, key: &str, value: &str) -> Result<(), NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({ "metadata": { "labels": { key: value } } });
        nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| NodeError::Kube { action: format!("label node {name}"), source })?;
        Ok(())
    }

    async fn logging_deployed(&self) -> Result<bool, NodeError> {
        // OpenShift 3.11 deploys fluentd as the DaemonSet logging-fluentd in openshift-logging
        // and selects nodes by the label; either one shows that logging is there.
        let daemonsets: Api<DaemonSet> = Api::namespaced(self.client.clone(), "openshift-logging");
        let daemonset = daemonsets
            .get_opt("logging-fluentd")
            .await
            .map_err(|source| NodeError::Kube { action: "look up DaemonSet openshift-logging/logging-fluentd".to_owned(), source })?;
        if daemonset.is_some() {
            return Ok(true);
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let labelled = nodes
            .list_metadata(&ListParams::default().labels(&format!("{FLUENTD_LABEL}=true")).limit(1))
            .await
            .map_err(|source| NodeError::Kube { action: "list nodes with the fluentd label".to_owned(), source })?;
        Ok(!labelled.items.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Nodes that turn Ready after a number of polls.
    struct Slow {
        polls: AtomicUsize,
        ready_after: usize,
        logging: bool,
        labels: std::sync::Mutex<Vec<String>>,
    }

    impl Slow {
        fn new(ready_after: usize, logging: bool) -> Slow {
            Slow { polls: AtomicUsize::new(0), ready_after, logging, labels: std::sync::Mutex::new(Vec::new()) }
        }
    }

    impl NodeApi for Slow {
        async fn node_ready(&self, name: &str) -> Result<Option<bool>, NodeError> {
            let polls = self.polls.fetch_add(1, Ordering::SeqCst);
            if name == "missing" {
                return Ok(None);
            }
            Ok(Some(polls >= self.ready_after))
        }

        async fn label_node(&self, name: &str, key: &str, value: &str) -> Result<(), NodeError> {
            self.labels.lock().unwrap().push(format!("{name} {key}={value}"));
            Ok(())
        }

        async fn logging_deployed(&self) -> Result<bool, NodeError> {
            Ok(self.logging)
        }
    }

    #[tokio::test]
    async fn wait_ready_polls_until_ready() {
        let api = Slow::new(3, false);
        wait_ready(&api, &["n1".to_owned()], Duration::from_secs(5), Duration::from_millis(1)).await.expect("ready");
        assert!(api.polls.load(Ordering::SeqCst) >= 4);
    }

    #[tokio::test]
    async fn wait_ready_times_out_naming_nodes() {
        let api = Slow::new(0, false);
        let error = wait_ready(&api, &["n1".to_owned(), "missing".to_owned()], Duration::from_millis(20), Duration::from_millis(5))
            .await
            .expect_err("times out");
        assert!(matches!(error, NodeError::NotReady { ref nodes, .. } if nodes == &["missing".to_owned()]), "{error:?}");
    }

    #[tokio::test]
    async fn verify_labels_only_with_logging() {
        let names = ["n1".to_owned(), "n2".to_owned()];
        let api = Slow::new(0, true);
        let verified = verify_new_nodes(&api, &names, Duration::from_secs(1), Duration::from_millis(1)).await.unwrap();
        assert_eq!(verified.labelled, names);
        assert_eq!(*api.labels.lock().unwrap(), ["n1 logging-infra-fluentd=true", "n2 logging-infra-fluentd=true"]);

        let api = Slow::new(0, false);
        let verified = verify_new_nodes(&api, &names, Duration::from_secs(1), Duration::from_millis(1)).await.unwrap();
        assert!(verified.labelled.is_empty());
        assert!(api.labels.lock().unwrap().is_empty());
    }
}
