//! `caasctl image rollout`: prints the registry's view of the image, then one row per node with
//! what the node reports, and exits non-zero unless every node matched.

use std::path::Path;

use anyhow::Context as _;
use caasctl_inventory::Inventory;
use caasctl_registry::rollout::{self, NodeShell, NodeStatus, RolloutOptions, RolloutReport, Runtime};
use caasctl_registry::Reference;

use super::{RolloutArgs, RuntimeArg};
use crate::context::Context;
use crate::output::{self, Table};
use crate::Exit;

/// Runs the rollout.
pub async fn run(args: &RolloutArgs, context: &Context) -> anyhow::Result<Exit> {
    let image = Reference::parse(&args.image)?;
    let hosts: Vec<String> = match &args.group {
        Some(group) => group_hosts(&args.inventory, group)?,
        None => args.hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect(),
    };
    if hosts.is_empty() {
        anyhow::bail!(context.tr("registry.rollout.no_hosts", &[]));
    }
    let mut shell = NodeShell::default();
    if let Some(command) = &args.ssh_command {
        shell.command = command.split_whitespace().map(str::to_owned).collect();
    }
    let options = RolloutOptions {
        hosts,
        runtime: match args.runtime {
            RuntimeArg::Auto => Runtime::Auto,
            RuntimeArg::Docker => Runtime::Docker,
            RuntimeArg::Crictl => Runtime::Crictl,
        },
        shell,
        journal: args.journal.clone(),
    };
    let registries = args.registry.registries()?;
    let report = rollout::rollout(registries, &image, &options).await?;
    if context.json() {
        output::print_json(&report);
    } else {
        print_text(&report, context);
    }
    Ok(if report.complete { Exit::Success } else { Exit::Failure })
}

/// Returns the `ssh` destinations of the hosts of `group`: `ssh://[USER@]HOST[:PORT]` when the
/// host line sets `ansible_host`, `ansible_user` or `ansible_port`, else the inventory name.
///
/// # Limitations
/// Only variables on the host's own line are read; group variables (`[nodes:vars]`) and
/// `host_vars/` files are not applied.
fn group_hosts(inventory: &Path, group: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(inventory).with_context(|| format!("failed to read inventory {}", inventory.display()))?;
    let parsed = Inventory::parse(&text, &inventory.display().to_string())?;
    let mut targets = Vec::new();
    for name in parsed.hosts_in(group) {
        let variable = |key: &str| parsed.host(&name).and_then(|host| host.vars.get(key)).map(|value| value.to_display_string());
        let (address, user, port) = (variable("ansible_host"), variable("ansible_user"), variable("ansible_port"));
        if address.is_none() && user.is_none() && port.is_none() {
            targets.push(name);
            continue;
        }
        let mut target = "ssh://".to_owned();
        if let Some(user) = user {
            target.push_str(&format!("{user}@"));
        }
        target.push_str(address.as_deref().unwrap_or(&name));
        if let Some(port) = port {
            target.push_str(&format!(":{port}"));
        }
        targets.push(target);
    }
    Ok(targets)
}

fn print_text(report: &RolloutReport, context: &Context) {
    let platforms: Vec<&str> = report.registry.platforms.iter().map(|p| p.platform.as_str()).collect();
    let mut text = context.tr("registry.rollout.image", &[("image", &report.registry.image), ("digest", &report.registry.digest), ("platforms", &platforms.join(", "))]);
    text.push('\n');
    let header = context.tr("registry.rollout.header", &[]);
    let mut table = Table::new(header.split(',').map(str::to_owned).collect());
    for node in &report.nodes {
        let key = match node.status {
            NodeStatus::Ok => "registry.rollout.status.ok",
            NodeStatus::AlreadyDone => "registry.rollout.status.already-done",
            NodeStatus::Mismatch => "registry.rollout.status.mismatch",
            NodeStatus::Failed => "registry.rollout.status.failed",
            NodeStatus::NotStarted => "registry.rollout.status.not-started",
        };
        table.row(vec![
            node.host.clone(),
            context.tr(key, &[]),
            node.runtime.clone().unwrap_or_else(|| "-".to_owned()),
            node.platform.clone().unwrap_or_else(|| "-".to_owned()),
            node.image_id.clone().unwrap_or_else(|| "-".to_owned()),
            if node.repo_digests.is_empty() { "-".to_owned() } else { node.repo_digests.join(" ") },
        ]);
    }
    text.push_str(&table.render());
    for node in report.nodes.iter().filter(|n| n.error.is_some()) {
        text.push_str(&format!("{}: {}\n", node.host, node.error.as_deref().unwrap_or_default()));
    }
    if report.complete {
        text.push_str(&context.tr("registry.rollout.complete", &[("digest", &report.registry.digest)]));
    } else if let Some(stopped) = report.nodes.iter().find(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::Mismatch)) {
        text.push_str(&context.tr("registry.rollout.stopped", &[("host", &stopped.host)]));
    }
    text.push('\n');
    output::print_text(&text);
}
