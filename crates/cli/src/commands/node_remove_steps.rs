//! Applying a node removal as a journaled operation. Cordon, evict, delete, uninstall and the
//! inventory edit are each written to the operation journal before and after they run. So
//! `caasctl ops list | show` shows the removal, and `caasctl ops resume ID` continues a failed or
//! interrupted one at its first unfinished step.
//!
//! The journal's first line keeps everything a resume needs (inventory, kubeconfig, playbook and
//! the uninstall inventory text), so no command line has to be repeated.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use caasctl_core::Lang;
use caasctl_nodes::drain::{self, DrainPlan, PlannedPod};
use caasctl_nodes::node_object;
use caasctl_restore::journal::{state_dir, Journal};
use caasctl_restore::procedure::{Procedure, ProcedureOperation, ProcedureStep};
use tracing::Instrument;

use super::node_remove::{self, Removal, RemoveSettings};
use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;
use crate::progress::run_journaled_steps;

/// Operation kind of a journaled node removal.
pub const KIND: &str = "node-remove";

/// Settings a resume needs, kept in the journal's first line. Paths are absolute.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemoveBody {
    /// Node name, which is also the inventory host name.
    pub node: String,
    /// Main inventory.
    pub inventory: PathBuf,
    /// Kubeconfig of a cluster administrator.
    pub kubeconfig: PathBuf,
    /// Evict pods without a controller or with emptyDir data.
    pub force: bool,
    /// The host cannot be reached: the uninstall playbook is skipped.
    pub unreachable: bool,
    /// Seconds allowed for the evictions and for the replacement pods to become Ready.
    pub timeout_seconds: u64,
    /// The uninstall playbook, or `None` with `--unreachable`.
    pub playbook: Option<PathBuf>,
    /// Path of the inventory that names only this host.
    pub uninstall_inventory: PathBuf,
    /// Text of that inventory, written before the node is deleted.
    pub uninstall_text: String,
    /// Log of the uninstall playbook.
    pub log: PathBuf,
}

impl RemoveBody {
    /// Builds the body of a planned removal, with every path made absolute.
    ///
    /// # Errors
    /// The current directory cannot be read.
    pub fn new(removal: &Removal, settings: &RemoveSettings, kubeconfig: &Path) -> anyhow::Result<RemoveBody> {
        Ok(RemoveBody {
            node: removal.drain.node.clone(),
            inventory: std::path::absolute(&settings.inventory)?,
            kubeconfig: std::path::absolute(kubeconfig)?,
            force: settings.force,
            unreachable: settings.unreachable,
            timeout_seconds: settings.timeout.as_secs(),
            playbook: removal.plan.playbook.as_deref().map(std::path::absolute).transpose()?,
            uninstall_inventory: std::path::absolute(&removal.uninstall_inventory)?,
            uninstall_text: removal.plan.uninstall_inventory.clone(),
            log: std::path::absolute(&removal.log)?,
        })
    }

    fn settings(&self) -> RemoveSettings {
        RemoveSettings {
            inventory: self.inventory.clone(),
            playbook_dir: PathBuf::new(),
            force: self.force,
            unreachable: self.unreachable,
            timeout: Duration::from_secs(self.timeout_seconds),
            log: Some(self.log.clone()),
        }
    }
}

/// One step of a removal, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoveStep {
    Cordon,
    Evict,
    Delete,
    Uninstall,
    Inventory,
}

impl RemoveStep {
    fn name(self) -> &'static str {
        match self {
            RemoveStep::Cordon => "cordon",
            RemoveStep::Evict => "evict",
            RemoveStep::Delete => "delete",
            RemoveStep::Uninstall => "uninstall",
            RemoveStep::Inventory => "inventory",
        }
    }

    fn describe(self, body: &RemoveBody, lang: Lang) -> String {
        let tr = caasctl_core::i18n::tr;
        let node = &body.node;
        match self {
            RemoveStep::Cordon => tr(lang, "node.remove.plan.cordon", &[("node", node)]),
            RemoveStep::Evict => tr(lang, "node.remove.step.evict", &[("node", node), ("seconds", &body.timeout_seconds)]),
            RemoveStep::Delete => tr(lang, "node.remove.step.delete", &[("node", node), ("inventory", &body.uninstall_inventory.display())]),
            RemoveStep::Uninstall => {
                let playbook = body.playbook.as_deref().unwrap_or(Path::new("-"));
                tr(
                    lang,
                    "node.remove.step.uninstall",
                    &[("inventory", &body.uninstall_inventory.display()), ("playbook", &playbook.display()), ("log", &body.log.display())],
                )
            }
            RemoveStep::Inventory => tr(lang, "node.remove.step.inventory", &[("host", node), ("inventory", &body.inventory.display())]),
        }
    }
}

/// Returns the steps of the removal with their journal IDs, such as `3.delete`.
fn steps(body: &RemoveBody) -> Vec<(String, RemoveStep)> {
    let mut steps = vec![RemoveStep::Cordon, RemoveStep::Evict, RemoveStep::Delete];
    if body.playbook.is_some() {
        steps.push(RemoveStep::Uninstall);
    }
    steps.push(RemoveStep::Inventory);
    steps.into_iter().enumerate().map(|(index, step)| (format!("{}.{}", index + 1, step.name()), step)).collect()
}

/// Builds the journaled form of a removal.
///
/// # Errors
/// The body cannot be serialised.
pub fn procedure(body: &RemoveBody) -> anyhow::Result<Procedure> {
    let steps = steps(body).into_iter().map(|(id, step)| ProcedureStep::new(id, |lang| step.describe(body, lang))).collect();
    Ok(Procedure::new("node-remove", KIND, steps, body)?)
}

/// Creates the journal and applies every step of a freshly planned removal. Returns the
/// operation ID and the inventory copies made.
///
/// # Errors
/// The first step that fails, with the operation ID and how to resume it.
pub async fn apply_new(client: &kube::Client, removal: &Removal, body: RemoveBody, context: &Context) -> anyhow::Result<(String, Vec<PathBuf>)> {
    let procedure = procedure(&body)?;
    let journal = Journal::create_procedure(&state_dir(), &procedure)?;
    if context.progress && !context.json() {
        eprintln!("{}", context.tr("restore.run.journal", &[("path", &journal.path().display())]));
    }
    let backups = run(client, &procedure, &body, &journal, &HashSet::new(), Some(&removal.drain), context).await?;
    Ok((procedure.id, backups))
}

/// Resumes a failed or interrupted removal at its first unfinished step.
///
/// # Errors
/// The journal contains no readable removal settings, the cluster cannot be reached, or a step fails.
pub async fn resume(op: &ProcedureOperation, context: &Context) -> anyhow::Result<Exit> {
    let body: RemoveBody =
        serde_json::from_value(op.procedure.body.clone()).with_context(|| context.tr("node.remove.error.bad_body", &[("id", &op.procedure.id)]))?;
    let client = caasctl_nodes::client::connect(&body.kubeconfig).await?;
    let journal = Journal::reopen_procedure(op)?;
    if !context.json() {
        let next = op.next_step().unwrap_or("-");
        eprintln!("{}", context.tr("ops.resume.from", &[("id", &op.procedure.id), ("step", &next)]));
    }
    let backups = run(&client, &op.procedure, &body, &journal, &op.finished_set(), None, context).await?;

    if context.json() {
        print_json(&serde_json::json!({ "id": op.procedure.id, "node": body.node, "backups": backups }));
    } else {
        print_text(&format!("{}\n", context.tr("node.remove.done", &[("node", &body.node)])));
    }
    Ok(Exit::Success)
}

/// Runs the steps not in `done`, journaling each. `drain` is the drain plan that was printed
/// and confirmed. A resume has none, so the evict step lists the node's pods again.
async fn run(
    client: &kube::Client,
    procedure: &Procedure,
    body: &RemoveBody,
    journal: &Journal,
    done: &HashSet<String>,
    drain: Option<&DrainPlan>,
    context: &Context,
) -> anyhow::Result<Vec<PathBuf>> {
    let span = tracing::info_span!("node.remove", operation = %procedure.id, node = %body.node);
    async move {
        let mut backups = Vec::new();
        let hint = context.tr("node.remove.resume_hint", &[("id", &procedure.id)]);
        run_journaled_steps(journal, &procedure.id, done, steps(body), context, &hint, async |step| run_step(client, body, step, drain, &mut backups, context).await).await?;
        Ok(backups)
    }
    .instrument(span)
    .await
}

/// Runs one step and returns the note journaled with it.
async fn run_step(
    client: &kube::Client,
    body: &RemoveBody,
    step: RemoveStep,
    drain: Option<&DrainPlan>,
    backups: &mut Vec<PathBuf>,
    context: &Context,
) -> anyhow::Result<Option<String>> {
    let node = &body.node;
    let already_deleted = Some(format!("node {node} is already deleted"));
    match step {
        RemoveStep::Cordon => {
            if node_object::get_node(client, node).await?.is_none() {
                return Ok(already_deleted);
            }
            node_remove::cordon_node(client, node, context).await?;
            Ok(None)
        }

        RemoveStep::Evict => {
            if node_object::get_node(client, node).await?.is_none() {
                return Ok(already_deleted);
            }
            // Pods may have moved since an interrupted run, so a resume lists them again and
            // checks --force on the fresh list.
            let fresh;
            let drain = match drain {
                Some(drain) => drain,
                None => {
                    fresh = drain::plan_drain(client, node, body.force).await?;
                    node_remove::check_force(&fresh)?;
                    &fresh
                }
            };
            let pods: Vec<PlannedPod> = drain.to_evict().cloned().collect();
            node_remove::evict_pods(client, &pods, std::slice::from_ref(node), &body.settings(), context).await?;
            Ok(Some(format!("{} pod(s) evicted", pods.len())))
        }

        RemoveStep::Delete => {
            let uninstall = body.playbook.as_ref().map(|_| (body.uninstall_inventory.as_path(), body.uninstall_text.as_str()));
            let deleted = node_remove::delete_node(client, node, uninstall, context).await?;
            Ok(if deleted { None } else { already_deleted })
        }

        RemoveStep::Uninstall => {
            let playbook = body.playbook.as_deref().context("the journal names no uninstall playbook")?;
            node_remove::run_uninstall(playbook, &body.uninstall_inventory, &body.log, context).await?;
            Ok(Some(format!("playbook output in {}", body.log.display())))
        }

        RemoveStep::Inventory => {
            let copies = node_remove::edit_inventory(&body.inventory, node, context)?;
            let note = copies.first().map(|copy| format!("inventory copied to {}", copy.display()));
            backups.extend(copies);
            Ok(note)
        }
    }
}
