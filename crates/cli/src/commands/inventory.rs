//! `caasctl inventory show`: the operator's Ansible inventory as ansible reads it.
//!
//! With `-o json` the output is the text `ansible-inventory -i FILE --list` prints (ansible-core
//! 2.14), byte for byte, so scripts written against ansible's JSON work unchanged. The text form
//! is a table of groups.

use std::path::PathBuf;

use anyhow::Context as _;
use caasctl_inventory::{Document, Inventory};
use clap::{Args, Subcommand};

use crate::context::Context;
use crate::output::{print_text, Table};
use crate::Exit;

/// `inventory` subcommands.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Show groups, hosts and host variables as ansible-inventory --list does.
    Show(ShowArgs),
}

/// `inventory show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Ansible inventory file in INI format.
    #[arg(id = "inventory", short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,
}

/// Runs an `inventory` subcommand.
pub fn run(command: &InventoryCommand, context: &Context) -> anyhow::Result<Exit> {
    match command {
        InventoryCommand::Show(args) => show(args, context),
    }
}

/// Reads and interprets the inventory file.
pub fn load(path: &std::path::Path) -> anyhow::Result<(Document, Inventory)> {
    let document = Document::read(path)?;
    let inventory = Inventory::from_document(&document).with_context(|| format!("{}", path.display()))?;
    Ok((document, inventory))
}

fn show(args: &ShowArgs, context: &Context) -> anyhow::Result<Exit> {
    let (_, inventory) = load(&args.inventory)?;
    if context.json() {
        print_text(&format!("{}\n", inventory.to_ansible_list_json()));
        return Ok(Exit::Success);
    }
    let mut table = Table::new(vec![
        context.tr("inventory.show.group", &[]),
        context.tr("inventory.show.hosts", &[]),
        context.tr("inventory.show.children", &[]),
    ]);
    for group in inventory.groups() {
        table.row(vec![group.name.clone(), group.hosts.join(" "), group.children.join(" ")]);
    }
    print_text(&table.render());
    Ok(Exit::Success)
}
