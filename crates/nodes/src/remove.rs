//! The inventory side of removing a node: which lines name the host, the inventory that names
//! only that host for openshift-ansible's uninstall playbook, and removing the host's lines from
//! the main inventory.

use std::path::{Path, PathBuf};

use caasctl_inventory::hostpattern;
use caasctl_inventory::{Document, Inventory, SectionKind};

use crate::error::NodeError;
use crate::rules::Violation;

/// The uninstall playbook, relative to the openshift-ansible checkout.
pub const UNINSTALL_PLAYBOOK: &str = "playbooks/adhoc/uninstall.yml";

/// Groups whose hosts run the control plane. Removing one of them needs more than a drain
/// (etcd membership, API load balancer), so `node remove` rejects such hosts.
const CONTROL_PLANE_GROUPS: [&str; 4] = ["masters", "new_masters", "etcd", "new_etcd"];

/// Group variable sections copied into the uninstall inventory, in this order.
const COPIED_VARS: [&str; 3] = ["all", "OSEv3", "nodes"];

/// The removal the operator requested.
#[derive(Debug, Clone)]
pub struct RemoveRequest {
    /// Node name, which is also the inventory host name.
    pub host: String,
    /// The openshift-ansible checkout holding the uninstall playbook.
    pub playbook_dir: PathBuf,
    /// True when the host cannot be reached, so the uninstall playbook is skipped.
    pub unreachable: bool,
}

/// One inventory line that names the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostLine {
    /// Group of the section the line is in.
    pub group: String,
    /// Line number, from 1.
    pub line: usize,
    /// Line text.
    pub text: String,
}

/// The inventory edits of one removal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemovePlan {
    /// Host name.
    pub host: String,
    /// Lines removed from the main inventory.
    pub lines: Vec<HostLine>,
    /// The uninstall playbook, or `None` with `--unreachable`.
    pub playbook: Option<PathBuf>,
    /// Text of the inventory that names only this host.
    pub uninstall_inventory: String,
}

/// Checks that the host can be removed and builds the plan, or returns every broken rule.
///
/// # Errors
/// [`NodeError::Rules`] with all violations.
pub fn plan(document: &Document, inventory: &Inventory, request: &RemoveRequest) -> Result<RemovePlan, NodeError> {
    let host = &request.host;
    let mut violations = Vec::new();

    if inventory.host(host).is_none() {
        violations.push(Violation::HostNotInInventory { host: host.clone() });
    }
    for group in CONTROL_PLANE_GROUPS {
        if inventory.hosts_in(group).contains(host) {
            violations.push(Violation::ControlPlaneHost { host: host.clone(), group: group.to_owned() });
        }
    }

    let mut lines = Vec::new();
    for section in document.sections().iter().filter(|s| s.kind == SectionKind::Hosts) {
        for index in document.entries(&section.group, SectionKind::Hosts).into_iter().filter(|i| (section.start..section.end).contains(i)) {
            let Ok(expanded) = hostpattern::expand(&first_word(&document.lines()[index])) else { continue };
            if !expanded.hosts.iter().any(|h| h == host) {
                continue;
            }
            if expanded.hosts.len() > 1 {
                violations.push(Violation::HostFromRange { host: host.clone(), group: section.group.clone(), line: index + 1 });
                continue;
            }
            let text = document.lines()[index].trim_end_matches('\r').to_owned();
            lines.push(HostLine { group: section.group.clone(), line: index + 1, text });
        }
    }

    let playbook = (!request.unreachable).then(|| request.playbook_dir.join(UNINSTALL_PLAYBOOK));
    if let Some(path) = playbook.as_ref().filter(|p| !p.is_file()) {
        violations.push(Violation::PlaybookMissing { path: path.display().to_string() });
    }

    if !violations.is_empty() {
        return Err(NodeError::Rules { violations });
    }
    let uninstall_inventory = uninstall_inventory(document, host, &lines);
    Ok(RemovePlan { host: host.clone(), lines, playbook, uninstall_inventory })
}

/// Writes the inventory the runbook prescribes for the uninstall playbook: `nodes` as the only
/// child of `OSEv3`, the variables of `[all:vars]`, `[OSEv3:vars]` and `[nodes:vars]`, and the
/// host's own line (with its host variables) in `[nodes]`.
///
/// NOTE: variables of the host's other groups (such as a custom `[infra:vars]`) are not copied.
/// openshift-ansible 3.11's uninstall playbook is not known to need them, but this is unchecked.
fn uninstall_inventory(document: &Document, host: &str, lines: &[HostLine]) -> String {
    let mut out = format!("# Written by caasctl node remove: only {host}, for openshift-ansible's uninstall playbook.\n");
    out.push_str("[OSEv3:children]\nnodes\n");
    for group in COPIED_VARS {
        let entries = document.entries(group, SectionKind::Vars);
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{group}:vars]\n"));
        for index in entries {
            out.push_str(document.lines()[index].trim_end_matches('\r'));
            out.push('\n');
        }
    }
    let line = lines
        .iter()
        .find(|l| l.group == "nodes")
        .or_else(|| lines.iter().find(|l| l.group == "new_nodes"))
        .or_else(|| lines.first())
        .map(|l| l.text.clone())
        .unwrap_or_else(|| host.to_owned());
    out.push_str(&format!("\n[nodes]\n{line}\n"));
    out
}

/// Removes every line naming exactly `host` from the host sections, and returns how many lines
/// were removed. Running it again removes nothing.
pub fn remove_host(document: &mut Document, host: &str) -> usize {
    let mut removed = 0;
    loop {
        let found = document.sections().into_iter().filter(|s| s.kind == SectionKind::Hosts).find_map(|section| {
            document
                .entries(&section.group, SectionKind::Hosts)
                .into_iter()
                .filter(|i| (section.start..section.end).contains(i))
                .find(|i| first_word(&document.lines()[*i]) == host)
        });
        let Some(index) = found else { return removed };
        document.remove_line(index);
        removed += 1;
    }
}

/// Returns the path of the uninstall playbook under `dir`.
pub fn uninstall_playbook(dir: &Path) -> PathBuf {
    dir.join(UNINSTALL_PLAYBOOK)
}

fn first_word(line: &str) -> String {
    caasctl_inventory::shlex::split(line.trim()).ok().and_then(|words| words.into_iter().next()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "\
[OSEv3:children]
masters
nodes
etcd

[OSEv3:vars]
ansible_ssh_user=root
openshift_deployment_type=origin

[masters]
master1

[etcd]
master1

# compute nodes
[nodes]
master1 openshift_node_group_name='node-config-master'
node3.example.com openshift_node_group_name='node-config-infra'
node[4:5] openshift_node_group_name='node-config-compute'

[infra]
node3.example.com
";

    fn playbook_dir(with_playbook: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if with_playbook {
            let path = dir.path().join(UNINSTALL_PLAYBOOK);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "---\n").unwrap();
        }
        dir
    }

    fn plan_for(host: &str, dir: &Path, unreachable: bool) -> Result<RemovePlan, NodeError> {
        let document = Document::parse(CLUSTER, "inv").unwrap();
        let inventory = Inventory::from_document(&document).unwrap();
        plan(&document, &inventory, &RemoveRequest { host: host.to_owned(), playbook_dir: dir.to_owned(), unreachable })
    }

    #[test]
    fn plan_lists_lines_and_writes_uninstall_inventory() {
        let dir = playbook_dir(true);
        let plan = plan_for("node3.example.com", dir.path(), false).unwrap();
        assert_eq!(plan.lines.iter().map(|l| (l.group.as_str(), l.line)).collect::<Vec<_>>(), [("nodes", 19), ("infra", 23)]);
        assert_eq!(
            plan.uninstall_inventory,
            "# Written by caasctl node remove: only node3.example.com, for openshift-ansible's uninstall playbook.\n\
             [OSEv3:children]\nnodes\n\n[OSEv3:vars]\nansible_ssh_user=root\nopenshift_deployment_type=origin\n\n\
             [nodes]\nnode3.example.com openshift_node_group_name='node-config-infra'\n"
        );
        let parsed = Inventory::parse(&plan.uninstall_inventory, "uninstall").unwrap();
        assert_eq!(parsed.hosts_in("nodes"), ["node3.example.com"]);
    }

    #[test]
    fn plan_rejects_master_range_and_unknown_host() {
        let dir = playbook_dir(false);
        let NodeError::Rules { violations } = plan_for("master1", dir.path(), false).unwrap_err() else { panic!() };
        assert!(violations.contains(&Violation::ControlPlaneHost { host: "master1".into(), group: "masters".into() }), "{violations:?}");
        assert!(violations.iter().any(|v| matches!(v, Violation::PlaybookMissing { .. })), "{violations:?}");

        let NodeError::Rules { violations } = plan_for("node4", dir.path(), true).unwrap_err() else { panic!() };
        assert_eq!(violations, [Violation::HostFromRange { host: "node4".into(), group: "nodes".into(), line: 20 }]);

        let NodeError::Rules { violations } = plan_for("node9", dir.path(), true).unwrap_err() else { panic!() };
        assert_eq!(violations, [Violation::HostNotInInventory { host: "node9".into() }]);
    }

    #[test]
    fn remove_host_keeps_everything_else() {
        let mut document = Document::parse(CLUSTER, "inv").unwrap();
        assert_eq!(remove_host(&mut document, "node3.example.com"), 2);
        assert_eq!(
            document.text(),
            CLUSTER.replace("node3.example.com openshift_node_group_name='node-config-infra'\n", "").replace("[infra]\nnode3.example.com\n", "[infra]\n")
        );
        assert_eq!(remove_host(&mut document, "node3.example.com"), 0, "removing twice changes nothing");
    }
}
