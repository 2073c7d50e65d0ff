//! `caasctl volume list` and `caasctl volume expand`: the monitoring and logging data steps of the
//! runbook. `list` shows which pods keep data on which claims. `expand` checks, plans, patches
//! and follows a PVC expansion until `status.capacity` reaches the new size. It names the pods
//! whose restart lets the kubelet grow the file system, or evicts them with `--restart-pod`.

pub mod args;
pub mod backup;
pub mod restore;

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use caasctl_kube::expand::{self, follow, patch_request, pods_using, ClaimStatus, ExpandPlan, ResizeState, Target};
use caasctl_kube::quantity::parse_bytes;
use caasctl_kube::restart::restart_pod;
use caasctl_kube::{connect, list_volume_mounts};

use caasctl_core::Localize;

use crate::context::Context;
use crate::output::{print_json, print_text, Table};
use crate::Exit;

use args::{ExpandArgs, ListArgs, VolumeCommand};

/// Runs a `volume` subcommand.
pub async fn run(command: VolumeCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        VolumeCommand::List(args) => list(&args, context).await,
        VolumeCommand::Expand(args) => expand_claims(&args, context).await,
        VolumeCommand::Backup(args) => backup::run(&args, context).await,
        VolumeCommand::Backups(args) => backup::list_backups(&args, context).await,
        VolumeCommand::Restore(args) => restore::run(&args, context).await,
    }
}

async fn list(args: &ListArgs, context: &Context) -> anyhow::Result<Exit> {
    let client = connect(args.kube.kubeconfig.as_deref()).await?;
    let rows = list_volume_mounts(&client, args.namespace.as_deref()).await?;
    if context.json() {
        print_json(&rows);
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        print_text(&format!("{}\n", context.tr("volume.list.empty", &[])));
        return Ok(Exit::Success);
    }
    let header = ["namespace", "pod", "container", "mount_path", "pvc", "class", "capacity", "expandable"];
    let mut table = Table::new(header.iter().map(|h| context.tr(column_key(h), &[])).collect());
    for row in &rows {
        let expandable = match row.expandable {
            Some(true) => context.tr("volume.yes", &[]),
            Some(false) => context.tr("volume.no", &[]),
            None => "-".to_owned(),
        };
        let mount = if row.read_only { format!("{} (ro)", row.mount_path) } else { row.mount_path.clone() };
        let pvc = if row.phase == "Bound" { row.pvc.clone() } else { format!("{} ({})", row.pvc, row.phase) };
        table.row(vec![
            row.namespace.clone(),
            row.pod.clone(),
            row.container.clone(),
            mount,
            pvc,
            row.storage_class.clone().unwrap_or_else(|| "-".to_owned()),
            row.capacity.clone().unwrap_or_else(|| "-".to_owned()),
            expandable,
        ]);
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

fn column_key(column: &str) -> &'static str {
    match column {
        "namespace" => "volume.column.namespace",
        "pod" => "volume.column.pod",
        "container" => "volume.column.container",
        "mount_path" => "volume.column.mount_path",
        "pvc" => "volume.column.pvc",
        "class" => "volume.column.class",
        "capacity" => "volume.column.capacity",
        "expandable" => "volume.column.expandable",
        "state" => "volume.column.state",
        "request" => "volume.column.request",
        "new_size" => "volume.column.new_size",
        _ => "volume.column.pods",
    }
}

/// JSON result of `volume expand`: `{plan, dry_run, claims: [ClaimStatus], restarted: [pod],
/// failed: [{pvc, error}]}`.
#[derive(Debug, serde::Serialize)]
struct ExpandReport<'a> {
    plan: &'a ExpandPlan,
    dry_run: bool,
    claims: Vec<ClaimStatus>,
    restarted: Vec<String>,
    failed: Vec<FailedClaim>,
}

/// A claim of a StatefulSet that failed while the others went on.
#[derive(Debug, serde::Serialize)]
struct FailedClaim {
    pvc: String,
    error: String,
}

async fn expand_claims(args: &ExpandArgs, context: &Context) -> anyhow::Result<Exit> {
    let client = connect(args.kube.kubeconfig.as_deref()).await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let target = match &args.statefulset {
        Some(name) => Target::StatefulSet { name: name.clone(), template: args.pvc.clone() },
        None => Target::Claim(args.pvc.clone().unwrap_or_default()),
    };
    let target_bytes = parse_bytes(&args.size)?;
    let plan = expand::plan(&client, &namespace, &target, &args.size).await?;
    let mut report = ExpandReport { plan: &plan, dry_run: args.dry_run, claims: Vec::new(), restarted: Vec::new(), failed: Vec::new() };
    if !context.json() {
        print_text(&render_plan(&plan, context));
    }

    if args.dry_run {
        for claim in plan.claims.iter().filter(|c| !c.already_requested) {
            patch_request(&client, &namespace, &claim.name, &args.size, true).await?;
        }
        if context.json() {
            print_json(&report);
        } else {
            print_text(&format!("{}\n", context.tr("volume.expand.dry_run_ok", &[])));
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !confirm(context, plan.claims.len()) {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("volume.expand.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    // A StatefulSet's claims are independent, so one claim that fails does not stop the others;
    // the run then ends with the partial exit code.
    let mut failures: Vec<(String, caasctl_kube::VolumeError)> = Vec::new();
    for claim in plan.claims.iter().filter(|c| !c.already_requested) {
        match patch_request(&client, &namespace, &claim.name, &args.size, false).await {
            Ok(_) => progress(context, "volume.expand.patched", &[("pvc", &claim.name), ("size", &args.size)]),
            Err(error) if args.statefulset.is_some() => failures.push((claim.name.clone(), error)),
            Err(error) => return Err(error.into()),
        }
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    // Claims finish one after another, so with --restart-pod only one pod is down at a time.
    for claim in &plan.claims {
        if failures.iter().any(|(name, _)| *name == claim.name) {
            continue;
        }
        match finish_claim(&client, &namespace, &claim.name, &claim.pods, target_bytes, deadline, args, context, &mut report.restarted).await {
            Ok(status) => report.claims.push(status),
            Err(error) if args.statefulset.is_some() => failures.push((claim.name.clone(), error)),
            Err(error) => return Err(error.into()),
        }
    }

    if report.claims.is_empty() && !failures.is_empty() {
        return Err(failures.remove(0).1.into());
    }
    report.failed = failures.iter().map(|(pvc, error)| FailedClaim { pvc: pvc.clone(), error: error.message().render(context.lang) }).collect();
    if context.json() {
        print_json(&report);
    } else {
        print_text(&format!("{}\n", context.tr("volume.expand.done", &[("count", &report.claims.len()), ("size", &args.size)])));
        for failed in &report.failed {
            eprintln!("caasctl: {}", context.tr("vbackup.expand.claim_failed", &[("pvc", &failed.pvc), ("error", &failed.error)]));
        }
    }
    Ok(if failures.is_empty() { Exit::Success } else { Exit::Partial })
}

/// Follows one claim to its new capacity, evicting its pods with `--restart-pod` once the file
/// system waits for a restart.
#[allow(clippy::too_many_arguments)]
async fn finish_claim(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    pods: &[String],
    target_bytes: u128,
    deadline: Instant,
    args: &ExpandArgs,
    context: &Context,
    restarted: &mut Vec<String>,
) -> Result<ClaimStatus, caasctl_kube::VolumeError> {
    let mut on_change = |status: &ClaimStatus| report_state(context, status, args.restart_pod, pods);
    let until = if args.restart_pod { ResizeState::FileSystemResizePending } else { ResizeState::Done };
    let mut status = follow(client, namespace, name, target_bytes, until, deadline, &mut on_change).await?;
    if status.state == ResizeState::FileSystemResizePending {
        for pod in pods_using(client, namespace, name).await? {
            progress(context, "volume.expand.restarting", &[("pod", &pod)]);
            restart_pod(client, namespace, &pod, deadline).await?;
            restarted.push(pod);
        }
        status = follow(client, namespace, name, target_bytes, ResizeState::Done, deadline, &mut on_change).await?;
    }
    Ok(status)
}

fn render_plan(plan: &ExpandPlan, context: &Context) -> String {
    let mut out = format!("{}\n", context.tr("volume.expand.plan", &[("namespace", &plan.namespace), ("size", &plan.size)]));
    let header = ["pvc", "class", "request", "capacity", "new_size", "pods"];
    let mut table = Table::new(header.iter().map(|h| context.tr(column_key(h), &[])).collect());
    for claim in &plan.claims {
        let request = if claim.already_requested { format!("{} ({})", claim.current_request, context.tr("volume.expand.resume", &[])) } else { claim.current_request.clone() };
        table.row(vec![
            claim.name.clone(),
            claim.storage_class.clone(),
            request,
            claim.current_capacity.clone().unwrap_or_else(|| "-".to_owned()),
            claim.new_size.clone(),
            if claim.pods.is_empty() { "-".to_owned() } else { claim.pods.join(",") },
        ]);
    }
    out.push_str(&table.render());
    out
}

/// Writes a progress line on stderr unless progress is off.
fn progress(context: &Context, key: &'static str, args: &[(&'static str, &dyn std::fmt::Display)]) {
    if context.progress {
        eprintln!("{}", context.tr(key, args));
    }
}

fn report_state(context: &Context, status: &ClaimStatus, restarting: bool, pods: &[String]) {
    let capacity = status.capacity.as_deref().unwrap_or("-");
    progress(context, "volume.expand.state", &[("pvc", &status.name), ("state", &status.state), ("capacity", &capacity)]);
    if status.state == ResizeState::FileSystemResizePending && !restarting {
        // Printed even with --no-progress: the operator has to act on it.
        let pods = if pods.is_empty() { "-".to_owned() } else { pods.join(", ") };
        eprintln!("{}", context.tr("volume.expand.restart_needed", &[("pvc", &status.name), ("pods", &pods)]));
    }
}

/// Asks for confirmation on the terminal. Returns false when stdin is not a terminal or the reply
/// is not yes.
fn confirm(context: &Context, count: usize) -> bool {
    if !context.stdin_tty {
        return false;
    }
    eprint!("{} ", context.tr("volume.expand.confirm", &[("count", &count)]));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    let answer = answer.trim().to_lowercase();
    answer == "y" || answer == "yes" || answer == context.tr("yes", &[]).to_lowercase()
}
