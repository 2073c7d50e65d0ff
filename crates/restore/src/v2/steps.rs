//! The v2 restore steps that run commands on a member's host: the archive check, unpacking, and
//! starting etcd with and without the extra flags.

use crate::actions::{start_script, stop_script, wait_port_closed, STOP_TIMEOUT};
use crate::error::RestoreError;
use crate::exec::{shell_quote, ExecError, Executor, LocalExecutor, PathState};
use crate::plan::Step;

use super::{overrides, V2Action};

/// Runs a host step of a v2 restore. Returns a note for the journal.
///
/// # Errors
/// [`RestoreError::Step`] naming the step and host, or [`RestoreError::CheckFailed`].
pub fn run(step: &Step, action: &V2Action) -> Result<Option<String>, RestoreError> {
    let executor = step.host.executor();
    let executor = executor.as_ref();
    let wrap = |source: ExecError| RestoreError::Step { step: step.id.clone(), host: executor.host(), source };
    let check_failed = |reason: String| RestoreError::CheckFailed { check: step.id.clone(), reason };
    match action {
        V2Action::VerifyArchive { path, sha256 } => {
            let found = LocalExecutor.sha256(path).map_err(wrap)?;
            match found {
                Some(found) if &found == sha256 => Ok(Some(format!("sha256 {found}"))),
                Some(found) => Err(check_failed(format!("{path} hashes to {found}, the manifest records {sha256}"))),
                None => Err(check_failed(format!("{path} not found"))),
            }
        }
        V2Action::Unpack { archive, temp_dir } => {
            // A leftover of an interrupted attempt is caasctl's own directory, so it is removed.
            executor.remove_dir_all(temp_dir).map_err(wrap)?;
            executor.create_dir_all(temp_dir).map_err(wrap)?;
            executor.run_checked(&format!("tar -xzf {} -C {}", shell_quote(archive), shell_quote(temp_dir))).map_err(wrap)?;
            for required in ["member/wal", "member/snap"] {
                if executor.path_state(&format!("{temp_dir}/{required}")).map_err(wrap)? == PathState::Missing {
                    return Err(check_failed(format!("{archive} has no {required}")));
                }
            }
            Ok(None)
        }
        V2Action::StartWithFlags { service, flags } => {
            let script = overrides::install(executor, service, flags).map_err(wrap)?.unwrap_or_else(|| start_script(service));
            executor.run_checked(&script).map_err(wrap)?;
            Ok(Some(format!("started with {}", flags.join(" "))))
        }
        V2Action::RestartPlain { service, client_url } => {
            executor.run_checked(&stop_script(service)).map_err(wrap)?;
            wait_port_closed(client_url, STOP_TIMEOUT).map_err(check_failed)?;
            overrides::remove(executor, service).map_err(wrap)?;
            executor.run_checked(&start_script(service)).map_err(wrap)?;
            Ok(None)
        }
        _ => unreachable!("cluster steps run in v2::checks"),
    }
}
