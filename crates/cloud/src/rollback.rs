//! Rolling a disk back to a snapshot, as a plan: checked, printed, then applied.
//!
//! [`plan`] is read-only and lists the steps. It first checks the runbook's preconditions: the
//! disk exists and is not released, no snapshot of it is being taken, and the snapshot was taken
//! from this disk. Where the provider needs it, the disk must also be attached to a stopped instance.
//! [`apply`] runs them: stop the instance when `--stop` asked for it, copy the disk's current
//! state (`caasctl-pre-rollback-<time>`) so that the rollback itself can be undone, roll back,
//! wait for the disk, and start the instance again.

use std::time::Instant;

use caasctl_core::{timefmt, Message, Progress};
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, warn, Instrument};

use crate::error::CloudError;
use crate::model::{CreateRequest, Disk, DiskStatus, Instance, InstanceStatus, Snapshot, SnapshotTags};
use crate::ops::{no_snapshot_in_progress, resolve_snapshot, usable_disk};
use crate::provider::{CloudResult, SafetyCopy, SnapshotProvider};
use crate::wait::{wait_for, PollState, WaitOptions};

/// Prefix of the name of the snapshot taken right before a rollback.
pub const SAFETY_PREFIX: &str = "caasctl-pre-rollback-";

/// A rollback as the operator requested it.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// Disk path or ID.
    pub disk: String,
    /// Snapshot name or ID.
    pub snapshot: String,
    /// Stop the instance first and start it again afterwards.
    pub stop: bool,
    /// Instance to stop and start, where the disk's attachment does not name it (a detached
    /// Cinder volume).
    pub instance: Option<String>,
    /// Labels for the safety snapshot.
    pub tags: SnapshotTags,
}

/// One step of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// Stop the instance and wait until it is stopped.
    StopInstance {
        /// Instance ID.
        instance: String,
    },
    /// Copy the disk's current state so the rollback can be undone.
    SafetyCopy {
        /// Disk ID.
        disk: String,
        /// Name of the copy.
        name: String,
    },
    /// Roll the disk back and wait until it is usable.
    Rollback {
        /// Disk ID.
        disk: String,
        /// Snapshot ID.
        snapshot: String,
        /// Snapshot name.
        snapshot_name: String,
    },
    /// Start the instance again and wait until it runs.
    StartInstance {
        /// Instance ID.
        instance: String,
    },
}

impl Step {
    /// Returns what the step does, for the printed plan.
    pub fn describe(&self) -> Message {
        match self {
            Step::StopInstance { instance } => Message::new("cloud.step.stop").arg("instance", instance),
            Step::SafetyCopy { disk, name } => Message::new("cloud.step.safety").arg("disk", disk).arg("name", name),
            Step::Rollback { disk, snapshot_name, .. } => Message::new("cloud.step.rollback").arg("disk", disk).arg("snapshot", snapshot_name),
            Step::StartInstance { instance } => Message::new("cloud.step.start").arg("instance", instance),
        }
    }

    /// Returns how a person undoes the step.
    pub fn undo(&self) -> Message {
        match self {
            Step::StopInstance { instance } => Message::new("cloud.undo.stop").arg("instance", instance),
            Step::SafetyCopy { name, .. } => Message::new("cloud.undo.safety").arg("name", name),
            Step::Rollback { disk, .. } => Message::new("cloud.undo.rollback").arg("disk", disk),
            Step::StartInstance { instance } => Message::new("cloud.undo.start").arg("instance", instance),
        }
    }
}

/// A checked rollback, ready to print or apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// Provider name.
    pub provider: String,
    /// The disk as found.
    pub disk: Disk,
    /// The snapshot to roll back to.
    pub snapshot: Snapshot,
    /// The instance the disk is attached to, when known.
    pub instance: Option<Instance>,
    /// Preconditions that held, as catalogue keys (`cloud.check.*`); empty in a plan read back
    /// from a journal.
    #[serde(skip_deserializing)]
    pub checks: Vec<&'static str>,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Labels for the safety snapshot.
    #[serde(default)]
    pub tags: SnapshotTags,
}

/// The result of an applied rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    /// The plan applied.
    pub plan: RollbackPlan,
    /// The copy of the state before the rollback; rolling back to it undoes the rollback.
    pub safety_copy: SafetyCopy,
    /// The disk after the rollback.
    pub disk_after: Disk,
    /// Seconds the whole rollback took.
    pub elapsed_seconds: f64,
}

/// Checks the preconditions and builds the plan, changing nothing.
///
/// # Errors
/// The error of the first precondition that does not hold, or the provider's errors.
pub async fn plan(provider: &dyn SnapshotProvider, request: &RollbackRequest) -> CloudResult<RollbackPlan> {
    let span = info_span!("cloud.rollback.plan", provider = %provider.kind(), disk = %request.disk, snapshot = %request.snapshot);
    async move {
        let disk_id = request.disk.as_str();
        let mut checks = vec!["cloud.check.disk_exists"];
        let disk = usable_disk(provider, disk_id).await?;
        checks.push("cloud.check.disk_not_released");

        let all = provider.list_snapshots(disk_id).await?;
        no_snapshot_in_progress(disk_id, &all)?;
        checks.push("cloud.check.no_snapshot_in_progress");

        let snapshot = resolve_snapshot(provider, disk_id, &all, &request.snapshot).await?;
        checks.push("cloud.check.same_disk");
        if snapshot.status != crate::model::SnapshotStatus::Ready {
            return Err(CloudError::SnapshotNotReady { snapshot: snapshot.id, status: snapshot.raw_status });
        }
        checks.push("cloud.check.snapshot_ready");

        let instance_id = match (&disk.instance, &request.instance) {
            (_, Some(given)) => Some(given.clone()),
            (Some(attached), None) => Some(attached.clone()),
            (None, None) => None,
        };
        if provider.rollback_needs_stopped_instance() && disk.instance.is_none() {
            return Err(CloudError::NotAttached { disk: disk_id.to_owned() });
        }
        if provider.rollback_needs_stopped_instance() {
            checks.push("cloud.check.attached");
        }

        let instance = match &instance_id {
            Some(id) => Some(provider.describe_instance(id).await?),
            None => None,
        };
        let must_stop = match &instance {
            Some(found) if found.status == InstanceStatus::Stopped => false,
            Some(found) if request.stop => {
                if found.status != InstanceStatus::Running {
                    return Err(CloudError::InstanceNotStopped { instance: found.id.clone(), status: found.raw_status.clone() });
                }
                true
            }
            Some(found) => return Err(CloudError::InstanceNotStopped { instance: found.id.clone(), status: found.raw_status.clone() }),
            None => false,
        };
        if instance.is_some() {
            checks.push(if must_stop { "cloud.check.instance_will_stop" } else { "cloud.check.instance_stopped" });
        }

        provider.check_rollback(&disk, &snapshot, &all).await?;
        checks.push("cloud.check.provider");

        let safety_name = safety_name(&timefmt::compact(timefmt::now()), &all);
        let mut steps = Vec::new();
        if must_stop {
            steps.push(Step::StopInstance { instance: instance_id.clone().unwrap_or_default() });
        }
        steps.push(Step::SafetyCopy { disk: disk_id.to_owned(), name: safety_name });
        steps.push(Step::Rollback { disk: disk_id.to_owned(), snapshot: snapshot.id.clone(), snapshot_name: snapshot.name.clone() });
        if must_stop {
            steps.push(Step::StartInstance { instance: instance_id.unwrap_or_default() });
        }
        Ok(RollbackPlan { provider: provider.kind().name().to_owned(), disk, snapshot, instance, checks, steps, tags: request.tags.clone() })
    }
    .instrument(span)
    .await
}

/// Applies a plan built by [`plan`], re-checking first that no snapshot of the disk started since.
///
/// # Errors
/// A precondition that no longer holds, the provider's errors, or a wait's timeout. A step that
/// fails after the instance was stopped or the safety copy taken returns
/// [`CloudError::RollbackInterrupted`], which names both. The instance is then left stopped,
/// because the disk may be half reset and starting a VM on it is the operator's decision.
pub async fn apply(provider: &dyn SnapshotProvider, plan: RollbackPlan, wait: WaitOptions, progress: &dyn Progress) -> CloudResult<RollbackOutcome> {
    let span = info_span!("cloud.rollback.apply", provider = %provider.kind(), disk = %plan.disk.id, snapshot = %plan.snapshot.id);
    async move {
        let started = Instant::now();
        let disk_id = plan.disk.id.clone();
        let mut safety_copy: Option<SafetyCopy> = None;
        let mut stopped: Option<String> = None;
        for (index, step) in plan.steps.iter().enumerate() {
            info!(step = ?step, "step started");
            match run_step(provider, &plan, step, wait, progress).await {
                Ok(copy) => {
                    if copy.is_some() {
                        safety_copy = copy;
                    }
                    if let Step::StopInstance { instance } = step {
                        stopped = Some(instance.clone());
                    }
                    if let Step::StartInstance { .. } = step {
                        stopped = None;
                    }
                }
                Err(error) if stopped.is_some() || safety_copy.is_some() => {
                    warn!(step = index + 1, error = %error, "rollback stopped part-way");
                    return Err(CloudError::RollbackInterrupted {
                        disk: disk_id,
                        step: index + 1,
                        instance_left_stopped: stopped,
                        safety_copy: safety_copy.map(|c| c.name),
                        source: Box::new(error),
                    });
                }
                Err(error) => return Err(error),
            }
            info!(step = ?step, "step finished");
        }
        let disk_after = provider.describe_disk(&disk_id).await?;
        let Some(safety_copy) = safety_copy else {
            warn!("plan had no safety copy step");
            return Err(CloudError::Parse { source_name: "rollback plan".to_owned(), reason: "no safety copy step".to_owned() });
        };
        Ok(RollbackOutcome { plan, safety_copy, disk_after, elapsed_seconds: started.elapsed().as_secs_f64() })
    }
    .instrument(span)
    .await
}

/// Runs one step and returns the safety copy when the step made one.
pub(crate) async fn run_step(provider: &dyn SnapshotProvider, plan: &RollbackPlan, step: &Step, wait: WaitOptions, progress: &dyn Progress) -> CloudResult<Option<SafetyCopy>> {
    let disk_id = plan.disk.id.as_str();
    match step {
        Step::StopInstance { instance } => {
            provider.stop_instance(instance).await?;
            wait_instance(provider, instance, InstanceStatus::Stopped, wait, progress).await?;
        }
        Step::SafetyCopy { name, .. } => {
            // Between plan and apply, a snapshot may have started elsewhere.
            let current = provider.list_snapshots(disk_id).await?;
            no_snapshot_in_progress(disk_id, &current)?;
            let disk = provider.describe_disk(disk_id).await?;
            let request = CreateRequest {
                name: name.clone(),
                description: Some(format!("taken by caasctl before rolling back to {}", plan.snapshot.name)),
                force: true,
                tags: plan.tags.clone(),
            };
            let copy = provider.create_safety_copy(&disk, &request).await?;
            let what = format!("safety copy {name} of {disk_id}");
            wait_for(&what, wait, progress, || provider.poll_safety_copy(disk_id, &copy)).await?;
            info!(id = %copy.id, "safety copy finished");
            return Ok(Some(copy));
        }
        Step::Rollback { snapshot, .. } => {
            let target = provider.get_snapshot(disk_id, snapshot).await?;
            provider.rollback(disk_id, &target).await?;
            let what = format!("disk {disk_id} to finish the rollback");
            wait_for(&what, wait, progress, || async {
                let disk = provider.describe_disk(disk_id).await?;
                Ok(match disk.status {
                    DiskStatus::Available | DiskStatus::InUse => PollState::Done,
                    DiskStatus::Busy => PollState::Pending(None),
                    DiskStatus::Released | DiskStatus::Error => PollState::Failed(disk.raw_status),
                })
            })
            .await?;
        }
        Step::StartInstance { instance } => {
            provider.start_instance(instance).await?;
            wait_instance(provider, instance, InstanceStatus::Running, wait, progress).await?;
        }
    }
    Ok(None)
}

/// Names the safety snapshot after the time, with a counter when two rollbacks of the disk fall
/// within the same second.
fn safety_name(time: &str, existing: &[Snapshot]) -> String {
    let base = format!("{SAFETY_PREFIX}{time}");
    let taken = |name: &str| existing.iter().any(|s| s.name == name);
    if !taken(&base) {
        return base;
    }
    (2..).map(|n| format!("{base}-{n}")).find(|name| !taken(name)).unwrap_or(base)
}

pub(crate) async fn wait_instance(provider: &dyn SnapshotProvider, instance: &str, target: InstanceStatus, wait: WaitOptions, progress: &dyn Progress) -> CloudResult<()> {
    let what = match target {
        InstanceStatus::Stopped => format!("instance {instance} to stop"),
        _ => format!("instance {instance} to start"),
    };
    wait_for(&what, wait, progress, || async {
        let found = provider.describe_instance(instance).await?;
        Ok(if found.status == target {
            PollState::Done
        } else if found.status == InstanceStatus::Error {
            PollState::Failed(found.raw_status)
        } else {
            PollState::Pending(None)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnapshotStatus;

    fn named(name: &str) -> Snapshot {
        Snapshot {
            id: name.to_owned(),
            name: name.to_owned(),
            disk_id: "d".to_owned(),
            disk_size_bytes: None,
            created_at: None,
            status: SnapshotStatus::Ready,
            raw_status: "ready".to_owned(),
            progress: None,
        }
    }

    #[test]
    fn safety_name_avoids_existing() {
        assert_eq!(safety_name("20260101T000000Z", &[]), "caasctl-pre-rollback-20260101T000000Z");
        let existing = [named("caasctl-pre-rollback-20260101T000000Z"), named("caasctl-pre-rollback-20260101T000000Z-2")];
        assert_eq!(safety_name("20260101T000000Z", &existing), "caasctl-pre-rollback-20260101T000000Z-3");
    }
}
