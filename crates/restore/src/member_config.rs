//! Archives every member's configuration on its own host for `etcd backup --cluster`: the
//! configuration directory (`/etc/etcd`, with etcd.conf and the certificates) and, for a member
//! run as a static pod, its manifest. It is the copy an operator makes by hand with
//! `cp -R /etc/etcd/ /backup/...` on each member, made through the member's executor.
//!
//! `tar` runs on the member's host and its output comes back base64-encoded, because an
//! executor returns a command's output as text. The archives are small (a few certificates and
//! one conf file), so they are held in memory.

use base64::Engine as _;
use caasctl_core::{Localize, Message};
use caasctl_etcd::config_archive::FetchedArchive;
use tracing::{info, info_span, warn};

use crate::cluster::{EtcdSection, MemberSpec, Service, DEFAULT_STOPPED_DIR};
use crate::exec::{shell_quote, ExecError, Executor};
use crate::plan::parent_dir;

/// Suffix of the archive stem that contains a member's static pod manifest.
pub const STATIC_POD_SUFFIX: &str = ".static-pod";

/// A member's configuration that could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum MemberConfigError {
    /// The configuration directory does not exist on the member's host.
    #[error("configuration directory {dir} of member {member} not found on {host}")]
    DirMissing {
        /// Member (name, else host name).
        member: String,
        /// Host as the executor names it.
        host: String,
        /// Directory looked for.
        dir: String,
    },

    /// Two members would write archives of the same name.
    #[error("two members of the cluster file share the archive name {key}")]
    DuplicateKey {
        /// The shared name: a member name, or a host name where the name is left out.
        key: String,
    },

    /// A member's executor settings are incomplete or conflicting.
    #[error("invalid executor in the cluster file: {reason}")]
    BadExecutor {
        /// What is wrong, naming the member and field.
        reason: String,
    },

    /// Running `tar` on the member's host failed.
    #[error("failed to archive {path} of member {member}")]
    Exec {
        /// Member.
        member: String,
        /// Directory or file archived.
        path: String,
        /// Cause.
        #[source]
        source: ExecError,
    },

    /// The host's output was not valid base64.
    #[error("archive of {path} from member {member} is not valid base64: {reason}")]
    Decode {
        /// Member.
        member: String,
        /// Directory or file archived.
        path: String,
        /// Decoder's reason.
        reason: String,
    },
}

impl Localize for MemberConfigError {
    fn message(&self) -> Message {
        match self {
            MemberConfigError::DirMissing { member, host, dir } => {
                Message::new("cluster_backup.error.dir_missing").arg("member", member).arg("host", host).arg("dir", dir)
            }
            MemberConfigError::DuplicateKey { key } => Message::new("cluster_backup.error.duplicate_key").arg("key", key),
            MemberConfigError::BadExecutor { reason } => Message::new("cluster_backup.error.bad_executor").arg("reason", reason),
            MemberConfigError::Exec { member, path, source } => {
                Message::new("cluster_backup.error.exec").arg("member", member).arg("path", path).arg("reason", source)
            }
            MemberConfigError::Decode { member, path, reason } => {
                Message::new("cluster_backup.error.decode").arg("member", member).arg("path", path).arg("reason", reason)
            }
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            MemberConfigError::DirMissing { .. } => Some(Message::new("cluster_backup.hint.dir_missing")),
            MemberConfigError::DuplicateKey { .. } => Some(Message::new("cluster_backup.hint.duplicate_key")),
            MemberConfigError::BadExecutor { .. } => Some(Message::new("cluster_backup.hint.bad_executor")),
            MemberConfigError::Exec { .. } | MemberConfigError::Decode { .. } => None,
        }
    }
}

/// Returns the shell script that writes the base64 of a `.tar.gz` of `entry` inside `dir` to
/// standard output, or exits 3 when `check` does not exist.
pub fn archive_script(dir: &str, entry: &str, check: &str) -> String {
    format!(
        "if [ ! -e {check} ]; then exit 3; fi; tmp=$(mktemp) || exit 1; tar -C {dir} -czf \"$tmp\" {entry} && base64 \"$tmp\"; rc=$?; rm -f \"$tmp\"; exit $rc",
        check = shell_quote(check),
        dir = shell_quote(dir),
        entry = shell_quote(entry),
    )
}

/// Archives `entry` of `dir` on the host; `None` when `check` does not exist there.
fn fetch(executor: &dyn Executor, member: &str, dir: &str, entry: &str, check: &str) -> Result<Option<Vec<u8>>, MemberConfigError> {
    let script = archive_script(dir, entry, check);
    let exec_error = |source| MemberConfigError::Exec { member: member.to_owned(), path: check.to_owned(), source };
    let output = executor.run_script(&script, None).map_err(exec_error)?;
    if output.status == 3 {
        return Ok(None);
    }
    if !output.success() {
        return Err(exec_error(crate::exec::failed(&executor.host(), &format!("tar -C {dir} -czf - {entry}"), &output)));
    }
    let text: String = output.stdout.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| MemberConfigError::Decode { member: member.to_owned(), path: check.to_owned(), reason: e.to_string() })?;
    Ok(Some(bytes))
}

/// Archives one member's configuration directory and, for a static pod, its manifest (looked
/// for in the pods directory, then in the directory where a stopped manifest waits).
///
/// # Errors
/// [`MemberConfigError`] when the directory is missing or the archive could not be built.
pub fn fetch_member(member: &MemberSpec, executor: &dyn Executor) -> Result<Vec<FetchedArchive>, MemberConfigError> {
    let key = member.archive_key().to_owned();
    let _span = info_span!("etcd.backup.member_config", member = %key, host = %executor.host()).entered();
    let dir = member.config_dir().trim_end_matches('/').to_owned();
    let dir = if dir.is_empty() { "/".to_owned() } else { dir };
    let bytes = fetch(executor, &key, &dir, ".", &dir)?
        .ok_or_else(|| MemberConfigError::DirMissing { member: key.clone(), host: executor.host(), dir: dir.clone() })?;
    let mut archives = vec![FetchedArchive { member: key.clone(), file_stem: key.clone(), source: format!("{}:{dir}", executor.host()), bytes }];

    if let Service::StaticPod { manifest, stopped_dir } = &member.service {
        let file = manifest.rsplit('/').next().unwrap_or(manifest).to_owned();
        let stopped = stopped_dir.clone().unwrap_or_else(|| DEFAULT_STOPPED_DIR.to_owned());
        let mut found = None;
        for place in [parent_dir(manifest), stopped] {
            let path = format!("{}/{file}", place.trim_end_matches('/'));
            if let Some(bytes) = fetch(executor, &key, &place, &file, &path)? {
                found = Some((path, bytes));
                break;
            }
        }
        match found {
            Some((path, bytes)) => archives.push(FetchedArchive {
                member: key.clone(),
                file_stem: format!("{key}{STATIC_POD_SUFFIX}"),
                source: format!("{}:{path}", executor.host()),
                bytes,
            }),
            None => warn!(manifest = %manifest, "static pod manifest not found on the member's host; only the configuration directory is archived"),
        }
    }
    info!(archives = archives.len(), bytes = archives.iter().map(|a| a.bytes.len()).sum::<usize>(), "member configuration archived");
    Ok(archives)
}

/// Archives the configuration of every member of a cluster file, each through its own executor.
///
/// # Errors
/// The first member whose configuration could not be archived, or two members that share an
/// archive name.
pub fn fetch_all(section: &EtcdSection) -> Result<Vec<FetchedArchive>, MemberConfigError> {
    for (index, member) in section.members.iter().enumerate() {
        member.check_executor().map_err(|reason| MemberConfigError::BadExecutor { reason })?;
        let key = member.archive_key();
        if section.members[..index].iter().any(|m| m.archive_key() == key) {
            return Err(MemberConfigError::DuplicateKey { key: key.to_owned() });
        }
    }
    let mut archives = Vec::new();
    for member in &section.members {
        let executor = member.executor_host().executor();
        archives.extend(fetch_member(member, executor.as_ref())?);
    }
    Ok(archives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_paths() {
        let script = archive_script("/etc/my etcd", ".", "/etc/my etcd");
        assert!(script.starts_with("if [ ! -e '/etc/my etcd' ]; then exit 3; fi;"), "{script}");
        assert!(script.contains("tar -C '/etc/my etcd' -czf \"$tmp\" . && base64 \"$tmp\""), "{script}");
    }

    #[test]
    fn local_directory_archived_and_missing_named() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc-etcd");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("etcd.conf"), "ETCD_NAME=m0\n").unwrap();
        let spec: MemberSpec = toml::from_str(&format!(
            "name = 'm0'\nconfig_dir = '{}'\nservice = {{ kind = 'systemd', unit = 'etcd' }}\n",
            etc.display()
        ))
        .unwrap();
        let archives = fetch_member(&spec, &crate::exec::LocalExecutor).unwrap();
        assert_eq!(archives.len(), 1);
        let path = dir.path().join("m0.tar.gz");
        std::fs::write(&path, &archives[0].bytes).unwrap();
        let conf = crate::conf::read_etcd_conf(&path).unwrap().unwrap();
        assert_eq!(conf.get("ETCD_NAME").map(String::as_str), Some("m0"));

        let mut missing = spec.clone();
        missing.config_dir = Some(dir.path().join("none").display().to_string());
        assert!(matches!(fetch_member(&missing, &crate::exec::LocalExecutor), Err(MemberConfigError::DirMissing { .. })));
    }
}
