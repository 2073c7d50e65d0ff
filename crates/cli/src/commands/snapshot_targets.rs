//! The disks that `snapshot --hosts` and `snapshot --group GROUP -i INVENTORY` act on: each
//! inventory host is mapped to its disks by `[cloud.hosts."HOST"]` in caasctl.toml, else by the
//! `host_disks` name templates, and given the role its inventory groups imply.

use std::path::Path;

use caasctl_cloud::config::CloudConfig;
use caasctl_inventory::Inventory;

use super::snapshot::args::DiskArgs;
use super::snapshot::SnapshotCliError;

/// Inventory groups that name a host's role, in the order a host in several of them is tagged.
const ROLE_GROUPS: [(&str, &str); 4] = [("etcd", "etcd"), ("masters", "master"), ("infra", "infra"), ("nodes", "node")];

/// One disk to act on, with the host it belongs to when it came from `--hosts` or `--group`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    /// Inventory host.
    pub host: Option<String>,
    /// Role tag: from `[cloud.hosts]`, else from the host's inventory groups.
    pub role: Option<String>,
    /// Disk path or ID.
    pub disk: String,
    /// True when the host runs an etcd member (role `etcd`, or in the inventory's `etcd` group).
    #[serde(skip)]
    pub etcd: bool,
}

/// Reads an Ansible inventory.
fn read_inventory(path: &Path) -> anyhow::Result<Inventory> {
    let document = caasctl_inventory::Document::read(path)?;
    Ok(Inventory::from_document(&document)?)
}

/// Returns the role of `host` from its inventory groups.
fn inventory_role(inventory: &Inventory, host: &str) -> Option<String> {
    let groups = inventory.groups_of(host);
    ROLE_GROUPS.iter().find(|(group, _)| groups.iter().any(|g| g == group)).map(|(_, role)| (*role).to_owned())
}

/// Fills a `host_disks` template for `host`.
pub fn fill_template(template: &str, host: &str) -> String {
    let short = host.split('.').next().unwrap_or(host);
    template.replace("{host}", host).replace("{short}", short)
}

/// Resolves `--disk`, `--hosts` or `--group` into disks.
///
/// # Errors
/// [`SnapshotCliError::HostNotMapped`] for a host with no disks, [`SnapshotCliError::GroupEmpty`]
/// for a group with no hosts, or the inventory's read error.
pub fn resolve(args: &DiskArgs, config: &CloudConfig) -> anyhow::Result<Vec<Target>> {
    if let Some(disk) = &args.disk {
        return Ok(vec![Target { host: None, role: None, disk: disk.clone(), etcd: false }]);
    }
    let inventory = match &args.inventory {
        Some(path) => Some(read_inventory(path)?),
        None => None,
    };
    let hosts = match (&args.group, &inventory) {
        (Some(group), Some(inventory)) => {
            let hosts = inventory.hosts_in(group);
            if hosts.is_empty() {
                let path = args.inventory.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                return Err(SnapshotCliError::GroupEmpty { group: group.clone(), inventory: path }.into());
            }
            hosts
        }
        _ => args.hosts.clone(),
    };

    let mut targets = Vec::new();
    for host in hosts {
        let in_etcd_group = inventory.as_ref().is_some_and(|i| i.groups_of(&host).iter().any(|g| g == "etcd"));
        let from_inventory = inventory.as_ref().and_then(|i| inventory_role(i, &host));
        let (disks, role) = match config.hosts.get(&host) {
            Some(mapping) => (mapping.disks.clone(), mapping.role.clone().or(from_inventory)),
            None if !config.host_disks.is_empty() => (config.host_disks.iter().map(|t| fill_template(t, &host)).collect(), from_inventory),
            None => return Err(SnapshotCliError::HostNotMapped { host }.into()),
        };
        let etcd = in_etcd_group || role.as_deref() == Some("etcd");
        for disk in disks {
            targets.push(Target { host: Some(host.clone()), role: role.clone(), disk, etcd });
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_host_and_short_name() {
        assert_eq!(fill_template("/var/lib/libvirt/images/{short}.qcow2", "master1.example.com"), "/var/lib/libvirt/images/master1.qcow2");
        assert_eq!(fill_template("{host}-data", "etcd1"), "etcd1-data");
    }

    #[test]
    fn roles_follow_group_order() {
        let inventory = Inventory::parse("[masters]\nm1\n[etcd]\nm1\n[nodes]\nm1\nn1\n", "test").unwrap();
        assert_eq!(inventory_role(&inventory, "m1").as_deref(), Some("etcd"));
        assert_eq!(inventory_role(&inventory, "n1").as_deref(), Some("node"));
    }
}
