//! Planning a scale-up and the two inventory edits around its playbook.
//!
//! Before the playbook: `new_<type>` goes under `[OSEv3:children]` and each host gets a line in
//! `[new_<type>]` (a master also one in `[new_nodes]`, so that it joins the SDN). After the
//! playbook and the checks: each of those lines moves, unchanged, into the main group
//! (`[nodes]`, `[masters]`, `[etcd]`), leaving `[new_<type>]` empty, so later playbooks configure
//! the hosts as ordinary members.

use std::path::{Path, PathBuf};

use caasctl_inventory::hostpattern;
use caasctl_inventory::{Document, Inventory, InventoryError, LineKind, SectionKind};

use crate::error::NodeError;
use crate::rules::{is_variable_name, Violation};

/// What kind of host is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// A compute or infra node.
    Node,
    /// A master, which is also a node.
    Master,
    /// An etcd member.
    Etcd,
}

impl NodeType {
    /// Returns the group the hosts end up in.
    pub fn main_group(self) -> &'static str {
        match self {
            NodeType::Node => "nodes",
            NodeType::Master => "masters",
            NodeType::Etcd => "etcd",
        }
    }

    /// Returns the group the scale-up playbook reads the new hosts from.
    pub fn new_group(self) -> &'static str {
        match self {
            NodeType::Node => "new_nodes",
            NodeType::Master => "new_masters",
            NodeType::Etcd => "new_etcd",
        }
    }

    /// Returns the scale-up playbook, relative to the openshift-ansible checkout.
    pub fn playbook(self) -> &'static str {
        match self {
            NodeType::Node => "playbooks/openshift-node/scaleup.yml",
            NodeType::Master => "playbooks/openshift-master/scaleup.yml",
            NodeType::Etcd => "playbooks/openshift-etcd/scaleup.yml",
        }
    }

    /// Returns true when the new hosts also run a kubelet and so become Kubernetes nodes.
    pub fn registers_nodes(self) -> bool {
        !matches!(self, NodeType::Etcd)
    }
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Host arguments; a range such as `node[05:06].example.com` stands for each of its hosts.
    pub hosts: Vec<String>,
    /// Kind of host.
    pub node_type: NodeType,
    /// `KEY=VALUE` variables written on each new host's line.
    pub vars: Vec<String>,
    /// The openshift-ansible checkout holding the playbooks.
    pub playbook_dir: PathBuf,
}

/// One host line written before the playbook and moved after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostLine {
    /// Host name.
    pub host: String,
    /// The `new_*` group the line is written to.
    pub new_group: String,
    /// The group it moves to afterwards.
    pub main_group: String,
    /// The line text.
    pub text: String,
}

/// The scale-up, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddPlan {
    /// Kind of host.
    pub node_type: NodeType,
    /// Hosts added, in argument order.
    pub hosts: Vec<String>,
    /// Groups added under `[OSEv3:children]`.
    pub children_added: Vec<String>,
    /// Host lines to write, then move.
    pub lines: Vec<HostLine>,
    /// The playbook to run.
    pub playbook: PathBuf,
    /// Whether the hosts register as Kubernetes nodes, to be checked Ready.
    pub registers_nodes: bool,
}

/// Builds the plan, or returns every broken rule.
///
/// # Errors
/// [`NodeError::Rules`] with all violations; [`NodeError::Inventory`] when the edited inventory
/// cannot be read back.
pub fn plan(document: &Document, inventory: &Inventory, request: &AddRequest) -> Result<AddPlan, NodeError> {
    let node_type = request.node_type;
    let mut violations = Vec::new();

    let mut hosts: Vec<String> = Vec::new();
    for text in &request.hosts {
        match hostpattern::expand(text) {
            Ok(expanded) if expanded.port.is_some() => violations.push(Violation::InvalidHost {
                text: text.clone(),
                reason: "give the SSH port with --var ansible_port=PORT".to_owned(),
            }),
            // An inventory line is a host followed by variables, so a name with a space, `=` or
            // `#` would be read back as something else.
            Ok(_) if text.contains(|c: char| c.is_whitespace() || c == '=' || c == '#') => violations.push(Violation::InvalidHost {
                text: text.clone(),
                reason: "a host name cannot contain spaces, = or #".to_owned(),
            }),
            Ok(expanded) => hosts.extend(expanded.hosts.into_iter().filter(|h| !h.is_empty())),
            Err(hostpattern::PatternError::Range(reason) | hostpattern::PatternError::Pattern(reason)) => {
                violations.push(Violation::InvalidHost { text: text.clone(), reason })
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|host| seen.insert(host.clone()));

    let mut var_words = Vec::new();
    for var in &request.vars {
        match var.split_once('=') {
            Some((key, value)) if is_variable_name(key) => var_words.push(format!("{key}={}", quote_value(value))),
            _ => violations.push(Violation::InvalidVar { text: var.clone() }),
        }
    }

    if !document.has_section("OSEv3", SectionKind::Children) {
        violations.push(Violation::NoOsev3Children);
    }
    let mut required = vec!["masters"];
    if node_type.registers_nodes() {
        required.push("nodes");
    }
    if node_type == NodeType::Etcd {
        required.push("etcd");
    }
    for group in required {
        if inventory.hosts_in(group).is_empty() {
            violations.push(Violation::MissingGroup { group: group.to_owned() });
        }
    }

    let mut touched = vec![node_type];
    if node_type == NodeType::Master {
        touched.push(NodeType::Node);
    }
    for kind in &touched {
        let pending = inventory.hosts_in(kind.new_group());
        if !pending.is_empty() {
            violations.push(Violation::PendingScaleUp { group: kind.new_group().to_owned(), hosts: pending });
        }
        for host in &hosts {
            for group in [kind.main_group(), kind.new_group()] {
                if inventory.hosts_in(group).contains(host) {
                    violations.push(Violation::AlreadyInCluster { host: host.clone(), group: group.to_owned() });
                }
            }
        }
    }

    let playbook = request.playbook_dir.join(node_type.playbook());
    if !playbook.is_file() {
        violations.push(Violation::PlaybookMissing { path: playbook.display().to_string() });
    }

    let mut lines = Vec::new();
    for host in &hosts {
        let with_vars = std::iter::once(host.clone()).chain(var_words.iter().cloned()).collect::<Vec<_>>().join(" ");
        match node_type {
            NodeType::Master => {
                lines.push(HostLine { host: host.clone(), new_group: "new_masters".into(), main_group: "masters".into(), text: host.clone() });
                lines.push(HostLine { host: host.clone(), new_group: "new_nodes".into(), main_group: "nodes".into(), text: with_vars });
            }
            _ => lines.push(HostLine {
                host: host.clone(),
                new_group: node_type.new_group().into(),
                main_group: node_type.main_group().into(),
                text: with_vars,
            }),
        }
    }
    let children_added: Vec<String> = touched
        .iter()
        .map(|kind| kind.new_group().to_owned())
        .filter(|group| !inventory.group("OSEv3").is_some_and(|g| g.children.contains(group)))
        .collect();

    let plan = AddPlan { node_type, hosts, children_added, lines, playbook, registers_nodes: node_type.registers_nodes() };

    // The remaining rules are about the inventory as the playbook will read it. An invalid host
    // could make the staged inventory unreadable, and the reader's error would name a line the
    // operator never wrote, so it is reported first.
    if violations.iter().all(|v| !matches!(v, Violation::NoOsev3Children | Violation::InvalidHost { .. })) {
        let mut staged = document.clone();
        stage(&mut staged, &plan);
        let after = Inventory::from_document(&Document::parse(&staged.text(), document.origin())?)?;
        for host in &plan.hosts {
            if node_type == NodeType::Etcd {
                for group in ["new_masters", "new_nodes"] {
                    if after.hosts_in(group).contains(host) {
                        violations.push(Violation::EtcdHostAlsoNew { host: host.clone(), group: group.to_owned() });
                    }
                }
            }
            if node_type.registers_nodes() && !after.host_vars(host).contains_key("openshift_node_group_name") {
                violations.push(Violation::MissingNodeGroupName { host: host.clone() });
            }
        }
    }

    if violations.is_empty() {
        Ok(plan)
    } else {
        Err(NodeError::Rules { violations })
    }
}

/// Quotes a value for a host line so that shell-style splitting gives it back unchanged.
fn quote_value(value: &str) -> String {
    if !value.contains('\'') {
        format!("'{value}'")
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Writes the pre-playbook edit into `document`; lines already present are not written twice.
pub fn stage(document: &mut Document, plan: &AddPlan) {
    for group in &plan.children_added {
        let listed = document.entries("OSEv3", SectionKind::Children).iter().any(|i| first_word(&document.lines()[*i]) == *group);
        if !listed {
            document.add_entry("OSEv3", SectionKind::Children, group, None);
        }
    }
    for line in &plan.lines {
        let present = document.entries(&line.new_group, SectionKind::Hosts).iter().any(|i| first_word(&document.lines()[*i]) == line.host);
        if !present {
            let anchor = line.main_group.clone();
            document.add_entry(&line.new_group, SectionKind::Hosts, &line.text, Some(&anchor));
        }
    }
}

/// Moves each planned host's line from its `new_*` group into its main group, unchanged.
///
/// # Errors
/// [`InventoryError::HostInRange`] when a host in the `new_*` group comes from a range or a line
/// naming several hosts, which cannot be moved line by line.
pub fn finalize(document: &mut Document, plan: &AddPlan) -> Result<(), InventoryError> {
    for line in &plan.lines {
        let Some(index) = find_host_line(document, &line.new_group, &line.host)? else {
            continue;
        };
        let text = document.remove_line(index);
        let text = text.strip_suffix('\r').unwrap_or(&text).to_owned();
        if find_host_line(document, &line.main_group, &line.host)?.is_none() {
            document.add_entry(&line.main_group, SectionKind::Hosts, &text, None);
        }
    }
    Ok(())
}

/// Returns the line in `[group]` that names exactly `host`.
fn find_host_line(document: &Document, group: &str, host: &str) -> Result<Option<usize>, InventoryError> {
    for index in document.entries(group, SectionKind::Hosts) {
        let word = first_word(&document.lines()[index]);
        let Ok(expanded) = hostpattern::expand(&word) else { continue };
        if expanded.hosts.iter().any(|h| h == host) {
            if expanded.hosts.len() > 1 {
                return Err(InventoryError::HostInRange { host: host.to_owned(), group: group.to_owned(), line: index + 1 });
            }
            return Ok(Some(index));
        }
    }
    Ok(None)
}

fn first_word(line: &str) -> String {
    caasctl_inventory::shlex::split(line.trim()).ok().and_then(|words| words.into_iter().next()).unwrap_or_default()
}

/// Returns the path of the scale-up playbook of `node_type` under `dir`.
pub fn playbook_path(dir: &Path, node_type: NodeType) -> PathBuf {
    dir.join(node_type.playbook())
}

/// Returns true when `document` still has a `[group]` line for `host` (used by tests and resume).
pub fn has_host_line(document: &Document, group: &str, host: &str) -> bool {
    document
        .entries(group, SectionKind::Hosts)
        .iter()
        .any(|i| document.kinds()[*i] == LineKind::Entry && first_word(&document.lines()[*i]) == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "\
[OSEv3:children]
masters
nodes
etcd

[masters]
master1

[etcd]
master1

[nodes]
master1 openshift_node_group_name='node-config-master'
node[1:2] openshift_node_group_name='node-config-compute'
";

    fn playbooks() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for kind in [NodeType::Node, NodeType::Master, NodeType::Etcd] {
            let path = dir.path().join(kind.playbook());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "---\n").unwrap();
        }
        dir
    }

    fn plan_for(text: &str, hosts: &[&str], node_type: NodeType, vars: &[&str], dir: &Path) -> Result<AddPlan, NodeError> {
        let document = Document::parse(text, "inv").unwrap();
        let inventory = Inventory::from_document(&document).unwrap();
        let request = AddRequest {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            node_type,
            vars: vars.iter().map(|v| v.to_string()).collect(),
            playbook_dir: dir.to_owned(),
        };
        plan(&document, &inventory, &request)
    }

    #[test]
    fn plan_expands_range_and_quotes_vars() {
        let dir = playbooks();
        let plan = plan_for(CLUSTER, &["node[3:4]"], NodeType::Node, &["openshift_node_group_name=node-config-compute", "note=it's"], dir.path()).unwrap();
        assert_eq!(plan.hosts, ["node3", "node4"]);
        assert_eq!(plan.children_added, ["new_nodes"]);
        assert_eq!(plan.lines[0].text, "node3 openshift_node_group_name='node-config-compute' note=\"it's\"");
    }

    #[test]
    fn plan_rejects_host_from_range() {
        let dir = playbooks();
        let error = plan_for(CLUSTER, &["node2"], NodeType::Node, &[], dir.path()).unwrap_err();
        let NodeError::Rules { violations } = error else { panic!("{error:?}") };
        assert!(violations.contains(&Violation::AlreadyInCluster { host: "node2".into(), group: "nodes".into() }), "{violations:?}");
    }

    #[test]
    fn stage_then_finalize_master() {
        let dir = playbooks();
        let plan = plan_for(CLUSTER, &["master2"], NodeType::Master, &["openshift_node_group_name=node-config-master"], dir.path()).unwrap();
        let mut document = Document::parse(CLUSTER, "inv").unwrap();
        stage(&mut document, &plan);
        stage(&mut document, &plan);
        let staged = Inventory::parse(&document.text(), "inv").unwrap();
        assert_eq!(staged.group("new_masters").unwrap().hosts, ["master2"]);
        assert_eq!(staged.group("new_nodes").unwrap().hosts, ["master2"], "staging twice writes each line once");

        finalize(&mut document, &plan).unwrap();
        let done = Inventory::parse(&document.text(), "inv").unwrap();
        assert!(done.group("new_masters").unwrap().hosts.is_empty());
        assert!(done.group("new_nodes").unwrap().hosts.is_empty());
        assert_eq!(done.group("masters").unwrap().hosts, ["master1", "master2"]);
        assert!(has_host_line(&document, "nodes", "master2"));
        finalize(&mut document, &plan).unwrap();
        assert_eq!(Inventory::parse(&document.text(), "inv").unwrap(), done, "finalize is idempotent");
    }

    #[test]
    fn finalize_rejects_range_in_new_group() {
        let dir = playbooks();
        let plan = plan_for(CLUSTER, &["node7"], NodeType::Node, &["openshift_node_group_name=x"], dir.path()).unwrap();
        let mut document = Document::parse(&format!("{CLUSTER}\n[new_nodes]\nnode[7:8]\n"), "inv").unwrap();
        let error = finalize(&mut document, &plan).unwrap_err();
        assert!(matches!(error, InventoryError::HostInRange { line: 17, .. }), "{error:?}");
    }
}
