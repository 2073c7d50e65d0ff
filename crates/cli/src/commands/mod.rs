//! Dispatch of subcommands, one module per command.

pub(crate) mod cluster_backup;
mod doctor;
mod endpoints;
pub(crate) mod etcd_backup;
pub(crate) mod etcd_backup_v2;
mod etcd_backups;
pub(crate) mod etcd_prune;
pub(crate) mod repo_opts;
mod etcd_health;
pub(crate) mod etcd_inspect;
mod etcd_members;
pub(crate) mod image;
pub(crate) mod etcd_restore;
mod etcd_restore_v2;
pub(crate) mod ops;
mod kube_health;
pub mod snapshot;
pub(crate) mod snapshot_etcd;
pub(crate) mod snapshot_rollback;
pub(crate) mod snapshot_targets;
pub(crate) mod inventory;
pub(crate) mod node;
pub(crate) mod node_add_steps;
pub(crate) mod node_migrate;
pub(crate) mod node_remove;
pub(crate) mod node_remove_steps;
pub(crate) mod volume;
pub(crate) mod serve;

use crate::args::{BackupsCommand, Command, EtcdCommand};
use crate::context::Context;
use crate::Exit;

/// Runs a parsed command.
pub async fn run(command: Command, context: &Context) -> anyhow::Result<Exit> {
    match command {
        Command::Etcd(EtcdCommand::Health(args)) => etcd_health::run(&args, context).await,
        Command::Etcd(EtcdCommand::Members(args)) => etcd_members::run(&args, context).await,
        Command::Etcd(EtcdCommand::Backup(args)) => etcd_backup::run(&args, context).await,
        Command::Etcd(EtcdCommand::Backups(BackupsCommand::List(args))) => etcd_backups::list(&args, context).await,
        Command::Etcd(EtcdCommand::Backups(BackupsCommand::Verify(args))) => etcd_backups::verify(&args, context).await,
        Command::Etcd(EtcdCommand::Backups(BackupsCommand::Prune(args))) => etcd_prune::run(&args, context).await,
        Command::Etcd(EtcdCommand::Backups(BackupsCommand::Keygen(args))) => etcd_backups::keygen(&args, context),
        Command::Etcd(EtcdCommand::Inspect(args)) => etcd_inspect::run(&args, context).await,
        Command::Doctor(args) => doctor::run(&args, context).await,
        Command::Image(command) => image::run(command, context).await,
        Command::Inventory(command) => inventory::run(&command, context),
        Command::Node(command) => node::run(&command, context).await,
        Command::Etcd(EtcdCommand::Restore(args)) => etcd_restore::run(&args, context).await,
        Command::Ops(command) => ops::run(&command, context).await,
        Command::Snapshot(command) => snapshot::run(command, context).await,
        Command::Volume(command) => volume::run(command, context).await,
        Command::Serve(args) => serve::run(&args, context).await,
    }
}
