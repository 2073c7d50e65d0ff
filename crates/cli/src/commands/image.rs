//! `caasctl image sync` and `caasctl image rollout`: the runbook's mirroring of component images
//! into the local registry (docker pull, tag, push) and the node-by-node update, as registry API
//! copies and digest-checked pulls.

mod progress;
mod rollout;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use caasctl_registry::auth::AuthStore;
use caasctl_registry::copy::{Copier, CopyOptions, CopyReport, CopyStatus};
use caasctl_registry::sync::{self, SyncJob};
use caasctl_registry::{ClientOptions, Registries};
use clap::{Args, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::output::{self, Table};
use crate::Exit;

/// `caasctl image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Copy images between registries over the registry API, with every platform and unchanged digests.
    Sync(SyncArgs),

    /// Pull an image on nodes one at a time over SSH and check that each reports the registry's digest.
    Rollout(RolloutArgs),
}

/// How to reach registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Registry (HOST:PORT) to reach over plain HTTP; repeat for more.
    #[arg(long = "insecure", id = "image_insecure", value_name = "REGISTRY")]
    pub insecure: Vec<String>,

    /// Docker config.json with registry credentials (default $DOCKER_CONFIG/config.json, then ~/.docker/config.json).
    #[arg(long = "authfile", id = "image_authfile", value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    /// Builds the registry clients: credentials from the named file (which must exist) or from
    /// the default config.json (which may be missing).
    pub fn registries(&self) -> anyhow::Result<Arc<Registries>> {
        let auth = match (&self.authfile, AuthStore::default_path()) {
            (Some(path), _) => AuthStore::load(path, true)?,
            (None, Some(path)) => AuthStore::load(&path, false)?,
            (None, None) => AuthStore::default(),
        };
        Ok(Arc::new(Registries::new(ClientOptions { insecure: self.insecure.clone(), auth, ..ClientOptions::default() })))
    }
}

/// `image sync` options.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source image, such as docker.io/99cloud/etcd:v3.4.
    #[arg(id = "image_source", value_name = "SOURCE", required_unless_present = "image_from_file", conflicts_with = "image_from_file")]
    pub source: Option<String>,

    /// Destination: a registry (10.0.0.5:5000), a repository, or a whole reference with tag.
    #[arg(id = "image_destination", value_name = "DESTINATION", requires = "image_source")]
    pub destination: Option<String>,

    /// File with one image per line: SOURCE DESTINATION; text after # is ignored.
    #[arg(long = "from-file", id = "image_from_file", value_name = "LIST")]
    pub from_file: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// List what would be copied and change nothing.
    #[arg(long = "dry-run", id = "image_dry_run")]
    pub dry_run: bool,

    /// Images copied at once; blob transfers run up to the same number at once.
    #[arg(long = "jobs", id = "image_jobs", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Upload blobs larger than this many MiB in chunks of that size (default: one request per blob).
    #[arg(long = "chunk-size", id = "image_chunk_size", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub chunk_size: Option<u64>,

    /// Overwrite a tag without keeping its previous manifest under a backup tag.
    #[arg(long = "no-backup-tag", id = "image_no_backup_tag")]
    pub no_backup_tag: bool,
}

/// Container runtime choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// Docker when the node has it, else crictl.
    Auto,
    /// Docker Engine.
    Docker,
    /// A CRI runtime through crictl.
    Crictl,
}

/// `image rollout` options.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Image to roll out, as nodes pull it: REGISTRY/REPOSITORY:TAG.
    #[arg(id = "image_ref", value_name = "IMAGE")]
    pub image: String,

    /// Comma-separated hosts, in rollout order.
    #[arg(long = "hosts", id = "image_hosts", value_name = "H1,H2", value_delimiter = ',', required_unless_present = "image_group", conflicts_with = "image_group")]
    pub hosts: Vec<String>,

    /// Roll out to the hosts of this Ansible inventory group (such as nodes), in inventory order.
    #[arg(long = "group", id = "image_group", value_name = "GROUP")]
    pub group: Option<String>,

    /// Ansible inventory that --group reads.
    #[arg(long = "inventory", id = "image_inventory", value_name = "FILE", default_value = "/etc/ansible/hosts", env = "ANSIBLE_INVENTORY")]
    pub inventory: PathBuf,

    /// Container runtime on the nodes: docker, crictl, or auto (docker when present).
    #[arg(long = "runtime", id = "image_runtime", value_name = "RUNTIME", value_enum, default_value_t = RuntimeArg::Auto)]
    pub runtime: RuntimeArg,

    /// Program that runs a command on a host, called as PROGRAM HOST COMMAND (default: ssh -o BatchMode=yes).
    #[arg(long = "ssh-command", id = "image_ssh_command", value_name = "PROGRAM")]
    pub ssh_command: Option<String>,

    /// Journal file of finished nodes; a rerun with the same file skips them.
    #[arg(long = "journal", id = "image_journal", value_name = "FILE")]
    pub journal: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs an `image` subcommand.
pub async fn run(command: ImageCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        ImageCommand::Sync(args) => sync_images(&args, context).await,
        ImageCommand::Rollout(args) => rollout::run(&args, context).await,
    }
}

/// The JSON of `caasctl image sync -o json`.
#[derive(Debug, serde::Serialize)]
struct SyncOutput<'a> {
    /// One report per image, in list order.
    images: &'a [CopyReport],
    /// True for a dry run.
    dry_run: bool,
    /// Milliseconds the whole run took.
    elapsed_ms: u64,
}

async fn sync_images(args: &SyncArgs, context: &Context) -> anyhow::Result<Exit> {
    let jobs: Vec<SyncJob> = match (&args.from_file, &args.source, &args.destination) {
        (Some(path), _, _) => sync::read_list(path)?,
        (None, Some(source), Some(destination)) => vec![SyncJob::new(source, destination)?],
        _ => anyhow::bail!(context.tr("registry.sync.no_jobs", &[])),
    };
    let registries = args.registry.registries()?;
    let options = CopyOptions {
        dry_run: args.dry_run,
        chunk_size: args.chunk_size.map(|mib| mib * 1024 * 1024),
        blob_jobs: usize::from(args.jobs),
        backup_tags: !args.no_backup_tag,
        ..CopyOptions::default()
    };
    let copier = Arc::new(Copier::new(registries, options, CancellationToken::new()));
    let bars = progress::ImageBars::new(context);
    let started = Instant::now();

    let reports = if jobs.len() == 1 && args.from_file.is_none() {
        // A single image returns its error, so that the message and hint are localised.
        let (report, error) = copier.copy(&jobs[0].source, &jobs[0].destination, sync::ProgressFactory::image(&bars, &jobs[0].destination.to_string())).await;
        if let Some(error) = error {
            if context.json() {
                output::print_json(&SyncOutput { images: &[report], dry_run: args.dry_run, elapsed_ms: started.elapsed().as_millis() as u64 });
            }
            return Err(error).with_context(|| format!("{} -> {}", jobs[0].source, jobs[0].destination));
        }
        vec![report]
    } else {
        sync::run(copier, &jobs, usize::from(args.jobs), &bars).await
    };
    let elapsed = started.elapsed();
    bars.clear();

    if context.json() {
        output::print_json(&SyncOutput { images: &reports, dry_run: args.dry_run, elapsed_ms: elapsed.as_millis() as u64 });
    } else {
        print_sync_text(&reports, args.dry_run, elapsed.as_secs_f64(), context);
    }
    let failed = reports.iter().filter(|r| r.status == CopyStatus::Failed).count();
    Ok(match failed {
        0 => Exit::Success,
        n if n == reports.len() => Exit::Failure,
        _ => Exit::Partial,
    })
}

fn short_digest(digest: Option<&str>) -> String {
    digest.map(|d| d.trim_start_matches("sha256:").chars().take(12).collect()).unwrap_or_else(|| "-".to_owned())
}

fn print_sync_text(reports: &[CopyReport], dry_run: bool, seconds: f64, context: &Context) {
    let header = context.tr("registry.sync.header", &[]);
    let mut table = Table::new(header.split(',').map(str::to_owned).collect());
    for report in reports {
        let status = match report.status {
            CopyStatus::Copied => context.tr("registry.sync.status.copied", &[]),
            CopyStatus::UpToDate => context.tr("registry.sync.status.up-to-date", &[]),
            CopyStatus::WouldCopy => context.tr("registry.sync.status.would-copy", &[]),
            CopyStatus::Failed => context.tr("registry.sync.status.failed", &[]),
        };
        let blobs = format!("{}/{}", report.blobs_copied + report.blobs_mounted, report.blobs_total);
        table.row(vec![report.source.clone(), report.destination.clone(), status, short_digest(report.digest.as_deref()), blobs, output::human_bytes(report.bytes_copied)]);
    }
    let mut text = table.render();
    for report in reports {
        if let (Some(previous), Some(backup)) = (&report.previous_digest, &report.backup_tag) {
            text.push_str(&context.tr("registry.sync.backup", &[("destination", &report.destination), ("previous", previous), ("backup", backup)]));
            text.push('\n');
        }
        if let Some(error) = &report.error {
            text.push_str(&format!("{}: {error}\n", report.destination));
        }
    }
    let bytes = output::human_bytes(reports.iter().map(|r| r.bytes_copied).sum());
    let count = |status: CopyStatus| reports.iter().filter(|r| r.status == status).count();
    let summary = if dry_run {
        context.tr("registry.sync.dry_run_summary", &[("images", &reports.len()), ("would_copy", &count(CopyStatus::WouldCopy)), ("bytes", &bytes)])
    } else {
        context.tr(
            "registry.sync.summary",
            &[
                ("images", &reports.len()),
                ("copied", &count(CopyStatus::Copied)),
                ("up_to_date", &count(CopyStatus::UpToDate)),
                ("failed", &count(CopyStatus::Failed)),
                ("bytes", &bytes),
                ("seconds", &format!("{seconds:.2}")),
            ],
        )
    };
    text.push_str(&summary);
    text.push('\n');
    output::print_text(&text);
}
