//! Applying a scale-up as a journaled operation. The inventory edit, the scale-up playbook, the
//! Ready check and the move into the main groups are each written to the operation journal
//! before and after they run. `caasctl ops resume ID` continues a failed or interrupted
//! scale-up at its first unfinished step.
//!
//! Every step is safe to repeat. The inventory edit writes only lines still missing, and the
//! move skips hosts no longer in `new_<type>`. The scale-up playbook runs again on the hosts
//! still in `new_<type>`, which is how openshift-ansible expects a failed scale-up to be retried.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use caasctl_core::{Lang, Localize};
use caasctl_nodes::add::{self, AddPlan};
use caasctl_nodes::cluster::{self, KubeNodes, FLUENTD_LABEL};
use caasctl_nodes::playbook::{self, PlaybookRun};
use caasctl_restore::journal::{state_dir, Journal};
use caasctl_restore::procedure::{Procedure, ProcedureOperation, ProcedureStep};
use tracing::Instrument;

use crate::progress::run_journaled_steps;
use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;

/// Operation kind of a journaled scale-up.
pub const KIND: &str = "node-add";

/// Settings a resume needs, kept in the journal's first line. Paths are absolute.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AddBody {
    /// Main inventory.
    pub inventory: PathBuf,
    /// The checked plan.
    pub plan: AddPlan,
    /// Kubeconfig for the Ready check and labels, or `None` when none was found.
    pub kubeconfig: Option<PathBuf>,
    /// Seconds to wait for the new nodes to become Ready.
    pub ready_timeout_seconds: u64,
    /// Log of the scale-up playbook.
    pub log: PathBuf,
}

impl AddBody {
    /// Builds the body of a checked plan, with every path made absolute.
    ///
    /// # Errors
    /// The current directory cannot be read.
    pub fn new(inventory: &Path, plan: &AddPlan, kubeconfig: Option<&Path>, ready_timeout: Duration, log: &Path) -> anyhow::Result<AddBody> {
        let mut plan = plan.clone();
        plan.playbook = std::path::absolute(&plan.playbook)?;
        Ok(AddBody {
            inventory: std::path::absolute(inventory)?,
            plan,
            kubeconfig: kubeconfig.map(std::path::absolute).transpose()?,
            ready_timeout_seconds: ready_timeout.as_secs(),
            log: std::path::absolute(log)?,
        })
    }
}

/// Results of the steps, for the report of `node add`.
#[derive(Debug, Default)]
pub struct AddOutcome {
    /// Operation ID.
    pub operation: String,
    /// Copies of the inventory made before each edit.
    pub backups: Vec<PathBuf>,
    /// True when the Ready check ran and passed.
    pub verified: bool,
    /// Nodes labelled for fluentd.
    pub labelled: Vec<String>,
    /// Warnings that did not stop the scale-up: a skipped Ready check, a failed label.
    pub warnings: Vec<String>,
    /// True when a label or the logging lookup failed, so the scale-up is partial.
    pub partial: bool,
}

/// One step of a scale-up, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddStep {
    Stage,
    Playbook,
    Ready,
    Move,
}

impl AddStep {
    fn name(self) -> &'static str {
        match self {
            AddStep::Stage => "stage",
            AddStep::Playbook => "playbook",
            AddStep::Ready => "ready",
            AddStep::Move => "move",
        }
    }

    fn describe(self, body: &AddBody, lang: Lang) -> String {
        let tr = caasctl_core::i18n::tr;
        let plan = &body.plan;
        let hosts = plan.hosts.join(", ");
        match self {
            AddStep::Stage => tr(lang, "node.add.step.stage", &[("hosts", &hosts), ("group", &plan.node_type.new_group()), ("inventory", &body.inventory.display())]),
            AddStep::Playbook => tr(
                lang,
                "node.plan.run_playbook",
                &[("playbook", &plan.playbook.display()), ("inventory", &body.inventory.display()), ("log", &body.log.display())],
            ),
            AddStep::Ready => {
                let kubeconfig = body.kubeconfig.as_deref().unwrap_or(Path::new("-"));
                tr(lang, "node.add.step.ready", &[("nodes", &hosts), ("kubeconfig", &kubeconfig.display()), ("label", &format!("{FLUENTD_LABEL}=true"))])
            }
            AddStep::Move => tr(lang, "node.add.step.move", &[("hosts", &hosts), ("from", &plan.node_type.new_group()), ("to", &plan.node_type.main_group())]),
        }
    }
}

/// Returns the steps of the scale-up with their journal IDs, such as `2.playbook`. The Ready
/// check is left out for etcd hosts, which register no node, and when no kubeconfig was found.
fn steps(body: &AddBody) -> Vec<(String, AddStep)> {
    let mut steps = vec![AddStep::Stage, AddStep::Playbook];
    if body.plan.registers_nodes && body.kubeconfig.is_some() {
        steps.push(AddStep::Ready);
    }
    steps.push(AddStep::Move);
    steps.into_iter().enumerate().map(|(index, step)| (format!("{}.{}", index + 1, step.name()), step)).collect()
}

/// Builds the journaled form of a scale-up.
///
/// # Errors
/// The body cannot be serialised.
pub fn procedure(body: &AddBody) -> anyhow::Result<Procedure> {
    let steps = steps(body).into_iter().map(|(id, step)| ProcedureStep::new(id, |lang| step.describe(body, lang))).collect();
    Ok(Procedure::new("node-add", KIND, steps, body)?)
}

/// Creates the journal and applies every step of a freshly checked scale-up.
///
/// # Errors
/// The first step that fails, with the operation ID and how to resume it.
pub async fn apply_new(body: AddBody, context: &Context) -> anyhow::Result<AddOutcome> {
    let procedure = procedure(&body)?;
    let journal = Journal::create_procedure(&state_dir(), &procedure)?;
    if context.progress && !context.json() {
        eprintln!("{}", context.tr("restore.run.journal", &[("path", &journal.path().display())]));
    }
    run(&procedure, &body, &journal, &HashSet::new(), context).await
}

/// Resumes a failed or interrupted scale-up at its first unfinished step.
///
/// # Errors
/// The journal contains no readable scale-up settings, or a step fails.
pub async fn resume(op: &ProcedureOperation, context: &Context) -> anyhow::Result<Exit> {
    let body: AddBody = serde_json::from_value(op.procedure.body.clone()).with_context(|| context.tr("node.add.error.bad_body", &[("id", &op.procedure.id)]))?;
    let journal = Journal::reopen_procedure(op)?;
    if !context.json() {
        let next = op.next_step().unwrap_or("-");
        eprintln!("{}", context.tr("ops.resume.from", &[("id", &op.procedure.id), ("step", &next)]));
    }
    let outcome = run(&op.procedure, &body, &journal, &op.finished_set(), context).await?;

    for warning in &outcome.warnings {
        eprintln!("caasctl: {warning}");
    }
    let plan = &body.plan;
    if context.json() {
        print_json(&serde_json::json!({ "id": op.procedure.id, "hosts": plan.hosts, "backups": outcome.backups, "labelled": outcome.labelled, "warnings": outcome.warnings }));
    } else {
        print_text(&format!("{}\n", context.tr("node.add.done", &[("count", &plan.hosts.len()), ("group", &plan.node_type.main_group())])));
    }
    Ok(if outcome.partial { Exit::Partial } else { Exit::Success })
}

/// Runs the steps not in `done`, journaling each.
async fn run(procedure: &Procedure, body: &AddBody, journal: &Journal, done: &HashSet<String>, context: &Context) -> anyhow::Result<AddOutcome> {
    let span = tracing::info_span!("node.add", operation = %procedure.id, hosts = %body.plan.hosts.join(","));
    async move {
        let mut outcome = AddOutcome { operation: procedure.id.clone(), ..AddOutcome::default() };
        if body.plan.registers_nodes && body.kubeconfig.is_none() {
            outcome.warnings.push(context.tr("node.warn.no_kubeconfig", &[]));
        }
        let hint = context.tr("node.add.resume_hint", &[("id", &procedure.id)]);
        run_journaled_steps(journal, &procedure.id, done, steps(body), context, &hint, async |step| run_step(body, step, &mut outcome, context).await).await?;
        Ok(outcome)
    }
    .instrument(span)
    .await
}

/// Runs one step and returns the note journaled with it.
async fn run_step(body: &AddBody, step: AddStep, outcome: &mut AddOutcome, context: &Context) -> anyhow::Result<Option<String>> {
    let plan = &body.plan;
    match step {
        AddStep::Stage => {
            let mut current = caasctl_inventory::Document::read(&body.inventory)?;
            add::stage(&mut current, plan);
            outcome.backups.extend(current.save(&body.inventory)?);
            Ok(None)
        }

        AddStep::Playbook => {
            let run = PlaybookRun {
                program: std::env::var("CAASCTL_ANSIBLE_PLAYBOOK").unwrap_or_else(|_| "ansible-playbook".to_owned()),
                playbook: plan.playbook.clone(),
                inventory: body.inventory.clone(),
                log: body.log.clone(),
            };
            let quiet = !context.progress;
            playbook::run(&run, |line| {
                if !quiet {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            })
            .await?;
            Ok(Some(format!("playbook output in {}", body.log.display())))
        }

        // NOTE: the node name is taken to be the inventory host name, which is what
        // openshift-ansible 3.11 registers unless openshift_kubelet_name_override or the host's
        // own hostname differs.
        AddStep::Ready => {
            let kubeconfig = body.kubeconfig.as_deref().context("the journal names no kubeconfig")?;
            let api = KubeNodes::from_kubeconfig(kubeconfig).await?;
            let timeout = Duration::from_secs(body.ready_timeout_seconds);
            let verified = cluster::verify_new_nodes(&api, &plan.hosts, timeout, Duration::from_secs(5)).await?;
            outcome.verified = true;
            outcome.partial = !verified.failures.is_empty();
            outcome.warnings.extend(verified.failures.iter().map(|error| error.message().render(context.lang)));
            let mut note = format!("Ready: {}", plan.hosts.join(", "));
            if !verified.labelled.is_empty() {
                note.push_str(&format!("; labelled {FLUENTD_LABEL}=true: {}", verified.labelled.join(", ")));
            }
            for error in &verified.failures {
                note.push_str(&format!("; {}", error.message().render(Lang::En)));
            }
            outcome.labelled = verified.labelled;
            Ok(Some(note))
        }

        AddStep::Move => {
            let mut current = caasctl_inventory::Document::read(&body.inventory)?;
            add::finalize(&mut current, plan).with_context(|| body.inventory.display().to_string())?;
            outcome.backups.extend(current.save(&body.inventory)?);
            Ok(None)
        }
    }
}
