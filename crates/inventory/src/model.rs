//! The inventory as ansible sees it: groups with their hosts, children and variables, hosts with
//! their variables, and the merged variables of each host.
//!
//! The rules follow ansible-core 2.14's INI plugin and inventory data: sections are read top to
//! bottom; a group listed under `[parent:children]` may be declared later; every group without a
//! parent becomes a child of `all`; a host in no group but `all` goes to `ungrouped`. A host's
//! variables are merged from its groups ordered by depth below `all`, then
//! `ansible_group_priority`, then name, with the host's own variables last.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::document::{Document, LineKind, SectionKind};
use crate::error::InventoryError;
use crate::hostpattern::{self, PatternError};
use crate::pyliteral::parse_value;
use crate::shlex;
use crate::value::{self, Value};

/// One group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Hosts listed directly in the group, in first-seen order.
    pub hosts: Vec<String>,
    /// Child groups in the order ansible links them.
    pub children: Vec<String>,
    /// Parent groups.
    pub parents: Vec<String>,
    /// Variables of `[group:vars]`, without `ansible_group_priority`.
    pub vars: BTreeMap<String, Value>,
    /// `ansible_group_priority`, 1 when unset.
    pub priority: i64,
    /// Longest distance below `all`.
    pub depth: usize,
}

impl Group {
    fn new(name: &str) -> Group {
        Group {
            name: name.to_owned(),
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
            vars: BTreeMap::new(),
            priority: 1,
            depth: 0,
        }
    }
}

/// One host.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Inventory name.
    pub name: String,
    /// Variables set on the host's own lines, `ansible_port` from `host:PORT` included.
    pub vars: BTreeMap<String, Value>,
    /// 1-based line that first named the host.
    pub line: usize,
}

/// Where a pending `[x:children]` or `[x:vars]` reference was made.
struct Pending {
    name: String,
    line: usize,
    vars_only: bool,
    parents: Vec<String>,
}

/// An inventory interpreted as ansible interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    /// Host name to the groups that list it directly, filled once reading is done.
    memberships: HashMap<String, Vec<usize>>,
    /// Variables from `group_vars/` and `host_vars/` beside the inventory file.
    dir_vars: crate::vars_dirs::DirVars,
}

impl Inventory {
    /// Interprets a parsed document.
    ///
    /// # Errors
    /// [`InventoryError`] naming the line: malformed host lines, ranges, variable lines and child
    /// names, groups referenced but never declared, and group loops.
    pub fn from_document(document: &Document) -> Result<Inventory, InventoryError> {
        let origin = document.origin().to_owned();
        let syntax = |line: usize, reason: String| InventoryError::Syntax { origin: origin.clone(), line, reason };
        let mut inventory = Inventory {
            groups: Vec::new(),
            group_index: HashMap::new(),
            hosts: Vec::new(),
            host_index: HashMap::new(),
            memberships: HashMap::new(),
            dir_vars: crate::vars_dirs::DirVars::default(),
        };
        inventory.add_group("all");
        inventory.add_group("ungrouped");
        inventory.link("all", "ungrouped").map_err(|reason| syntax(0, reason))?;

        let mut pending: Vec<Pending> = Vec::new();
        let mut group = "ungrouped".to_owned();
        let mut state = SectionKind::Hosts;

        for (index, (text, kind)) in document.lines().iter().zip(document.kinds()).enumerate() {
            let line_number = index + 1;
            let line = text.trim();
            match kind {
                LineKind::Blank | LineKind::Comment => continue,
                LineKind::Header { group: name, kind } => {
                    group = name.clone();
                    state = *kind;
                    if !inventory.group_index.contains_key(&group) {
                        // `[g:vars]` alone does not declare g; it must be declared somewhere.
                        if state == SectionKind::Vars && !pending.iter().any(|p| p.name == group) {
                            pending.push(Pending { name: group.clone(), line: line_number, vars_only: true, parents: Vec::new() });
                        }
                        inventory.add_group(&group);
                    }
                    if state != SectionKind::Vars {
                        if let Some(position) = pending.iter().position(|p| p.name == group) {
                            let declared = pending.remove(position);
                            for parent in declared.parents {
                                inventory.link(&parent, &group).map_err(|_| InventoryError::GroupLoop {
                                    origin: origin.clone(),
                                    line: line_number,
                                    parent: parent.clone(),
                                    child: group.clone(),
                                })?;
                            }
                        }
                    }
                }
                LineKind::Entry => match state {
                    SectionKind::Hosts => inventory.read_host_line(&group, line, line_number, &origin)?,
                    SectionKind::Vars => {
                        let Some((key, value)) = line.split_once('=') else {
                            return Err(syntax(line_number, format!("Expected key=value, got: {line}")));
                        };
                        inventory.set_group_var(&group, key.trim(), parse_value(value.trim())).map_err(|reason| syntax(line_number, reason))?;
                    }
                    SectionKind::Children => {
                        let child = child_name(line).ok_or_else(|| syntax(line_number, format!("Expected group name, got: {line}")))?;
                        if inventory.group_index.contains_key(child) {
                            inventory.link(&group, child).map_err(|_| InventoryError::GroupLoop {
                                origin: origin.clone(),
                                line: line_number,
                                parent: group.clone(),
                                child: child.to_owned(),
                            })?;
                        } else if let Some(entry) = pending.iter_mut().find(|p| p.name == child) {
                            entry.parents.push(group.clone());
                        } else {
                            pending.push(Pending { name: child.to_owned(), line: line_number, vars_only: false, parents: vec![group.clone()] });
                        }
                    }
                },
            }
        }

        if let Some(first) = pending.into_iter().next() {
            return Err(if first.vars_only {
                InventoryError::UndefinedVarsGroup { origin, line: first.line, group: first.name }
            } else {
                let parent = first.parents.last().cloned().unwrap_or_default();
                InventoryError::UndefinedChildGroup { origin, line: first.line, parent, group: first.name }
            });
        }
        inventory.reconcile().map_err(|reason| syntax(0, reason))?;

        // An inventory read from a file gets the variable directories beside it, as ansible's
        // host_group_vars plugin adds them; text parsed under another name has none.
        let file = std::path::Path::new(&origin);
        if file.is_file() {
            let groups: Vec<String> = inventory.groups.iter().map(|g| g.name.clone()).collect();
            let hosts: Vec<String> = inventory.hosts.iter().map(|h| h.name.clone()).collect();
            inventory.dir_vars = crate::vars_dirs::read(file, &groups, &hosts)?;
        }
        Ok(inventory)
    }

    /// Parses and interprets inventory text.
    ///
    /// # Errors
    /// Those of [`Document::parse`] and [`Inventory::from_document`].
    pub fn parse(text: &str, origin: &str) -> Result<Inventory, InventoryError> {
        Inventory::from_document(&Document::parse(text, origin)?)
    }

    fn read_host_line(&mut self, group: &str, line: &str, line_number: usize, origin: &str) -> Result<(), InventoryError> {
        let syntax = |reason: String| InventoryError::Syntax { origin: origin.to_owned(), line: line_number, reason };
        let words = shlex::split(line).map_err(|e| syntax(format!("Error parsing host definition '{line}': {e}")))?;
        let Some(pattern) = words.first() else {
            return Err(syntax(format!("Expected a host name, got: {line}")));
        };
        let expanded = hostpattern::expand(pattern).map_err(|error| match error {
            PatternError::Range(reason) => {
                InventoryError::InvalidRange { origin: origin.to_owned(), line: line_number, pattern: pattern.clone(), reason }
            }
            PatternError::Pattern(reason) => syntax(reason),
        })?;
        let mut variables = Vec::new();
        for word in &words[1..] {
            let Some((key, value)) = word.split_once('=') else {
                return Err(syntax(format!("Expected key=value host variable assignment, got: {word}")));
            };
            variables.push((key.to_owned(), parse_value(value)));
        }
        for name in expanded.hosts {
            if name.is_empty() {
                return Err(syntax("Invalid empty host name provided".to_owned()));
            }
            let index = match self.host_index.get(&name) {
                Some(index) => *index,
                None => {
                    let mut vars = BTreeMap::new();
                    // A port only counts where the host is first named, and port 0 is ignored.
                    if let Some(port) = expanded.port.filter(|port| *port != 0) {
                        vars.insert("ansible_port".to_owned(), Value::Int(port.to_string()));
                    }
                    self.hosts.push(Host { name: name.clone(), vars, line: line_number });
                    self.host_index.insert(name.clone(), self.hosts.len() - 1);
                    self.hosts.len() - 1
                }
            };
            let group_index = self.group_index[group];
            if !self.groups[group_index].hosts.contains(&name) {
                self.groups[group_index].hosts.push(name.clone());
            }
            for (key, value) in &variables {
                self.hosts[index].vars.insert(key.clone(), value.clone());
            }
        }
        Ok(())
    }

    fn set_group_var(&mut self, group: &str, key: &str, value: Value) -> Result<(), String> {
        let group = &mut self.groups[self.group_index[group]];
        if key == "ansible_group_priority" {
            group.priority = python_int(&value).ok_or_else(|| format!("invalid literal for int(): {}", value.to_display_string()))?;
        } else {
            group.vars.insert(key.to_owned(), value);
        }
        Ok(())
    }

    fn add_group(&mut self, name: &str) {
        if !self.group_index.contains_key(name) {
            self.groups.push(Group::new(name));
            self.group_index.insert(name.to_owned(), self.groups.len() - 1);
        }
    }

    /// Makes `child` a child of `parent`, rejecting loops as ansible does.
    fn link(&mut self, parent: &str, child: &str) -> Result<(), String> {
        if parent == child {
            return Err(format!("can't add group {child} to itself"));
        }
        if self.groups[self.group_index[parent]].children.iter().any(|c| c == child) {
            return Ok(());
        }
        if self.ancestors(parent).iter().any(|a| a == child) {
            return Err(format!("Adding group '{child}' as child to '{parent}' creates a recursive dependency loop."));
        }
        self.groups[self.group_index[parent]].children.push(child.to_owned());
        let child_group = &mut self.groups[self.group_index[child]];
        if !child_group.parents.iter().any(|p| p == parent) {
            child_group.parents.push(parent.to_owned());
        }
        Ok(())
    }

    fn reconcile(&mut self) -> Result<(), String> {
        let orphans: Vec<String> =
            self.groups.iter().filter(|g| g.name != "all" && g.parents.is_empty()).map(|g| g.name.clone()).collect();
        for name in orphans {
            self.link("all", &name)?;
        }
        self.compute_depths();
        self.index_memberships();

        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for name in names {
            let groups = self.groups_of(&name);
            let in_other = groups.iter().any(|g| g != "all" && g != "ungrouped");
            let ungrouped = self.group_index["ungrouped"];
            if groups.iter().any(|g| g == "ungrouped") {
                if in_other {
                    self.groups[ungrouped].hosts.retain(|h| *h != name);
                }
            } else if !in_other {
                self.groups[ungrouped].hosts.push(name);
            }
        }
        self.index_memberships();
        Ok(())
    }

    fn index_memberships(&mut self) {
        self.memberships.clear();
        for (index, group) in self.groups.iter().enumerate() {
            for host in &group.hosts {
                self.memberships.entry(host.clone()).or_default().push(index);
            }
        }
    }

    fn compute_depths(&mut self) {
        // Longest path below `all`, as ansible's depth updates leave it; the graph has no loops
        // because `link` rejected them, so the relaxation ends.
        for group in &mut self.groups {
            group.depth = 0;
        }
        let mut changed = true;
        while changed {
            changed = false;
            for index in 0..self.groups.len() {
                let depth = self.groups[index].depth;
                for child in self.groups[index].children.clone() {
                    let child_index = self.group_index[&child];
                    if self.groups[child_index].depth < depth + 1 {
                        self.groups[child_index].depth = depth + 1;
                        changed = true;
                    }
                }
            }
        }
    }

    /// Returns every group name reachable upward from `group`, itself excluded.
    fn ancestors(&self, group: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut queue = vec![group.to_owned()];
        while let Some(name) = queue.pop() {
            for parent in &self.groups[self.group_index[&name]].parents {
                if !found.contains(parent) {
                    found.push(parent.clone());
                    queue.push(parent.clone());
                }
            }
        }
        found
    }

    /// Returns the groups `host` belongs to, directly or through children, `all` included.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let direct = self.memberships.get(host).map(Vec::as_slice).unwrap_or_default();
        for group in direct.iter().map(|index| &self.groups[*index]) {
            for name in std::iter::once(group.name.clone()).chain(self.ancestors(&group.name)) {
                if !found.contains(&name) {
                    found.push(name);
                }
            }
        }
        found
    }

    /// Returns the group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|index| &self.groups[*index])
    }

    /// Returns all groups in the order they were first seen.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Returns the host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.host_index.get(name).map(|index| &self.hosts[*index])
    }

    /// Returns all hosts in the order they were first seen.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Returns the hosts of `group` and of its descendants, each once.
    pub fn hosts_in(&self, group: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut found_set: HashSet<&str> = HashSet::new();
        let mut queue = vec![group.to_owned()];
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(found_group) = self.group(&name) else { continue };
            for host in &found_group.hosts {
                if found_set.insert(host) {
                    found.push(host.clone());
                }
            }
            queue.extend(found_group.children.iter().rev().cloned());
        }
        found
    }

    /// Returns the variables ansible applies to `host`, in ansible's order of precedence, so that
    /// each later source replaces the earlier. The order is the inventory file's group variables
    /// (by group depth, priority and name), `group_vars/all`, the other groups' `group_vars/`
    /// files in the same order, the host's own variables in the file, then `host_vars/HOST`.
    pub fn host_vars(&self, host: &str) -> BTreeMap<String, Value> {
        let mut groups: Vec<&Group> = self.groups_of(host).iter().filter_map(|name| self.group(name)).collect();
        groups.sort_by(|a, b| (a.depth, a.priority, &a.name).cmp(&(b.depth, b.priority, &b.name)));
        let mut merged = BTreeMap::new();
        for group in &groups {
            merged.extend(group.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let all_first = groups.iter().filter(|g| g.name == "all").chain(groups.iter().filter(|g| g.name != "all"));
        for group in all_first {
            if let Some(vars) = self.dir_vars.groups.get(&group.name) {
                merged.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(found) = self.host(host) {
            merged.extend(found.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(vars) = self.dir_vars.hosts.get(host) {
            merged.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }

    /// Returns the text `ansible-inventory -i FILE --list` prints for this inventory, without the
    /// final newline.
    pub fn to_ansible_list_json(&self) -> String {
        let mut top: Vec<(String, Value)> = Vec::new();
        for group in &self.groups {
            let mut entry = Vec::new();
            if !group.children.is_empty() {
                entry.push(("children".to_owned(), Value::List(group.children.iter().cloned().map(Value::Str).collect())));
            }
            if group.name != "all" && !group.hosts.is_empty() {
                entry.push(("hosts".to_owned(), Value::List(group.hosts.iter().cloned().map(Value::Str).collect())));
            }
            if !entry.is_empty() {
                top.push((group.name.clone(), Value::Dict(entry)));
            }
        }
        let mut hostvars = Vec::new();
        for host in self.hosts_in("all") {
            let vars = self.host_vars(&host);
            if !vars.is_empty() {
                hostvars.push((host, Value::Dict(vars.into_iter().collect())));
            }
        }
        top.push(("_meta".to_owned(), Value::Dict(vec![("hostvars".to_owned(), Value::Dict(hostvars))])));
        value::to_json(&Value::Dict(top), 0)
    }
}

/// Returns the group name of a `[x:children]` line, allowing a trailing `#` comment.
fn child_name(line: &str) -> Option<&str> {
    let end = line.find(|c: char| c.is_whitespace() || c == '#').unwrap_or(line.len());
    let name = &line[..end];
    let rest = line[end..].trim_start();
    if name.is_empty() || name.contains([':', ']']) || !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    Some(name)
}

/// Converts a value as Python's `int()` would, for `ansible_group_priority`.
fn python_int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(digits) => digits.parse().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::Float(number) if number.is_finite() => Some(number.trunc() as i64),
        Value::Str(text) => text.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}
