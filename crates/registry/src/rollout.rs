//! Node-by-node rollout of an image: the runbook's "pull the image on each node, one at a time,
//! and check that the node runs the new image", with the check made on digests.
//!
//! The rollout first resolves the image in the registry: the digest the tag points at, and per
//! platform the image manifest and the config digest that Docker shows as the image ID. Then it
//! queries every node for its architecture and container runtime, and does not start when the
//! registry lacks the image for a node's platform. Then it goes node by node: pull, inspect,
//! compare, and stop at the first node that fails or reports another digest, so that at most one
//! node is left in a doubtful state.
//!
//! Commands run through the system `ssh`, or through another program set in
//! [`NodeShell::command`] that is invoked the same way: `PROGRAM [ARGS...] HOST COMMAND`.

mod node;

use std::path::PathBuf;
use std::sync::Arc;

use tracing::Instrument;

use crate::client::Registries;
use crate::error::RegistryError;
use crate::manifest::{ManifestKind, Platform};
use crate::reference::Reference;

pub use node::{NodeShell, Runtime};

/// The image as the registry has it for one platform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformImage {
    /// Platform, such as `linux/amd64`.
    pub platform: String,
    /// Digest of the platform's image manifest.
    pub manifest_digest: String,
    /// Digest of its config blob, which `docker images` and `crictl images` show as image ID.
    pub image_id: String,
}

/// The image as resolved in the registry: its digest and its platforms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryImage {
    /// Reference rolled out.
    pub image: String,
    /// Digest the tag points at (an index digest for a multi-platform image).
    pub digest: String,
    /// One entry per platform.
    pub platforms: Vec<PlatformImage>,
}

/// Outcome on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Pulled, and the node reports the registry's digest or image ID.
    Ok,
    /// Already done by an earlier run of the same rollout (from the journal).
    AlreadyDone,
    /// Pulled, but the node reports another digest.
    Mismatch,
    /// A command failed on the node.
    Failed,
    /// Not tried, because an earlier node failed.
    NotStarted,
}

/// The result on one node. Part of the JSON of `caasctl image rollout -o json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReport {
    /// Host as given.
    pub host: String,
    /// Outcome.
    pub status: NodeStatus,
    /// Container runtime used: `docker` or `crictl`.
    pub runtime: Option<String>,
    /// Node's platform, such as `linux/amd64`.
    pub platform: Option<String>,
    /// Image ID the node should report (config digest of its platform).
    pub expected_image_id: Option<String>,
    /// Image ID the node reports.
    pub image_id: Option<String>,
    /// Repository digests the node reports for the image.
    pub repo_digests: Vec<String>,
    /// Error text when the status is `failed`.
    pub error: Option<String>,
}

impl NodeReport {
    fn new(host: &str) -> NodeReport {
        NodeReport {
            host: host.to_owned(),
            status: NodeStatus::NotStarted,
            runtime: None,
            platform: None,
            expected_image_id: None,
            image_id: None,
            repo_digests: Vec::new(),
            error: None,
        }
    }
}

/// The result of a rollout. This is the JSON of `caasctl image rollout -o json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutReport {
    /// The image in the registry.
    pub registry: RegistryImage,
    /// One entry per host, in rollout order.
    pub nodes: Vec<NodeReport>,
    /// True when every node reports the registry's image.
    pub complete: bool,
}

/// How to roll out.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Hosts in rollout order.
    pub hosts: Vec<String>,
    /// Container runtime, or detection per node.
    pub runtime: Runtime,
    /// Shell command that runs commands on a node.
    pub shell: NodeShell,
    /// JSON Lines file recording finished nodes; a rerun skips the nodes it lists as done for
    /// the same digest.
    pub journal: Option<PathBuf>,
}

/// Resolves `image` in the registry: its digest and, per platform, the manifest and image ID.
///
/// # Errors
/// Registry errors; [`RegistryError::NotFound`] when the image does not exist.
pub async fn resolve(registries: &Registries, image: &Reference) -> Result<RegistryImage, RegistryError> {
    let client = registries.client(&image.registry);
    let top = client.get_manifest(&image.repository, image.reference()).await?;
    let mut platforms = Vec::new();
    let images: Vec<(Option<Platform>, crate::manifest::Manifest)> = match &top.kind {
        ManifestKind::Index { manifests } => {
            let mut children = Vec::new();
            for entry in manifests {
                let child = client.get_manifest(&image.repository, &entry.digest).await?;
                children.push((entry.platform.clone(), child));
            }
            children
        }
        ManifestKind::Image { .. } => vec![(None, top.clone())],
    };
    for (platform, manifest) in images {
        let ManifestKind::Image { config, .. } = &manifest.kind else { continue };
        let platform = match platform {
            Some(platform) => platform,
            None => config_platform(&client, &image.repository, &config.digest).await?,
        };
        platforms.push(PlatformImage { platform: format!("{}/{}", platform.os, platform.architecture), manifest_digest: manifest.digest.clone(), image_id: config.digest.clone() });
    }
    Ok(RegistryImage { image: image.to_string(), digest: top.digest, platforms })
}

async fn config_platform(client: &crate::client::RegistryClient, repository: &str, digest: &str) -> Result<Platform, RegistryError> {
    let response = client.get_blob(repository, digest).await?;
    let bytes = response.bytes().await.map_err(|source| RegistryError::Transport {
        registry: client.registry().to_owned(),
        operation: format!("fetch config {repository}@{digest}"),
        source,
    })?;
    serde_json::from_slice::<Platform>(&bytes).map_err(|e| RegistryError::BadManifest { reference: format!("{repository}@{digest}"), reason: format!("config: {e}") })
}

/// Rolls `image` out to the hosts, one at a time.
///
/// Returns the report, with the image ID and digests each node reports; the rollout is complete only
/// when every node matched.
///
/// # Errors
/// Registry errors while resolving the image, and [`RegistryError::MissingPlatform`] when a node
/// runs a platform the registry has no image for. Failures on nodes are in the report.
pub async fn rollout(registries: Arc<Registries>, image: &Reference, options: &RolloutOptions) -> Result<RolloutReport, RegistryError> {
    let span = tracing::info_span!("registry.rollout", image = %image, hosts = options.hosts.len());
    rollout_nodes(registries, image, options).instrument(span).await
}

async fn rollout_nodes(registries: Arc<Registries>, image: &Reference, options: &RolloutOptions) -> Result<RolloutReport, RegistryError> {
    let registry = resolve(&registries, image).await?;
    let done = node::journal_done(options.journal.as_deref(), &registry.digest);
    let mut nodes: Vec<NodeReport> = options.hosts.iter().map(|h| NodeReport::new(h)).collect();

    // Every node is probed before any pulls, so a missing platform stops the rollout untouched.
    for report in nodes.iter_mut() {
        if done.contains(&report.host) {
            continue;
        }
        match options.shell.probe(&report.host, options.runtime).await {
            Ok((platform, runtime)) => {
                let Some(entry) = registry.platforms.iter().find(|p| p.platform == platform) else {
                    return Err(RegistryError::MissingPlatform { reference: image.to_string(), platform });
                };
                report.expected_image_id = Some(entry.image_id.clone());
                report.platform = Some(platform);
                report.runtime = Some(runtime.name().to_owned());
            }
            Err(error) => {
                report.status = NodeStatus::Failed;
                report.error = Some(crate::error::chain_text(&error));
                return Ok(RolloutReport { registry, nodes, complete: false });
            }
        }
    }

    let reference = image.to_string();
    for report in nodes.iter_mut() {
        if done.contains(&report.host) {
            report.status = NodeStatus::AlreadyDone;
            continue;
        }
        let runtime = Runtime::from_name(report.runtime.as_deref().unwrap_or("docker"));
        tracing::info!(host = %report.host, runtime = runtime.name(), "pulling on node");
        match options.shell.pull_and_inspect(&report.host, runtime, &reference).await {
            Ok((image_id, repo_digests)) => {
                let digest_matches = repo_digests.iter().any(|d| d.ends_with(&format!("@{}", registry.digest)));
                let id_matches = report.expected_image_id.as_deref() == Some(image_id.as_str());
                report.image_id = Some(image_id);
                report.repo_digests = repo_digests;
                report.status = if digest_matches || id_matches { NodeStatus::Ok } else { NodeStatus::Mismatch };
            }
            Err(error) => {
                report.status = NodeStatus::Failed;
                report.error = Some(crate::error::chain_text(&error));
            }
        }
        tracing::info!(host = %report.host, status = ?report.status, image_id = ?report.image_id, "node finished");
        if report.status != NodeStatus::Ok {
            break;
        }
        node::journal_record(options.journal.as_deref(), &registry.digest, &report.host);
    }
    let complete = nodes.iter().all(|n| matches!(n.status, NodeStatus::Ok | NodeStatus::AlreadyDone));
    Ok(RolloutReport { registry, nodes, complete })
}
