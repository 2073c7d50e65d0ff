//! Running one step on its host. Every action is idempotent: run again after an interruption, it
//! finds what the earlier attempt left and either finishes the work or reports it done.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use caasctl_core::NoProgress;
use caasctl_etcd::endpoints::authority;
use tracing::info;

use crate::check::check_snapshot;
use crate::cluster::Service;
use crate::describe::{start_command, stop_command, stopped_path};
use crate::error::RestoreError;
use crate::exec::{shell_quote, ExecError, PathState};
use crate::plan::{Action, Step};

/// How long a stopped member may keep its client port open.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a step whose action is carried out by commands and file operations (every action but
/// the cluster checks, which [`crate::verify`] runs). Returns a note for the journal.
///
/// # Errors
/// [`RestoreError::Step`] naming the step and host, or the snapshot check's error.
pub fn run_host_step(step: &Step) -> Result<Option<String>, RestoreError> {
    let executor = step.host.executor();
    let executor = executor.as_ref();
    let wrap = |source: ExecError| RestoreError::Step { step: step.id.clone(), host: executor.host(), source };
    match &step.action {
        Action::VerifySnapshot { path, manifest_sha256, skip_hash_check } => {
            let result = check_snapshot(Path::new(path), manifest_sha256.as_deref(), *skip_hash_check, &NoProgress)?;
            Ok(Some(format!("sha256 {}, {} bytes, hash {:?}", result.sha256, result.size, result.hash)))
        }
        Action::Upload { local, remote, sha256 } => {
            if executor.sha256(remote).map_err(wrap)?.as_deref() == Some(sha256.as_str()) {
                return Ok(Some("already present".to_owned()));
            }
            executor.upload(Path::new(local), remote).map_err(wrap)?;
            match executor.sha256(remote).map_err(wrap)? {
                Some(found) if &found == sha256 => Ok(None),
                found => Err(wrap(ExecError::Failed {
                    host: executor.host(),
                    command: format!("sha256sum {remote}"),
                    status: 1,
                    stderr: format!("copy hashes to {}, expected {sha256}", found.unwrap_or_else(|| "nothing".to_owned())),
                })),
            }
        }
        Action::Stop { service, client_url } => {
            executor.run_checked(&stop_script(service)).map_err(wrap)?;
            if let Some(url) = client_url {
                wait_port_closed(url, STOP_TIMEOUT).map_err(|reason| RestoreError::CheckFailed { check: format!("{} stopped", step.id), reason })?;
            }
            Ok(None)
        }
        Action::RestoreToTemp { engine, params } => {
            // A leftover of an interrupted attempt is caasctl's own directory, so it is removed.
            executor.remove_dir_all(&params.data_dir).map_err(wrap)?;
            executor.create_dir_all(&crate::plan::parent_dir(&params.data_dir)).map_err(wrap)?;
            let output = executor.run_checked(&engine.restore_command(params)).map_err(wrap)?;
            info!(step = %step.id, output = %output.trim(), "restore tool finished");
            if executor.path_state(&format!("{}/member", params.data_dir)).map_err(wrap)? != PathState::NonEmptyDir {
                return Err(RestoreError::CheckFailed { check: step.id.clone(), reason: format!("{}/member was not created", params.data_dir) });
            }
            Ok(None)
        }
        Action::MoveAside { data_dir, aside } => match executor.path_state(data_dir).map_err(wrap)? {
            PathState::Missing => Ok(Some("no data dir to move aside".to_owned())),
            PathState::EmptyDir => {
                executor.remove_empty_dir(data_dir).map_err(wrap)?;
                Ok(Some("removed the empty data dir".to_owned()))
            }
            PathState::NonEmptyDir | PathState::File => {
                if executor.path_state(aside).map_err(wrap)? != PathState::Missing {
                    return Err(RestoreError::CheckFailed { check: step.id.clone(), reason: format!("{aside} already exists; nothing was moved") });
                }
                executor.rename(data_dir, aside).map_err(wrap)?;
                Ok(Some(format!("moved to {aside}")))
            }
        },
        Action::Install { temp_dir, data_dir } => {
            let temp = executor.path_state(temp_dir).map_err(wrap)?;
            let target = executor.path_state(data_dir).map_err(wrap)?;
            match (temp, target) {
                (PathState::NonEmptyDir, PathState::Missing) => executor.rename(temp_dir, data_dir).map_err(wrap)?,
                (PathState::NonEmptyDir, PathState::EmptyDir) => {
                    executor.remove_empty_dir(data_dir).map_err(wrap)?;
                    executor.rename(temp_dir, data_dir).map_err(wrap)?;
                }
                (PathState::Missing, PathState::NonEmptyDir) if executor.path_state(&format!("{data_dir}/member")).map_err(wrap)? == PathState::NonEmptyDir => {
                    return Ok(Some("already installed".to_owned()));
                }
                (temp, target) => {
                    return Err(RestoreError::CheckFailed {
                        check: step.id.clone(),
                        reason: format!("cannot install: {temp_dir} is {temp:?} and {data_dir} is {target:?}"),
                    })
                }
            }
            Ok(None)
        }
        Action::Chown { data_dir, owner } => {
            executor.run_checked(&format!("chown -R {} {}", shell_quote(owner), shell_quote(data_dir))).map_err(wrap)?;
            Ok(None)
        }
        Action::Restorecon { data_dir } => {
            let output = executor.run_checked(&format!("restorecon -Rv {}", shell_quote(data_dir))).map_err(wrap)?;
            Ok(Some(format!("{} labels changed", output.lines().count())))
        }
        Action::RemoveUpload { path } => {
            executor.remove_file(path).map_err(wrap)?;
            Ok(None)
        }
        Action::Start { service } => {
            executor.run_checked(&start_script(service)).map_err(wrap)?;
            Ok(None)
        }
        Action::V2 { v2 } => crate::v2::steps::run(step, v2),
        Action::WaitHealthy { .. } | Action::FixPeerUrls { .. } | Action::CheckMembers { .. } | Action::CheckData { .. } => {
            unreachable!("cluster checks run in crate::verify")
        }
    }
}

/// Returns the stop script; for a static pod, a manifest already moved out counts as stopped.
pub(crate) fn stop_script(service: &Service) -> String {
    match service {
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            format!(
                "if [ -e {m} ]; then {command}; elif [ -e {s} ]; then :; else echo 'static pod manifest {m} not found' >&2; exit 1; fi",
                m = shell_quote(manifest),
                s = shell_quote(&stopped),
                command = stop_command(service),
            )
        }
        _ => stop_command(service),
    }
}

/// Returns the start script; for a static pod, a manifest already back counts as started.
pub(crate) fn start_script(service: &Service) -> String {
    match service {
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            format!(
                "if [ -e {s} ]; then {command}; elif [ -e {m} ]; then :; else echo 'static pod manifest {s} not found' >&2; exit 1; fi",
                m = shell_quote(manifest),
                s = shell_quote(&stopped),
                command = start_command(service),
            )
        }
        _ => start_command(service),
    }
}

/// Waits until nothing accepts connections on the URL's host and port.
pub(crate) fn wait_port_closed(url: &str, timeout: Duration) -> Result<(), String> {
    let address = authority(url).to_owned();
    let deadline = Instant::now() + timeout;
    loop {
        let open = address
            .to_socket_addrs()
            .map(|mut addrs| addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()))
            .unwrap_or(false);
        if !open {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{address} still accepts connections after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Executor;

    #[test]
    fn static_pod_scripts_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        std::fs::create_dir(&pods).unwrap();
        let manifest = pods.join("etcd.yaml");
        std::fs::write(&manifest, "kind: Pod\n").unwrap();
        let service = Service::StaticPod {
            manifest: manifest.display().to_string(),
            stopped_dir: Some(dir.path().join("pods-stopped").display().to_string()),
        };
        let local = crate::exec::LocalExecutor;
        for _ in 0..2 {
            local.run_checked(&stop_script(&service)).unwrap();
            assert!(!manifest.exists());
            assert!(dir.path().join("pods-stopped/etcd.yaml").exists());
        }
        for _ in 0..2 {
            local.run_checked(&start_script(&service)).unwrap();
            assert!(manifest.exists());
        }
    }
}
