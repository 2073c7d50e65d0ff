//! Ansible INI inventories for caasctl: read them as `ansible-inventory` does, and edit them
//! without disturbing what the operator wrote.
//!
//! An OpenShift 3.x cluster is described by the inventory its operator already maintains
//! (`[OSEv3:children]`, `[masters]`, `[nodes]`, `[etcd]`, `[new_nodes]`, host ranges such as
//! `master[1:3].example.com`). [`Document`] keeps that file as lines, so an edit changes only the
//! lines it must, and saves through a copy aside plus `.part`, fsync and rename. [`Inventory`]
//! interprets the same lines with ansible-core 2.14's rules (ranges, ports, Python-literal values,
//! group variable precedence) and prints the JSON of `ansible-inventory --list`.
#![deny(missing_docs)]

pub mod document;
pub mod error;
pub mod hostpattern;
pub mod model;
pub mod pyliteral;
pub mod shlex;
pub mod value;
pub mod vars_dirs;

pub use document::{Document, LineKind, Section, SectionKind};
pub use error::InventoryError;
pub use model::{Group, Host, Inventory};
pub use value::Value;
