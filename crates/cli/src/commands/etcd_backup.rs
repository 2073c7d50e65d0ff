//! `caasctl etcd backup`: a verified snapshot plus the configuration directory in the repository.

use std::path::{Path, PathBuf};

use caasctl_etcd::backup::{run_backup_with_archives, BackupError, BackupOutcome, BackupRequest, ConfigSource};
use caasctl_etcd::snapshot::StreamOptions;

use crate::args::BackupArgs;
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text};
use crate::Exit;

use super::{endpoints, etcd_health};

const DEFAULT_CONFIG_DIR: &str = "/etc/etcd";

/// Runs the command.
pub async fn run(args: &BackupArgs, context: &Context) -> anyhow::Result<Exit> {
    if args.v2.api == "2" {
        return super::etcd_backup_v2::run(args, context).await;
    }
    let outcome = take(args, context).await?;
    print_outcome(&outcome, context);
    Ok(Exit::Success)
}

/// Takes the backup and returns it without printing it; `snapshot create --with-etcd-backup`
/// shares it.
pub async fn take(args: &BackupArgs, context: &Context) -> anyhow::Result<BackupOutcome> {
    let fetched = match &args.cluster {
        Some(file) => super::cluster_backup::fetch_configs(file).await?,
        None => Vec::new(),
    };
    let access = match &args.cluster {
        Some(file) => super::cluster_backup::access(file, &args.endpoints)?,
        None => endpoints::resolve(&args.endpoints)?,
    };
    let (resolved, config) = args.repo.resolve()?;
    let recipients = args.encryption.recipients(&config)?;
    let request = BackupRequest {
        access,
        repo: resolved.repo.clone(),
        s3: resolved.s3(),
        recipients,
        config: config_sources(args, context),
        timeouts: endpoints::timeouts(&args.endpoints),
        stream: StreamOptions { rate_limit: args.rate_limit.map(|mib| (mib * 1024.0 * 1024.0) as u64) },
    };
    if resolved.repo.starts_with("s3://") && request.recipients.is_empty() && !context.quiet {
        eprintln!("caasctl: {}", context.tr("s3.warn.unencrypted", &[("repo", &resolved.repo)]));
    }
    let progress = crate::progress::reporter(context);
    let outcome = match run_backup_with_archives(&request, &fetched, progress.as_ref()).await {
        Ok(outcome) => outcome,
        Err(BackupError::NoHealthyMember { health }) => {
            if !context.json() {
                print_text(&etcd_health::render(&health, context));
            }
            return Err(BackupError::NoHealthyMember { health }.into());
        }
        Err(error) => return Err(error.into()),
    };
    Ok(outcome)
}

fn print_outcome(outcome: &BackupOutcome, context: &Context) {
    // A member that was down or of another cluster is named even though the backup succeeded.
    for health in outcome.health.iter().filter(|h| !h.healthy) {
        let reason = match &health.error_message {
            Some((message, _)) => message.render(context.lang),
            None => health.error.clone().unwrap_or_default(),
        };
        eprintln!("caasctl: {}", context.tr("backup.warn_unhealthy", &[("endpoint", &health.endpoint), ("reason", &reason)]));
    }
    if context.json() {
        print_json(&outcome.manifest);
        return;
    }
    let m = &outcome.manifest;
    for attempt in &outcome.failed_attempts {
        print_text(&format!("{}\n", context.tr("backup.retried", &[("endpoint", &attempt.endpoint), ("error", &attempt.error)])));
    }
    let lines = [
        context.tr("backup.done", &[("id", &m.id), ("path", &outcome.path.display())]),
        context.tr("backup.source", &[("endpoint", &m.source_member.endpoint), ("name", &m.source_member.name), ("version", &m.etcd_version)]),
        context.tr("backup.size", &[("size", &human_bytes(m.snapshot.size)), ("revision", &m.revision), ("keys", &m.key_count)]),
        context.tr("backup.sha256", &[("sha256", &m.snapshot.sha256)]),
        context.tr("backup.config", &[("count", &m.config_archives.len())]),
    ];
    print_text(&(lines.join("\n") + "\n"));
}

/// Picks the configuration directories: those given, or `/etc/etcd` when it is readable; none
/// with `--cluster`, which archives each member's directory on its own host.
fn config_sources(args: &BackupArgs, context: &Context) -> Vec<ConfigSource> {
    if args.no_config || args.cluster.is_some() {
        return Vec::new();
    }
    let member = local_hostname();
    let dirs: Vec<PathBuf> = if args.config_dir.is_empty() {
        let default = Path::new(DEFAULT_CONFIG_DIR);
        match std::fs::read_dir(default) {
            Ok(_) => vec![default.to_owned()],
            Err(error) => {
                if !context.quiet {
                    eprintln!("caasctl: {}", context.tr("backup.warn.no_config_dir", &[("dir", &DEFAULT_CONFIG_DIR), ("reason", &error)]));
                }
                Vec::new()
            }
        }
    } else {
        args.config_dir.clone()
    };
    dirs.into_iter()
        .enumerate()
        .map(|(index, dir)| ConfigSource { member: if index == 0 { member.clone() } else { format!("{member}-{index}") }, dir })
        .collect()
}

/// Returns this host's name, `localhost` when it cannot be read.
pub(crate) fn local_hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length and gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
