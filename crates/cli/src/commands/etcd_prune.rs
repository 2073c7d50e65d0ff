//! `caasctl etcd backups prune`: applies the keep rules (restic's meaning, see
//! `caasctl_etcd::retention`), prints the plan with a reason for every backup, and removes what the
//! plan drops only after `--yes` or a terminal confirmation; `--dry-run` stops after the plan.

use std::io::{BufRead, Write};
use std::time::SystemTime;

use caasctl_etcd::repo::BackupEntry;
use caasctl_etcd::retention::{self, Candidate, Leftover, LeftoverKind, PlanItem, Policy, PruneOptions};
use clap::Args;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::args::RepoArgs;
use crate::context::Context;
use crate::output::{print_json, print_text, Table};
use crate::Exit;

/// `etcd backups prune` options.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Keep the newest N backups.
    #[arg(id = "prune_keep_last", long = "keep-last", value_name = "N", default_value_t = 0)]
    pub keep_last: u32,

    /// Keep the newest backup of each of the last N hours that have one (local time).
    #[arg(id = "prune_keep_hourly", long = "keep-hourly", value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,

    /// Keep the newest backup of each of the last N days that have one (local time).
    #[arg(id = "prune_keep_daily", long = "keep-daily", value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,

    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(id = "prune_keep_weekly", long = "keep-weekly", value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,

    /// Keep the newest backup of each of the last N months that have one.
    #[arg(id = "prune_keep_monthly", long = "keep-monthly", value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,

    /// Keep the newest backup of each of the last N years that have one.
    #[arg(id = "prune_keep_yearly", long = "keep-yearly", value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,

    /// Also remove backups whose last verification failed.
    #[arg(id = "prune_include_failed", long = "include-failed")]
    pub include_failed: bool,

    /// Print the plan and stop.
    #[arg(id = "prune_dry_run", long = "dry-run", conflicts_with = "prune_yes")]
    pub dry_run: bool,

    /// Remove without asking.
    #[arg(id = "prune_yes", long = "yes", short = 'y')]
    pub yes: bool,
}

impl PruneArgs {
    fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
        }
    }
}

/// Splits repository entries into retention candidates and leftovers.
pub fn classify(entries: &[BackupEntry], now: SystemTime) -> (Vec<Candidate>, Vec<Leftover>) {
    let mut candidates = Vec::new();
    let mut leftovers = Vec::new();
    for entry in entries {
        match (&entry.manifest, entry.state) {
            (Some(manifest), "complete") => {
                let time = OffsetDateTime::parse(&manifest.started_at, &Rfc3339)
                    .or_else(|_| OffsetDateTime::parse(&manifest.finished_at, &Rfc3339))
                    .unwrap_or_else(|_| entry.modified.map(OffsetDateTime::from).unwrap_or(OffsetDateTime::UNIX_EPOCH));
                candidates.push(Candidate { id: entry.id.clone(), time: retention::local_time(time), failed: entry.failed_verification() });
            }
            _ => {
                let kind = match entry.state {
                    "deleting" => LeftoverKind::Deleting,
                    _ if entry.path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) => LeftoverKind::Incomplete,
                    _ if entry.problem.as_deref() == Some(caasctl_etcd::store::UNFINISHED) => LeftoverKind::Incomplete,
                    _ => LeftoverKind::Unreadable,
                };
                let age = entry.modified.and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
                leftovers.push(Leftover { name: entry.id.clone(), kind, age });
            }
        }
    }
    (candidates, leftovers)
}

#[derive(serde::Serialize)]
struct PruneReport<'a> {
    policy: Policy,
    dry_run: bool,
    plan: &'a [PlanItem],
    removed: Vec<String>,
    errors: Vec<String>,
}

/// Renders the plan as a table.
pub fn render_plan(plan: &[PlanItem], context: &Context) -> String {
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("backups.col.id"), t("prune.col.kind"), t("prune.col.action"), t("prune.col.reason")]);
    for item in plan {
        let action = if item.keep { t("prune.keep") } else { t("prune.remove") };
        let reasons: Vec<String> = item.reasons.iter().map(|r| r.message().render(context.lang)).collect();
        table.row(vec![item.id.clone(), item.kind.to_owned(), action, reasons.join("; ")]);
    }
    table.render()
}

/// Runs the command.
pub async fn run(args: &PruneArgs, context: &Context) -> anyhow::Result<Exit> {
    let repo = args.repo.resolve()?.0.open_existing()?;
    let entries = repo.list().await?;
    let (candidates, leftovers) = classify(&entries, SystemTime::now());
    let plan = retention::plan(&candidates, &leftovers, args.policy(), PruneOptions { include_failed: args.include_failed });
    let doomed: Vec<&PlanItem> = plan.iter().filter(|i| !i.keep).collect();

    if !context.json() {
        print_text(&render_plan(&plan, context));
        let summary = context.tr("prune.summary", &[("remove", &doomed.len()), ("keep", &(plan.len() - doomed.len()))]);
        print_text(&format!("{summary}\n"));
    }
    let mut report = PruneReport { policy: args.policy(), dry_run: args.dry_run, plan: &plan, removed: Vec::new(), errors: Vec::new() };
    if args.dry_run || doomed.is_empty() {
        if context.json() {
            print_json(&report);
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !confirm(context, doomed.len()) {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("prune.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    for item in doomed {
        let Some(entry) = entries.iter().find(|e| e.id == item.id && (item.kind == "backup") == (e.state == "complete")) else { continue };
        match repo.remove(entry).await {
            Ok(()) => {
                tracing::info!(id = %item.id, kind = item.kind, "removed");
                report.removed.push(item.id.clone());
            }
            Err(error) => {
                tracing::warn!(id = %item.id, error = %error, "removal failed");
                report.errors.push(format!("{}: {error}", item.id));
            }
        }
    }
    if context.json() {
        print_json(&report);
    } else {
        print_text(&format!("{}\n", context.tr("prune.removed", &[("count", &report.removed.len())])));
        for error in &report.errors {
            print_text(&format!("  {error}\n"));
        }
    }
    Ok(if report.errors.is_empty() { Exit::Success } else { Exit::Partial })
}

/// Asks on the terminal; false when stdin is not a terminal or the answer is not yes.
fn confirm(context: &Context, count: usize) -> bool {
    if !context.stdin_tty {
        return false;
    }
    eprint!("{} ", context.tr("prune.confirm", &[("count", &count)]));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    let answer = answer.trim().to_lowercase();
    answer == "y" || answer == "yes" || answer == context.tr("yes", &[]).to_lowercase()
}
