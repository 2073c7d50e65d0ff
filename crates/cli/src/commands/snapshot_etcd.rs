//! `snapshot create --with-etcd-backup`: an etcd backup taken before the disks of etcd hosts are
//! snapshotted, so that a disk rolled back later can be paired with data that etcd itself wrote
//! consistently. The backup is the one `caasctl etcd backup --cluster FILE --config FILE` takes,
//! where FILE is the caasctl.toml that configures the snapshot: its `[etcd]` table names the
//! members and its `[backup]` table the repository.

use clap::Parser;
use tracing::info;

use super::snapshot::args::DiskArgs;
use super::snapshot::{config_path, SnapshotCliError};
use crate::args::BackupArgs;
use crate::context::Context;

/// The backup taken first, as `snapshot create` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EtcdBackupTaken {
    /// Backup ID in the repository.
    pub id: String,
    /// Backup directory or object prefix.
    pub path: String,
    /// Revision the snapshot was taken at.
    pub revision: i64,
}

/// Parses `etcd backup` options from an argument list, the way the command line would.
#[derive(Debug, Parser)]
#[command(name = "etcd-backup")]
struct BackupCommandLine {
    #[command(flatten)]
    args: BackupArgs,
}

/// Takes the etcd backup of the cluster described by the snapshot's caasctl.toml.
///
/// # Errors
/// [`SnapshotCliError::EtcdBackupNeedsConfig`] without a caasctl.toml, or the backup's error;
/// no snapshot is taken then.
pub async fn back_up_first(args: &DiskArgs, context: &Context) -> anyhow::Result<EtcdBackupTaken> {
    let config = config_path(args).ok_or(SnapshotCliError::EtcdBackupNeedsConfig)?;
    let config = config.display().to_string();
    let parsed = BackupCommandLine::try_parse_from(["etcd-backup", "--cluster", &config, "--config", &config])?;
    info!(config = %config, "etcd backup before the snapshots of etcd hosts");
    let outcome = super::etcd_backup::take(&parsed.args, context).await?;
    Ok(EtcdBackupTaken { id: outcome.manifest.id.clone(), path: outcome.path.display().to_string(), revision: outcome.manifest.revision })
}
