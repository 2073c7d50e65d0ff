//! Applying a plan: phase after phase, members of a phase in parallel, every step journaled
//! before and after it runs. A resumed run skips the steps the journal records as finished.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use tracing::{error, info, info_span, Instrument};

use crate::error::RestoreError;
use crate::journal::Journal;
use crate::plan::{Action, Phase, Plan, Step};

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Maximum members restored at the same time. The start phase ignores it and starts every
    /// member at once, because a member of a multi-member cluster becomes ready only with a quorum.
    pub parallel: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { parallel: 8 }
    }
}

/// What happened to a step.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum StepEvent {
    /// Skipped because the journal records it as finished.
    Skipped {
        /// Step ID.
        step: String,
    },
    /// Started.
    Started {
        /// Step ID.
        step: String,
    },
    /// Finished.
    Finished {
        /// Step ID.
        step: String,
        /// Note.
        note: Option<String>,
        /// Milliseconds taken.
        elapsed_ms: u64,
    },
    /// Failed.
    Failed {
        /// Step ID.
        step: String,
        /// Error in English.
        error: String,
    },
}

/// Receives step events, such as the CLI printing a line per step.
pub type Observer = Arc<dyn Fn(&StepEvent) + Send + Sync>;

async fn run_step(step: &Step, plan: &Plan, journal: &Journal, observer: &Observer) -> Result<(), RestoreError> {
    journal.step_started(&step.id)?;
    observer(&StepEvent::Started { step: step.id.clone() });
    let started = Instant::now();
    let result = match &step.action {
        Action::WaitHealthy { .. } | Action::FixPeerUrls { .. } | Action::CheckMembers { .. } | Action::CheckData { .. } => {
            crate::verify::run_check(step, &plan.tls).instrument(info_span!("restore.step", step = %step.id)).await
        }
        Action::V2 { v2 } if v2.is_cluster_step() => crate::v2::checks::run(v2, &plan.tls).instrument(info_span!("restore.step", step = %step.id)).await,
        _ => {
            let owned = step.clone();
            tokio::task::spawn_blocking(move || {
                let _span = info_span!("restore.step", step = %owned.id, host = %owned.host.label()).entered();
                crate::actions::run_host_step(&owned)
            })
            .await
            .unwrap_or_else(|panic| Err(RestoreError::CheckFailed { check: step.id.clone(), reason: format!("step panicked: {panic}") }))
        }
    };
    match result {
        Ok(note) => {
            journal.step_finished(&step.id, note.clone())?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            info!(step = %step.id, elapsed_ms, note = note.as_deref().unwrap_or(""), "step finished");
            observer(&StepEvent::Finished { step: step.id.clone(), note, elapsed_ms });
            Ok(())
        }
        Err(failure) => {
            let text = crate::error_chain(&failure);
            error!(step = %step.id, error = %text, "step failed");
            journal.step_failed(&step.id, &text)?;
            observer(&StepEvent::Failed { step: step.id.clone(), error: text });
            Err(failure)
        }
    }
}

/// Runs the steps of `plan` that are not in `done`, journaling each.
///
/// Within a phase, a failing member does not stop the other members' steps already running,
/// but no later phase starts. The journal's last line says whether every step finished.
///
/// # Errors
/// The first step error, or a journal write error.
pub async fn apply(plan: &Plan, journal: &Journal, done: &HashSet<String>, options: ApplyOptions, observer: Observer) -> Result<(), RestoreError> {
    let span = info_span!("restore.apply", op = %plan.id, steps = plan.steps.len());
    let result = async {
        for phase in [Phase::Check, Phase::Prepare, Phase::Stop, Phase::Restore, Phase::Start, Phase::Verify] {
            let steps: Vec<&Step> = plan.steps.iter().filter(|s| s.phase == phase).collect();
            for step in steps.iter().filter(|s| done.contains(&s.id)) {
                observer(&StepEvent::Skipped { step: step.id.clone() });
            }
            let pending: Vec<&Step> = steps.into_iter().filter(|s| !done.contains(&s.id)).collect();
            if pending.is_empty() {
                continue;
            }

            // Member steps: one chain per member, chains in parallel.
            let mut chains: Vec<Vec<&Step>> = Vec::new();
            for step in pending.iter().filter(|s| s.member.is_some()) {
                match chains.iter_mut().find(|c| c[0].member == step.member) {
                    Some(chain) => chain.push(step),
                    None => chains.push(vec![step]),
                }
            }
            let limit = if phase == Phase::Start { chains.len().max(1) } else { options.parallel.max(1) };
            let results: Vec<Result<(), RestoreError>> = stream::iter(chains)
                .map(|chain| {
                    let observer = observer.clone();
                    async move {
                        for step in chain {
                            run_step(step, plan, journal, &observer).await?;
                        }
                        Ok(())
                    }
                })
                .buffer_unordered(limit)
                .collect()
                .await;
            if let Some(failure) = results.into_iter().find_map(Result::err) {
                return Err(failure);
            }

            // Cluster steps, in order.
            for step in pending.iter().filter(|s| s.member.is_none()) {
                run_step(step, plan, journal, &observer).await?;
            }
        }
        Ok(())
    }
    .instrument(span)
    .await;
    journal.finish(result.is_ok())?;
    result
}
