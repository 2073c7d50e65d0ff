//! The service's state as Prometheus metrics, rendered in the text exposition format (version
//! 0.0.4): gauges for the last backup and drill, counters for runs and for failures by reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_success_unix: Option<f64>,
    last_duration_seconds: Option<f64>,
    last_size_bytes: Option<u64>,
    next_run_unix: Option<f64>,
    in_progress: bool,
    successes: u64,
    failures: BTreeMap<&'static str, u64>,
    pruned: u64,
    prune_failures: u64,
    drill_result: Option<bool>,
    drill_unix: Option<f64>,
    drill_duration_seconds: Option<f64>,
    drills: BTreeMap<&'static str, u64>,
}

/// Failure reasons that always appear, so that alert rules see a zero before the first failure.
pub const FAILURE_REASONS: [&str; 6] = ["etcd", "no_healthy_member", "repository", "encryption", "config", "interrupted"];

impl Metrics {
    fn with<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state)
    }

    /// Records the start of a backup.
    pub fn backup_started(&self) {
        self.with(|s| s.in_progress = true);
    }

    /// Records a successful backup of `size` bytes.
    pub fn backup_succeeded(&self, finished_unix: f64, duration_seconds: f64, size: u64) {
        self.with(|s| {
            s.in_progress = false;
            s.successes += 1;
            s.last_success_unix = Some(finished_unix);
            s.last_duration_seconds = Some(duration_seconds);
            s.last_size_bytes = Some(size);
        });
    }

    /// Sets the last success from a backup found in the repository at start, unless a backup of
    /// this process already succeeded.
    pub fn seed_last_success(&self, finished_unix: f64) {
        self.with(|s| {
            if s.last_success_unix.is_none() {
                s.last_success_unix = Some(finished_unix);
            }
        });
    }

    /// Records a failed backup.
    pub fn backup_failed(&self, reason: &'static str, duration_seconds: f64) {
        self.with(|s| {
            s.in_progress = false;
            *s.failures.entry(reason).or_default() += 1;
            s.last_duration_seconds = Some(duration_seconds);
        });
    }

    /// Records the time of the next scheduled run.
    pub fn next_run(&self, unix: f64) {
        self.with(|s| s.next_run_unix = Some(unix));
    }

    /// Records a prune run: backups removed and removals that failed.
    pub fn pruned(&self, removed: u64, failed: u64) {
        self.with(|s| {
            s.pruned += removed;
            s.prune_failures += failed;
        });
    }

    /// Records a drill: `Some(true)` passed, `Some(false)` differed, `None` could not run.
    pub fn drill(&self, result: Option<bool>, finished_unix: f64, duration_seconds: f64) {
        self.with(|s| {
            s.drill_result = Some(result == Some(true));
            s.drill_unix = Some(finished_unix);
            s.drill_duration_seconds = Some(duration_seconds);
            let label = match result {
                Some(true) => "success",
                Some(false) => "mismatch",
                None => "error",
            };
            *s.drills.entry(label).or_default() += 1;
        });
    }

    /// Renders the metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            gauge(&mut out, "caasctl_backup_last_success_timestamp_seconds", "Unix time when the last successful backup finished.", s.last_success_unix);
            gauge(&mut out, "caasctl_backup_last_duration_seconds", "Wall time of the last backup, successful or not, in seconds.", s.last_duration_seconds);
            gauge(&mut out, "caasctl_backup_last_size_bytes", "Snapshot size of the last successful backup in bytes.", s.last_size_bytes.map(|b| b as f64));
            gauge(&mut out, "caasctl_backup_next_run_timestamp_seconds", "Unix time of the next scheduled backup.", s.next_run_unix);
            gauge(&mut out, "caasctl_backup_in_progress", "1 while a backup runs, else 0.", Some(if s.in_progress { 1.0 } else { 0.0 }));
            header(&mut out, "caasctl_backup_success_total", "Backups that finished and were listed as complete.", "counter");
            let _ = writeln!(out, "caasctl_backup_success_total {}", s.successes);
            header(&mut out, "caasctl_backup_failures_total", "Backups that failed, by reason.", "counter");
            let mut reasons: Vec<&'static str> = FAILURE_REASONS.to_vec();
            reasons.extend(s.failures.keys().filter(|r| !FAILURE_REASONS.contains(r)));
            for reason in reasons {
                let _ = writeln!(out, "caasctl_backup_failures_total{{reason=\"{reason}\"}} {}", s.failures.get(reason).copied().unwrap_or(0));
            }
            header(&mut out, "caasctl_prune_removed_total", "Backups and leftovers removed by the keep rules.", "counter");
            let _ = writeln!(out, "caasctl_prune_removed_total {}", s.pruned);
            header(&mut out, "caasctl_prune_failures_total", "Removals by the keep rules that failed.", "counter");
            let _ = writeln!(out, "caasctl_prune_failures_total {}", s.prune_failures);
            gauge(&mut out, "caasctl_drill_last_success", "1 when the last restore drill matched the snapshot, 0 when it differed or failed.", s.drill_result.map(|ok| if ok { 1.0 } else { 0.0 }));
            gauge(&mut out, "caasctl_drill_last_timestamp_seconds", "Unix time when the last restore drill finished.", s.drill_unix);
            gauge(&mut out, "caasctl_drill_last_duration_seconds", "Wall time of the last restore drill in seconds.", s.drill_duration_seconds);
            header(&mut out, "caasctl_drill_total", "Restore drills by result: success, mismatch or error.", "counter");
            for result in ["success", "mismatch", "error"] {
                let _ = writeln!(out, "caasctl_drill_total{{result=\"{result}\"}} {}", s.drills.get(result).copied().unwrap_or(0));
            }
            out
        })
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a gauge; one with no value yet is described but has no sample.
fn gauge(out: &mut String, name: &str, help: &str, value: Option<f64>) {
    header(out, name, help, "gauge");
    if let Some(value) = value {
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_reasons_and_values() {
        let metrics = Metrics::default();
        let before = metrics.render();
        assert!(before.contains("caasctl_backup_failures_total{reason=\"etcd\"} 0"), "{before}");
        assert!(!before.contains("\ncaasctl_backup_last_success_timestamp_seconds "), "no sample before the first success: {before}");

        metrics.backup_started();
        metrics.backup_succeeded(1_700_000_000.0, 2.5, 4096);
        metrics.backup_failed("repository", 1.0);
        metrics.drill(Some(true), 1_700_000_010.0, 3.0);
        let after = metrics.render();
        assert!(after.contains("caasctl_backup_last_success_timestamp_seconds 1700000000\n"), "{after}");
        assert!(after.contains("caasctl_backup_last_size_bytes 4096\n"), "{after}");
        assert!(after.contains("caasctl_backup_failures_total{reason=\"repository\"} 1\n"), "{after}");
        assert!(after.contains("caasctl_drill_last_success 1\n"), "{after}");
        assert!(after.contains("caasctl_drill_total{result=\"success\"} 1\n"), "{after}");
        assert!(after.contains("caasctl_backup_in_progress 0\n"), "{after}");
    }
}
