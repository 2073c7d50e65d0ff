//! The cluster file (`caasctl.toml`): for each member, its host (this one or an SSH target), how
//! its etcd runs (systemd unit, static pod manifest, or start and stop commands) and what a
//! restore needs (name, URLs, data dir, token).
//!
//! ```toml
//! [etcd]
//! token = "etcd-cluster-1"
//! cacert = "/etc/etcd/ca.crt"
//! cert = "/etc/etcd/peer.crt"
//! key = "/etc/etcd/peer.key"
//!
//! [[etcd.members]]
//! name = "master-0.example.com"
//! host = "root@192.168.55.8"
//! peer_url = "https://192.168.55.8:2380"
//! client_url = "https://192.168.55.8:2379"
//! data_dir = "/var/lib/etcd"
//! service = { kind = "static-pod", manifest = "/etc/origin/node/pods/etcd.yaml" }
//! ```
//!
//! Only the `[etcd]` table is read here, so the same file can hold other sections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::RestoreError;
use crate::ssh::SshTarget;

/// Default data dir of a member.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";
/// Directory a static pod manifest waits in while etcd is stopped; the kubelet does not watch it.
pub const DEFAULT_STOPPED_DIR: &str = "/etc/origin/node/pods-stopped";

/// How etcd runs on a member's host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Service {
    /// A systemd unit, stopped and started with `systemctl`.
    Systemd {
        /// Unit name, such as `etcd` or `etcd.service`.
        unit: String,
    },
    /// A static pod: the kubelet stops it when its manifest leaves the pods directory and starts
    /// it when the manifest comes back.
    StaticPod {
        /// Manifest path, such as `/etc/origin/node/pods/etcd.yaml`.
        manifest: String,
        /// Where the manifest waits meanwhile; default `/etc/origin/node/pods-stopped`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_dir: Option<String>,
    },
    /// Shell commands; each must return once etcd has started or stopped.
    Commands {
        /// Start command.
        start: String,
        /// Stop command.
        stop: String,
    },
}

/// One member in the cluster file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// Member name (`ETCD_NAME`); default `ETCD_NAME` of the member's etcd.conf archived in the
    /// backup, found by host name.
    #[serde(default)]
    pub name: String,
    /// `local`, or an SSH destination such as `root@10.0.0.1` or a `Host` alias.
    #[serde(default = "local_host")]
    pub host: String,
    /// SSH port.
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// Extra `ssh` arguments.
    #[serde(default)]
    pub ssh_options: Vec<String>,
    /// Shares one SSH connection between commands.
    #[serde(default)]
    pub ssh_control_master: bool,
    /// Peer URL the member listens on; default the first of `ETCD_INITIAL_ADVERTISE_PEER_URLS`
    /// in the member's etcd.conf archived in the backup.
    #[serde(default)]
    pub peer_url: String,
    /// Client URL for the checks after start; default the first of
    /// `ETCD_ADVERTISE_CLIENT_URLS` in the archived etcd.conf.
    #[serde(default)]
    pub client_url: String,
    /// Peer URL written into the restored member when it differs from `peer_url`, such as the
    /// `http://localhost:2380` of an etcd.conf that was never edited; the check after start
    /// corrects such a URL to `peer_url`.
    #[serde(default)]
    pub advertise_peer_url: Option<String>,
    /// Data dir; default `ETCD_DATA_DIR` of the archived etcd.conf, else `/var/lib/etcd`.
    #[serde(default)]
    pub data_dir: String,
    /// Cluster token for this member; default `[etcd].token`, then
    /// `ETCD_INITIAL_CLUSTER_TOKEN` of the archived etcd.conf.
    #[serde(default)]
    pub token: Option<String>,
    /// Restore tool on the host; default `etcdutl`, then `etcdctl`, on its `PATH`.
    #[serde(default)]
    pub engine: Option<String>,
    /// Owner of the restored files for `chown -R`; default `etcd:etcd` when the host has that
    /// user; `""` for no chown.
    #[serde(default)]
    pub owner: Option<String>,
    /// How etcd runs.
    pub service: Service,
    /// Configuration directory that `etcd backup --cluster` archives; default `/etc/etcd`.
    #[serde(default)]
    pub config_dir: Option<String>,
    /// Where the member's commands run: `local`, `ssh` or `pod`; default `local` when `host` is
    /// `local`, else `ssh`.
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// With `executor = "pod"`: the pod's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// With `executor = "pod"`: the pod's name.
    #[serde(default)]
    pub pod: Option<String>,
    /// With `executor = "pod"`: the container; the pod's default container when unset.
    #[serde(default)]
    pub container: Option<String>,
    /// With `executor = "pod"`: the CLI that runs `exec`; `oc`, then `kubectl`, on `PATH`.
    #[serde(default)]
    pub kubectl: Option<String>,
    /// With `executor = "pod"`: the kubeconfig file for that CLI.
    #[serde(default)]
    pub kubeconfig: Option<String>,
}

/// Executor named in the cluster file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// This host.
    Local,
    /// `host` over SSH.
    Ssh,
    /// A pod's container through `oc exec` or `kubectl exec`.
    Pod,
}

/// Default configuration directory of a member.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/etcd";

fn local_host() -> String {
    "local".to_owned()
}

impl MemberSpec {
    /// Returns the SSH target, or `None` for this host.
    pub fn ssh_target(&self) -> Option<SshTarget> {
        (self.host != "local").then(|| SshTarget {
            target: self.host.clone(),
            port: self.ssh_port,
            options: self.ssh_options.clone(),
            control_master: self.ssh_control_master,
        })
    }

    /// Fills the fields the cluster file leaves out from the member's etcd.conf (its variables,
    /// as [`caasctl_etcd::endpoints::parse_etcd_conf`] returns them).
    pub fn fill_from_etcd_conf(&mut self, conf: &HashMap<String, String>) {
        let first = |key: &str| conf.get(key).and_then(|v| v.split(',').map(str::trim).find(|u| !u.is_empty())).map(str::to_owned);
        if self.name.is_empty() {
            self.name = first("ETCD_NAME").unwrap_or_default();
        }
        if self.peer_url.is_empty() {
            self.peer_url = first("ETCD_INITIAL_ADVERTISE_PEER_URLS").unwrap_or_default();
        }
        if self.client_url.is_empty() {
            self.client_url = first("ETCD_ADVERTISE_CLIENT_URLS").unwrap_or_default();
        }
        if self.data_dir.is_empty() {
            self.data_dir = first("ETCD_DATA_DIR").unwrap_or_default();
        }
        if self.token.is_none() {
            self.token = first("ETCD_INITIAL_CLUSTER_TOKEN");
        }
    }

    /// Returns the host name without the SSH user, which is how backups name config archives.
    pub fn host_name(&self) -> &str {
        self.host.rsplit('@').next().unwrap_or(&self.host)
    }

    /// Returns where the member's commands run. A pod executor whose namespace or pod is
    /// missing, which [`MemberSpec::check_executor`] rejects, gets empty names here.
    pub fn executor_host(&self) -> crate::plan::Host {
        match self.executor {
            Some(ExecutorKind::Pod) => crate::plan::Host::Pod(crate::pod::PodTarget {
                namespace: self.namespace.clone().unwrap_or_default(),
                pod: self.pod.clone().unwrap_or_default(),
                container: self.container.clone(),
                program: self.kubectl.clone(),
                kubeconfig: self.kubeconfig.clone(),
            }),
            Some(ExecutorKind::Local) => crate::plan::Host::Local,
            Some(ExecutorKind::Ssh) | None => self.ssh_target().map(crate::plan::Host::Ssh).unwrap_or(crate::plan::Host::Local),
        }
    }

    /// Checks that the executor's settings fit together.
    ///
    /// # Errors
    /// A message naming the missing or conflicting field.
    pub fn check_executor(&self) -> Result<(), String> {
        let label = self.archive_key();
        let pod_fields = self.namespace.is_some() || self.pod.is_some() || self.container.is_some() || self.kubectl.is_some() || self.kubeconfig.is_some();
        match self.executor {
            Some(ExecutorKind::Pod) => {
                for (field, value) in [("namespace", &self.namespace), ("pod", &self.pod)] {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(format!("member {label}: executor = \"pod\" needs {field}"));
                    }
                }
                Ok(())
            }
            Some(ExecutorKind::Ssh) if self.host == "local" => Err(format!("member {label}: executor = \"ssh\" needs host set to an SSH destination")),
            _ if pod_fields => Err(format!("member {label}: namespace, pod, container, kubectl and kubeconfig need executor = \"pod\"")),
            _ => Ok(()),
        }
    }

    /// Returns the name a backup gives this member's configuration archives: the member name,
    /// else the host name, which is how [`EtcdSection::fill_from_etcd_confs`] finds them again.
    pub fn archive_key(&self) -> &str {
        if self.name.is_empty() {
            self.host_name()
        } else {
            &self.name
        }
    }

    /// Returns the configuration directory to archive.
    pub fn config_dir(&self) -> &str {
        self.config_dir.as_deref().unwrap_or(DEFAULT_CONFIG_DIR)
    }

    /// Returns the peer URL written at restore time.
    pub fn restore_peer_url(&self) -> &str {
        self.advertise_peer_url.as_deref().unwrap_or(&self.peer_url)
    }
}

/// The `[etcd]` table.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    /// `--initial-cluster-token` of the restored cluster.
    #[serde(default)]
    pub token: Option<String>,
    /// CA for the checks after start.
    #[serde(default)]
    pub cacert: Option<PathBuf>,
    /// Client certificate for those checks.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Client key for those checks.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Members.
    pub members: Vec<MemberSpec>,
}

#[derive(Debug, serde::Deserialize)]
struct FileRoot {
    etcd: Option<EtcdSection>,
}

/// Default token when neither the file nor the member names one: etcd's own default.
pub const DEFAULT_TOKEN: &str = "etcd-cluster";

impl EtcdSection {
    /// Reads the `[etcd]` table of a cluster file and checks it.
    ///
    /// # Errors
    /// [`RestoreError::ClusterFile`] naming what is wrong.
    pub fn load(path: &Path) -> Result<EtcdSection, RestoreError> {
        let mut section = EtcdSection::parse(path)?;
        section.complete(path)?;
        Ok(section)
    }

    /// Reads the `[etcd]` table of a cluster file without checking it, so that missing fields
    /// can be filled from archived etcd.conf files before [`EtcdSection::complete`].
    ///
    /// # Errors
    /// [`RestoreError::ClusterFile`] when the file is unreadable or not valid TOML.
    pub fn parse(path: &Path) -> Result<EtcdSection, RestoreError> {
        let invalid = |reason: String| RestoreError::ClusterFile { path: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let root: FileRoot = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        root.etcd.ok_or_else(|| invalid("no [etcd] table".to_owned()))
    }

    /// Fills each member's missing fields from the etcd.conf in `confs`, found by member name,
    /// else by host name.
    pub fn fill_from_etcd_confs(&mut self, confs: &HashMap<String, HashMap<String, String>>) {
        for member in &mut self.members {
            let by_name = (!member.name.is_empty()).then(|| confs.get(&member.name)).flatten();
            let conf = by_name.or_else(|| confs.get(member.host_name()));
            if let Some(conf) = conf {
                let had_token = member.token.is_some();
                member.fill_from_etcd_conf(conf);
                // `[etcd].token` comes before the archived one.
                if !had_token && self.token.is_some() {
                    member.token = None;
                }
            }
        }
    }

    /// Applies the remaining defaults and checks the section; `path` names the file in errors.
    ///
    /// # Errors
    /// [`RestoreError::ClusterFile`] naming what is wrong.
    pub fn complete(&mut self, path: &Path) -> Result<(), RestoreError> {
        for member in &mut self.members {
            if member.data_dir.is_empty() {
                member.data_dir = DEFAULT_DATA_DIR.to_owned();
            }
        }
        self.validate().map_err(|reason| RestoreError::ClusterFile { path: path.to_owned(), reason })
    }

    fn validate(&self) -> Result<(), String> {
        if self.members.is_empty() {
            return Err("[etcd] lists no members".to_owned());
        }
        for (index, member) in self.members.iter().enumerate() {
            if member.name.is_empty() {
                return Err(format!(
                    "member on host {}: name is missing, and no etcd.conf archived for this host in the backup names it",
                    member.host
                ));
            }
            member.check_executor()?;
            if self.members[..index].iter().any(|m| m.name == member.name) {
                return Err(format!("member name {} appears twice", member.name));
            }
            for (field, url) in [("peer_url", &member.peer_url), ("client_url", &member.client_url)] {
                if url.is_empty() {
                    return Err(format!("member {}: {field} is missing, and no etcd.conf of this member in the backup names it", member.name));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("member {}: {url} is not an http:// or https:// URL", member.name));
                }
            }
            if !member.data_dir.starts_with('/') || member.data_dir.trim_end_matches('/').is_empty() {
                return Err(format!("member {}: data_dir must be an absolute path below /", member.name));
            }
        }
        Ok(())
    }

    /// Returns `--initial-cluster` for the restore: every member's restore-time peer URL.
    pub fn initial_cluster(&self) -> String {
        self.members.iter().map(|m| format!("{}={}", m.name, m.restore_peer_url())).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EtcdSection, RestoreError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caasctl.toml");
        std::fs::write(&path, text).unwrap();
        EtcdSection::load(&path)
    }

    #[test]
    fn members_with_each_service_kind() {
        let section = parse(
            r#"
[repo]
path = "/backup"
[etcd]
token = "t1"
[[etcd.members]]
name = "a"
peer_url = "https://10.0.0.1:2380"
client_url = "https://10.0.0.1:2379"
service = { kind = "systemd", unit = "etcd" }
[[etcd.members]]
name = "b"
host = "root@10.0.0.2"
ssh_port = 2222
peer_url = "https://10.0.0.2:2380"
client_url = "https://10.0.0.2:2379"
advertise_peer_url = "http://localhost:2380"
service = { kind = "static-pod", manifest = "/etc/origin/node/pods/etcd.yaml" }
[[etcd.members]]
name = "c"
peer_url = "https://10.0.0.3:2380"
client_url = "https://10.0.0.3:2379"
data_dir = "/data/etcd"
service = { kind = "commands", start = "start-etcd", stop = "stop-etcd" }
"#,
        )
        .unwrap();
        assert_eq!(section.members.len(), 3);
        assert_eq!(section.members[0].data_dir, DEFAULT_DATA_DIR);
        assert!(section.members[0].ssh_target().is_none());
        assert_eq!(section.members[1].ssh_target().unwrap().port, Some(2222));
        assert_eq!(section.initial_cluster(), "a=https://10.0.0.1:2380,b=http://localhost:2380,c=https://10.0.0.3:2380");
    }

    #[test]
    fn etcd_conf_fills_missing_fields_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caasctl.toml");
        std::fs::write(
            &path,
            "[etcd]\n[[etcd.members]]\nname='master-0'\nhost='root@10.0.0.1'\nclient_url='https://override:2379'\nservice={kind='systemd',unit='etcd'}\n",
        )
        .unwrap();
        let mut section = EtcdSection::parse(&path).unwrap();
        let conf = caasctl_etcd::endpoints::parse_etcd_conf(
            "ETCD_NAME=master-0\nETCD_DATA_DIR=/var/lib/etcd/\nETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.1:2380\n\
             ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.1:2379\nETCD_INITIAL_CLUSTER_TOKEN=etcd-cluster-1\n",
        );
        section.fill_from_etcd_confs(&HashMap::from([("10.0.0.1".to_owned(), conf)]));
        section.complete(&path).unwrap();
        let member = &section.members[0];
        assert_eq!(member.peer_url, "https://10.0.0.1:2380");
        assert_eq!(member.client_url, "https://override:2379");
        assert_eq!(member.data_dir, "/var/lib/etcd/");
        assert_eq!(member.token.as_deref(), Some("etcd-cluster-1"));
    }

    #[test]
    fn pod_executor_member() {
        let section = parse(
            "[etcd]\n[[etcd.members]]\nname='a'\npeer_url='http://a:2380'\nclient_url='http://a:2379'\n\
             executor='pod'\nnamespace='kube-system'\npod='master-etcd-a'\ncontainer='etcd'\nkubectl='/usr/bin/oc'\n\
             service={kind='static-pod',manifest='/etc/origin/node/pods/etcd.yaml'}\n",
        )
        .unwrap();
        let host = section.members[0].executor_host();
        assert_eq!(host.label(), "pod:kube-system/master-etcd-a/etcd");
        match host {
            crate::plan::Host::Pod(target) => assert_eq!(target.program.as_deref(), Some("/usr/bin/oc")),
            other => panic!("expected a pod host, got {other:?}"),
        }
    }

    #[test]
    fn pod_executor_needs_pod_name() {
        let error = parse(
            "[etcd]\n[[etcd.members]]\nname='a'\npeer_url='http://a:2380'\nclient_url='http://a:2379'\nexecutor='pod'\nnamespace='ns'\nservice={kind='systemd',unit='etcd'}\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("needs pod"), "{error}");
    }

    #[test]
    fn pod_fields_need_pod_executor() {
        let error = parse("[etcd]\n[[etcd.members]]\nname='a'\npeer_url='http://a:2380'\nclient_url='http://a:2379'\npod='p'\nservice={kind='systemd',unit='etcd'}\n").unwrap_err();
        assert!(error.to_string().contains("need executor = \"pod\""), "{error}");
    }

    #[test]
    fn missing_peer_url_named() {
        let error = parse("[etcd]\n[[etcd.members]]\nname='a'\nclient_url='http://a:2379'\nservice={kind='systemd',unit='etcd'}\n").unwrap_err();
        assert!(error.to_string().contains("peer_url is missing"), "{error}");
    }

    #[test]
    fn unknown_member_field_rejected() {
        let error = parse("[etcd]\n[[etcd.members]]\nname='a'\npeer_url='http://a:2380'\nclient_url='http://a:2379'\nservice={kind='systemd',unit='etcd'}\ncolour='red'\n").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }

    #[test]
    fn duplicate_names_rejected() {
        let member = "[[etcd.members]]\nname='a'\npeer_url='http://a:2380'\nclient_url='http://a:2379'\nservice={kind='systemd',unit='etcd'}\n";
        let error = parse(&format!("[etcd]\n{member}{member}")).unwrap_err();
        assert!(error.to_string().contains("twice"), "{error}");
    }
}
