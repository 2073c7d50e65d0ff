//! Options of `caasctl volume list` and `caasctl volume expand`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List pods with their persistent volume mounts: container, mount path, claim, class, capacity, expansion.
    List(ListArgs),

    /// Expand a PersistentVolumeClaim (or every claim of a StatefulSet) and follow it until the new capacity is there.
    Expand(ExpandArgs),
}

/// Cluster access shared by the volume commands.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account).
    #[arg(id = "volume_kubeconfig", long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `volume list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Namespace to list (default: all namespaces).
    #[arg(id = "volume_list_namespace", short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

/// `volume expand` options.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Claim to expand; with --statefulset, the claim template whose claims to expand (default: all templates).
    #[arg(id = "volume_pvc", value_name = "PVC", required_unless_present = "volume_statefulset")]
    pub pvc: Option<String>,

    /// New size as a Kubernetes quantity, such as 20Gi; it must be larger than the current request.
    #[arg(id = "volume_size", long = "size", value_name = "SIZE")]
    pub size: String,

    /// Namespace of the claim (default: the kubeconfig context's namespace).
    #[arg(id = "volume_namespace", short = 'n', long = "namespace")]
    pub namespace: Option<String>,

    /// Evict the pods that use a claim once its file system waits for a restart, one pod at a time (PodDisruptionBudgets apply).
    #[arg(id = "volume_restart_pod", long = "restart-pod")]
    pub restart_pod: bool,

    /// Expand every claim of this StatefulSet (claims named TEMPLATE-SET-ORDINAL).
    #[arg(id = "volume_statefulset", long = "statefulset", value_name = "NAME")]
    pub statefulset: Option<String>,

    /// Seconds to wait for every claim to reach the new capacity.
    #[arg(id = "volume_timeout", long = "timeout", value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    /// Check the plan and let the API server validate the patch without storing it (server-side dry run), then stop.
    #[arg(id = "volume_dry_run", long = "dry-run", conflicts_with = "volume_yes")]
    pub dry_run: bool,

    /// Expand without asking.
    #[arg(id = "volume_yes", long = "yes", short = 'y')]
    pub yes: bool,
}
