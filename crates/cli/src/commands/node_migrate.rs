//! `caasctl node migrate`: move workloads from old nodes to new ones.
//!
//! The new hosts are added first with the same steps as `node add`. Then every old host is
//! cordoned, so that pods evicted from one batch do not land on a host of a later batch. The old
//! hosts are drained and removed a batch at a time. A batch starts only after the pods of the
//! previous one run Ready on the remaining nodes.
//!
//! Running the same command again after a failure continues the migration: new hosts already in
//! `[nodes]` and old hosts already gone are skipped.
//!
//! NOTE: only the addition is journaled, as its own `node-add` operation. The cordon and the
//! batches are not, so `caasctl ops resume` cannot continue a migration that failed in a batch.
//! A host whose node object was deleted but whose inventory line remains needs `node remove`.

use std::path::PathBuf;
use std::time::Duration;

use caasctl_nodes::migrate;
use caasctl_nodes::{node_object, NodeError};
use clap::Args;

use super::node::{AddArgs, TypeArg};
use super::node_remove::{self, Removal, RemoveSettings, DEFAULT_PLAYBOOK_DIR};
use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;

/// `node migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Old nodes to drain and remove, comma-separated.
    #[arg(id = "migrate_from", long = "from", value_name = "HOST,...", value_delimiter = ',', required = true)]
    pub from: Vec<String>,

    /// New nodes to add first, comma-separated.
    #[arg(id = "migrate_to", long = "to", value_name = "HOST,...", value_delimiter = ',', required = true)]
    pub to: Vec<String>,

    /// Number of old nodes drained and removed together.
    #[arg(id = "migrate_batch", long = "batch", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch: u16,

    /// Ansible inventory file in INI format.
    #[arg(id = "inventory", short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,

    /// Host variable written on each new host's line, such as openshift_node_group_name=node-config-compute (repeatable).
    #[arg(id = "node_var", long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,

    /// openshift-ansible checkout that contains the scale-up and uninstall playbooks.
    #[arg(id = "migrate_playbook_dir", long = "playbook-dir", value_name = "DIR", default_value = DEFAULT_PLAYBOOK_DIR)]
    pub playbook_dir: PathBuf,

    /// Kubeconfig of a cluster administrator (default $KUBECONFIG, then ~/.kube/config).
    #[arg(id = "remove_kubeconfig", long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Seconds to wait for the new nodes to become Ready.
    #[arg(id = "node_ready_timeout", long = "ready-timeout", value_name = "SECONDS", default_value_t = 600)]
    pub ready_timeout: u64,

    /// Seconds allowed for the evictions and for the replacement pods to become Ready.
    #[arg(id = "remove_timeout", long = "timeout", value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    /// Also evict pods without a controller and pods with emptyDir data; their data is lost.
    #[arg(id = "remove_force", long = "force")]
    pub force: bool,

    /// Print the plan and stop.
    #[arg(id = "node_dry_run", long = "dry-run", conflicts_with = "node_yes")]
    pub dry_run: bool,

    /// Apply without asking.
    #[arg(id = "node_yes", long = "yes", short = 'y')]
    pub yes: bool,
}

#[derive(serde::Serialize)]
struct MigrateReport<'a> {
    to: &'a [String],
    batches: Vec<Vec<String>>,
    removals: &'a [Removal],
    dry_run: bool,
}

/// Runs `node migrate`.
pub async fn run(args: &MigrateArgs, context: &Context) -> anyhow::Result<Exit> {
    let shared = migrate::overlap(&args.from, &args.to);
    if !shared.is_empty() {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.migrate.overlap", &[("hosts", &shared.join(", "))]));
        return Ok(Exit::Usage);
    }
    let settings = RemoveSettings {
        inventory: args.inventory.clone(),
        playbook_dir: args.playbook_dir.clone(),
        force: args.force,
        unreachable: false,
        timeout: Duration::from_secs(args.timeout),
        log: None,
    };
    let Some(client) = node_remove::connect(args.kubeconfig.as_deref(), context).await? else {
        return Ok(Exit::Usage);
    };

    // A migration run again after a failure continues where the first run stopped: new hosts
    // already in [nodes] are not added again, and old hosts gone from both the inventory and the
    // cluster are not removed again.
    let (to, from) = outstanding(&client, args).await?;
    for host in args.to.iter().filter(|h| !to.contains(h)) {
        eprintln!("{}", context.tr("node.migrate.already_added", &[("host", host)]));
    }
    for host in args.from.iter().filter(|h| !from.contains(h)) {
        eprintln!("{}", context.tr("node.migrate.already_removed", &[("host", host)]));
    }

    // Check every old host before the new hosts are added, so a wrong name stops nothing half-way.
    let removals = match plan_removals(&client, &from, &settings).await {
        Ok(removals) => removals,
        Err(NodeError::Rules { violations }) => return Ok(super::node::report_violations(violations, context)),
        Err(error) => return Err(error.into()),
    };
    let batches = migrate::batches(&from, usize::from(args.batch));

    let add = |dry_run: bool| AddArgs {
        hosts: to.clone(),
        node_type: TypeArg::Node,
        inventory: args.inventory.clone(),
        vars: args.vars.clone(),
        playbook_dir: args.playbook_dir.clone(),
        kubeconfig: args.kubeconfig.clone().or_else(|| super::node::find_kubeconfig(None)),
        ready_timeout: args.ready_timeout,
        log: None,
        dry_run,
        yes: !dry_run,
    };
    if !to.is_empty() {
        let add_check = super::node::add_nodes(&add(true), context, true).await?;
        if add_check != Exit::Success {
            return Ok(add_check);
        }
    }
    if !context.json() || !args.dry_run {
        eprint!("{}", render_batches(&batches, context));
        eprint!("{}", node_remove::render_plan(&removals, &settings, context));
    }
    for removal in &removals {
        node_remove::check_force(&removal.drain)?;
    }
    if args.dry_run {
        if context.json() {
            print_json(&MigrateReport { to: &args.to, batches, removals: &removals, dry_run: true });
        }
        return Ok(Exit::Success);
    }
    if !args.yes && !super::node::confirm(context) {
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("node.plan.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    if !to.is_empty() {
        let added = super::node::add_nodes(&add(false), context, true).await?;
        if added != Exit::Success {
            return Ok(added);
        }
    }

    for host in &from {
        node_object::cordon(&client, host).await?;
    }
    for (index, batch) in batches.iter().enumerate() {
        eprintln!("{}", context.tr("node.migrate.batch", &[("index", &(index + 1)), ("count", &batches.len()), ("hosts", &batch.join(", "))]));
        // Pods may have moved since the plan was printed, so each batch is planned again.
        let fresh = plan_removals(&client, batch, &settings).await?;
        for removal in &fresh {
            node_remove::check_force(&removal.drain)?;
        }
        let refs: Vec<&Removal> = fresh.iter().collect();
        node_remove::drain_nodes(&client, &refs, &settings, &from, context).await?;
        for removal in &fresh {
            node_remove::finish(&client, removal, &settings, context).await?;
        }
    }

    if context.json() {
        print_json(&MigrateReport { to: &args.to, batches, removals: &removals, dry_run: false });
    } else {
        print_text(&format!("{}\n", context.tr("node.migrate.done", &[("from", &args.from.join(", ")), ("to", &args.to.join(", "))])));
    }
    Ok(Exit::Success)
}

/// Returns the new hosts not yet in `[nodes]` and the old hosts still in the inventory or the
/// cluster, each in the order given.
async fn outstanding(client: &kube::Client, args: &MigrateArgs) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let document = caasctl_inventory::Document::read(&args.inventory)?;
    let inventory = caasctl_inventory::Inventory::from_document(&document)?;
    let in_nodes = inventory.hosts_in("nodes");
    let to = args.to.iter().filter(|host| !in_nodes.contains(host)).cloned().collect();
    let mut from = Vec::new();
    for host in &args.from {
        let listed = inventory.host(host).is_some();
        if listed || node_object::get_node(client, host).await?.is_some() {
            from.push(host.clone());
        }
    }
    Ok((to, from))
}

async fn plan_removals(client: &kube::Client, hosts: &[String], settings: &RemoveSettings) -> Result<Vec<Removal>, NodeError> {
    let (document, inventory) = {
        let document = caasctl_inventory::Document::read(&settings.inventory)?;
        let inventory = caasctl_inventory::Inventory::from_document(&document)?;
        (document, inventory)
    };
    let mut removals = Vec::new();
    let mut violations = Vec::new();
    for host in hosts {
        match node_remove::prepare(client, &document, &inventory, host, settings).await {
            Ok(removal) => removals.push(removal),
            Err(NodeError::Rules { violations: found }) => violations.extend(found),
            Err(error) => return Err(error),
        }
    }
    if violations.is_empty() {
        Ok(removals)
    } else {
        Err(NodeError::Rules { violations })
    }
}

fn render_batches(batches: &[Vec<String>], context: &Context) -> String {
    let mut out = context.tr("node.migrate.plan.title", &[("count", &batches.len())]);
    out.push('\n');
    for (index, batch) in batches.iter().enumerate() {
        out.push_str(&format!("  {}\n", context.tr("node.migrate.batch", &[("index", &(index + 1)), ("count", &batches.len()), ("hosts", &batch.join(", "))])));
    }
    out
}
