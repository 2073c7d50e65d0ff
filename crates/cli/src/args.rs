//! The command-line definition: global options and the subcommand tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Safe, verified day-2 maintenance of Kubernetes / OpenShift 3.x platforms.
#[derive(Debug, Parser)]
#[command(name = "caasctl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format of results on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, global = true, env = "CAASCTL_OUTPUT")]
    pub output: OutputFormat,

    /// Language of messages: zh-CN or en; defaults from LC_ALL, LC_MESSAGES or LANG.
    #[arg(long, global = true, value_parser = ["zh-CN", "en"], env = "CAASCTL_LANG")]
    pub lang: Option<String>,

    /// More log output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// No progress bars or progress lines.
    #[arg(long, global = true, env = "CAASCTL_NO_PROGRESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_progress: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    Text,
    /// JSON for programs.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// etcd health, members, backups.
    #[command(subcommand)]
    Etcd(EtcdCommand),

    /// Journaled operations: list, show, resume.
    #[command(subcommand)]
    Ops(crate::commands::ops::OpsCommand),

    /// Check the runbook's preconditions: endpoints, certificates, cluster health, API server.
    Doctor(DoctorArgs),

    /// VM disk snapshots: create, list, roll back, delete (local qcow2, OpenStack, Alibaba Cloud ECS).
    #[command(subcommand)]
    Snapshot(crate::commands::snapshot::args::SnapshotCommand),

    /// Mirror component images into the local registry and roll them out node by node.
    #[command(subcommand)]
    Image(crate::commands::image::ImageCommand),

    /// Persistent volumes of pods: list mounts, expand claims, back up and restore their data.
    #[command(subcommand)]
    Volume(crate::commands::volume::args::VolumeCommand),

    /// Read the Ansible inventory as ansible does.
    #[command(subcommand)]
    Inventory(crate::commands::inventory::InventoryCommand),

    /// Add, remove and migrate nodes through openshift-ansible's playbooks and the Kubernetes API.
    #[command(subcommand)]
    Node(crate::commands::node::NodeCommand),

    /// Scheduled backups as a service: backup, keep rules and restore drill on a cron schedule, with /metrics and /healthz.
    Serve(crate::commands::serve::ServeArgs),
}

/// etcd commands.
#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Health of every endpoint: reachability, latency, version, db size, leader, raft state, alarms.
    Health(ApiArgs),

    /// List the cluster's members.
    Members(ApiArgs),

    /// Stream a verified v3 snapshot into the backup repository.
    Backup(BackupArgs),

    /// List and verify backups in the repository.
    #[command(subcommand)]
    Backups(BackupsCommand),

    /// Read a snapshot or backup offline: status, keys, values, Kubernetes objects, diff.
    Inspect(crate::commands::etcd_inspect::args::InspectArgs),

    /// Restore a member or a whole cluster from a backup or snapshot file: plan, then apply with a journal.
    Restore(crate::commands::etcd_restore::RestoreArgs),
}

/// Endpoint and TLS options of the etcd cluster, named as etcdctl names them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Endpoints")]
pub struct EndpointArgs {
    /// Comma-separated client URLs, such as https://10.0.0.1:2379,https://10.0.0.2:2379.
    #[arg(long, env = "ETCDCTL_ENDPOINTS", conflicts_with_all = ["etcd_conf", "static_pod_manifest"])]
    pub endpoints: Option<String>,

    /// CA bundle that verifies the servers.
    #[arg(long, env = "ETCDCTL_CACERT")]
    pub cacert: Option<PathBuf>,

    /// Client certificate.
    #[arg(long, env = "ETCDCTL_CERT")]
    pub cert: Option<PathBuf>,

    /// Client private key.
    #[arg(long, env = "ETCDCTL_KEY")]
    pub key: Option<PathBuf>,

    /// Read endpoints and TLS files from this etcd.conf (ETCD_ADVERTISE_CLIENT_URLS and others).
    #[arg(long, value_name = "FILE", conflicts_with = "static_pod_manifest")]
    pub etcd_conf: Option<PathBuf>,

    /// Read endpoints and TLS files from the etcd container of this static pod manifest.
    #[arg(long, value_name = "FILE")]
    pub static_pod_manifest: Option<PathBuf>,

    /// Seconds allowed to connect to one endpoint.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub dial_timeout: u64,

    /// Seconds allowed for one request.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub command_timeout: u64,
}

/// `etcd health` and `etcd members` options.
#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,

    /// etcd API version to use: 3, or 2 for the v2 API (etcd started with --enable-v2=true).
    #[arg(long, value_parser = ["2", "3"], default_value = "3")]
    pub api: String,
}

/// `etcd backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,

    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub encryption: crate::commands::repo_opts::EncryptArgs,

    /// Configuration directory to archive with the snapshot (default /etc/etcd when readable).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,

    /// Do not archive any configuration directory.
    #[arg(long, conflicts_with = "config_dir")]
    pub no_config: bool,

    /// Cluster file (caasctl.toml): archive each member's configuration directory and static pod manifest on its own host; required with --api 2.
    #[arg(id = "backup_cluster", long = "cluster", value_name = "FILE", conflicts_with_all = ["config_dir", "no_config"], required_if_eq("backup_api", "2"))]
    pub cluster: Option<PathBuf>,

    /// Limit the snapshot transfer to this many MiB per second.
    #[arg(long, value_name = "MIB_PER_SECOND")]
    pub rate_limit: Option<f64>,
    #[command(flatten)]
    pub v2: crate::commands::etcd_backup_v2::V2BackupArgs,
}

/// `etcd backups` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// List backups, complete and incomplete.
    List(RepoArgs),

    /// Re-read backups and check every hash; all backups when no ID is given.
    Verify(VerifyArgs),

    /// Remove backups by keep rules (restic's meaning); prints the plan first.
    Prune(crate::commands::etcd_prune::PruneArgs),

    /// Create an age key pair for encrypted backups: the private key into a new file (0600), the public key on stdout.
    Keygen(KeygenArgs),
}

/// `etcd backups keygen` options.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// New identity file to write; an existing file is never replaced.
    #[arg(id = "keygen_identity", long = "identity", value_name = "FILE")]
    pub identity: PathBuf,
}

pub use crate::commands::repo_opts::RepoArgs;

/// `etcd backups verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Backup ID, or `latest`.
    pub id: Option<String>,

    /// age identity file (AGE-SECRET-KEY-1...) to decrypt encrypted backups and check their plaintext.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// `doctor` options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,

    /// Kubeconfig for the API server check (default $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
