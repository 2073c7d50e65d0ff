//! Applying a disk rollback as a journaled operation: each step of the plan is written to the
//! operation journal before and after it runs, so `caasctl ops list | show` shows the rollback
//! and `caasctl ops resume ID` continues an interrupted one at its first unfinished step.
//!
//! The journal's first line keeps the checked plan, the provider and the caasctl.toml it was
//! configured from, so a resume rebuilds the provider without the original command line.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use caasctl_cloud::provider::{SafetyCopy, SafetyCopyKind};
use caasctl_cloud::rollback::{RollbackOutcome, RollbackPlan, Step};
use caasctl_cloud::rollback_steps::{run_plan_step, step_id};
use caasctl_cloud::wait::WaitOptions;
use caasctl_cloud::SnapshotProvider;
use caasctl_restore::journal::{state_dir, Journal};
use caasctl_restore::procedure::{Procedure, ProcedureOperation, ProcedureStep};

use super::snapshot::{args::ProviderChoice, build_provider_from, percent_reporter};
use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;
use crate::progress::run_journaled_steps;

/// Operation kind of a journaled disk rollback.
pub const KIND: &str = "snapshot-rollback";

/// Settings a resume needs, kept in the journal's first line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RollbackBody {
    /// Provider name: `local`, `openstack` or `aliyun`.
    pub provider: String,
    /// caasctl.toml the provider was configured from, as an absolute path.
    pub config: Option<PathBuf>,
    /// The checked plan.
    pub plan: RollbackPlan,
    /// Seconds allowed for each wait.
    pub timeout_seconds: u64,
    /// Seconds between two polls.
    pub poll_interval_seconds: f64,
}

impl RollbackBody {
    fn wait(&self) -> WaitOptions {
        WaitOptions { timeout: Duration::from_secs(self.timeout_seconds), interval: Duration::from_secs_f64(self.poll_interval_seconds.max(0.01)) }
    }
}

/// Builds the journaled form of a rollback plan.
pub fn procedure(body: &RollbackBody) -> anyhow::Result<Procedure> {
    let steps = body.plan.steps.iter().enumerate().map(|(index, step)| ProcedureStep::new(step_id(index, step), |lang| step.describe().render(lang))).collect();
    Ok(Procedure::new("rollback", KIND, steps, body)?)
}

/// Creates the journal and applies every step of a freshly planned rollback.
pub async fn apply_new(provider: &dyn SnapshotProvider, body: RollbackBody, context: &Context) -> anyhow::Result<Exit> {
    let procedure = procedure(&body)?;
    let journal = Journal::create_procedure(&state_dir(), &procedure)?;
    if context.progress && !context.json() {
        eprintln!("{}", context.tr("restore.run.journal", &[("path", &journal.path().display())]));
    }
    run(provider, &procedure, &body, &journal, &HashSet::new(), false, context).await
}

/// Resumes an interrupted or failed rollback at its first unfinished step.
pub async fn resume(op: &ProcedureOperation, context: &Context) -> anyhow::Result<Exit> {
    let body: RollbackBody = serde_json::from_value(op.procedure.body.clone())
        .with_context(|| context.tr("cluster_backup.error.bad_rollback_body", &[("id", &op.procedure.id)]))?;
    let choice = match body.provider.as_str() {
        "local" => ProviderChoice::Local,
        "openstack" => ProviderChoice::Openstack,
        "aliyun" => ProviderChoice::Aliyun,
        other => anyhow::bail!(context.tr("cluster_backup.error.unknown_provider", &[("id", &op.procedure.id), ("provider", &other)])),
    };
    let provider = build_provider_from(choice, body.config.clone())?;
    let journal = Journal::reopen_procedure(op)?;
    if !context.json() {
        let next = op.next_step().unwrap_or("-");
        eprintln!("{}", context.tr("ops.resume.from", &[("id", &op.procedure.id), ("step", &next)]));
    }
    run(provider.as_ref(), &op.procedure, &body, &journal, &op.finished_set(), true, context).await
}

/// Runs the steps not in `done`, journaling each, and prints the outcome. With `retry`, a step
/// reuses what an interrupted earlier attempt left (see `caasctl_cloud::rollback_steps`).
async fn run(
    provider: &dyn SnapshotProvider,
    procedure: &Procedure,
    body: &RollbackBody,
    journal: &Journal,
    done: &HashSet<String>,
    retry: bool,
    context: &Context,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let plan = &body.plan;
    let progress = percent_reporter(context);
    let mut safety_copy = None;

    let hint = context.tr("cluster_backup.rollback.resume", &[("id", &procedure.id)]);
    let steps = plan.steps.iter().enumerate().map(|(index, step)| (step_id(index, step), index));
    run_journaled_steps(journal, &procedure.id, done, steps, context, &hint, async |index| {
        let copy = run_plan_step(provider, plan, index, retry, body.wait(), progress.as_ref()).await?;
        let note = copy.as_ref().map(|c| format!("safety copy {} (ID {})", c.name, c.id));
        if copy.is_some() {
            safety_copy = copy;
        }
        Ok(note)
    })
    .await?;

    let disk_after = provider.describe_disk(&plan.disk.id).await?;
    let safety_copy = match safety_copy {
        Some(copy) => copy,
        None => find_safety_copy(provider, plan).await,
    };
    let outcome = RollbackOutcome { plan: plan.clone(), safety_copy, disk_after, elapsed_seconds: started.elapsed().as_secs_f64() };
    if context.json() {
        #[derive(serde::Serialize)]
        struct Output<'a> {
            id: &'a str,
            journal: String,
            #[serde(flatten)]
            outcome: &'a RollbackOutcome,
        }
        print_json(&Output { id: &procedure.id, journal: journal.path().display().to_string(), outcome: &outcome });
    } else {
        let seconds = format!("{:.1}", outcome.elapsed_seconds);
        print_text(&format!(
            "{}\n",
            context.tr("snapshot.rollback.done", &[("disk", &outcome.plan.disk.id), ("snapshot", &outcome.plan.snapshot.name), ("seconds", &seconds)])
        ));
        print_text(&format!("{}\n", context.tr("snapshot.rollback.undo", &[("name", &outcome.safety_copy.name), ("id", &outcome.safety_copy.id)])));
    }
    Ok(Exit::Success)
}

/// Finds the safety copy that an earlier run of the plan made, by its planned name. A copy that
/// is not a snapshot of the disk (a Cinder volume clone) is returned by name with ID `-`.
async fn find_safety_copy(provider: &dyn SnapshotProvider, plan: &RollbackPlan) -> SafetyCopy {
    let name = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::SafetyCopy { name, .. } => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let found = provider.list_snapshots(&plan.disk.id).await.ok().and_then(|all| all.into_iter().find(|s| s.name == name));
    match found {
        Some(snapshot) => SafetyCopy { kind: SafetyCopyKind::Snapshot, id: snapshot.id, name: snapshot.name },
        None => SafetyCopy { kind: SafetyCopyKind::VolumeClone, id: "-".to_owned(), name },
    }
}
