//! `caasctl ops list | show | resume`: the journal of every operation, and resuming one that was
//! interrupted or failed at its first unfinished step.

use caasctl_restore::apply::{apply, ApplyOptions};
use caasctl_restore::describe::StepView;
use caasctl_restore::journal::{self, state_dir, AnyOperation, Journal, OpStatus, Operation, Record};
use caasctl_restore::procedure::ProcedureOperation;
use caasctl_restore::RestoreError;
use clap::{Args, Subcommand};

use crate::context::Context;
use crate::output::{print_json, print_text, Table};
use crate::Exit;

/// `ops` subcommands.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List operations and their state.
    List,
    /// Show an operation's steps and what each did.
    Show(OpArgs),
    /// Resume an interrupted or failed operation at its first unfinished step.
    Resume(ResumeArgs),
}

/// An operation.
#[derive(Debug, Args)]
pub struct OpArgs {
    /// Operation ID, as caasctl ops list shows it.
    #[arg(id = "op_id", value_name = "ID")]
    pub id: String,
}

/// `ops resume` options.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub op: OpArgs,

    /// Maximum members restored at the same time.
    #[arg(id = "restore_parallel", long = "parallel", value_name = "N", default_value_t = 8)]
    pub parallel: usize,
}

fn status_word(status: OpStatus, context: &Context) -> String {
    context.tr(
        match status {
            OpStatus::Running => "ops.status.running",
            OpStatus::Succeeded => "ops.status.succeeded",
            OpStatus::Failed => "ops.status.failed",
            OpStatus::Interrupted => "ops.status.interrupted",
        },
        &[],
    )
}

#[derive(serde::Serialize)]
struct OpSummary<'a> {
    id: &'a str,
    kind: &'a str,
    created_at: &'a str,
    status: OpStatus,
    steps_done: usize,
    steps_total: usize,
    next_step: Option<&'a str>,
    journal: String,
}

fn procedure_summary(op: &ProcedureOperation) -> OpSummary<'_> {
    OpSummary {
        id: &op.procedure.id,
        kind: &op.procedure.kind,
        created_at: &op.procedure.created_at,
        status: op.status,
        steps_done: op.finished.len(),
        steps_total: op.procedure.steps.len(),
        next_step: op.next_step(),
        journal: op.path.display().to_string(),
    }
}

fn any_summary(op: &AnyOperation) -> OpSummary<'_> {
    match op {
        AnyOperation::Restore(op) => summary(op),
        AnyOperation::Procedure(op) => procedure_summary(op),
    }
}

fn summary(op: &Operation) -> OpSummary<'_> {
    OpSummary {
        id: &op.plan.id,
        kind: &op.plan.kind,
        created_at: &op.plan.created_at,
        status: op.status,
        steps_done: op.finished.len(),
        steps_total: op.plan.steps.len(),
        next_step: op.next_step(),
        journal: op.path.display().to_string(),
    }
}

/// Runs a parsed `ops` command.
pub async fn run(command: &OpsCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        OpsCommand::List => list(context),
        OpsCommand::Show(args) => show(&args.id, context),
        OpsCommand::Resume(args) => resume(args, context).await,
    }
}

fn list(context: &Context) -> anyhow::Result<Exit> {
    let state = state_dir();
    let operations = journal::list_any(&state)?;
    if context.json() {
        print_json(&operations.iter().map(any_summary).collect::<Vec<_>>());
        return Ok(Exit::Success);
    }
    if operations.is_empty() {
        print_text(&format!("{}\n", context.tr("ops.list.empty", &[("dir", &journal::ops_dir(&state).display())])));
        return Ok(Exit::Success);
    }
    let header = ["ops.list.id", "ops.list.kind", "ops.list.created", "ops.list.status", "ops.list.steps", "ops.list.next"];
    let mut table = Table::new(header.iter().map(|k| context.tr(k, &[])).collect());
    for op in &operations {
        let s = any_summary(op);
        table.row(vec![
            s.id.to_owned(),
            s.kind.to_owned(),
            s.created_at.to_owned(),
            status_word(s.status, context),
            format!("{}/{}", s.steps_done, s.steps_total),
            s.next_step.unwrap_or("-").to_owned(),
        ]);
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

fn show(id: &str, context: &Context) -> anyhow::Result<Exit> {
    let op = match journal::find_any(&state_dir(), id)? {
        AnyOperation::Restore(op) => op,
        AnyOperation::Procedure(op) => return show_procedure(&op, context),
    };
    if context.json() {
        #[derive(serde::Serialize)]
        struct ShowOutput<'a> {
            #[serde(flatten)]
            summary: OpSummary<'a>,
            steps: Vec<StepView<'a>>,
            records: &'a [Record],
        }
        let steps = op.plan.steps.iter().map(|s| StepView::new(s, caasctl_core::Lang::En)).collect();
        print_json(&ShowOutput { summary: summary(&op), steps, records: &op.records });
        return Ok(Exit::Success);
    }
    let mut out = context.tr(
        "ops.show.header",
        &[("id", &op.plan.id), ("kind", &op.plan.kind), ("created", &op.plan.created_at), ("status", &status_word(op.status, context))],
    );
    out.push('\n');
    let done = op.finished_set();
    let failed = op.last_error.as_ref().map(|(step, _)| step.clone());
    out.push_str(&super::etcd_restore::render_steps(&op.plan, context, |step| {
        Some(if done.contains(step) {
            context.tr("ops.show.step_done", &[])
        } else if failed.as_deref() == Some(step) {
            context.tr("ops.show.step_failed", &[])
        } else {
            context.tr("ops.show.step_pending", &[])
        })
    }));
    if let (Some((step, error)), false) = (&op.last_error, op.status == OpStatus::Succeeded) {
        out.push_str(&context.tr("ops.show.last_error", &[("step", step), ("error", error)]));
        out.push('\n');
    }
    print_text(&out);
    Ok(Exit::Success)
}

fn show_procedure(op: &ProcedureOperation, context: &Context) -> anyhow::Result<Exit> {
    if context.json() {
        #[derive(serde::Serialize)]
        struct ShowOutput<'a> {
            #[serde(flatten)]
            summary: OpSummary<'a>,
            steps: &'a [caasctl_restore::procedure::ProcedureStep],
            body: &'a serde_json::Value,
            records: &'a [Record],
        }
        print_json(&ShowOutput { summary: procedure_summary(op), steps: &op.procedure.steps, body: &op.procedure.body, records: &op.records });
        return Ok(Exit::Success);
    }
    let procedure = &op.procedure;
    let mut out = context.tr(
        "ops.show.header",
        &[("id", &procedure.id), ("kind", &procedure.kind), ("created", &procedure.created_at), ("status", &status_word(op.status, context))],
    );
    out.push('\n');
    let done = op.finished_set();
    let failed = op.last_error.as_ref().map(|(step, _)| step.clone());
    for (index, step) in procedure.steps.iter().enumerate() {
        let state = if done.contains(&step.id) {
            context.tr("ops.show.step_done", &[])
        } else if failed.as_deref() == Some(step.id.as_str()) {
            context.tr("ops.show.step_failed", &[])
        } else {
            context.tr("ops.show.step_pending", &[])
        };
        out.push_str(&format!("{:>3}. {}  [{state}]\n     {}\n", index + 1, step.id, step.describe(context.lang)));
    }
    if let (Some((step, error)), false) = (&op.last_error, op.status == OpStatus::Succeeded) {
        out.push_str(&context.tr("ops.show.last_error", &[("step", step), ("error", error)]));
        out.push('\n');
    }
    print_text(&out);
    Ok(Exit::Success)
}

async fn resume(args: &ResumeArgs, context: &Context) -> anyhow::Result<Exit> {
    let op = match journal::find_any(&state_dir(), &args.op.id)? {
        AnyOperation::Restore(op) => op,
        AnyOperation::Procedure(op) => return resume_procedure(&op, context).await,
    };
    match op.status {
        OpStatus::Succeeded => return Err(RestoreError::OpFinished { id: op.plan.id.clone() }.into()),
        OpStatus::Running => return Err(journal_running(&op).into()),
        OpStatus::Failed | OpStatus::Interrupted => {}
    }
    let journal = Journal::reopen(&op)?;
    if !context.json() {
        let next = op.next_step().unwrap_or("-");
        eprintln!("{}", context.tr("ops.resume.from", &[("id", &op.plan.id), ("step", &next)]));
    }
    let result = apply(&op.plan, &journal, &op.finished_set(), ApplyOptions { parallel: args.parallel }, super::etcd_restore::observer(context)).await;
    super::etcd_restore::finish(&op.plan, &journal, result, context, None)
}

async fn resume_procedure(op: &ProcedureOperation, context: &Context) -> anyhow::Result<Exit> {
    match op.status {
        OpStatus::Succeeded => return Err(RestoreError::OpFinished { id: op.procedure.id.clone() }.into()),
        OpStatus::Running => {
            let pid = op.records.iter().rev().find_map(|r| match r {
                Record::Procedure { pid, .. } | Record::Resumed { pid, .. } => Some(*pid),
                _ => None,
            });
            return Err(RestoreError::OpRunning { id: op.procedure.id.clone(), pid: pid.unwrap_or(0) }.into());
        }
        OpStatus::Failed | OpStatus::Interrupted => {}
    }
    match op.procedure.kind.as_str() {
        super::snapshot_rollback::KIND => super::snapshot_rollback::resume(op, context).await,
        super::node_remove_steps::KIND => super::node_remove_steps::resume(op, context).await,
        super::node_add_steps::KIND => super::node_add_steps::resume(op, context).await,
        other => anyhow::bail!(context.tr("cluster_backup.error.cannot_resume_kind", &[("id", &op.procedure.id), ("kind", &other)])),
    }
}

fn journal_running(op: &Operation) -> RestoreError {
    let pid = op
        .records
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Plan { pid, .. } | Record::Resumed { pid, .. } => Some(*pid),
            _ => None,
        })
        .unwrap_or(0);
    RestoreError::OpRunning { id: op.plan.id.clone(), pid }
}
