//! `caasctl snapshot create | list | rollback | delete`: VM disk snapshots on local qcow2 images,
//! OpenStack and Alibaba Cloud ECS.
//!
//! A rollback is a plan like every destructive command: it is printed, `--dry-run` stops there,
//! and applying it needs `--yes` or a "yes" at the terminal. Deleting a snapshot needs the same confirmation.

pub mod args;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use caasctl_cloud::config::{self, CloudConfig};
use caasctl_cloud::local::LocalProvider;
use caasctl_cloud::model::{CreateRequest, Snapshot, SnapshotTags};
use caasctl_cloud::rollback::{self, RollbackPlan, RollbackRequest};
use caasctl_cloud::wait::WaitOptions;
use caasctl_cloud::{ops, SnapshotProvider};
use caasctl_core::{Lang, Localize, Message};

use self::args::{CreateArgs, DeleteArgs, DiskArgs, ProviderChoice, RollbackArgs, SnapshotCommand, WaitArgs};
use super::snapshot_targets::{self, Target};
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

/// Errors of the snapshot commands' own options.
#[derive(Debug)]
pub enum SnapshotCliError {
    /// A cloud provider was chosen but no caasctl.toml was found.
    NoConfig {
        /// Provider name.
        provider: &'static str,
    },
    /// The config file has no section for the chosen provider.
    NotConfigured {
        /// Provider name.
        provider: &'static str,
        /// Config file read.
        path: PathBuf,
    },
    /// A `--tag` value is not KEY=VALUE.
    BadTag {
        /// Value given.
        value: String,
    },
    /// The command needs `--yes` because stdin is not a terminal.
    NeedsYes,
    /// A host given to `--hosts` has no `[cloud.hosts]` entry.
    HostNotMapped {
        /// Host name.
        host: String,
    },
    /// Rollback and delete act on one disk at a time.
    OneDiskOnly,
    /// `--with-etcd-backup` needs a caasctl.toml with an `[etcd]` table.
    EtcdBackupNeedsConfig,
    /// `--group` names a group with no hosts in the inventory.
    GroupEmpty {
        /// Group name.
        group: String,
        /// Inventory file.
        inventory: String,
    },
}

impl std::fmt::Display for SnapshotCliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message().render(Lang::En))
    }
}

impl std::error::Error for SnapshotCliError {}

impl Localize for SnapshotCliError {
    fn message(&self) -> Message {
        match self {
            SnapshotCliError::NoConfig { provider } => Message::new("snapshot.error.no_config").arg("provider", provider),
            SnapshotCliError::NotConfigured { provider, path } => {
                Message::new("snapshot.error.not_configured").arg("provider", provider).arg("path", path.display())
            }
            SnapshotCliError::BadTag { value } => Message::new("snapshot.error.bad_tag").arg("value", value),
            SnapshotCliError::NeedsYes => Message::new("snapshot.error.needs_yes"),
            SnapshotCliError::HostNotMapped { host } => Message::new("snapshot.error.host_not_mapped").arg("host", host),
            SnapshotCliError::OneDiskOnly => Message::new("snapshot.error.one_disk_only"),
            SnapshotCliError::EtcdBackupNeedsConfig => Message::new("cluster_backup.error.etcd_backup_needs_config"),
            SnapshotCliError::GroupEmpty { group, inventory } => Message::new("cluster_backup.error.group_empty").arg("group", group).arg("inventory", inventory),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            SnapshotCliError::NoConfig { .. } | SnapshotCliError::NotConfigured { .. } => Some(Message::new("cloud.hint.config")),
            SnapshotCliError::BadTag { .. } => None,
            SnapshotCliError::NeedsYes => Some(Message::new("snapshot.hint.needs_yes")),
            SnapshotCliError::HostNotMapped { .. } => Some(Message::new("cluster_backup.hint.host_not_mapped")),
            SnapshotCliError::OneDiskOnly => None,
            SnapshotCliError::GroupEmpty { .. } => Some(Message::new("cluster_backup.hint.group_empty")),
            SnapshotCliError::EtcdBackupNeedsConfig => Some(Message::new("cluster_backup.hint.etcd_backup_needs_config")),
        }
    }
}

/// Runs a `snapshot` subcommand.
pub async fn run(command: SnapshotCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        SnapshotCommand::Create(args) => create(&args, context).await,
        SnapshotCommand::List(args) => list(&args, context).await,
        SnapshotCommand::Rollback(args) => rollback(&args, context).await,
        SnapshotCommand::Delete(args) => delete(&args, context).await,
    }
}

pub(crate) fn config_path(args: &DiskArgs) -> Option<PathBuf> {
    if let Some(path) = &args.config {
        return Some(path.clone());
    }
    ["caasctl.toml", "/etc/caasctl/caasctl.toml"].iter().map(PathBuf::from).find(|p| p.exists())
}

fn load_config(args: &DiskArgs) -> anyhow::Result<Option<(PathBuf, CloudConfig)>> {
    match config_path(args) {
        Some(path) => {
            let config = config::load(&path)?;
            Ok(Some((path, config)))
        }
        None => Ok(None),
    }
}

/// Returns the one disk that rollback and delete act on.
fn single_disk(args: &DiskArgs) -> Result<&str, SnapshotCliError> {
    args.disk.as_deref().ok_or(SnapshotCliError::OneDiskOnly)
}

/// Builds the provider chosen with `--provider` from the `[cloud]` section of caasctl.toml, and
/// returns the section with it.
fn provider(args: &DiskArgs) -> anyhow::Result<(Box<dyn SnapshotProvider>, CloudConfig)> {
    let loaded = load_config(args)?;
    let config = loaded.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
    let built = build_provider(args.provider, loaded)?;
    Ok((built, config))
}

/// Builds a provider from the caasctl.toml at `config`, for a rollback resumed from its journal.
pub(crate) fn build_provider_from(choice: ProviderChoice, config: Option<PathBuf>) -> anyhow::Result<Box<dyn SnapshotProvider>> {
    let loaded = match config {
        Some(path) => {
            let section = config::load(&path)?;
            Some((path, section))
        }
        None => None,
    };
    build_provider(choice, loaded)
}

fn build_provider(choice: ProviderChoice, loaded: Option<(PathBuf, CloudConfig)>) -> anyhow::Result<Box<dyn SnapshotProvider>> {
    match choice {
        ProviderChoice::Local => {
            let qemu_img = loaded.as_ref().and_then(|(_, c)| c.local.as_ref()).and_then(|l| l.qemu_img.clone());
            Ok(Box::new(qemu_img.map(LocalProvider::with_binary).unwrap_or_default()))
        }
        ProviderChoice::Openstack => {
            let (path, config) = loaded.ok_or(SnapshotCliError::NoConfig { provider: "openstack" })?;
            let section = config.openstack.ok_or(SnapshotCliError::NotConfigured { provider: "openstack", path })?;
            Ok(Box::new(caasctl_cloud::openstack::OpenstackProvider::new(&section)?))
        }
        ProviderChoice::Aliyun => {
            let (path, config) = loaded.ok_or(SnapshotCliError::NoConfig { provider: "aliyun" })?;
            let section = config.aliyun.ok_or(SnapshotCliError::NotConfigured { provider: "aliyun", path })?;
            Ok(Box::new(caasctl_cloud::aliyun::AliyunProvider::new(&section)?))
        }
    }
}

fn wait_options(args: &WaitArgs) -> WaitOptions {
    WaitOptions { timeout: Duration::from_secs(args.timeout), interval: Duration::from_secs_f64(args.poll_interval.max(0.01)) }
}

fn parse_tags(values: &[String]) -> Result<SnapshotTags, SnapshotCliError> {
    let mut pairs = Vec::new();
    for value in values {
        match value.split_once('=') {
            Some((key, tag)) if !key.is_empty() => pairs.push((key.to_owned(), tag.to_owned())),
            _ => return Err(SnapshotCliError::BadTag { value: value.clone() }),
        }
    }
    Ok(SnapshotTags { pairs })
}

/// The result for one disk of a `--hosts` run.
#[derive(serde::Serialize)]
struct HostResult {
    #[serde(flatten)]
    target: Target,
    snapshot: Option<Snapshot>,
    error: Option<String>,
}

async fn create(args: &CreateArgs, context: &Context) -> anyhow::Result<Exit> {
    let (provider, config) = provider(&args.disk)?;
    let targets = snapshot_targets::resolve(&args.disk, &config)?;
    let single = args.disk.disk.is_some();
    let etcd_backup = if args.with_etcd_backup && targets.iter().any(|t| t.etcd) {
        Some(super::snapshot_etcd::back_up_first(&args.disk, context).await?)
    } else {
        None
    };
    let user_tags = parse_tags(&args.tags)?;
    let wait = (!args.no_wait).then(|| wait_options(&args.wait));
    let progress = percent_reporter(context);
    let time = caasctl_core::timefmt::rfc3339(caasctl_core::timefmt::now());

    let mut results = Vec::new();
    for target in targets {
        let mut tags = SnapshotTags::default();
        if let Some(cluster) = &config.cluster {
            tags.pairs.push(("caasctl:cluster".into(), cluster.clone()));
        }
        if let Some(host) = &target.host {
            tags.pairs.push(("caasctl:host".into(), host.clone()));
        }
        if let Some(role) = &target.role {
            tags.pairs.push(("caasctl:role".into(), role.clone()));
        }
        tags.pairs.push(("caasctl:time".into(), time.clone()));
        tags.pairs.extend(user_tags.pairs.iter().cloned());
        let request = CreateRequest { name: args.name.clone(), description: args.description.clone(), force: args.force, tags };
        let outcome = ops::create(provider.as_ref(), &target.disk, &request, wait, progress.as_ref()).await;
        if single {
            // A single --disk reports its error as the command's error, with its hint.
            let snapshot = outcome?;
            results.push(HostResult { target, snapshot: Some(snapshot), error: None });
            break;
        }
        match outcome {
            Ok(snapshot) => results.push(HostResult { target, snapshot: Some(snapshot), error: None }),
            Err(error) => results.push(HostResult { target, snapshot: None, error: Some(error.message().render(context.lang)) }),
        }
    }

    if context.json() {
        if single {
            print_json(&results[0].snapshot);
        } else if let Some(backup) = &etcd_backup {
            print_json(&serde_json::json!({ "etcd_backup": backup, "snapshots": results }));
        } else {
            print_json(&results);
        }
    } else {
        if let Some(backup) = &etcd_backup {
            print_text(&format!("{}\n", context.tr("cluster_backup.etcd_backup_taken", &[("id", &backup.id), ("path", &backup.path)])));
        }
        for result in &results {
            let line = match (&result.snapshot, &result.error) {
                (Some(snapshot), _) => context.tr(
                    "snapshot.created",
                    &[("name", &snapshot.name), ("id", &snapshot.id), ("disk", &result.target.disk), ("status", &snapshot.raw_status)],
                ),
                (None, error) => context.tr("snapshot.create_failed", &[("disk", &result.target.disk), ("error", &error.clone().unwrap_or_default())]),
            };
            let host = result.target.host.as_ref().map(|h| format!("{h}: ")).unwrap_or_default();
            print_text(&format!("{host}{line}\n"));
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(match failed {
        0 => Exit::Success,
        n if n == results.len() => Exit::Failure,
        _ => Exit::Partial,
    })
}

async fn list(args: &DiskArgs, context: &Context) -> anyhow::Result<Exit> {
    let (provider, config) = provider(args)?;
    let mut listings = Vec::new();
    for target in snapshot_targets::resolve(args, &config)? {
        listings.push(ops::list(provider.as_ref(), &target.disk).await?);
    }
    if context.json() {
        if args.disk.is_some() {
            print_json(&listings[0]);
        } else {
            print_json(&listings);
        }
        return Ok(Exit::Success);
    }
    for listing in &listings {
        print_text(&format!(
            "{}\n",
            context.tr(
                "snapshot.list.disk",
                &[("disk", &listing.disk.id), ("size", &human_bytes(listing.disk.size_bytes)), ("status", &listing.disk.raw_status)]
            )
        ));
        print_text(&snapshot_table(&listing.snapshots, context));
    }
    Ok(Exit::Success)
}

fn snapshot_table(snapshots: &[Snapshot], context: &Context) -> String {
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("snapshot.col.id"), t("snapshot.col.name"), t("snapshot.col.created"), t("snapshot.col.status"), t("snapshot.col.progress")]);
    for snapshot in snapshots {
        table.row(vec![
            snapshot.id.clone(),
            snapshot.name.clone(),
            snapshot.created_at.clone().unwrap_or_else(|| "-".into()),
            snapshot.raw_status.clone(),
            snapshot.progress.map(|p| format!("{p}%")).unwrap_or_else(|| "-".into()),
        ]);
    }
    table.render()
}

/// The plan as printed with `-o json`.
#[derive(serde::Serialize)]
struct PlanOutput<'a> {
    plan: &'a RollbackPlan,
    steps: Vec<StepView>,
    dry_run: bool,
}

/// One step rendered in the user's language, for JSON readers that show it.
#[derive(serde::Serialize)]
struct StepView {
    what: String,
    undo: String,
}

fn render_plan(plan: &RollbackPlan, context: &Context) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}\n",
        context.tr(
            "snapshot.plan.title",
            &[("provider", &plan.provider), ("disk", &plan.disk.id), ("snapshot", &plan.snapshot.name), ("id", &plan.snapshot.id)]
        )
    ));
    if let Some(taken) = &plan.snapshot.created_at {
        out.push_str(&format!("  {}\n", context.tr("snapshot.plan.taken", &[("time", taken)])));
    }
    if let Some(instance) = &plan.instance {
        out.push_str(&format!("  {}\n", context.tr("snapshot.plan.instance", &[("instance", &instance.id), ("status", &instance.raw_status)])));
    }
    out.push_str(&format!("{}\n", context.tr("snapshot.plan.checks", &[])));
    for key in &plan.checks {
        out.push_str(&format!("  [ok] {}\n", Message::new(key).render(context.lang)));
    }
    out.push_str(&format!("{}\n", context.tr("snapshot.plan.steps", &[])));
    let undo = context.tr("snapshot.plan.undo", &[]);
    for (index, step) in plan.steps.iter().enumerate() {
        out.push_str(&format!("{:>3}. {}\n", index + 1, step.describe().render(context.lang)));
        out.push_str(&format!("     {undo}: {}\n", step.undo().render(context.lang)));
    }
    out
}

async fn rollback(args: &RollbackArgs, context: &Context) -> anyhow::Result<Exit> {
    let disk = single_disk(&args.disk)?;
    let (provider, _) = provider(&args.disk)?;
    let request = RollbackRequest {
        disk: disk.to_owned(),
        snapshot: args.name.clone(),
        stop: args.stop,
        instance: args.instance.clone(),
        tags: parse_tags(&args.tags)?,
    };
    let plan = rollback::plan(provider.as_ref(), &request).await?;

    if context.json() && args.dry_run {
        let steps = plan.steps.iter().map(|s| StepView { what: s.describe().render(context.lang), undo: s.undo().render(context.lang) }).collect();
        print_json(&PlanOutput { plan: &plan, steps, dry_run: true });
        return Ok(Exit::Success);
    }
    if !context.json() {
        print_text(&render_plan(&plan, context));
    }
    if args.dry_run {
        print_text(&format!("{}\n", context.tr("snapshot.plan.dry_run", &[])));
        return Ok(Exit::Success);
    }
    if !args.yes && !confirmed(context, "snapshot.plan.confirm")? {
        eprintln!("{}", context.tr("snapshot.plan.aborted", &[]));
        return Ok(Exit::Failure);
    }

    let body = super::snapshot_rollback::RollbackBody {
        provider: args.disk.provider.name().to_owned(),
        config: config_path(&args.disk).map(|p| std::path::absolute(&p).unwrap_or(p)),
        plan,
        timeout_seconds: args.wait.timeout,
        poll_interval_seconds: args.wait.poll_interval,
    };
    super::snapshot_rollback::apply_new(provider.as_ref(), body, context).await
}

async fn delete(args: &DeleteArgs, context: &Context) -> anyhow::Result<Exit> {
    let disk = single_disk(&args.disk)?;
    let (provider, _) = provider(&args.disk)?;
    if !args.yes {
        eprintln!("{}", context.tr("snapshot.delete.about", &[("snapshot", &args.name), ("disk", &disk)]));
        if !confirmed(context, "snapshot.delete.confirm")? {
            eprintln!("{}", context.tr("snapshot.plan.aborted", &[]));
            return Ok(Exit::Failure);
        }
    }
    let deleted = ops::delete(provider.as_ref(), disk, &args.name).await?;
    if context.json() {
        print_json(&serde_json::json!({ "deleted": deleted }));
    } else {
        print_text(&format!("{}\n", context.tr("snapshot.deleted", &[("name", &deleted.name), ("id", &deleted.id), ("disk", &disk)])));
    }
    Ok(Exit::Success)
}

/// Shows the progress of cloud waits, which report percent complete rather than bytes: a bar
/// with a percentage on a terminal, the shared reporter's log lines elsewhere.
pub(crate) fn percent_reporter(context: &Context) -> Box<dyn caasctl_core::Progress> {
    if context.progress && context.stderr_tty && !context.json() {
        Box::new(PercentBar { bar: std::sync::Mutex::new(None) })
    } else {
        crate::progress::reporter(context)
    }
}

struct PercentBar {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl caasctl_core::Progress for PercentBar {
    fn start(&self, label: &str, total: Option<u64>) {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(100));
        let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(500));
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, amount: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(amount);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Prompts for confirmation at the terminal.
///
/// # Errors
/// [`SnapshotCliError::NeedsYes`] when stdin is not a terminal.
fn confirmed(context: &Context, prompt: &'static str) -> Result<bool, SnapshotCliError> {
    if !context.stdin_tty {
        return Err(SnapshotCliError::NeedsYes);
    }
    eprint!("{}", context.tr(prompt, &[]));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    let answer = answer.trim().to_lowercase();
    Ok(answer == "y" || answer == "yes" || answer == "是")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse() {
        let tags = parse_tags(&["caasctl:cluster=prod".into(), "role=".into()]).unwrap();
        assert_eq!(tags.pairs, vec![("caasctl:cluster".into(), "prod".into()), ("role".into(), "".into())]);
        assert!(parse_tags(&["novalue".into()]).is_err());
        assert!(parse_tags(&["=x".into()]).is_err());
    }
}
