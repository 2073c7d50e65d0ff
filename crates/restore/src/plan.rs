//! Restore plans: the ordered steps of a restore, built read-only before anything changes.
//!
//! A plan is serialisable as a whole and is the first line of the journal, so `ops resume` needs
//! nothing but the journal to continue. Steps are grouped in phases (check, prepare, stop,
//! restore, start, verify): within a phase, each member's steps run in order and members run in
//! parallel; steps that belong to no member run one after the other.

use std::path::PathBuf;

use caasctl_etcd::endpoints::TlsFiles;
use tracing::info;

use crate::cluster::{EtcdSection, MemberSpec, Service, DEFAULT_TOKEN};
use crate::engine::{Engine, RestoreParams};
use crate::error::RestoreError;
use crate::exec::{Executor, LocalExecutor, PathState};
use crate::pod::{PodExecutor, PodTarget};
use crate::ssh::{SshExecutor, SshTarget};

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Host {
    /// The host caasctl runs on.
    Local,
    /// A host reached with `ssh`.
    Ssh(SshTarget),
    /// A pod's container reached with `oc exec` or `kubectl exec`.
    Pod(PodTarget),
}

impl Host {
    /// Builds the executor for this host.
    pub fn executor(&self) -> Box<dyn Executor> {
        match self {
            Host::Local => Box::new(LocalExecutor),
            Host::Ssh(target) => Box::new(SshExecutor::new(target.clone())),
            Host::Pod(target) => Box::new(PodExecutor::new(target.clone())),
        }
    }

    /// Names the host for people.
    pub fn label(&self) -> String {
        self.executor().host()
    }
}

/// Phase of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Snapshot checks on this host.
    Check,
    /// Copies of the snapshot to member hosts.
    Prepare,
    /// etcd stopped on every member.
    Stop,
    /// Data dirs moved aside and restored.
    Restore,
    /// etcd started on every member.
    Start,
    /// Cluster checks after start.
    Verify,
}

/// A member as planned, for the checks after start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMember {
    /// Member name.
    pub name: String,
    /// Peer URL it listens on.
    pub peer_url: String,
    /// Client URL.
    pub client_url: String,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Re-checks the snapshot file: bbolt header, size, hashes.
    VerifySnapshot {
        /// Snapshot on this host.
        path: String,
        /// SHA-256 the manifest records.
        manifest_sha256: Option<String>,
        /// Accepts a missing or mismatching hash.
        skip_hash_check: bool,
    },
    /// Copies the snapshot to the member's host.
    Upload {
        /// Snapshot on this host.
        local: String,
        /// Path on the member's host.
        remote: String,
        /// SHA-256 the copy must have.
        sha256: String,
    },
    /// Stops etcd and waits until its client port refuses connections.
    Stop {
        /// How etcd runs.
        service: Service,
        /// Client URL that must stop answering.
        client_url: Option<String>,
    },
    /// Runs the restore tool into a new temporary directory beside the data dir.
    RestoreToTemp {
        /// Restore tool.
        engine: Engine,
        /// Its parameters; `data_dir` is the temporary directory.
        params: RestoreParams,
    },
    /// Moves an existing non-empty data dir aside; an empty one is removed.
    MoveAside {
        /// Data dir.
        data_dir: String,
        /// New name for it.
        aside: String,
    },
    /// Renames the restored temporary directory to the data dir.
    Install {
        /// Restored directory.
        temp_dir: String,
        /// Data dir.
        data_dir: String,
    },
    /// `chown -R` of the data dir.
    Chown {
        /// Data dir.
        data_dir: String,
        /// `user:group`.
        owner: String,
    },
    /// `restorecon -Rv` of the data dir.
    Restorecon {
        /// Data dir.
        data_dir: String,
    },
    /// Removes the snapshot copy from the member's host.
    RemoveUpload {
        /// The copy.
        path: String,
    },
    /// Starts etcd.
    Start {
        /// How etcd runs.
        service: Service,
    },
    /// Waits until every member answers a linearizable read.
    WaitHealthy {
        /// Client URLs.
        endpoints: Vec<String>,
    },
    /// Updates a member whose peer URL shows `localhost` to the URL it listens on.
    FixPeerUrls {
        /// Members as planned.
        members: Vec<PlannedMember>,
    },
    /// Compares the member list with the plan.
    CheckMembers {
        /// Members as planned.
        members: Vec<PlannedMember>,
    },
    /// Compares revision and key count on every member with the backup's.
    CheckData {
        /// Client URLs.
        endpoints: Vec<String>,
        /// Revision the backup recorded.
        min_revision: Option<i64>,
        /// Key count the backup recorded.
        key_count: Option<i64>,
    },    /// A step of a v2 restore.
    V2 {
        /// What it does.
        v2: crate::v2::V2Action,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Unique within the plan, such as `m0.restore`.
    pub id: String,
    /// Phase.
    pub phase: Phase,
    /// Member the step belongs to; `None` for cluster-wide steps.
    pub member: Option<String>,
    /// Where it runs.
    pub host: Host,
    /// What it does.
    pub action: Action,
}

/// TLS files for the checks after start, as paths on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientTls {
    /// CA bundle.
    pub cacert: Option<PathBuf>,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// Converts to the etcd crate's TLS paths.
    pub fn files(&self) -> TlsFiles {
        TlsFiles { cacert: self.cacert.clone(), cert: self.cert.clone(), key: self.key.clone() }
    }
}

/// The snapshot a plan restores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotSource {
    /// Snapshot file on this host.
    pub path: PathBuf,
    /// Backup ID, when the snapshot comes from a repository.
    pub backup_id: Option<String>,
    /// SHA-256 of the file by the manifest.
    pub manifest_sha256: Option<String>,
    /// SHA-256 of the file as checked when the plan was made.
    pub sha256: String,
    /// Revision by the manifest.
    pub revision: Option<i64>,
    /// Key count by the manifest.
    pub key_count: Option<i64>,
    /// Accepts a missing or mismatching hash.
    pub skip_hash_check: bool,
}

/// A restore plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Operation ID, also the journal's file name.
    pub id: String,
    /// Operation kind: `etcd-restore`.
    pub kind: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Snapshot restored.
    pub snapshot: SnapshotSource,
    /// TLS files for the checks after start.
    pub tls: ClientTls,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One member to restore, with everything the plan needs to know about it.
#[derive(Debug, Clone)]
pub struct MemberTarget {
    /// Member name.
    pub name: String,
    /// Host.
    pub host: Host,
    /// Data dir.
    pub data_dir: String,
    /// Restore tool on the host; found there when `None`.
    pub engine: Option<String>,
    /// Owner for `chown -R`: `None` means `etcd:etcd` when that user exists, `Some("")` none.
    pub owner: Option<String>,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Peer URL written at restore.
    pub restore_peer_url: String,
    /// Peer URL it listens on.
    pub peer_url: String,
    /// How etcd runs; `None` for a restore that starts nothing.
    pub service: Option<Service>,
    /// Client URL for checks; `None` for a restore that starts nothing.
    pub client_url: Option<String>,
}

impl MemberTarget {
    /// Builds the targets of a cluster file.
    pub fn from_cluster(section: &EtcdSection) -> Vec<MemberTarget> {
        let initial_cluster = section.initial_cluster();
        section
            .members
            .iter()
            .map(|m: &MemberSpec| MemberTarget {
                name: m.name.clone(),
                host: m.executor_host(),
                data_dir: m.data_dir.trim_end_matches('/').to_owned(),
                engine: m.engine.clone(),
                owner: m.owner.clone(),
                initial_cluster: initial_cluster.clone(),
                token: m.token.clone().or_else(|| section.token.clone()).unwrap_or_else(|| DEFAULT_TOKEN.to_owned()),
                restore_peer_url: m.restore_peer_url().to_owned(),
                peer_url: m.peer_url.clone(),
                service: Some(m.service.clone()),
                client_url: Some(m.client_url.clone()),
            })
            .collect()
    }
}

/// Returns a new operation ID: the time and this process's PID, which sort in time order.
pub fn new_op_id(now: time::OffsetDateTime) -> String {
    format!("restore-{}-{}", caasctl_core::timefmt::compact(now), std::process::id())
}

/// Checks the peer URLs a member is restored with, which etcd's restore tool would otherwise
/// reject only when the plan runs, after members were stopped.
fn check_urls(member: &MemberTarget) -> Result<(), RestoreError> {
    let bad = |reason: String| RestoreError::BadMember { member: member.name.clone(), reason };
    // etcd takes a comma-separated list of peer URLs, each `scheme://host:port` with no path.
    let check = |urls: &str, what: &str| -> Result<(), RestoreError> {
        for url in urls.split(',').map(str::trim) {
            let parsed = url::Url::parse(url).map_err(|_| bad(format!("{what} {url} is not a URL such as https://10.0.0.1:2380")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
                return Err(bad(format!("{what} {url} is not an http or https URL with a host")));
            }
            if parsed.port().is_none() {
                return Err(bad(format!("{what} {url} has no port; etcd needs one, such as :2380")));
            }
            if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
                return Err(bad(format!("{what} {url} has a path; etcd accepts only scheme://host:port")));
            }
        }
        Ok(())
    };
    check(&member.peer_url, "peer URL")?;
    check(&member.restore_peer_url, "peer URL")?;
    for entry in member.initial_cluster.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, url)) = entry.split_once('=') else {
            return Err(bad(format!("initial cluster entry {entry} is not NAME=URL")));
        };
        if name.is_empty() {
            return Err(bad(format!("initial cluster entry {entry} has no name")));
        }
        check(url, "initial cluster URL")?;
    }
    if !member.initial_cluster.split(',').any(|e| e.trim().split_once('=').is_some_and(|(name, _)| name == member.name)) {
        return Err(bad(format!("initial cluster {} does not name this member", member.initial_cluster)));
    }
    Ok(())
}

/// Rejects a data dir path that names something other than a directory: moving it aside would
/// move an unrelated file, such as a mistyped /etc/etcd/etcd.conf.
fn check_data_dir(member: &MemberTarget, executor: &dyn Executor) -> Result<(), RestoreError> {
    if executor.path_state(&member.data_dir)? == PathState::File {
        return Err(RestoreError::BadMember { member: member.name.clone(), reason: format!("data dir {} exists and is not a directory", member.data_dir) });
    }
    Ok(())
}

/// Builds a plan. It only reads: it looks up each host's restore tool, its `etcd` user and
/// whether SELinux is enabled.
///
/// # Errors
/// A host cannot be reached or has no restore tool, or a member's URL or data dir is unusable
/// ([`RestoreError::BadMember`]).
pub fn build(id: String, snapshot: SnapshotSource, tls: ClientTls, members: &[MemberTarget]) -> Result<Plan, RestoreError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = caasctl_core::timefmt::compact(now);
    let snapshot_path = snapshot.path.display().to_string();
    let mut steps = vec![Step {
        id: "snapshot.verify".to_owned(),
        phase: Phase::Check,
        member: None,
        host: Host::Local,
        action: Action::VerifySnapshot { path: snapshot_path.clone(), manifest_sha256: snapshot.manifest_sha256.clone(), skip_hash_check: snapshot.skip_hash_check },
    }];

    for member in members {
        check_urls(member)?;
    }
    for member in members {
        let executor = member.host.executor();
        check_data_dir(member, executor.as_ref())?;
        let engine = Engine::find(executor.as_ref(), member.engine.as_deref())?;
        let owner = match &member.owner {
            Some(owner) => owner.clone(),
            None if executor.user_exists("etcd")? => "etcd:etcd".to_owned(),
            None => String::new(),
        };
        let selinux = executor.selinux_enabled()?;
        info!(member = %member.name, host = %executor.host(), engine = %engine.path, owner = %owner, selinux, "member planned");

        let step = |suffix: &str, phase: Phase, action: Action| Step {
            id: format!("{}.{suffix}", member.name),
            phase,
            member: Some(member.name.clone()),
            host: member.host.clone(),
            action,
        };
        let parent = parent_dir(&member.data_dir);
        let on_host_snapshot = match member.host {
            Host::Local => snapshot_path.clone(),
            Host::Ssh(_) | Host::Pod(_) => format!("{parent}/.{}-snapshot.db", id),
        };
        if on_host_snapshot != snapshot_path {
            steps.push(step(
                "upload",
                Phase::Prepare,
                Action::Upload { local: snapshot_path.clone(), remote: on_host_snapshot.clone(), sha256: snapshot.sha256.clone() },
            ));
        }
        if let Some(service) = &member.service {
            steps.push(step("stop", Phase::Stop, Action::Stop { service: service.clone(), client_url: member.client_url.clone() }));
        }
        let temp_dir = format!("{}.caasctl-restore-{stamp}", member.data_dir);
        let aside = format!("{}.caasctl-{stamp}", member.data_dir);
        let params = RestoreParams {
            snapshot: on_host_snapshot.clone(),
            data_dir: temp_dir.clone(),
            name: member.name.clone(),
            initial_cluster: member.initial_cluster.clone(),
            token: member.token.clone(),
            peer_url: member.restore_peer_url.clone(),
            skip_hash_check: snapshot.skip_hash_check,
        };
        steps.push(step("restore", Phase::Restore, Action::RestoreToTemp { engine, params }));
        steps.push(step("move-aside", Phase::Restore, Action::MoveAside { data_dir: member.data_dir.clone(), aside }));
        steps.push(step("install", Phase::Restore, Action::Install { temp_dir, data_dir: member.data_dir.clone() }));
        if !owner.is_empty() {
            steps.push(step("chown", Phase::Restore, Action::Chown { data_dir: member.data_dir.clone(), owner }));
        }
        if selinux {
            steps.push(step("restorecon", Phase::Restore, Action::Restorecon { data_dir: member.data_dir.clone() }));
        }
        if on_host_snapshot != snapshot_path {
            steps.push(step("remove-upload", Phase::Restore, Action::RemoveUpload { path: on_host_snapshot }));
        }
        if let Some(service) = &member.service {
            steps.push(step("start", Phase::Start, Action::Start { service: service.clone() }));
        }
    }

    let planned: Vec<PlannedMember> = members
        .iter()
        .filter_map(|m| m.client_url.as_ref().map(|url| PlannedMember { name: m.name.clone(), peer_url: m.peer_url.clone(), client_url: url.clone() }))
        .collect();
    if !planned.is_empty() {
        let endpoints: Vec<String> = planned.iter().map(|m| m.client_url.clone()).collect();
        let cluster_step = |id: &str, action: Action| Step { id: id.to_owned(), phase: Phase::Verify, member: None, host: Host::Local, action };
        steps.push(cluster_step("cluster.healthy", Action::WaitHealthy { endpoints: endpoints.clone() }));
        steps.push(cluster_step("cluster.peer-urls", Action::FixPeerUrls { members: planned.clone() }));
        steps.push(cluster_step("cluster.members", Action::CheckMembers { members: planned }));
        steps.push(cluster_step(
            "cluster.data",
            Action::CheckData { endpoints, min_revision: snapshot.revision, key_count: snapshot.key_count },
        ));
    }

    Ok(Plan { id, kind: "etcd-restore".to_owned(), created_at: caasctl_core::timefmt::rfc3339(now), snapshot, tls, steps })
}

/// Returns the directory that holds `path` (`/` for a top-level path).
pub fn parent_dir(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_owned(),
        Some((parent, _)) => parent.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, service: Service) -> MemberTarget {
        MemberTarget {
            name: name.to_owned(),
            host: Host::Local,
            data_dir: format!("/var/lib/etcd-{name}"),
            engine: Some("/bin/sh".to_owned()),
            owner: Some(String::new()),
            initial_cluster: "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380".to_owned(),
            token: "t".to_owned(),
            restore_peer_url: format!("https://{name}:2380"),
            peer_url: format!("https://{name}:2380"),
            service: Some(service),
            client_url: Some(format!("https://{name}:2379")),
        }
    }

    #[test]
    fn bad_urls_rejected_before_any_step() {
        let service = Service::Commands { start: "true".to_owned(), stop: "true".to_owned() };
        assert!(check_urls(&member("a", service.clone())).is_ok());
        let two_urls = MemberTarget { peer_url: "https://a:2380,https://10.0.0.1:2380".to_owned(), ..member("a", service.clone()) };
        assert!(check_urls(&two_urls).is_ok(), "a list of peer URLs is valid");
        let cases = [
            ("peer URL", MemberTarget { restore_peer_url: "not-a-url".to_owned(), ..member("a", service.clone()) }),
            ("ftp scheme", MemberTarget { peer_url: "ftp://a:2380".to_owned(), ..member("a", service.clone()) }),
            ("no port", MemberTarget { peer_url: "https://a".to_owned(), ..member("a", service.clone()) }),
            ("path", MemberTarget { peer_url: "https://a:2380/etcd".to_owned(), ..member("a", service.clone()) }),
            ("entry without =", MemberTarget { initial_cluster: "a https://10.0.0.1:2380".to_owned(), ..member("a", service.clone()) }),
            ("member not named", MemberTarget { initial_cluster: "b=https://10.0.0.2:2380".to_owned(), ..member("a", service.clone()) }),
        ];
        for (case, target) in cases {
            let error = check_urls(&target).unwrap_err();
            assert!(matches!(error, RestoreError::BadMember { .. }), "{case}: {error}");
        }
    }

    #[test]
    fn data_dir_that_is_a_file_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd.conf");
        std::fs::write(&file, "ETCD_NAME=a\n").unwrap();
        let service = Service::Commands { start: "true".to_owned(), stop: "true".to_owned() };
        let target = MemberTarget { data_dir: file.display().to_string(), ..member("a", service) };
        let error = check_data_dir(&target, &LocalExecutor).unwrap_err();
        assert!(error.to_string().contains("is not a directory"), "{error}");
        assert!(file.exists(), "the file is left where it is");
    }

    #[test]
    fn cluster_plan_orders_phases_and_describes_services() {
        let source = SnapshotSource {
            path: "/backup/snap.db".into(),
            backup_id: Some("b1".to_owned()),
            manifest_sha256: Some("aa".to_owned()),
            sha256: "aa".to_owned(),
            revision: Some(10),
            key_count: Some(5),
            skip_hash_check: false,
        };
        let members = [
            member("a", Service::Systemd { unit: "etcd".to_owned() }),
            member("b", Service::StaticPod { manifest: "/etc/origin/node/pods/etcd.yaml".to_owned(), stopped_dir: None }),
        ];
        let plan = build("op1".to_owned(), source, ClientTls::default(), &members).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "snapshot.verify", "a.stop", "a.restore", "a.move-aside", "a.install", "a.start", "b.stop", "b.restore", "b.move-aside",
                "b.install", "b.start", "cluster.healthy", "cluster.peer-urls", "cluster.members", "cluster.data"
            ]
        );
        assert!(plan.steps.windows(2).all(|w| w[0].phase <= w[1].phase || w[0].member.is_some()));

        let what = |id: &str| {
            let step = plan.steps.iter().find(|s| s.id == id).unwrap();
            crate::describe::describe(step).what.render(caasctl_core::Lang::En)
        };
        assert_eq!(what("a.stop"), "stop etcd: systemctl stop etcd");
        assert_eq!(what("b.stop"), "stop etcd: mkdir -p /etc/origin/node/pods-stopped && mv /etc/origin/node/pods/etcd.yaml /etc/origin/node/pods-stopped/etcd.yaml");
        assert_eq!(what("b.start"), "start etcd: mv /etc/origin/node/pods-stopped/etcd.yaml /etc/origin/node/pods/etcd.yaml");
        assert!(what("a.move-aside").starts_with("move /var/lib/etcd-a aside to /var/lib/etcd-a.caasctl-"));
        assert!(what("b.restore").contains("--initial-cluster a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"));

        let json = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn parent_of_paths() {
        assert_eq!(parent_dir("/var/lib/etcd"), "/var/lib");
        assert_eq!(parent_dir("/etcd/"), "/");
    }
}
