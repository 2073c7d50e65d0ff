//! Turning the endpoint flags into cluster access: explicit `--endpoints`, `--etcd-conf`,
//! `--static-pod-manifest`, or, with none of them, `/etc/etcd/etcd.conf` when it exists.

use std::path::Path;
use std::time::Duration;

use caasctl_etcd::client::Timeouts;
use caasctl_etcd::endpoints::{ClusterAccess, TlsFiles};

use crate::args::EndpointArgs;
use crate::errors::CliError;

const DEFAULT_ETCD_CONF: &str = "/etc/etcd/etcd.conf";

/// Resolves where the cluster is. TLS flags given on the command line override the files named
/// by etcd.conf or the manifest.
pub fn resolve(args: &EndpointArgs) -> anyhow::Result<ClusterAccess> {
    let flags = TlsFiles { cacert: args.cacert.clone(), cert: args.cert.clone(), key: args.key.clone() };
    let mut access = if let Some(endpoints) = &args.endpoints {
        ClusterAccess::from_flags(endpoints, TlsFiles::default())?
    } else if let Some(path) = &args.etcd_conf {
        ClusterAccess::from_etcd_conf(path)?
    } else if let Some(path) = &args.static_pod_manifest {
        ClusterAccess::from_static_pod(path)?
    } else if Path::new(DEFAULT_ETCD_CONF).is_file() {
        ClusterAccess::from_etcd_conf(Path::new(DEFAULT_ETCD_CONF))?
    } else {
        return Err(CliError::NoEndpointSource.into());
    };
    if flags.cacert.is_some() {
        access.tls.cacert = flags.cacert;
    }
    if flags.cert.is_some() {
        access.tls.cert = flags.cert;
    }
    if flags.key.is_some() {
        access.tls.key = flags.key;
    }
    Ok(access)
}

/// Returns the timeouts given by the flags.
pub fn timeouts(args: &EndpointArgs) -> Timeouts {
    Timeouts { dial: Duration::from_secs(args.dial_timeout.max(1)), request: Duration::from_secs(args.command_timeout.max(1)) }
}
