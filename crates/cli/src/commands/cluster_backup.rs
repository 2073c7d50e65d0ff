//! `etcd backup --cluster FILE`: the members of a cluster file, as the backup needs them. Each
//! member's configuration is archived on its own host through its executor, and the cluster's
//! client URLs and TLS files come from the same file unless endpoint options are given.

use std::path::Path;

use caasctl_etcd::config_archive::FetchedArchive;
use caasctl_etcd::endpoints::{ClusterAccess, TlsFiles};
use caasctl_restore::cluster::EtcdSection;
use caasctl_restore::member_config;

use crate::args::EndpointArgs;

use super::endpoints;

/// Archives every member's configuration directory (and static pod manifest) on its host.
pub async fn fetch_configs(file: &Path) -> anyhow::Result<Vec<FetchedArchive>> {
    let section = EtcdSection::parse(file)?;
    let archives = tokio::task::spawn_blocking(move || member_config::fetch_all(&section)).await??;
    Ok(archives)
}

/// Returns the cluster to snapshot: the endpoint options when any names a source, else the
/// cluster file's client URLs with its `[etcd]` TLS files.
pub fn access(file: &Path, args: &EndpointArgs) -> anyhow::Result<ClusterAccess> {
    if args.endpoints.is_some() || args.etcd_conf.is_some() || args.static_pod_manifest.is_some() {
        return endpoints::resolve(args);
    }
    let section = EtcdSection::parse(file)?;
    let urls: Vec<&str> = section.members.iter().map(|m| m.client_url.as_str()).filter(|u| !u.is_empty()).collect();
    if urls.len() < section.members.len() {
        // Some member leaves its client URL to its etcd.conf, which is only read at restore.
        return endpoints::resolve(args);
    }
    let tls = TlsFiles {
        cacert: args.cacert.clone().or(section.cacert.clone()),
        cert: args.cert.clone().or(section.cert.clone()),
        key: args.key.clone().or(section.key.clone()),
    };
    Ok(ClusterAccess::from_flags(&urls.join(","), tls)?)
}
