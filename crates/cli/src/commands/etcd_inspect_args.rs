//! Options of `caasctl etcd inspect SNAPSHOT ...`: offline reading of a snapshot file or backup.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `etcd inspect` options: the snapshot, then what to read from it.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Snapshot file, etcd data file (member/snap/db), backup directory, or backup ID (or latest) in --repo.
    #[arg(id = "inspect_snapshot", value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// Backup repository: a directory, or s3://BUCKET/PREFIX.
    #[arg(id = "inspect_repo", long = "repo", value_name = "DIR|URL", default_value = "./caasctl-backups", env = "CAASCTL_REPO", global = true)]
    pub repo: String,

    /// age identity file (AGE-SECRET-KEY-1...) that decrypts an encrypted backup before it is read.
    #[arg(id = "inspect_identity", long = "identity", value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,

    /// S3 endpoint URL, such as http://127.0.0.1:9000; AWS when not given.
    #[arg(id = "inspect_s3_endpoint", long = "s3-endpoint", value_name = "URL", env = "CAASCTL_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    /// S3 region (default from AWS_REGION, then us-east-1).
    #[arg(id = "inspect_s3_region", long = "s3-region", value_name = "REGION", global = true)]
    pub s3_region: Option<String>,

    /// Address buckets as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT; an endpoint given as an IP address or localhost is always addressed this way.
    #[arg(id = "inspect_s3_path_style", long = "s3-path-style", global = true)]
    pub s3_path_style: bool,

    #[command(subcommand)]
    pub command: InspectCommand,
}

/// The part of the snapshot to read.
#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Hash, revision, total keys and total size, as etcdutl snapshot status reports them.
    Status,

    /// List the live keys, with their revisions and value sizes.
    Keys(KeysArgs),

    /// Print a key's value: the newest, the one at a revision, or every revision still in the snapshot.
    Get(GetArgs),

    /// Kubernetes objects stored in the snapshot.
    #[command(subcommand)]
    K8s(K8sCommand),

    /// Keys added, removed and changed from SNAPSHOT to another snapshot, by resource and namespace.
    Diff(DiffArgs),
}

/// `inspect keys` options.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// List only keys that start with this prefix.
    #[arg(id = "inspect_key_prefix", value_name = "PREFIX")]
    pub prefix: Option<String>,
}

/// `inspect get` options.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key.
    #[arg(id = "inspect_key", value_name = "KEY")]
    pub key: String,

    /// Print the value the key had at this revision.
    #[arg(id = "inspect_rev", long = "rev", value_name = "REVISION", conflicts_with = "inspect_all_revisions")]
    pub rev: Option<i64>,

    /// List every revision of the key still in the snapshot, deletions included.
    #[arg(id = "inspect_all_revisions", long = "all-revisions")]
    pub all_revisions: bool,
}

/// `inspect k8s` subcommands.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print objects as YAML (or JSON with -o json) that kubectl apply accepts.
    Get(K8sGetArgs),
}

/// `inspect k8s get` options.
#[derive(Debug, Args)]
pub struct K8sGetArgs {
    /// Resource as kubectl names it (configmaps, cm, secret, svc ...), or its storage path such as route.openshift.io/routes.
    #[arg(id = "inspect_resource", value_name = "RESOURCE")]
    pub resource: String,

    /// Object name; every object of the resource when omitted.
    #[arg(id = "inspect_name", value_name = "NAME")]
    pub name: Option<String>,

    /// Namespace; all namespaces when omitted.
    #[arg(id = "inspect_namespace", short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Drop fields the server sets (resourceVersion, uid, managedFields, creationTimestamp, status ...), so the object can be created again.
    #[arg(id = "inspect_clean", long = "clean")]
    pub clean: bool,

    /// Key prefix to search instead of /registry, /kubernetes.io and /openshift.io (repeatable).
    #[arg(id = "inspect_prefix", long = "prefix", value_name = "PREFIX")]
    pub prefix: Vec<String>,
}

/// `inspect diff` options.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The snapshot to compare SNAPSHOT with: file, backup directory or backup ID.
    #[arg(id = "inspect_other", value_name = "OTHER")]
    pub other: String,

    /// Key prefix that starts the resource path instead of /registry, /kubernetes.io and /openshift.io (repeatable).
    #[arg(id = "inspect_prefix", long = "prefix", value_name = "PREFIX")]
    pub prefix: Vec<String>,
}
