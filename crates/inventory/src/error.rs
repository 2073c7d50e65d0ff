//! Errors of reading, interpreting and editing an inventory, with their catalogue messages.
//!
//! Every parse error names the file and the 1-based line, as `ansible-inventory` does, because an
//! operator fixes an inventory by line.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};

/// An inventory operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A file operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done, such as `read` or `rename`.
        action: &'static str,
        /// Path acted on.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A file of `group_vars/` or `host_vars/` cannot be read or is not a YAML mapping.
    #[error("invalid variables file {}: {reason}", path.display())]
    VarsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The file is not valid UTF-8.
    #[error("{} is not valid UTF-8", path.display())]
    NotUtf8 {
        /// The inventory file.
        path: PathBuf,
    },

    /// A line could not be parsed.
    #[error("{origin}:{line}: {reason}")]
    Syntax {
        /// File name, or `<memory>`.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in ansible's words where ansible has some.
        reason: String,
    },

    /// A host range such as `node[01:10]` is malformed.
    #[error("{origin}:{line}: invalid host range in {pattern:?}: {reason}")]
    InvalidRange {
        /// File name, or `<memory>`.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// The host pattern.
        pattern: String,
        /// What is wrong with the range.
        reason: String,
    },

    /// A `[GROUP:vars]` section names a group that is declared nowhere.
    #[error("{origin}:{line}: section [{group}:vars] is not valid for undefined group {group}")]
    UndefinedVarsGroup {
        /// File name, or `<memory>`.
        origin: String,
        /// Line of the section header.
        line: usize,
        /// The group.
        group: String,
    },

    /// A `[PARENT:children]` section lists a group that is declared nowhere.
    #[error("{origin}:{line}: section [{parent}:children] includes undefined group {group}")]
    UndefinedChildGroup {
        /// File name, or `<memory>`.
        origin: String,
        /// Line naming the child.
        line: usize,
        /// The parent group.
        parent: String,
        /// The undeclared child.
        group: String,
    },

    /// A group would become its own ancestor.
    #[error("{origin}:{line}: adding group {child} to {parent} creates a dependency loop")]
    GroupLoop {
        /// File name, or `<memory>`.
        origin: String,
        /// Line of the edge that closes the loop.
        line: usize,
        /// The parent group.
        parent: String,
        /// The child group.
        child: String,
    },

    /// An edit needs a host line that holds exactly one host, but the host comes from a range
    /// or a line with several hosts.
    #[error("host {host} in group {group} comes from the range on line {line}; edit that line by hand")]
    HostInRange {
        /// The host.
        host: String,
        /// The group section.
        group: String,
        /// Line of the range.
        line: usize,
    },
}

impl InventoryError {
    /// Returns the 1-based line the error is about, if it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            InventoryError::Syntax { line, .. }
            | InventoryError::InvalidRange { line, .. }
            | InventoryError::UndefinedVarsGroup { line, .. }
            | InventoryError::UndefinedChildGroup { line, .. }
            | InventoryError::GroupLoop { line, .. }
            | InventoryError::HostInRange { line, .. } => Some(*line),
            InventoryError::Io { .. } | InventoryError::NotUtf8 { .. } | InventoryError::VarsFile { .. } => None,
        }
    }
}

impl InventoryError {
    /// Returns true for an inventory that is missing, unreadable as text or malformed, which the
    /// operator fixes in the file or on the command line.
    pub fn is_usage(&self) -> bool {
        match self {
            InventoryError::Io { action, source, .. } => *action == "read" && source.kind() == std::io::ErrorKind::NotFound,
            InventoryError::NotUtf8 { .. } | InventoryError::Syntax { .. } | InventoryError::InvalidRange { .. } | InventoryError::VarsFile { .. } => true,
            _ => false,
        }
    }
}

impl Localize for InventoryError {
    fn message(&self) -> Message {
        match self {
            InventoryError::Io { action, path, source } => Message::new("inventory.error.io")
                .arg("action", action)
                .arg("path", path.display())
                .arg("reason", source),
            InventoryError::NotUtf8 { path } => Message::new("inventory.error.not_utf8").arg("path", path.display()),
            InventoryError::VarsFile { path, reason } => Message::new("inventory.error.vars_file").arg("path", path.display()).arg("reason", reason),
            InventoryError::Syntax { origin, line, reason } => {
                Message::new("inventory.error.syntax").arg("origin", origin).arg("line", line).arg("reason", reason)
            }
            InventoryError::InvalidRange { origin, line, pattern, reason } => Message::new("inventory.error.invalid_range")
                .arg("origin", origin)
                .arg("line", line)
                .arg("pattern", pattern)
                .arg("reason", reason),
            InventoryError::UndefinedVarsGroup { origin, line, group } => {
                Message::new("inventory.error.undefined_vars_group").arg("origin", origin).arg("line", line).arg("group", group)
            }
            InventoryError::UndefinedChildGroup { origin, line, parent, group } => Message::new("inventory.error.undefined_child_group")
                .arg("origin", origin)
                .arg("line", line)
                .arg("parent", parent)
                .arg("group", group),
            InventoryError::GroupLoop { origin, line, parent, child } => Message::new("inventory.error.group_loop")
                .arg("origin", origin)
                .arg("line", line)
                .arg("parent", parent)
                .arg("child", child),
            InventoryError::HostInRange { host, group, line } => {
                Message::new("inventory.error.host_in_range").arg("host", host).arg("group", group).arg("line", line)
            }
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            InventoryError::InvalidRange { .. } => Some(Message::new("inventory.hint.range")),
            InventoryError::VarsFile { .. } => Some(Message::new("inventory.hint.vars_file")),
            _ => None,
        }
    }
}
