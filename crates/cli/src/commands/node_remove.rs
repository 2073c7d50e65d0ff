//! `caasctl node remove`: cordon, drain through the eviction API, delete the node object, run the
//! uninstall playbook on an inventory naming only that host, and remove the host from the main
//! inventory.
//!
//! Everything is checked and printed as a plan before the first change. Pods that would lose
//! data or never come back stop the command unless `--force` is given. Applying the plan is a
//! journaled operation (see `node_remove_steps`): every step is written to the operation journal
//! before and after it runs, and `caasctl ops resume ID` continues a failed or interrupted
//! removal at its first unfinished step. Each step is safe to repeat: cordon and eviction are
//! idempotent, a node already deleted counts as deleted, and the inventory edit removes only
//! lines still present.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caasctl_inventory::{Document, Inventory};
use caasctl_nodes::drain::{self, DrainPlan, PlannedPod, PodAction};
use caasctl_nodes::evict::{self, DrainEvent, EvictOptions};
use caasctl_nodes::playbook::{self, PlaybookRun};
use caasctl_nodes::remove::{self, RemovePlan, RemoveRequest};
use caasctl_nodes::{node_object, NodeError};
use clap::Args;
use tracing::Instrument;

use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;

/// Default openshift-ansible checkout of the RPM package.
pub const DEFAULT_PLAYBOOK_DIR: &str = "/usr/share/ansible/openshift-ansible";

/// `node remove` options.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Node to remove, as both the cluster and the inventory name it.
    #[arg(id = "remove_node", value_name = "NODE")]
    pub node: String,

    /// Ansible inventory file in INI format.
    #[arg(id = "inventory", short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,

    /// openshift-ansible checkout that contains playbooks/adhoc/uninstall.yml.
    #[arg(id = "remove_playbook_dir", long = "playbook-dir", value_name = "DIR", default_value = DEFAULT_PLAYBOOK_DIR)]
    pub playbook_dir: PathBuf,

    /// Kubeconfig of a cluster administrator (default $KUBECONFIG, then ~/.kube/config).
    #[arg(id = "remove_kubeconfig", long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Also evict pods without a controller and pods with emptyDir data; their data is lost.
    #[arg(id = "remove_force", long = "force")]
    pub force: bool,

    /// The host cannot be reached over SSH: remove it from the cluster and inventory, skip the uninstall playbook.
    #[arg(id = "remove_unreachable", long = "unreachable")]
    pub unreachable: bool,

    /// Seconds allowed for the evictions and for the replacement pods to become Ready.
    #[arg(id = "remove_timeout", long = "timeout", value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    /// File that receives the uninstall playbook output (default STATE_DIR/logs/node-remove-TIME.log).
    #[arg(id = "remove_log", long = "log", value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Print the plan and stop.
    #[arg(id = "node_dry_run", long = "dry-run", conflicts_with = "node_yes")]
    pub dry_run: bool,

    /// Apply without asking.
    #[arg(id = "node_yes", long = "yes", short = 'y')]
    pub yes: bool,
}

/// One node to remove, checked and planned.
#[derive(Debug, serde::Serialize)]
pub struct Removal {
    /// Inventory edits and the uninstall inventory.
    pub plan: RemovePlan,
    /// Pods of the node and what happens to each.
    pub drain: DrainPlan,
    /// Path of the uninstall inventory.
    pub uninstall_inventory: PathBuf,
    /// Log of the uninstall playbook.
    pub log: PathBuf,
}

/// Settings of a removal: files, playbooks, forcing and the drain timeout.
#[derive(Debug, Clone)]
pub struct RemoveSettings {
    /// Main inventory.
    pub inventory: PathBuf,
    /// openshift-ansible checkout.
    pub playbook_dir: PathBuf,
    /// Evict pods that need `--force`.
    pub force: bool,
    /// Skip the uninstall playbook and the wait for evicted pods to be deleted.
    pub unreachable: bool,
    /// Drain timeout.
    pub timeout: Duration,
    /// Playbook log, when given on the command line.
    pub log: Option<PathBuf>,
}

/// The report of `node remove`, printed as JSON.
#[derive(Debug, serde::Serialize)]
struct RemoveReport<'a> {
    inventory: &'a Path,
    removal: &'a Removal,
    dry_run: bool,
    unreachable: bool,
    /// Copies of the inventory made before the edit.
    backups: Vec<PathBuf>,
    /// ID of the journaled operation, for `caasctl ops show`.
    operation: Option<String>,
}

/// Runs `node remove`.
pub async fn run(args: &RemoveArgs, context: &Context) -> anyhow::Result<Exit> {
    let settings = RemoveSettings {
        inventory: args.inventory.clone(),
        playbook_dir: args.playbook_dir.clone(),
        force: args.force,
        unreachable: args.unreachable,
        timeout: Duration::from_secs(args.timeout),
        log: args.log.clone(),
    };
    let (document, inventory) = super::inventory::load(&args.inventory)?;
    let Some(kubeconfig) = super::node::find_kubeconfig(args.kubeconfig.as_deref()) else {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.remove.no_kubeconfig", &[]));
        return Ok(Exit::Usage);
    };
    let client = caasctl_nodes::client::connect(&kubeconfig).await?;
    let removal = match prepare(&client, &document, &inventory, &args.node, &settings).await {
        Ok(removal) => removal,
        Err(NodeError::Rules { violations }) => return Ok(super::node::report_violations(violations, context)),
        Err(error) => return Err(error.into()),
    };

    let mut report = RemoveReport { inventory: &args.inventory, removal: &removal, dry_run: args.dry_run, unreachable: args.unreachable, backups: Vec::new(), operation: None };
    if !context.json() || !args.dry_run {
        eprint!("{}", render_plan(std::slice::from_ref(&removal), &settings, context));
    }
    check_force(&removal.drain)?;
    if args.dry_run {
        if context.json() {
            print_json(&report);
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !super::node::confirm(context) {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.plan.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    let body = super::node_remove_steps::RemoveBody::new(&removal, &settings, &kubeconfig)?;
    let (operation, backups) = super::node_remove_steps::apply_new(&client, &removal, body, context).await?;
    report.operation = Some(operation);
    report.backups = backups;

    if context.json() {
        print_json(&report);
    } else {
        print_text(&format!("{}\n", context.tr("node.remove.done", &[("node", &args.node)])));
    }
    Ok(Exit::Success)
}

/// Connects with the kubeconfig from the flag, `$KUBECONFIG` or `~/.kube/config`; prints the
/// error and returns `None` when none is found.
pub async fn connect(flag: Option<&Path>, context: &Context) -> anyhow::Result<Option<kube::Client>> {
    let Some(path) = super::node::find_kubeconfig(flag) else {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.remove.no_kubeconfig", &[]));
        return Ok(None);
    };
    Ok(Some(caasctl_nodes::client::connect(&path).await?))
}

/// Checks the inventory rules, looks the node up and plans its drain.
///
/// # Errors
/// [`NodeError::Rules`] for broken inventory rules, [`NodeError::NodeNotFound`], API errors.
pub async fn prepare(client: &kube::Client, document: &Document, inventory: &Inventory, node: &str, settings: &RemoveSettings) -> Result<Removal, NodeError> {
    let request = RemoveRequest { host: node.to_owned(), playbook_dir: settings.playbook_dir.clone(), unreachable: settings.unreachable };
    let plan = remove::plan(document, inventory, &request)?;
    if node_object::get_node(client, node).await?.is_none() {
        return Err(NodeError::NodeNotFound { node: node.to_owned() });
    }
    let drain = drain::plan_drain(client, node, settings.force).await?;
    let state = caasctl_restore::journal::state_dir();
    let stamp = playbook::log_path(Path::new(""), node);
    let uninstall_inventory = state.join("node-remove").join(stamp.with_extension("ini"));
    let log = settings.log.clone().unwrap_or_else(|| playbook::log_path(&state.join("logs"), &format!("node-remove-{node}")));
    Ok(Removal { plan, drain, uninstall_inventory, log })
}

/// Returns an error listing the pods that need `--force`, if any.
///
/// # Errors
/// [`NodeError::NeedsForce`].
pub fn check_force(drain: &DrainPlan) -> Result<(), NodeError> {
    let pods: Vec<String> = drain.needs_force().map(describe_risk).collect();
    if pods.is_empty() {
        Ok(())
    } else {
        Err(NodeError::NeedsForce { node: drain.node.clone(), pods })
    }
}

fn describe_risk(pod: &PlannedPod) -> String {
    let mut reasons = Vec::new();
    if pod.unmanaged {
        reasons.push("no controller".to_owned());
    }
    if !pod.empty_dir.is_empty() {
        reasons.push(format!("emptyDir {}", pod.empty_dir.join(", ")));
    }
    format!("{} ({})", pod.key(), reasons.join("; "))
}

/// Cordons every node of `removals`, evicts their pods and waits until the replacements run
/// Ready on nodes outside `removals` and `also_draining`.
///
/// # Errors
/// Those of [`evict::evict_and_replace`] and of the cordon.
pub async fn drain_nodes(client: &kube::Client, removals: &[&Removal], settings: &RemoveSettings, also_draining: &[String], context: &Context) -> Result<(), NodeError> {
    let mut drained: Vec<String> = removals.iter().map(|r| r.drain.node.clone()).collect();
    drained.extend(also_draining.iter().cloned());
    for removal in removals {
        cordon_node(client, &removal.drain.node, context).await?;
    }

    let pods: Vec<PlannedPod> = removals.iter().flat_map(|r| r.drain.to_evict().cloned()).collect();
    evict_pods(client, &pods, &drained, settings, context).await
}

/// Cordons one node and reports it.
///
/// # Errors
/// [`NodeError::Kube`].
pub async fn cordon_node(client: &kube::Client, node: &str, context: &Context) -> Result<(), NodeError> {
    node_object::cordon(client, node).await?;
    progress(context, context.tr("node.remove.cordoned", &[("node", &node)]));
    Ok(())
}

/// Evicts `pods` and waits until their replacements run Ready on nodes outside `drained`.
///
/// # Errors
/// Those of [`evict::evict_and_replace`].
pub async fn evict_pods(client: &kube::Client, pods: &[PlannedPod], drained: &[String], settings: &RemoveSettings, context: &Context) -> Result<(), NodeError> {
    let options = EvictOptions {
        deadline: Instant::now() + settings.timeout,
        interval: Duration::from_secs(2),
        report_every: Duration::from_secs(30),
        wait_deleted: !settings.unreachable,
    };
    let quiet = !context.progress;
    let context_copy = context.clone();
    let mut observer = move |event: DrainEvent| {
        if quiet {
            return;
        }
        let line = match event {
            DrainEvent::Evicted { pod } => context_copy.tr("node.remove.evicted", &[("pod", &pod)]),
            DrainEvent::Blocked { pod, budgets, message } => {
                let budgets = if budgets.is_empty() { "-".to_owned() } else { budgets.join(", ") };
                context_copy.tr("node.remove.blocked", &[("pod", &pod), ("budgets", &budgets), ("reason", &message)])
            }
            DrainEvent::Waiting { controller, ready, expected } => {
                context_copy.tr("node.remove.waiting", &[("controller", &controller), ("ready", &ready), ("expected", &expected)])
            }
            DrainEvent::Replaced { controllers } => context_copy.tr("node.remove.replaced", &[("count", &controllers)]),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    };
    evict::evict_and_replace(client, pods, drained, options, &mut observer).await
}

/// Deletes the node object, runs the uninstall playbook (unless the host is unreachable) and
/// removes the host from the main inventory. Returns the inventory copies made.
///
/// # Errors
/// API, playbook and inventory errors; the inventory is left unchanged when the playbook fails.
pub async fn finish(client: &kube::Client, removal: &Removal, settings: &RemoveSettings, context: &Context) -> anyhow::Result<Vec<PathBuf>> {
    let node = &removal.drain.node;
    let span = tracing::info_span!("node.remove.finish", node = %node);
    async move {
        let uninstall = removal.plan.playbook.as_ref().map(|_| (removal.uninstall_inventory.as_path(), removal.plan.uninstall_inventory.as_str()));
        delete_node(client, node, uninstall, context).await?;

        if let Some(playbook_path) = &removal.plan.playbook {
            run_uninstall(playbook_path, &removal.uninstall_inventory, &removal.log, context).await?;
        }

        Ok(edit_inventory(&settings.inventory, node, context)?)
    }
    .instrument(span)
    .await
}

/// Writes the uninstall inventory (`path` and text), when there is one, then deletes the node
/// object. Returns false when the node was already deleted, which counts as done.
///
/// # Errors
/// [`NodeError::Log`] when the inventory cannot be written, API errors.
pub async fn delete_node(client: &kube::Client, node: &str, uninstall: Option<(&Path, &str)>, context: &Context) -> Result<bool, NodeError> {
    if let Some((path, text)) = uninstall {
        write_uninstall_inventory(path, text)?;
    }
    let deleted = node_object::delete_node(client, node).await?;
    progress(context, context.tr("node.remove.deleted", &[("node", &node)]));
    Ok(deleted)
}

/// Runs the uninstall playbook on the inventory that names only the removed host, streaming its
/// output to stderr and to `log`.
///
/// # Errors
/// Those of [`playbook::run`].
pub async fn run_uninstall(playbook_path: &Path, inventory: &Path, log: &Path, context: &Context) -> Result<(), NodeError> {
    let run = PlaybookRun {
        program: std::env::var("CAASCTL_ANSIBLE_PLAYBOOK").unwrap_or_else(|_| "ansible-playbook".to_owned()),
        playbook: playbook_path.to_owned(),
        inventory: inventory.to_owned(),
        log: log.to_owned(),
    };
    let quiet = !context.progress;
    playbook::run(&run, |line| {
        if !quiet {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    })
    .await?;
    Ok(())
}

/// Removes the host's lines from the main inventory and returns the copies made before the edit
/// (none when no line was left).
///
/// # Errors
/// Inventory read and write errors.
pub fn edit_inventory(inventory: &Path, node: &str, context: &Context) -> Result<Vec<PathBuf>, caasctl_inventory::InventoryError> {
    let mut current = Document::read(inventory)?;
    let mut backups = Vec::new();
    if remove::remove_host(&mut current, node) > 0 {
        backups.extend(current.save(inventory)?);
    }
    progress(context, context.tr("node.remove.inventory_edited", &[("host", &node), ("inventory", &inventory.display())]));
    Ok(backups)
}

fn write_uninstall_inventory(path: &Path, text: &str) -> Result<(), NodeError> {
    let log_error = |source| NodeError::Log { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(log_error)?;
    }
    std::fs::write(path, text).map_err(log_error)
}

fn progress(context: &Context, line: String) {
    if context.progress {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Renders the plan of one or more removals.
pub fn render_plan(removals: &[Removal], settings: &RemoveSettings, context: &Context) -> String {
    let mut out = String::new();
    for removal in removals {
        let node = &removal.drain.node;
        out.push_str(&context.tr("node.remove.plan.title", &[("node", node), ("inventory", &settings.inventory.display())]));
        out.push('\n');
        let mut steps = vec![context.tr("node.remove.plan.cordon", &[("node", node)])];

        let evicted = removal.drain.to_evict().count();
        let mut evict = context.tr("node.remove.plan.evict", &[("count", &evicted), ("seconds", &settings.timeout.as_secs())]);
        for pod in &removal.drain.pods {
            let owner = pod.owner.as_ref().map(|o| format!("{} {}", o.kind, o.name)).unwrap_or_else(|| "-".to_owned());
            let key = match pod.action {
                PodAction::Evict if !pod.finished && (pod.unmanaged || !pod.empty_dir.is_empty()) => "node.remove.plan.pod_forced",
                PodAction::Evict => "node.remove.plan.pod_evict",
                PodAction::SkipDaemonSet => "node.remove.plan.pod_daemonset",
                PodAction::SkipMirror => "node.remove.plan.pod_mirror",
                PodAction::NeedsForce => "node.remove.plan.pod_needs_force",
            };
            evict.push_str(&format!("\n       - {}", context.tr(key, &[("pod", &pod.key()), ("owner", &owner)])));
        }
        steps.push(evict);

        steps.push(context.tr("node.remove.plan.wait", &[]));
        steps.push(context.tr("node.remove.plan.delete", &[("node", node)]));
        match &removal.plan.playbook {
            Some(playbook) => steps.push(context.tr(
                "node.remove.plan.uninstall",
                &[("inventory", &removal.uninstall_inventory.display()), ("playbook", &playbook.display()), ("log", &removal.log.display())],
            )),
            None => steps.push(context.tr("node.remove.plan.skip_uninstall", &[])),
        }
        for host_line in &removal.plan.lines {
            steps.push(context.tr("node.remove.plan.remove_line", &[("group", &host_line.group), ("line", &host_line.line), ("text", &host_line.text)]));
        }
        for (index, text) in steps.iter().enumerate() {
            out.push_str(&format!("  {}. {text}\n", index + 1));
        }
    }
    out
}
