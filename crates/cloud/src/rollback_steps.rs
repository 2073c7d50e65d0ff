//! Running a rollback plan one step at a time, for a caller that journals each step and may
//! resume the plan after an interruption.
//!
//! A step that was started but not recorded as finished may have partly run. A retried step
//! first checks what the earlier attempt left. An instance already stopped or started is left as
//! it is, and a safety snapshot already taken under the planned name is waited for instead of
//! taken again. A rollback to the same snapshot is simply repeated.

use caasctl_core::Progress;
use tracing::{info, info_span, Instrument};

use crate::model::InstanceStatus;
use crate::provider::{snapshot_poll_state, CloudResult, SafetyCopy, SafetyCopyKind, SnapshotProvider};
use crate::rollback::{run_step, wait_instance, RollbackPlan, Step};
use crate::wait::{wait_for, WaitOptions};

/// Returns the journal ID of step `index` (from 0): its number from 1 and its action, such as
/// `2.safety-copy`.
pub fn step_id(index: usize, step: &Step) -> String {
    let action = match step {
        Step::StopInstance { .. } => "stop-instance",
        Step::SafetyCopy { .. } => "safety-copy",
        Step::Rollback { .. } => "rollback",
        Step::StartInstance { .. } => "start-instance",
    };
    format!("{}.{action}", index + 1)
}

/// Runs step `index` of `plan` and returns the safety copy when the step made or found one.
/// With `retry`, the step may have partly run before, and what it left is reused.
///
/// # Errors
/// The provider's errors, a precondition that no longer holds, or a wait's timeout.
pub async fn run_plan_step(
    provider: &dyn SnapshotProvider,
    plan: &RollbackPlan,
    index: usize,
    retry: bool,
    wait: WaitOptions,
    progress: &dyn Progress,
) -> CloudResult<Option<SafetyCopy>> {
    let step = &plan.steps[index];
    let span = info_span!("cloud.rollback.step", step = %step_id(index, step), retry);
    async move {
        if retry {
            if let Some(done) = reuse_partial(provider, step, wait, progress).await? {
                return Ok(done);
            }
        }
        run_step(provider, plan, step, wait, progress).await
    }
    .instrument(span)
    .await
}

/// Returns `Some` when an earlier attempt of `step` already reached its goal (after waiting for
/// it to complete), `None` when the step must run.
async fn reuse_partial(
    provider: &dyn SnapshotProvider,
    step: &Step,
    wait: WaitOptions,
    progress: &dyn Progress,
) -> CloudResult<Option<Option<SafetyCopy>>> {
    match step {
        Step::StopInstance { instance } | Step::StartInstance { instance } => {
            let target = if matches!(step, Step::StopInstance { .. }) { InstanceStatus::Stopped } else { InstanceStatus::Running };
            let found = provider.describe_instance(instance).await?;
            if found.status == target {
                info!(instance = %instance, status = %found.raw_status, "instance already in the planned state");
                return Ok(Some(None));
            }
            if found.status == InstanceStatus::Transition {
                wait_instance(provider, instance, target, wait, progress).await?;
                return Ok(Some(None));
            }
            Ok(None)
        }
        Step::SafetyCopy { disk, name } => {
            // NOTE: only a safety copy taken as a snapshot is found again. A Cinder volume clone
            // left by an interrupted attempt is not looked for, so a retry makes a second clone.
            let existing = provider.list_snapshots(disk).await?;
            let Some(snapshot) = existing.into_iter().find(|s| &s.name == name) else {
                return Ok(None);
            };
            info!(snapshot = %snapshot.id, "safety snapshot of an earlier attempt found");
            let what = format!("safety copy {name} of {disk}");
            wait_for(&what, wait, progress, || async { Ok(snapshot_poll_state(&provider.get_snapshot(disk, &snapshot.id).await?)) }).await?;
            Ok(Some(Some(SafetyCopy { kind: SafetyCopyKind::Snapshot, id: snapshot.id, name: snapshot.name })))
        }
        Step::Rollback { .. } => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_number_from_one() {
        let step = Step::SafetyCopy { disk: "d".into(), name: "n".into() };
        assert_eq!(step_id(1, &step), "2.safety-copy");
        assert_eq!(step_id(0, &Step::StopInstance { instance: "i".into() }), "1.stop-instance");
    }
}
