//! Running `ansible-playbook`, with its output streamed to the terminal and kept in a log file.
//!
//! The child gets no standard input and is killed when the future is dropped, so Ctrl-C on
//! caasctl does not leave a playbook running unseen.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::NodeError;

/// One playbook run.
#[derive(Debug, Clone)]
pub struct PlaybookRun {
    /// The program, `ansible-playbook` unless a test or the operator names another.
    pub program: String,
    /// Playbook file.
    pub playbook: PathBuf,
    /// Inventory file passed with `-i`.
    pub inventory: PathBuf,
    /// Log file that receives every output line, appended to.
    pub log: PathBuf,
}

/// Runs the playbook, handing each output line (stdout and stderr) to `echo` and the log.
///
/// # Errors
/// [`NodeError::PlaybookSpawn`] when the program cannot start, [`NodeError::Log`] when the log
/// cannot be written, [`NodeError::PlaybookFailed`] for a non-zero exit.
pub async fn run(run: &PlaybookRun, mut echo: impl FnMut(&str)) -> Result<(), NodeError> {
    let _span = tracing::info_span!("node.playbook", playbook = %run.playbook.display(), inventory = %run.inventory.display()).entered();
    let log_error = |source| NodeError::Log { path: run.log.clone(), source };
    if let Some(dir) = run.log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(log_error)?;
    }
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&run.log).map_err(log_error)?;
    let header = format!("$ {} -i {} {}", run.program, run.inventory.display(), run.playbook.display());
    writeln!(log, "{header}").map_err(log_error)?;

    let started = std::time::Instant::now();
    tracing::info!("playbook started");
    let mut child = Command::new(&run.program)
        .arg("-i")
        .arg(&run.inventory)
        .arg(&run.playbook)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NodeError::PlaybookSpawn { program: run.program.clone(), source })?;

    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let line = tokio::select! {
            line = stdout.next_line(), if out_open => line,
            line = stderr.next_line(), if err_open => {
                match line {
                    Ok(None) => { err_open = false; continue; }
                    other => other,
                }
            }
        };
        match line {
            Ok(Some(line)) => {
                writeln!(log, "{line}").map_err(log_error)?;
                echo(&line);
            }
            Ok(None) => out_open = false,
            Err(error) => {
                tracing::warn!(%error, "failed to read playbook output");
                break;
            }
        }
    }
    let status = child.wait().await.map_err(|source| NodeError::PlaybookSpawn { program: run.program.clone(), source })?;
    log.sync_all().map_err(log_error)?;
    tracing::info!(%status, elapsed_ms = started.elapsed().as_millis() as u64, "playbook finished");
    if status.success() {
        Ok(())
    } else {
        Err(NodeError::PlaybookFailed { playbook: run.playbook.clone(), status: status.to_string(), log: run.log.clone() })
    }
}

/// Returns a log file name for a run started now under `dir`: `OPERATION-YYYYMMDDTHHMMSSZ.log`.
pub fn log_path(dir: &Path, operation: &str) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    dir.join(format!(
        "{operation}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.log",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    ))
}
