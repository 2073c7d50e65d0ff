//! Options of `caasctl snapshot create | list | rollback | delete`.
//!
//! Argument IDs carry a `snapshot_` prefix because help texts are looked up by ID in a catalogue
//! shared by every command, and `--name` or `--yes` mean different things elsewhere.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a disk and wait until it is complete.
    Create(CreateArgs),

    /// List a disk's snapshots.
    List(DiskArgs),

    /// Roll a disk back to a snapshot, after taking a fresh snapshot of its current state.
    Rollback(RollbackArgs),

    /// Delete a snapshot of a disk.
    Delete(DeleteArgs),
}

/// Snapshot backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderChoice {
    /// qcow2 image files on this host, through qemu-img.
    Local,
    /// OpenStack Cinder volumes and Nova servers.
    Openstack,
    /// Alibaba Cloud ECS disks and instances.
    Aliyun,
}

impl ProviderChoice {
    /// Returns the name used on the command line and in journals.
    pub fn name(self) -> &'static str {
        match self {
            ProviderChoice::Local => "local",
            ProviderChoice::Openstack => "openstack",
            ProviderChoice::Aliyun => "aliyun",
        }
    }
}

/// The disk (or hosts) to act on and its backend.
#[derive(Debug, Clone, Args)]
pub struct DiskArgs {
    /// Snapshot backend: local, openstack or aliyun.
    #[arg(id = "snapshot_provider", long = "provider", value_name = "PROVIDER", value_enum)]
    pub provider: ProviderChoice,

    /// Disk: a qcow2 file path (local), a Cinder volume ID (openstack) or an ECS disk ID (aliyun).
    #[arg(id = "snapshot_disk", long = "disk", value_name = "PATH|ID", required_unless_present_any = ["snapshot_hosts", "snapshot_group"], conflicts_with_all = ["snapshot_hosts", "snapshot_group"])]
    pub disk: Option<String>,

    /// Inventory hosts whose disks to use, as mapped under [cloud.hosts] or by host_disks in caasctl.toml; comma-separated.
    #[arg(id = "snapshot_hosts", long = "hosts", value_name = "HOST", value_delimiter = ',', conflicts_with = "snapshot_group")]
    pub hosts: Vec<String>,

    /// Inventory group whose hosts' disks to use, such as etcd or masters; needs -i.
    #[arg(id = "snapshot_group", long = "group", value_name = "GROUP", requires = "snapshot_inventory")]
    pub group: Option<String>,

    /// Ansible inventory file that --group and the hosts' roles are read from.
    #[arg(id = "snapshot_inventory", short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// caasctl.toml holding the [cloud] section (default ./caasctl.toml, then /etc/caasctl/caasctl.toml).
    #[arg(id = "snapshot_config", long = "config", value_name = "FILE", env = "CAASCTL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// How long to wait for the cloud.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Seconds allowed for each wait (snapshot complete, instance stopped, disk rolled back).
    #[arg(id = "snapshot_timeout", long = "timeout", value_name = "SECONDS", default_value_t = 1800)]
    pub timeout: u64,

    /// Seconds between two status polls.
    #[arg(id = "snapshot_poll_interval", long = "poll-interval", value_name = "SECONDS", default_value_t = 5.0)]
    pub poll_interval: f64,
}

/// `snapshot create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub disk: DiskArgs,

    /// Snapshot name.
    #[arg(id = "snapshot_name", long = "name", value_name = "NAME")]
    pub name: String,

    /// Snapshot description.
    #[arg(id = "snapshot_description", long = "description", value_name = "TEXT")]
    pub description: Option<String>,

    /// Snapshot an attached (in-use) Cinder volume; its data is crash-consistent only.
    #[arg(id = "snapshot_force", long = "force")]
    pub force: bool,

    /// Label the snapshot with KEY=VALUE (Cinder metadata, ECS tags); repeatable.
    #[arg(id = "snapshot_tag", long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Return once the cloud accepted the request, without waiting for the snapshot to complete.
    #[arg(id = "snapshot_no_wait", long = "no-wait")]
    pub no_wait: bool,

    /// Before snapshotting etcd hosts, back up etcd as etcd backup --cluster does, with the [etcd] and [backup] tables of caasctl.toml.
    #[arg(id = "snapshot_with_etcd_backup", long = "with-etcd-backup")]
    pub with_etcd_backup: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `snapshot rollback` options.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub disk: DiskArgs,

    /// Name or ID of the snapshot to roll back to.
    #[arg(id = "snapshot_name", long = "name", value_name = "NAME")]
    pub name: String,

    /// Stop the instance the disk is attached to first, and start it again afterwards.
    #[arg(id = "snapshot_stop", long = "stop")]
    pub stop: bool,

    /// Instance (server) to stop and start around the rollback, where the disk does not name one.
    #[arg(id = "snapshot_instance", long = "instance", value_name = "ID")]
    pub instance: Option<String>,

    /// Label the safety snapshot with KEY=VALUE; repeatable.
    #[arg(id = "snapshot_tag", long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Print the plan and stop.
    #[arg(id = "snapshot_dry_run", long = "dry-run", conflicts_with = "snapshot_yes")]
    pub dry_run: bool,

    /// Apply without asking.
    #[arg(id = "snapshot_yes", long = "yes", short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `snapshot delete` options.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub disk: DiskArgs,

    /// Name or ID of the snapshot to delete.
    #[arg(id = "snapshot_name", long = "name", value_name = "NAME")]
    pub name: String,

    /// Delete without asking.
    #[arg(id = "snapshot_yes", long = "yes", short = 'y')]
    pub yes: bool,
}
