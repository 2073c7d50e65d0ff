//! Procedures other than an etcd restore, such as a VM disk rollback, journaled in the same
//! directory and line format as restores so that `caasctl ops list | show | resume` covers them.
//!
//! The journal does not know how to run such a procedure. Its first line keeps the steps (ID and
//! description in each language) and an opaque `body` from which the command that created the
//! procedure rebuilds everything it needs to resume it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::journal::{OpStatus, Record};

/// One step of a procedure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcedureStep {
    /// Unique within the procedure, such as `2.safety-copy`.
    pub id: String,
    /// Description of the step, by language tag (`en`, `zh-CN`).
    pub what: BTreeMap<String, String>,
}

impl ProcedureStep {
    /// Builds a step whose description is rendered by `describe` in every language caasctl speaks.
    pub fn new(id: String, describe: impl Fn(caasctl_core::Lang) -> String) -> ProcedureStep {
        let what = [caasctl_core::Lang::En, caasctl_core::Lang::ZhCn].into_iter().map(|lang| (lang.tag().to_owned(), describe(lang))).collect();
        ProcedureStep { id, what }
    }

    /// Returns the description in `lang`, else in English, else the step ID.
    pub fn describe(&self, lang: caasctl_core::Lang) -> &str {
        self.what.get(lang.tag()).or_else(|| self.what.get("en")).map(String::as_str).unwrap_or(&self.id)
    }
}

/// A procedure as journaled.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Procedure {
    /// Operation ID, also the journal's file name.
    pub id: String,
    /// Operation kind, such as `snapshot-rollback`.
    pub kind: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Steps in order.
    pub steps: Vec<ProcedureStep>,
    /// Settings the creating command needs to run or resume the steps.
    pub body: serde_json::Value,
}

impl Procedure {
    /// Builds a procedure of `kind` created now, with an ID of the form `PREFIX-STAMP-PID`.
    ///
    /// # Errors
    /// The body cannot be serialised.
    pub fn new<T: serde::Serialize>(prefix: &str, kind: &str, steps: Vec<ProcedureStep>, body: &T) -> serde_json::Result<Procedure> {
        let now = caasctl_core::timefmt::now();
        Ok(Procedure {
            id: format!("{prefix}-{}-{}", caasctl_core::timefmt::compact(now), std::process::id()),
            kind: kind.to_owned(),
            created_at: caasctl_core::timefmt::rfc3339(now),
            steps,
            body: serde_json::to_value(body)?,
        })
    }
}

/// A procedure as read back from its journal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcedureOperation {
    /// The procedure.
    pub procedure: Procedure,
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

impl ProcedureOperation {
    /// Returns the IDs of finished steps.
    pub fn finished_set(&self) -> HashSet<String> {
        self.finished.iter().cloned().collect()
    }

    /// Returns the first step that has not finished.
    pub fn next_step(&self) -> Option<&str> {
        let done = self.finished_set();
        self.procedure.steps.iter().find(|s| !done.contains(&s.id)).map(|s| s.id.as_str())
    }
}
