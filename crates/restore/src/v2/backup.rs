//! The v2 backup of one member's data dir, as the runbook takes it. etcd is stopped through its
//! service and `etcdctl backup` (with `ETCDCTL_API=2`) writes into a new directory. etcd is then
//! started again whatever happened. Last, the result is archived on the host, copied here, hashed
//! and stored in the repository.
//!
//! NOTE: the ID rewriting itself is done by the host's `etcdctl backup` (etcd 3.4) or
//! `etcdutl backup` (etcd 3.5), the way the v3 restore leaves the data writing to etcdutl.
//! caasctl passes `--with-v3`, so the tool copies `member/snap/db` with the membership buckets
//! removed. The runbook instead copies the raw `db` over the tool's output; a restore of that
//! combination was tried on etcd 3.4.23 and did not apply v3 writes afterwards, because the raw
//! db keeps a consistent index above the shortened raft log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use caasctl_core::{timefmt, Localize, Message};
use caasctl_etcd::backup::BackupError;
use caasctl_etcd::health::MemberInfo;
use caasctl_etcd::repo::{Manifest, SourceMember};
use caasctl_etcd::s3::S3Options;
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::v2_admin::V2Admin;
use caasctl_etcd::v2_backup::{store_v2_backup, V2BackupInput, V2Details};
use caasctl_etcd::EtcdError;
use tracing::{info, info_span, warn, Instrument};

use crate::actions::{start_script, stop_script, wait_port_closed, STOP_TIMEOUT};
use crate::cluster::{EtcdSection, MemberSpec};
use crate::exec::{shell_quote, ExecError, Executor};
use crate::plan::{parent_dir, Host};
use crate::ssh::SshExecutor;

/// How long the member may take to report healthy after it was started again.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of one v2 request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed v2 backup.
#[derive(Debug, thiserror::Error)]
pub enum V2BackupError {
    /// The cluster file names no member of that name.
    #[error("member {name} is not in the cluster file; it lists {available}")]
    MemberNotFound {
        /// Requested name.
        name: String,
        /// Names in the file.
        available: String,
    },
    /// The member runs its commands in a pod, which the v2 backup cannot copy its archive out of.
    #[error("member {name} runs its commands in a pod; the v2 backup needs its node as a local or ssh host")]
    PodMember {
        /// Member name.
        name: String,
    },
    /// Neither `etcdctl` nor `etcdutl` was found on the member's host.
    #[error("no etcdctl or etcdutl found on {host}")]
    NoTool {
        /// Host searched.
        host: String,
    },
    /// A command on the member's host failed.
    #[error("failed to {action} on {host}")]
    Host {
        /// Action that failed, such as `stop etcd`.
        action: &'static str,
        /// Host.
        host: String,
        /// Cause.
        #[source]
        source: ExecError,
    },
    /// etcd did not stop within its time.
    #[error("etcd of member {member} did not stop: {reason}")]
    NotStopped {
        /// Member name.
        member: String,
        /// Reason, such as the port still accepting connections.
        reason: String,
    },
    /// Talking to etcd failed.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// Storing the backup failed.
    #[error(transparent)]
    Store(#[from] BackupError),
    /// The backup was stored, but etcd did not come back.
    #[error("backup {id} was stored, but etcd of member {member} is not healthy after the restart: {reason}")]
    NotRestarted {
        /// Stored backup.
        id: String,
        /// Member name.
        member: String,
        /// What failed.
        reason: String,
    },
}

impl Localize for V2BackupError {
    fn message(&self) -> Message {
        match self {
            V2BackupError::MemberNotFound { name, available } => Message::new("etcd_v2.error.member_not_found").arg("name", name).arg("available", available),
            V2BackupError::PodMember { name } => Message::new("etcd_v2.error.pod_member").arg("name", name),
            V2BackupError::NoTool { host } => Message::new("etcd_v2.error.no_tool").arg("host", host),
            V2BackupError::Host { action, host, source } => {
                Message::new("etcd_v2.error.host").arg("action", action).arg("host", host).arg("reason", source)
            }
            V2BackupError::NotStopped { member, reason } => Message::new("etcd_v2.error.not_stopped").arg("member", member).arg("reason", reason),
            V2BackupError::Etcd(inner) => inner.message(),
            V2BackupError::Store(inner) => inner.message(),
            V2BackupError::NotRestarted { id, member, reason } => {
                Message::new("etcd_v2.error.not_restarted").arg("id", id).arg("member", member).arg("reason", reason)
            }
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            V2BackupError::MemberNotFound { .. } => Some(Message::new("etcd_v2.hint.member")),
            V2BackupError::PodMember { .. } => Some(Message::new("etcd_v2.hint.pod_member")),
            V2BackupError::NoTool { .. } => Some(Message::new("etcd_v2.hint.no_tool")),
            V2BackupError::NotStopped { .. } | V2BackupError::NotRestarted { .. } | V2BackupError::Host { .. } => {
                Some(Message::new("etcd_v2.hint.check_member"))
            }
            V2BackupError::Etcd(inner) => inner.hint(),
            V2BackupError::Store(inner) => inner.hint(),
        }
    }
}

/// Request of a v2 backup: the member and the repository.
#[derive(Debug, Clone)]
pub struct V2BackupRequest {
    /// The `[etcd]` table of the cluster file.
    pub section: EtcdSection,
    /// Member to back up; the first of the file when `None`.
    pub member: Option<String>,
    /// Repository directory or `s3://BUCKET/PREFIX`.
    pub repo: String,
    /// How to reach an S3 repository.
    pub s3: S3Options,
}

/// A stored v2 backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V2BackupOutcome {
    /// The manifest written.
    pub manifest: Manifest,
    /// Backup directory or object prefix.
    pub path: PathBuf,
    /// Seconds etcd of the member was stopped.
    pub stopped_seconds: f64,
}

/// The backup tool on a host and the command it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTool {
    /// Path of `etcdctl` or `etcdutl`.
    pub path: String,
}

impl BackupTool {
    /// Returns the command that writes the backup of `data_dir` into `backup_dir`.
    pub fn command(&self, data_dir: &str, backup_dir: &str) -> String {
        let file = self.path.rsplit('/').next().unwrap_or(&self.path);
        let prefix = if file.contains("etcdutl") { String::new() } else { "ETCDCTL_API=2 ".to_owned() };
        format!("{prefix}{} backup --data-dir {} --backup-dir {} --with-v3", shell_quote(&self.path), shell_quote(data_dir), shell_quote(backup_dir))
    }

    /// Finds the tool: `explicit`, else `etcdctl`, then `etcdutl` on the host's `PATH`.
    ///
    /// # Errors
    /// [`V2BackupError::NoTool`].
    pub fn find(executor: &dyn Executor, explicit: Option<&str>) -> Result<BackupTool, V2BackupError> {
        let host = |source| V2BackupError::Host { action: "look up etcdctl", host: executor.host(), source };
        if let Some(path) = explicit {
            return Ok(BackupTool { path: path.to_owned() });
        }
        match executor.which(&["etcdctl", "etcdutl"]).map_err(host)? {
            Some(path) => Ok(BackupTool { path }),
            None => Err(V2BackupError::NoTool { host: executor.host() }),
        }
    }
}

/// Picks the member to back up.
///
/// # Errors
/// [`V2BackupError::MemberNotFound`].
pub fn pick_member<'a>(section: &'a EtcdSection, name: Option<&str>) -> Result<&'a MemberSpec, V2BackupError> {
    match name {
        None => section.members.first().ok_or_else(|| V2BackupError::MemberNotFound { name: String::new(), available: String::new() }),
        Some(name) => section.members.iter().find(|m| m.name == name).ok_or_else(|| V2BackupError::MemberNotFound {
            name: name.to_owned(),
            available: section.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Runs the v2 backup of one member.
///
/// # Errors
/// [`V2BackupError`]. etcd is started again after every failure that happens once it was stopped.
pub async fn run_v2_backup(request: &V2BackupRequest) -> Result<V2BackupOutcome, V2BackupError> {
    let member = pick_member(&request.section, request.member.as_deref())?.clone();
    // Refused before anything is stopped: the archive could not be copied out of a pod.
    if matches!(member.executor_host(), Host::Pod(_)) {
        return Err(V2BackupError::PodMember { name: member.name.clone() });
    }
    let span = info_span!("etcd.v2.backup", member = %member.name, host = %member.host);
    async move {
        let started = timefmt::now();
        let section = &request.section;
        let tls = TlsMaterial::load(&caasctl_etcd::endpoints::TlsFiles { cacert: section.cacert.clone(), cert: section.cert.clone(), key: section.key.clone() })
            .map_err(EtcdError::from)?;

        // Before the stop: the member list, cluster ID and v2 key count, from the member itself.
        let admin = V2Admin::new(&member.client_url, &tls, REQUEST_TIMEOUT)?;
        let (cluster_id, v2_members) = admin.members().await?;
        let v2_keys = admin.count_keys().await?;
        let etcd_version = admin.version().await?;
        let members: Vec<MemberInfo> = v2_members
            .iter()
            .map(|m| MemberInfo { id: m.id.clone(), name: m.name.clone(), peer_urls: m.peer_urls.clone(), client_urls: m.client_urls.clone(), is_learner: false })
            .collect();
        let member_id = v2_members.iter().find(|m| m.name == member.name).map(|m| m.id.clone()).unwrap_or_default();
        info!(cluster_id = %cluster_id, members = members.len(), v2_keys, "cluster read before the stop");

        let host = member.executor_host();
        let stamp = timefmt::compact(started);
        let data_dir = member.data_dir.trim_end_matches('/').to_owned();
        let work_dir = format!("{}/.caasctl-v2-backup-{stamp}", parent_dir(&data_dir));
        let blocking_member = member.clone();
        let blocking_host = host.clone();
        let blocking_work = work_dir.clone();
        let (tool, stopped_seconds) =
            tokio::task::spawn_blocking(move || back_up_on_host(&blocking_host, &blocking_member, &data_dir, &blocking_work))
                .await
                .expect("backup thread panicked")?;

        // etcd runs again; the archive is taken from the copy while it comes up.
        let healthy = wait_healthy(&admin).await;
        let local = tempfile_dir()?;
        let archive = local.join("v2-backup.tar.gz");
        let fetched = {
            let (host, work_dir, archive) = (host.clone(), work_dir.clone(), archive.clone());
            tokio::task::spawn_blocking(move || fetch_archive(&host, &work_dir, &archive)).await.expect("fetch thread panicked")
        };
        let cleanup = host.executor().remove_dir_all(&work_dir);
        if let Err(error) = cleanup {
            warn!(dir = %work_dir, error = %error, "failed to remove the backup's working directory on the member's host");
        }
        fetched?;

        let input = V2BackupInput {
            repo: request.repo.clone(),
            s3: request.s3.clone(),
            archive: archive.clone(),
            cluster_id,
            members,
            etcd_version,
            source: SourceMember { name: member.name.clone(), id: member_id, endpoint: member.client_url.clone() },
            details: V2Details {
                member: member.name.clone(),
                host: member.host.clone(),
                data_dir: member.data_dir.clone(),
                tool: tool.command("DATA_DIR", "BACKUP_DIR"),
                consistent_index: None,
                v2_keys: Some(v2_keys),
            },
            started,
        };
        let stored = store_v2_backup(input).await;
        let _ = std::fs::remove_dir_all(&local);
        let (manifest, path) = stored?;
        if let Err(reason) = healthy {
            return Err(V2BackupError::NotRestarted { id: manifest.id, member: member.name.clone(), reason });
        }
        Ok(V2BackupOutcome { manifest, path, stopped_seconds })
    }
    .instrument(span)
    .await
}

/// Stops etcd, runs the backup tool into `WORK/backup` and starts etcd again, also when the tool
/// failed. Returns the tool and how long etcd was stopped.
fn back_up_on_host(host: &Host, member: &MemberSpec, data_dir: &str, work_dir: &str) -> Result<(BackupTool, f64), V2BackupError> {
    let executor = host.executor();
    let executor = executor.as_ref();
    let failed = |action: &'static str| move |source: ExecError| V2BackupError::Host { action, host: executor.host(), source };
    let tool = BackupTool::find(executor, member.engine.as_deref().filter(|e| e.contains("etcdctl") || e.contains("etcdutl")))?;
    executor.create_dir_all(work_dir).map_err(failed("create the working directory"))?;

    info!(member = %member.name, command = %stop_script(&member.service), "stopping etcd");
    let stopped_at = Instant::now();
    let stop = executor
        .run_checked(&stop_script(&member.service))
        .map_err(failed("stop etcd"))
        .and_then(|_| wait_port_closed(&member.client_url, STOP_TIMEOUT).map_err(|reason| V2BackupError::NotStopped { member: member.name.clone(), reason }));
    let backup = stop.and_then(|()| {
        let command = tool.command(data_dir, &format!("{work_dir}/backup"));
        info!(command = %command, "running the backup tool");
        executor.run_checked(&command).map_err(failed("run the backup tool"))
    });

    // Always start etcd again, whatever failed above.
    let start = executor.run_checked(&start_script(&member.service)).map_err(failed("start etcd"));
    let stopped_seconds = stopped_at.elapsed().as_secs_f64();
    info!(member = %member.name, stopped_seconds, started = start.is_ok(), "etcd started again");
    if let Err(error) = backup {
        if let Err(start_error) = &start {
            warn!(error = %start_error, "etcd did not start again after the failed backup");
        }
        let _ = executor.remove_dir_all(work_dir);
        return Err(error);
    }
    start?;

    let archive = format!("{work_dir}/v2-backup.tar.gz");
    let tar = format!("tar -C {} -czf {} member", shell_quote(&format!("{work_dir}/backup")), shell_quote(&archive));
    executor.run_checked(&tar).map_err(failed("archive the backup"))?;
    Ok((tool, stopped_seconds))
}

async fn wait_healthy(admin: &V2Admin) -> Result<(), String> {
    let started = Instant::now();
    while !admin.healthy().await {
        if started.elapsed() > RESTART_TIMEOUT {
            return Err(format!("{} did not report healthy within {} s", admin.endpoint(), RESTART_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, V2BackupError> {
    let dir = std::env::temp_dir().join(format!("caasctl-v2-backup-{}-{}", std::process::id(), timefmt::compact(timefmt::now())));
    std::fs::create_dir_all(&dir).map_err(|source| BackupError::Config { dir: dir.clone(), source })?;
    Ok(dir)
}

/// Copies `WORK/v2-backup.tar.gz` from the member's host to `local` and checks its SHA-256
/// against the host's.
fn fetch_archive(host: &Host, work_dir: &str, local: &Path) -> Result<(), V2BackupError> {
    let executor = host.executor();
    let remote = format!("{work_dir}/v2-backup.tar.gz");
    let failed = |action: &'static str| {
        let host = executor.host();
        move |source: ExecError| V2BackupError::Host { action, host, source }
    };
    let expected = executor.sha256(&remote).map_err(failed("hash the archive"))?.unwrap_or_default();
    match host {
        Host::Local => {
            std::fs::copy(&remote, local).map_err(|source| BackupError::Config { dir: PathBuf::from(&remote), source })?;
        }
        Host::Ssh(target) => {
            let file = std::fs::File::create(local).map_err(|source| BackupError::Config { dir: local.to_owned(), source })?;
            let output = Command::new("ssh")
                .args(SshExecutor::new(target.clone()).ssh_args())
                .arg(format!("cat {}", shell_quote(&remote)))
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(Stdio::piped())
                .output()
                .map_err(|source| failed("copy the archive")(ExecError::Spawn { host: executor.host(), program: "ssh".to_owned(), source }))?;
            if !output.status.success() {
                let output = crate::exec::CommandOutput { status: output.status.code().unwrap_or(-1), stdout: String::new(), stderr: String::from_utf8_lossy(&output.stderr).into_owned() };
                return Err(failed("copy the archive")(crate::exec::failed(&executor.host(), &format!("cat {remote}"), &output)));
            }
        }
        // NOTE: copying binary files out of a pod needs `oc cp`, which the pod executor does not
        // offer yet; a static-pod member's v2 backup runs through its node's executor instead.
        Host::Pod(_) => {
            let reason = "the v2 backup cannot copy its archive out of a pod; name the member's node (local or ssh) in the cluster file".to_owned();
            return Err(failed("copy the archive")(ExecError::Failed { host: executor.host(), command: format!("cat {remote}"), status: 1, stderr: reason }));
        }
    }
    let (_, actual) = caasctl_etcd::config_archive::sha256_file(local).map_err(|source| BackupError::Config { dir: local.to_owned(), source })?;
    if actual != expected {
        let reason = format!("the copy hashes to {actual}, the file on the host to {expected}");
        return Err(failed("copy the archive")(ExecError::Failed { host: executor.host(), command: format!("cat {remote}"), status: 1, stderr: reason }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_commands_per_tool() {
        let etcdctl = BackupTool { path: "/usr/bin/etcdctl".to_owned() };
        assert_eq!(etcdctl.command("/var/lib/etcd", "/var/lib/.b/backup"), "ETCDCTL_API=2 /usr/bin/etcdctl backup --data-dir /var/lib/etcd --backup-dir /var/lib/.b/backup --with-v3");
        let etcdutl = BackupTool { path: "/opt/etcdutl".to_owned() };
        assert!(etcdutl.command("/d", "/b").starts_with("/opt/etcdutl backup --data-dir /d"));
    }
}
