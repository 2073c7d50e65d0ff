//! The `group_vars/` and `host_vars/` directories beside an inventory file, which ansible's
//! `host_group_vars` plugin reads for `ansible-inventory --list` as for a playbook run.
//!
//! For a group or host NAME, the plugin reads `DIR/NAME` with no extension or with `.yml`,
//! `.yaml` or `.json`, and every such file below a directory `DIR/NAME/`, in sorted path order.
//! Each file contains one YAML mapping, and a later file's keys replace an earlier file's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::InventoryError;
use crate::value::Value;

/// Variables of one group or host, in the order ansible applies them.
pub type Vars = Vec<(String, Value)>;

/// Variables read from the two directories, by group and by host name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirVars {
    /// `group_vars/NAME` for each group that has one.
    pub groups: BTreeMap<String, Vars>,
    /// `host_vars/NAME` for each host that has one.
    pub hosts: BTreeMap<String, Vars>,
}

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// Reads the variables for `groups` and `hosts` beside `inventory_file`. Missing directories
/// and names without files give no variables.
///
/// # Errors
/// [`InventoryError::VarsFile`] naming a file that cannot be read or is not a YAML mapping.
pub fn read(inventory_file: &Path, groups: &[String], hosts: &[String]) -> Result<DirVars, InventoryError> {
    let base = inventory_file.parent().unwrap_or(Path::new("."));
    let mut found = DirVars::default();
    for (kind, names, into) in [("group_vars", groups, &mut found.groups), ("host_vars", hosts, &mut found.hosts)] {
        let dir = base.join(kind);
        if !dir.is_dir() {
            continue;
        }
        for name in names {
            let mut vars: Vars = Vec::new();
            for file in files_for(&dir, name) {
                for (key, value) in read_file(&file)? {
                    vars.retain(|(existing, _)| *existing != key);
                    vars.push((key, value));
                }
            }
            if !vars.is_empty() {
                into.insert(name.clone(), vars);
            }
        }
    }
    Ok(found)
}

/// Returns the files that contain the variables of `name` in `dir`, in the order they apply.
fn files_for(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let plain = dir.join(name);
    if plain.is_file() {
        files.push(plain.clone());
    }
    for extension in EXTENSIONS {
        let file = dir.join(format!("{name}.{extension}"));
        if file.is_file() {
            files.push(file);
        }
    }
    if plain.is_dir() {
        let mut below = Vec::new();
        collect(&plain, &mut below);
        below.sort();
        files.extend(below);
    }
    files
}

fn collect(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, into);
        } else if path.extension().is_none_or(|e| EXTENSIONS.iter().any(|known| e == *known)) {
            into.push(path);
        }
    }
}

fn read_file(path: &Path) -> Result<Vars, InventoryError> {
    let bad = |reason: String| InventoryError::VarsFile { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let parsed: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match parsed {
        // An empty file or one holding only comments defines nothing.
        serde_yaml::Value::Null => Ok(Vec::new()),
        serde_yaml::Value::Mapping(mapping) => mapping.into_iter().map(|(key, value)| Ok((key_text(&key).ok_or_else(|| bad("a key is not a string".to_owned()))?, convert(value)))).collect(),
        _ => Err(bad("the file does not hold a mapping of variable names to values".to_owned())),
    }
}

fn key_text(key: &serde_yaml::Value) -> Option<String> {
    match key {
        serde_yaml::Value::String(text) => Some(text.clone()),
        serde_yaml::Value::Number(number) => Some(number.to_string()),
        serde_yaml::Value::Bool(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
        _ => None,
    }
}

fn convert(value: serde_yaml::Value) -> Value {
    match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(flag) => Value::Bool(flag),
        serde_yaml::Value::Number(number) if number.is_f64() => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        serde_yaml::Value::Number(number) => Value::Int(number.to_string()),
        serde_yaml::Value::String(text) => Value::Str(text),
        serde_yaml::Value::Sequence(items) => Value::List(items.into_iter().map(convert).collect()),
        serde_yaml::Value::Mapping(mapping) => Value::Dict(mapping.into_iter().filter_map(|(k, v)| Some((key_text(&k)?, convert(v)))).collect()),
        serde_yaml::Value::Tagged(tagged) => convert(tagged.value),
    }
}
