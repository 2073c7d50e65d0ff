//! Options of `caasctl volume list`, `expand`, `backup`, `backups` and `restore`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::commands::repo_opts::{EncryptArgs, RepoArgs};

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List pods with their persistent volume mounts: container, mount path, claim, class, capacity, expansion.
    List(ListArgs),

    /// Expand a PersistentVolumeClaim (or every claim of a StatefulSet) and follow it until the new capacity is there.
    Expand(ExpandArgs),

    /// Back up the data on pods' PersistentVolumeClaim mounts into the backup repository as checked tar archives.
    Backup(BackupArgs),

    /// List the volume backups in the repository.
    Backups(BackupsArgs),

    /// Write a volume backup back into a pod or a local directory; prints the plan, --yes applies it.
    Restore(RestoreArgs),
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

/// Transport that `volume backup` reads the data through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// tar in the container through the Kubernetes exec API.
    Exec,
    /// tar on the pod's node over SSH, reading the kubelet's volume directory.
    Node,
}

/// `volume backup` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("volume_backup_pods_or_selector").required(true).args(["volume_backup_pods", "volume_backup_selector"])))]
pub struct BackupArgs {
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Pods to back up.
    #[arg(id = "volume_backup_pods", value_name = "POD")]
    pub pods: Vec<String>,

    /// Back up every pod that matches this label selector, such as component=es.
    #[arg(id = "volume_backup_selector", short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Namespace of the pods (default: the kubeconfig context's namespace).
    #[arg(id = "volume_backup_namespace", short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Container whose mount to read (default: the container that mounts the pod's only claim).
    #[arg(id = "volume_backup_container", short = 'c', long = "container", value_name = "CONTAINER")]
    pub container: Option<String>,

    /// Directory to archive, at or below a claim's mount path (default: the whole mount).
    #[arg(id = "volume_backup_path", long = "path", value_name = "PATH")]
    pub path: Option<String>,

    /// How to read the data: exec (tar in the container) or node (tar on the node over SSH).
    #[arg(id = "volume_via", long = "via", value_name = "TRANSPORT", value_enum, default_value_t = Via::Exec)]
    pub via: Via,

    /// Kubelet pods directory on the nodes, for --via node; repeatable (default: OpenShift 3.x's, then /var/lib/kubelet/pods).
    #[arg(id = "volume_pods_dir", long = "pods-dir", value_name = "DIR")]
    pub pods_dir: Vec<String>,

    /// ssh destination for a node, for --via node; {node} is replaced by the node name.
    #[arg(id = "volume_ssh_target", long = "ssh-target", value_name = "TEMPLATE", default_value = "{node}")]
    pub ssh_target: String,

    /// ssh port, for --via node (default: from the ssh configuration).
    #[arg(id = "volume_ssh_port", long = "ssh-port", value_name = "PORT")]
    pub ssh_port: Option<u16>,

    /// Extra ssh argument, for --via node, such as --ssh-option=-i --ssh-option=KEY; repeatable.
    #[arg(id = "volume_ssh_option", long = "ssh-option", value_name = "ARG", allow_hyphen_values = true)]
    pub ssh_option: Vec<String>,

    /// Pods backed up at the same time.
    #[arg(id = "volume_parallel", long = "parallel", value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub encryption: EncryptArgs,
}

/// `volume backups` options.
#[derive(Debug, Args)]
pub struct BackupsArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// `volume restore` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("volume_restore_target").required(true).args(["volume_to_pod", "volume_to_dir"])))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Volume backup ID, or latest.
    #[arg(id = "volume_backup_id", value_name = "BACKUP")]
    pub backup: String,

    /// Restore into this pod's claim mount (or --path inside it).
    #[arg(id = "volume_to_pod", long = "to-pod", value_name = "POD")]
    pub to_pod: Option<String>,

    /// Restore into this local directory; an existing non-empty directory is moved aside first.
    #[arg(id = "volume_to_dir", long = "to-dir", value_name = "DIR")]
    pub to_dir: Option<PathBuf>,

    /// Namespace of the pod (default: the kubeconfig context's namespace).
    #[arg(id = "volume_restore_namespace", short = 'n', long = "namespace")]
    pub namespace: Option<String>,

    /// Container of the pod (default: the container that mounts the pod's only claim).
    #[arg(id = "volume_restore_container", short = 'c', long = "container")]
    pub container: Option<String>,

    /// Directory in the pod to restore into, at or below a claim's mount path (default: the mount path).
    #[arg(id = "volume_restore_path", long = "path", value_name = "PATH")]
    pub path: Option<String>,

    /// age identity file (AGE-SECRET-KEY-1...) for an encrypted backup.
    #[arg(id = "volume_identity", long = "identity", value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Apply the plan; without it the plan is printed and nothing changes.
    #[arg(id = "volume_restore_yes", long = "yes", short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub repo: RepoArgs,
}
