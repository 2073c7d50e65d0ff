//! `caasctl node add`: a scale-up through openshift-ansible, from inventory edit to the hosts
//! moved into their main groups.
//!
//! The command first checks every openshift-ansible rule and prints the plan, then stops on
//! `--dry-run` or asks unless `--yes` is given. Applying writes `new_<type>` and the host lines,
//! runs the scale-up playbook, checks the new nodes Ready, labels them for fluentd when logging
//! runs, and moves the host lines into `[nodes]`, `[masters]` or `[etcd]`. A failure before the
//! move leaves the hosts in `[new_<type>]`, where a re-run of the playbook expects them. The
//! steps are journaled (see `node_add_steps`), so `caasctl ops resume ID` continues a failed or
//! interrupted scale-up at its first unfinished step.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use caasctl_core::Localize;
use caasctl_nodes::add::{self, AddPlan, AddRequest, NodeType};
use caasctl_nodes::cluster::FLUENTD_LABEL;
use caasctl_nodes::playbook;
use caasctl_nodes::NodeError;
use clap::{Args, Subcommand, ValueEnum};

use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add nodes, masters or etcd hosts with openshift-ansible's scale-up playbook.
    Add(AddArgs),
    /// Drain a node, delete it from the cluster, uninstall it and remove it from the inventory.
    Remove(super::node_remove::RemoveArgs),
    /// Add new nodes, then drain and remove old ones batch by batch.
    Migrate(super::node_migrate::MigrateArgs),
}

/// Kind of host, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    /// A compute or infra node.
    Node,
    /// A master (also added as a node).
    Master,
    /// An etcd member.
    Etcd,
}

impl From<TypeArg> for NodeType {
    fn from(value: TypeArg) -> NodeType {
        match value {
            TypeArg::Node => NodeType::Node,
            TypeArg::Master => NodeType::Master,
            TypeArg::Etcd => NodeType::Etcd,
        }
    }
}

/// `node add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Hosts to add, as the inventory names them; a range such as node[05:06].example.com is allowed.
    #[arg(id = "node_hosts", value_name = "HOST", required = true)]
    pub hosts: Vec<String>,

    /// Kind of host to add.
    #[arg(id = "node_type", long = "type", value_name = "TYPE", value_enum, default_value_t = TypeArg::Node)]
    pub node_type: TypeArg,

    /// Ansible inventory file in INI format.
    #[arg(id = "inventory", short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,

    /// Host variable written on each new host's line, such as openshift_node_group_name=node-config-compute (repeatable).
    #[arg(id = "node_var", long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,

    /// openshift-ansible checkout that contains playbooks/openshift-*/scaleup.yml.
    #[arg(id = "node_playbook_dir", long = "playbook-dir", value_name = "DIR", default_value = "/usr/share/ansible/openshift-ansible")]
    pub playbook_dir: PathBuf,

    /// Kubeconfig for the Ready check and labels (default $KUBECONFIG, then ~/.kube/config; skipped when none exists).
    #[arg(id = "node_kubeconfig", long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Seconds to wait for the new nodes to become Ready.
    #[arg(id = "node_ready_timeout", long = "ready-timeout", value_name = "SECONDS", default_value_t = 600)]
    pub ready_timeout: u64,

    /// File that receives the playbook output (default STATE_DIR/logs/node-add-TIME.log).
    #[arg(id = "node_log", long = "log", value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Print the plan and stop.
    #[arg(id = "node_dry_run", long = "dry-run", conflicts_with = "node_yes")]
    pub dry_run: bool,

    /// Apply without asking.
    #[arg(id = "node_yes", long = "yes", short = 'y')]
    pub yes: bool,
}

/// Runs a `node` subcommand.
pub async fn run(command: &NodeCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        NodeCommand::Add(args) => add_nodes(args, context, false).await,
        NodeCommand::Remove(args) => super::node_remove::run(args, context).await,
        NodeCommand::Migrate(args) => super::node_migrate::run(args, context).await,
    }
}

/// The report of `node add`, printed as JSON.
#[derive(Debug, serde::Serialize)]
struct AddReport<'a> {
    inventory: &'a Path,
    plan: &'a AddPlan,
    log: &'a Path,
    kubeconfig: Option<&'a Path>,
    dry_run: bool,
    /// Copies of the inventory made before each edit.
    backups: Vec<PathBuf>,
    /// `verified`, `skipped` or `not-applicable` (etcd hosts register no node).
    ready: &'static str,
    /// Nodes labelled for fluentd.
    labelled: Vec<String>,
    /// Warnings that did not stop the scale-up.
    warnings: Vec<String>,
    /// ID of the journaled operation, for `caasctl ops show`.
    operation: Option<String>,
}

/// Runs `node add`. `embedded` is set when another command (`node migrate`) already printed its
/// own plan and got the confirmation: the JSON report is then not printed.
pub async fn add_nodes(args: &AddArgs, context: &Context, embedded: bool) -> anyhow::Result<Exit> {
    let (document, inventory) = super::inventory::load(&args.inventory)?;
    let request = AddRequest {
        hosts: args.hosts.clone(),
        node_type: args.node_type.into(),
        vars: args.vars.clone(),
        playbook_dir: args.playbook_dir.clone(),
    };
    let plan = match add::plan(&document, &inventory, &request) {
        Ok(plan) => plan,
        Err(NodeError::Rules { violations }) => return Ok(report_violations(violations, context)),
        Err(error) => return Err(error.into()),
    };

    let kubeconfig = find_kubeconfig(args.kubeconfig.as_deref());
    let log = args.log.clone().unwrap_or_else(|| playbook::log_path(&caasctl_restore::journal::state_dir().join("logs"), "node-add"));
    let mut report = AddReport {
        inventory: &args.inventory,
        plan: &plan,
        log: &log,
        kubeconfig: kubeconfig.as_deref(),
        dry_run: args.dry_run,
        backups: Vec::new(),
        ready: if plan.registers_nodes { "skipped" } else { "not-applicable" },
        labelled: Vec::new(),
        warnings: Vec::new(),
        operation: None,
    };

    if !context.json() || !args.dry_run {
        eprint!("{}", render_plan(&report, context));
    }
    if args.dry_run {
        if context.json() && !embedded {
            print_json(&report);
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !confirm(context) {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.plan.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    let body = super::node_add_steps::AddBody::new(&args.inventory, &plan, kubeconfig.as_deref(), Duration::from_secs(args.ready_timeout), &log)?;
    let outcome = super::node_add_steps::apply_new(body, context).await?;
    report.operation = Some(outcome.operation);
    report.backups = outcome.backups;
    if outcome.verified {
        report.ready = "verified";
    }
    report.labelled = outcome.labelled;
    report.warnings = outcome.warnings;
    let partial = outcome.partial;

    for warning in &report.warnings {
        eprintln!("caasctl: {}", warning);
    }
    if embedded {
        eprintln!("{}", context.tr("node.add.done", &[("count", &plan.hosts.len()), ("group", &plan.node_type.main_group())]));
    } else if context.json() {
        print_json(&report);
    } else {
        print_text(&format!("{}\n", context.tr("node.add.done", &[("count", &plan.hosts.len()), ("group", &plan.node_type.main_group())])));
    }
    // A skipped Ready check is only warned about; a failed label leaves the scale-up partial.
    Ok(if partial { Exit::Partial } else { Exit::Success })
}

/// Prints every broken rule on stderr (and as JSON on stdout with `-o json`) and returns the
/// failure exit code.
pub fn report_violations(violations: Vec<caasctl_nodes::Violation>, context: &Context) -> Exit {
    if context.json() {
        print_json(&serde_json::json!({ "violations": violations }));
    }
    eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), NodeError::Rules { violations: violations.clone() }.message().render(context.lang));
    for violation in &violations {
        eprintln!("  - {}", violation.message().render(context.lang));
    }
    eprintln!("  {}{}", context.tr("cli.hint.prefix", &[]), context.tr("node.hint.rules", &[]));
    Exit::Failure
}

/// Returns the kubeconfig to use: the flag, then `$KUBECONFIG` (its first entry), then
/// `~/.kube/config` when it exists.
pub fn find_kubeconfig(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_owned());
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        if let Some(first) = std::env::split_paths(&value).next() {
            return Some(first);
        }
    }
    let home = PathBuf::from(std::env::var_os("HOME")?).join(".kube/config");
    home.is_file().then_some(home)
}

fn render_plan(report: &AddReport<'_>, context: &Context) -> String {
    let plan = report.plan;
    let mut out = context.tr(
        "node.plan.title",
        &[("count", &plan.hosts.len()), ("type", &plan.node_type.main_group()), ("inventory", &report.inventory.display())],
    );
    out.push('\n');
    let mut step = 0;
    let mut line = |text: String| {
        step += 1;
        out.push_str(&format!("  {step}. {text}\n"));
    };
    for group in &plan.children_added {
        line(context.tr("node.plan.add_child", &[("group", group)]));
    }
    for host_line in &plan.lines {
        line(context.tr("node.plan.write_line", &[("group", &host_line.new_group), ("line", &host_line.text)]));
    }
    line(context.tr(
        "node.plan.run_playbook",
        &[("playbook", &plan.playbook.display()), ("inventory", &report.inventory.display()), ("log", &report.log.display())],
    ));
    if plan.registers_nodes {
        match report.kubeconfig {
            Some(path) => {
                line(context.tr("node.plan.wait_ready", &[("nodes", &plan.hosts.join(", ")), ("kubeconfig", &path.display())]));
                line(context.tr("node.plan.label_fluentd", &[("label", &format!("{FLUENTD_LABEL}=true"))]));
            }
            None => line(context.tr("node.plan.no_kubeconfig", &[])),
        }
    }
    for host_line in &plan.lines {
        line(context.tr(
            "node.plan.move_line",
            &[("host", &host_line.host), ("from", &host_line.new_group), ("to", &host_line.main_group)],
        ));
    }
    out
}

/// Asks on the terminal; returns false without a terminal.
pub fn confirm(context: &Context) -> bool {
    if !context.stdin_tty || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{}", context.tr("node.plan.confirm", &[]));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    let answer = answer.trim().to_lowercase();
    answer == "y" || answer == "yes" || answer == "是"
}
