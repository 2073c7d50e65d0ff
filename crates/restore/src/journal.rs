//! The operation journal: one JSON line per event under `STATE_DIR/ops/ID.jsonl`, written and
//! fsynced before and after every step, so an interrupted operation can be shown and resumed.
//!
//! The first line holds the whole plan. The running process keeps an exclusive `flock` on the
//! file; the kernel drops it when the process dies, so a journal whose lock can be taken and that
//! has no `finished` line belongs to an interrupted operation.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::RestoreError;
use crate::plan::Plan;
use crate::procedure::{Procedure, ProcedureOperation};

/// One journal line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The operation was created with this plan.
    Plan {
        /// Time, RFC 3339.
        at: String,
        /// Process that created it.
        pid: u32,
        /// The plan.
        plan: Plan,
    },
    /// A procedure other than a restore was created (see [`crate::procedure`]).
    Procedure {
        /// Time, RFC 3339.
        at: String,
        /// Process that created it.
        pid: u32,
        /// The procedure.
        procedure: Procedure,
    },
    /// A process resumed the operation.
    Resumed {
        /// Time.
        at: String,
        /// Resuming process.
        pid: u32,
    },
    /// A step is about to run.
    StepStarted {
        /// Time.
        at: String,
        /// Step ID.
        step: String,
    },
    /// A step finished and its check passed.
    StepFinished {
        /// Time.
        at: String,
        /// Step ID.
        step: String,
        /// What the step found or did.
        note: Option<String>,
    },
    /// A step failed.
    StepFailed {
        /// Time.
        at: String,
        /// Step ID.
        step: String,
        /// The error, in English.
        error: String,
    },
    /// The run ended.
    Finished {
        /// Time.
        at: String,
        /// True when every step finished.
        ok: bool,
    },
}

/// State of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpStatus {
    /// A process holds the journal.
    Running,
    /// Every step finished.
    Succeeded,
    /// A step failed and the run ended.
    Failed,
    /// The process died or was killed mid-run.
    Interrupted,
}

/// An operation as read back from its journal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Operation {
    /// The plan.
    pub plan: Plan,
    /// Journal path.
    pub path: PathBuf,
    /// State.
    pub status: OpStatus,
    /// Steps that finished.
    pub finished: Vec<String>,
    /// The last error, if a step failed.
    pub last_error: Option<(String, String)>,
    /// Every line, in order.
    #[serde(skip)]
    pub records: Vec<Record>,
}

impl Operation {
    /// Returns the IDs of finished steps.
    pub fn finished_set(&self) -> HashSet<String> {
        self.finished.iter().cloned().collect()
    }

    /// Returns the first step that has not finished.
    pub fn next_step(&self) -> Option<&str> {
        let done = self.finished_set();
        self.plan.steps.iter().find(|s| !done.contains(&s.id)).map(|s| s.id.as_str())
    }
}

/// Returns the state directory: `$CAASCTL_STATE_DIR`, else `/var/lib/caasctl` for root, else
/// `$XDG_STATE_HOME/caasctl` or `~/.local/state/caasctl`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAASCTL_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/caasctl");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("caasctl");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state/caasctl")
}

/// Returns the directory of operation journals in `state`.
pub fn ops_dir(state: &Path) -> PathBuf {
    state.join("ops")
}

/// IDs of the operations this process opened and has not finished, for the message that an
/// interrupted command prints.
static UNFINISHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn mark_open(id: &str) {
    UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(id.to_owned());
}

/// Returns the IDs of the operations this process opened and has not written the end of, such as
/// one cut short by Ctrl-C.
pub fn unfinished_operations() -> Vec<String> {
    UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// An open journal, locked by this process.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

fn now() -> String {
    caasctl_core::timefmt::rfc3339(caasctl_core::timefmt::now())
}

fn try_lock(file: &File) -> bool {
    // SAFETY: the descriptor is valid for the life of `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl Journal {
    /// Creates the journal of a new operation and writes its plan.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn create(state: &Path, plan: &Plan) -> Result<Journal, RestoreError> {
        let journal = Journal::create_file(state, &plan.id)?;
        journal.write(&Record::Plan { at: now(), pid: std::process::id(), plan: plan.clone() })?;
        Ok(journal)
    }

    /// Creates the locked, empty journal file of operation `id`.
    fn create_file(state: &Path, id: &str) -> Result<Journal, RestoreError> {
        let dir = ops_dir(state);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| RestoreError::Journal { action: "create", path: dir.clone(), source })?;
        let path = dir.join(format!("{id}.jsonl"));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| RestoreError::Journal { action: "create", path: path.clone(), source })?;
        try_lock(&file);
        mark_open(id);
        Ok(Journal { path, file: Mutex::new(file) })
    }

    /// Creates the journal of a new procedure and writes its steps.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn create_procedure(state: &Path, procedure: &Procedure) -> Result<Journal, RestoreError> {
        let journal = Journal::create_file(state, &procedure.id)?;
        journal.write(&Record::Procedure { at: now(), pid: std::process::id(), procedure: procedure.clone() })?;
        Ok(journal)
    }

    /// Opens an existing procedure journal to resume it.
    ///
    /// # Errors
    /// [`RestoreError::OpRunning`] when another process holds it, [`RestoreError::Journal`].
    pub fn reopen_procedure(operation: &ProcedureOperation) -> Result<Journal, RestoreError> {
        Journal::reopen_file(&operation.path, &operation.procedure.id, &operation.records)
    }

    /// Opens an existing journal to resume it.
    ///
    /// # Errors
    /// [`RestoreError::OpRunning`] when another process holds it, [`RestoreError::Journal`].
    pub fn reopen(operation: &Operation) -> Result<Journal, RestoreError> {
        Journal::reopen_file(&operation.path, &operation.plan.id, &operation.records)
    }

    fn reopen_file(path: &Path, id: &str, records: &[Record]) -> Result<Journal, RestoreError> {
        let path = path.to_owned();
        let file = OpenOptions::new().append(true).open(&path).map_err(|source| RestoreError::Journal { action: "open", path: path.clone(), source })?;
        if !try_lock(&file) {
            return Err(RestoreError::OpRunning { id: id.to_owned(), pid: last_pid(records) });
        }
        let journal = Journal { path, file: Mutex::new(file) };
        mark_open(id);
        journal.write(&Record::Resumed { at: now(), pid: std::process::id() })?;
        Ok(journal)
    }

    /// Returns the journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line and fsyncs it.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn write(&self, record: &Record) -> Result<(), RestoreError> {
        let mut line = serde_json::to_vec(record).expect("journal records serialise");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line)
            .and_then(|_| file.sync_data())
            .map_err(|source| RestoreError::Journal { action: "write", path: self.path.clone(), source })
    }

    /// Records that a step starts.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn step_started(&self, step: &str) -> Result<(), RestoreError> {
        self.write(&Record::StepStarted { at: now(), step: step.to_owned() })
    }

    /// Records that a step finished.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn step_finished(&self, step: &str, note: Option<String>) -> Result<(), RestoreError> {
        self.write(&Record::StepFinished { at: now(), step: step.to_owned(), note })
    }

    /// Records that a step failed.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn step_failed(&self, step: &str, error: &str) -> Result<(), RestoreError> {
        self.write(&Record::StepFailed { at: now(), step: step.to_owned(), error: error.to_owned() })
    }

    /// Records the end of the run.
    ///
    /// # Errors
    /// [`RestoreError::Journal`].
    pub fn finish(&self, ok: bool) -> Result<(), RestoreError> {
        self.write(&Record::Finished { at: now(), ok })?;
        let id = self.path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|open| *open != id);
        Ok(())
    }
}

fn last_pid(records: &[Record]) -> u32 {
    records
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Plan { pid, .. } | Record::Procedure { pid, .. } | Record::Resumed { pid, .. } => Some(*pid),
            _ => None,
        })
        .unwrap_or(0)
}

/// An operation of any kind, as read back from its journal.
#[derive(Debug, Clone)]
pub enum AnyOperation {
    /// An etcd restore.
    Restore(Operation),
    /// Another procedure, such as a disk rollback.
    Procedure(ProcedureOperation),
}

impl AnyOperation {
    /// Returns the operation ID.
    pub fn id(&self) -> &str {
        match self {
            AnyOperation::Restore(op) => &op.plan.id,
            AnyOperation::Procedure(op) => &op.procedure.id,
        }
    }

    /// Returns the creation time, RFC 3339.
    pub fn created_at(&self) -> &str {
        match self {
            AnyOperation::Restore(op) => &op.plan.created_at,
            AnyOperation::Procedure(op) => &op.procedure.created_at,
        }
    }
}

/// Reads an operation from its journal file.
///
/// # Errors
/// [`RestoreError::Journal`] or [`RestoreError::BadJournal`], which a procedure journal also
/// returns; [`read_any`] reads both.
pub fn read(path: &Path) -> Result<Operation, RestoreError> {
    match read_any(path)? {
        AnyOperation::Restore(operation) => Ok(operation),
        AnyOperation::Procedure(_) => Err(RestoreError::BadJournal { path: path.to_owned(), line: 1, reason: "the first line holds no plan".to_owned() }),
    }
}

/// Reads an operation of any kind from its journal file.
///
/// # Errors
/// [`RestoreError::Journal`] or [`RestoreError::BadJournal`].
pub fn read_any(path: &Path) -> Result<AnyOperation, RestoreError> {
    let file = File::open(path).map_err(|source| RestoreError::Journal { action: "read", path: path.to_owned(), source })?;
    let mut records = Vec::new();
    for (index, line) in BufReader::new(&file).lines().enumerate() {
        let line = line.map_err(|source| RestoreError::Journal { action: "read", path: path.to_owned(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => records.push(record),
            // A line cut off by a crash can only be the last one; it is ignored.
            Err(_) if index > 0 && is_last_line(path, index) => break,
            Err(error) => return Err(RestoreError::BadJournal { path: path.to_owned(), line: index + 1, reason: error.to_string() }),
        }
    }
    let mut finished = Vec::new();
    let mut last_error = None;
    let mut ended = None;
    for record in &records {
        match record {
            Record::StepFinished { step, .. } if !finished.contains(step) => finished.push(step.clone()),
            Record::StepFailed { step, error, .. } => last_error = Some((step.clone(), error.clone())),
            Record::Finished { ok, .. } => ended = Some(*ok),
            Record::Resumed { .. } => ended = None,
            _ => {}
        }
    }
    let locked_elsewhere = !try_lock(&file);
    let status = if locked_elsewhere {
        OpStatus::Running
    } else {
        match ended {
            Some(true) => OpStatus::Succeeded,
            Some(false) => OpStatus::Failed,
            None => OpStatus::Interrupted,
        }
    };
    let path = path.to_owned();
    match records.first() {
        Some(Record::Plan { plan, .. }) => Ok(AnyOperation::Restore(Operation { plan: plan.clone(), path, status, finished, last_error, records })),
        Some(Record::Procedure { procedure, .. }) => {
            Ok(AnyOperation::Procedure(ProcedureOperation { procedure: procedure.clone(), path, status, finished, last_error, records }))
        }
        _ => Err(RestoreError::BadJournal { path, line: 1, reason: "the first line holds no plan".to_owned() }),
    }
}

fn is_last_line(path: &Path, index: usize) -> bool {
    fs::read_to_string(path).map(|text| text.lines().count() == index + 1).unwrap_or(false)
}

/// Reads every operation in the state directory, oldest first.
///
/// # Errors
/// [`RestoreError::Journal`] when the directory cannot be read; unreadable journals are skipped.
pub fn list(state: &Path) -> Result<Vec<Operation>, RestoreError> {
    let operations = list_any(state)?;
    Ok(operations
        .into_iter()
        .filter_map(|op| match op {
            AnyOperation::Restore(operation) => Some(operation),
            AnyOperation::Procedure(_) => None,
        })
        .collect())
}

/// Reads every operation of any kind in the state directory, oldest first.
///
/// # Errors
/// [`RestoreError::Journal`] when the directory cannot be read; unreadable journals are skipped.
pub fn list_any(state: &Path) -> Result<Vec<AnyOperation>, RestoreError> {
    let dir = ops_dir(state);
    let entries = match fs::read_dir(&dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(|source| RestoreError::Journal { action: "read", path: dir.clone(), source })?,
    };
    let mut operations = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            match read_any(&path) {
                Ok(operation) => operations.push(operation),
                Err(error) => tracing::warn!(path = %path.display(), error = %error, "skipping unreadable journal"),
            }
        }
    }
    operations.sort_by(|a, b| a.created_at().cmp(b.created_at()).then(a.id().cmp(b.id())));
    Ok(operations)
}

/// Finds one operation by ID.
///
/// # Errors
/// [`RestoreError::OpNotFound`], or its journal is unreadable.
pub fn find(state: &Path, id: &str) -> Result<Operation, RestoreError> {
    let path = ops_dir(state).join(format!("{id}.jsonl"));
    if id.contains('/') || !path.exists() {
        return Err(RestoreError::OpNotFound { id: id.to_owned(), dir: ops_dir(state) });
    }
    read(&path)
}

/// Finds one operation of any kind by ID.
///
/// # Errors
/// [`RestoreError::OpNotFound`], or its journal is unreadable.
pub fn find_any(state: &Path, id: &str) -> Result<AnyOperation, RestoreError> {
    let path = ops_dir(state).join(format!("{id}.jsonl"));
    if id.contains('/') || !path.exists() {
        return Err(RestoreError::OpNotFound { id: id.to_owned(), dir: ops_dir(state) });
    }
    read_any(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, ClientTls, Host, Phase, SnapshotSource, Step};

    fn plan() -> Plan {
        let step = |id: &str| Step {
            id: id.to_owned(),
            phase: Phase::Restore,
            member: Some("m0".to_owned()),
            host: Host::Local,
            action: Action::RemoveUpload { path: "/nonexistent".to_owned() },
        };
        Plan {
            id: "restore-test-1".to_owned(),
            kind: "etcd-restore".to_owned(),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            snapshot: SnapshotSource {
                path: "/snap.db".into(),
                backup_id: None,
                manifest_sha256: None,
                sha256: "00".to_owned(),
                revision: None,
                key_count: None,
                skip_hash_check: false,
            },
            tls: ClientTls::default(),
            steps: vec![step("a"), step("b"), step("c")],
        }
    }

    /// Reads the operation once no other holder of the lock is left. Tests running in parallel
    /// fork children, and a child holds the parent's descriptors (and so the flock) until it execs.
    fn settled(dir: &Path) -> Operation {
        for _ in 0..100 {
            let operation = find(dir, "restore-test-1").unwrap();
            if operation.status != OpStatus::Running {
                return operation;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the journal stays locked");
    }

    /// Reopens `operation`, waiting while its lock is still held: a child process forked by
    /// another test of this binary holds a copy of the lock until it calls exec.
    fn reopen_when_free(operation: &Operation) -> Journal {
        for _ in 0..100 {
            match Journal::reopen(operation) {
                Err(RestoreError::OpRunning { .. }) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => return other.unwrap(),
            }
        }
        panic!("the journal stays locked");
    }

    #[test]
    fn statuses_follow_lock_and_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), &plan()).unwrap();
        journal.step_started("a").unwrap();
        journal.step_finished("a", None).unwrap();
        journal.step_started("b").unwrap();
        assert_eq!(find(dir.path(), "restore-test-1").unwrap().status, OpStatus::Running);

        drop(journal);
        let interrupted = settled(dir.path());
        assert_eq!(interrupted.status, OpStatus::Interrupted);
        assert_eq!(interrupted.next_step(), Some("b"));

        let resumed = reopen_when_free(&interrupted);
        assert!(matches!(Journal::reopen(&interrupted), Err(RestoreError::OpRunning { .. })));
        resumed.step_failed("b", "boom").unwrap();
        resumed.finish(false).unwrap();
        drop(resumed);
        let failed = settled(dir.path());
        assert_eq!(failed.status, OpStatus::Failed);
        assert_eq!(failed.last_error, Some(("b".to_owned(), "boom".to_owned())));

        let again = reopen_when_free(&failed);
        for step in ["b", "c"] {
            again.step_finished(step, None).unwrap();
        }
        again.finish(true).unwrap();
        drop(again);
        let done = settled(dir.path());
        assert_eq!(done.status, OpStatus::Succeeded);
        assert_eq!(done.next_step(), None);
        assert_eq!(list(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn cut_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), &plan()).unwrap();
        journal.step_finished("a", None).unwrap();
        let path = journal.path().to_owned();
        drop(journal);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"type\":\"step-fin").unwrap();
        let operation = read(&path).unwrap();
        assert_eq!(operation.finished, ["a"]);
        assert!(matches!(find(dir.path(), "../x"), Err(RestoreError::OpNotFound { .. })));
    }
}
