//! One scheduled run of the service: a backup, then the keep rules, then (optionally) a restore
//! drill of the new backup. Each step logs its result and updates the metrics, and the run stops
//! early when SIGTERM arrives.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use caasctl_core::error::chain_text;
use caasctl_core::NoProgress;
use caasctl_etcd::backup::{run_backup, BackupError, BackupOutcome, BackupRequest};
use caasctl_etcd::blob::Identities;
use caasctl_etcd::retention::{self, PruneOptions};
use caasctl_etcd::store::Repository;
use caasctl_restore::drill::{run_drill, DrillOptions};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use super::config::ServeConfig;
use super::metrics::Metrics;
use crate::commands::etcd_prune::classify;

/// Everything a run needs.
pub struct Service {
    /// The backup to take.
    pub request: BackupRequest,
    /// The `[serve]` table.
    pub config: ServeConfig,
    /// Metrics shared with the HTTP endpoint.
    pub metrics: Arc<Metrics>,
    /// Cancelled by SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    /// Identities for drills of encrypted backups.
    pub identities: Option<Arc<Identities>>,
    /// Directory for drills.
    pub scratch: std::path::PathBuf,
}

/// Seconds since the Unix epoch, as Prometheus timestamps are written.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Maps a backup error to the `reason` label of the failure counter.
fn failure_reason(error: &BackupError) -> &'static str {
    match error {
        BackupError::Etcd(_) => "etcd",
        BackupError::NoHealthyMember { .. } => "no_healthy_member",
        BackupError::Repo(_) | BackupError::Store(_) => "repository",
        BackupError::Key(_) => "encryption",
        BackupError::Config { .. } => "config",
    }
}

/// The end of a backup: finished (well or not) or abandoned.
enum Ended {
    Finished(Result<BackupOutcome, BackupError>),
    /// SIGTERM arrived and the backup did not finish within the grace period.
    Abandoned,
}

impl Service {
    /// Runs one backup, prune and drill.
    pub async fn run_once(&self, run: u64) {
        let span = info_span!("serve.run", run, repo = %self.request.repo);
        async move {
            let started = Instant::now();
            self.metrics.backup_started();
            let repo = match Repository::open(&self.request.repo, &self.request.s3) {
                Ok(repo) => repo,
                Err(failure) => {
                    error!(error = %chain_text(&failure), "failed to open the repository");
                    self.metrics.backup_failed("repository", started.elapsed().as_secs_f64());
                    return;
                }
            };
            let leftovers_before = self.leftover_ids(&repo).await;

            match self.backup().await {
                Ended::Finished(Ok(outcome)) => {
                    // A backup from the remaining members succeeds, but a member that is down
                    // must still reach the log, as the one-shot command prints it.
                    for health in outcome.health.iter().filter(|h| !h.healthy) {
                        warn!(endpoint = %health.endpoint, error = health.error.as_deref().unwrap_or("unhealthy"), "etcd endpoint was not usable for the backup");
                    }
                    for attempt in &outcome.failed_attempts {
                        warn!(endpoint = %attempt.endpoint, error = %attempt.error, "snapshot from this endpoint failed; the next member was used");
                    }
                    let seconds = started.elapsed().as_secs_f64();
                    self.metrics.backup_succeeded(unix_now(), seconds, outcome.manifest.snapshot.size);
                    info!(id = %outcome.manifest.id, bytes = outcome.manifest.snapshot.size, elapsed_ms = (seconds * 1000.0) as u64, "scheduled backup finished");
                    if self.shutdown.is_cancelled() {
                        return;
                    }
                    self.prune(&repo).await;
                    if self.config.drill.enabled && !self.shutdown.is_cancelled() {
                        self.drill(&repo, &outcome.manifest.id).await;
                    }
                }
                Ended::Finished(Err(failure)) => {
                    let reason = failure_reason(&failure);
                    self.metrics.backup_failed(reason, started.elapsed().as_secs_f64());
                    if let BackupError::NoHealthyMember { health } = &failure {
                        for endpoint in health {
                            error!(endpoint = %endpoint.endpoint, error = endpoint.error.as_deref().unwrap_or("unhealthy"), "etcd endpoint unhealthy");
                        }
                    }
                    error!(reason, error = %chain_text(&failure), "scheduled backup failed");
                }
                Ended::Abandoned => {
                    self.metrics.backup_failed("interrupted", started.elapsed().as_secs_f64());
                    warn!(grace_seconds = self.config.shutdown_grace_seconds, "backup abandoned at shutdown; removing what it wrote");
                    self.remove_new_leftovers(&repo, &leftovers_before).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Runs the backup; after SIGTERM it may finish within the grace period, else it is dropped.
    /// A dropped backup never wrote its manifest, so it is not listed as complete.
    async fn backup(&self) -> Ended {
        let backup = run_backup(&self.request, &NoProgress);
        tokio::pin!(backup);
        tokio::select! {
            result = &mut backup => Ended::Finished(result),
            () = self.shutdown.cancelled() => {
                info!(grace_seconds = self.config.shutdown_grace_seconds, "shutdown requested during a backup; waiting for it to finish");
                match tokio::time::timeout(self.config.grace(), &mut backup).await {
                    Ok(result) => Ended::Finished(result),
                    Err(_) => Ended::Abandoned,
                }
            }
        }
    }

    /// Returns the IDs of entries that are not complete backups.
    async fn leftover_ids(&self, repo: &Repository) -> HashSet<String> {
        match repo.list().await {
            Ok(entries) => entries.into_iter().filter(|e| e.state != "complete").map(|e| e.id).collect(),
            Err(failure) => {
                warn!(error = %chain_text(&failure), "failed to list the repository before the backup");
                HashSet::new()
            }
        }
    }

    /// Removes the unfinished entries that appeared since `before`: the abandoned backup's.
    async fn remove_new_leftovers(&self, repo: &Repository, before: &HashSet<String>) {
        // NOTE: the dropped writer thread aborts its upload or part file on its own. The 200 ms wait
        // for it is a guess, and a file it creates later stays until `etcd backups prune` removes it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let entries = match repo.list().await {
            Ok(entries) => entries,
            Err(failure) => {
                warn!(error = %chain_text(&failure), "failed to list the repository; etcd backups prune removes the leftover later");
                return;
            }
        };
        for entry in entries.iter().filter(|e| e.state != "complete" && !before.contains(&e.id)) {
            match repo.remove(entry).await {
                Ok(()) => info!(id = %entry.id, "removed the abandoned backup"),
                Err(failure) => warn!(id = %entry.id, error = %chain_text(&failure), "failed to remove the abandoned backup; etcd backups prune removes it later"),
            }
        }
    }

    /// Applies the keep rules, when any is set.
    async fn prune(&self, repo: &Repository) {
        let policy = self.config.retention.policy();
        if policy.is_empty() {
            return;
        }
        let entries = match repo.list().await {
            Ok(entries) => entries,
            Err(failure) => {
                error!(error = %chain_text(&failure), "failed to list the repository for prune");
                self.metrics.pruned(0, 1);
                return;
            }
        };
        let (candidates, leftovers) = classify(&entries, SystemTime::now());
        let plan = retention::plan(&candidates, &leftovers, policy, PruneOptions { include_failed: self.config.retention.include_failed });
        let (mut removed, mut failed) = (0u64, 0u64);
        for item in plan.iter().filter(|i| !i.keep) {
            let Some(entry) = entries.iter().find(|e| e.id == item.id && (item.kind == "backup") == (e.state == "complete")) else { continue };
            match repo.remove(entry).await {
                Ok(()) => {
                    info!(id = %item.id, kind = item.kind, "removed by the keep rules");
                    removed += 1;
                }
                Err(failure) => {
                    warn!(id = %item.id, error = %chain_text(&failure), "removal by the keep rules failed");
                    failed += 1;
                }
            }
        }
        self.metrics.pruned(removed, failed);
        info!(removed, failed, kept = plan.len() as u64 - removed - failed, "prune finished");
    }

    /// Restores the backup `id` into a scratch etcd; stops (and stops the scratch etcd) at SIGTERM.
    async fn drill(&self, repo: &Repository, id: &str) {
        let started = Instant::now();
        let entry = match repo.get(id).await {
            Ok(entry) => entry,
            Err(failure) => {
                error!(id, error = %chain_text(&failure), "failed to find the new backup for the drill");
                self.metrics.drill(None, unix_now(), started.elapsed().as_secs_f64());
                return;
            }
        };
        let options = DrillOptions {
            etcd: self.config.drill.etcd.clone(),
            engine: self.config.drill.etcdutl.clone(),
            scratch: self.scratch.clone(),
            timeout: Duration::from_secs(self.config.drill.timeout_seconds),
            identities: self.identities.clone(),
        };
        let result = tokio::select! {
            result = run_drill(repo, &entry, &options) => result,
            () = self.shutdown.cancelled() => {
                info!(id, "drill abandoned at shutdown");
                return;
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(report) => {
                self.metrics.drill(Some(report.ok), unix_now(), seconds);
                info!(
                    id,
                    ok = report.ok,
                    revision = report.revision,
                    snapshot_keys = report.snapshot_keys,
                    restored_keys = report.restored_keys,
                    snapshot_hash = report.snapshot_hash,
                    restored_hash = report.restored_hash,
                    dir = %report.dir.display(),
                    "drill result"
                );
            }
            Err(failure) => {
                self.metrics.drill(None, unix_now(), seconds);
                error!(id, reason = failure.reason(), error = %chain_text(&failure), "drill failed");
            }
        }
    }
}
