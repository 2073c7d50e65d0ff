//! Retention: which backups `etcd backups prune` keeps and which it removes, and why.
//!
//! The keep rules mean what restic's `forget` means by them. Backups are ordered newest first and
//! their start times are put into buckets in local time: one bucket per backup for `last`, per
//! hour, per day, per ISO week, per month and per year for the others. Each rule keeps the newest
//! backup of each bucket until it has kept its count of buckets. A rule that still has count left
//! at the oldest backup keeps that one too, so that the history reaches as far back as the rule
//! allows. A backup is kept when any rule keeps it.
//!
//! caasctl adds three rules of its own: the newest backup that has not failed verification is
//! always kept; a backup whose last verification failed takes no bucket and is removed only when
//! asked (`--include-failed`); leftovers of interrupted runs are removed once they are older than
//! [`LEFTOVER_AGE`], when no backup can still be writing them.

use std::time::Duration;

use caasctl_core::Message;
use time::OffsetDateTime;

/// Minimum age of a `.incomplete-*` leftover before prune removes it.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// The keep rules; zero turns a rule off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// Keep the newest N backups.
    pub last: u32,
    /// Keep the newest backup of each of the last N hours that have one.
    pub hourly: u32,
    /// Keep the newest backup of each of the last N days that have one.
    pub daily: u32,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    pub weekly: u32,
    /// Keep the newest backup of each of the last N months that have one.
    pub monthly: u32,
    /// Keep the newest backup of each of the last N years that have one.
    pub yearly: u32,
}

impl Policy {
    /// Returns true when no rule is on; such a policy keeps every backup, as restic does.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// A complete backup, as input to retention.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Backup ID.
    pub id: String,
    /// Start time of the backup, already in the local time zone.
    pub time: OffsetDateTime,
    /// True when the last recorded verification of the backup failed.
    pub failed: bool,
}

/// What a leftover directory or object group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftoverKind {
    /// A backup that was never finished.
    Incomplete,
    /// A backup whose removal was interrupted.
    Deleting,
    /// A backup whose manifest cannot be read.
    Unreadable,
}

/// A leftover of an interrupted run.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// Name in the repository (the ID for unreadable backups).
    pub name: String,
    /// What it is.
    pub kind: LeftoverKind,
    /// Time since it was last written.
    pub age: Duration,
}

/// Why an item is kept or removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A keep rule matched; `rule` is `last`, `hourly`, ... and `oldest` marks that it kept the oldest
    /// backup because count was left.
    Rule {
        /// The rule.
        rule: &'static str,
        /// True for the oldest-backup case.
        oldest: bool,
    },
    /// The policy has no rule, so everything is kept.
    NoPolicy,
    /// The newest backup that has not failed verification.
    NewestVerified,
    /// No rule matched.
    NotMatched,
    /// Failed verification, kept because `--include-failed` was not given.
    FailedKept,
    /// Failed verification, removed.
    FailedRemoved,
    /// Unfinished and older than [`LEFTOVER_AGE`].
    IncompleteOld,
    /// Unfinished and recent, so possibly still being written.
    IncompleteRecent,
    /// Left by an interrupted removal.
    Deleting,
    /// Manifest unreadable; left for a person to look at.
    Unreadable,
}

impl Reason {
    /// Returns the message that explains the reason.
    pub fn message(&self) -> Message {
        match self {
            Reason::Rule { rule, oldest: false } => Message::new("prune.reason.rule").arg("rule", rule),
            Reason::Rule { rule, oldest: true } => Message::new("prune.reason.rule_oldest").arg("rule", rule),
            Reason::NoPolicy => Message::new("prune.reason.no_policy"),
            Reason::NewestVerified => Message::new("prune.reason.newest_verified"),
            Reason::NotMatched => Message::new("prune.reason.not_matched"),
            Reason::FailedKept => Message::new("prune.reason.failed_kept"),
            Reason::FailedRemoved => Message::new("prune.reason.failed_removed"),
            Reason::IncompleteOld => Message::new("prune.reason.incomplete_old"),
            Reason::IncompleteRecent => Message::new("prune.reason.incomplete_recent"),
            Reason::Deleting => Message::new("prune.reason.deleting"),
            Reason::Unreadable => Message::new("prune.reason.unreadable"),
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanItem {
    /// Backup ID or leftover name.
    pub id: String,
    /// `backup`, or the kind of leftover.
    pub kind: &'static str,
    /// True when the item stays.
    pub keep: bool,
    /// Every reason that applies, for kept items the rules that matched.
    pub reasons: Vec<Reason>,
}

/// What prune may touch besides the policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Remove backups whose last verification failed.
    pub include_failed: bool,
}

type Bucket = fn(OffsetDateTime, usize) -> i64;

fn bucket_last(_: OffsetDateTime, index: usize) -> i64 {
    index as i64
}
fn bucket_hour(t: OffsetDateTime, _: usize) -> i64 {
    bucket_day(t, 0) * 100 + i64::from(t.hour())
}
fn bucket_day(t: OffsetDateTime, _: usize) -> i64 {
    bucket_month(t, 0) * 100 + i64::from(t.day())
}
fn bucket_week(t: OffsetDateTime, _: usize) -> i64 {
    let (year, week, _) = t.to_iso_week_date();
    i64::from(year) * 100 + i64::from(week)
}
fn bucket_month(t: OffsetDateTime, _: usize) -> i64 {
    i64::from(t.year()) * 100 + i64::from(u8::from(t.month()))
}
fn bucket_year(t: OffsetDateTime, _: usize) -> i64 {
    i64::from(t.year())
}

/// Builds the plan: every candidate and leftover once, newest backups first, leftovers last.
pub fn plan(candidates: &[Candidate], leftovers: &[Leftover], policy: Policy, options: PruneOptions) -> Vec<PlanItem> {
    let mut healthy: Vec<&Candidate> = candidates.iter().filter(|c| !c.failed).collect();
    healthy.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); healthy.len()];

    let rules: [(&'static str, u32, Bucket); 6] = [
        ("last", policy.last, bucket_last),
        ("hourly", policy.hourly, bucket_hour),
        ("daily", policy.daily, bucket_day),
        ("weekly", policy.weekly, bucket_week),
        ("monthly", policy.monthly, bucket_month),
        ("yearly", policy.yearly, bucket_year),
    ];
    for (rule, count, bucket) in rules {
        let mut left = count;
        let mut previous: Option<i64> = None;
        for (index, candidate) in healthy.iter().enumerate() {
            if left == 0 {
                break;
            }
            let value = bucket(candidate.time, index);
            let oldest = index + 1 == healthy.len();
            if previous != Some(value) || oldest {
                reasons[index].push(Reason::Rule { rule, oldest: previous == Some(value) });
                previous = Some(value);
                left -= 1;
            }
        }
    }
    if policy.is_empty() {
        for list in &mut reasons {
            list.push(Reason::NoPolicy);
        }
    }
    if let Some(first) = reasons.first_mut() {
        first.push(Reason::NewestVerified);
    }

    let mut items: Vec<PlanItem> = Vec::new();
    for (candidate, mut why) in healthy.iter().zip(reasons) {
        let keep = !why.is_empty();
        if !keep {
            why.push(Reason::NotMatched);
        }
        items.push(PlanItem { id: candidate.id.clone(), kind: "backup", keep, reasons: why });
    }
    let mut failed: Vec<&Candidate> = candidates.iter().filter(|c| c.failed).collect();
    failed.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    for candidate in failed {
        let (keep, reason) = if options.include_failed { (false, Reason::FailedRemoved) } else { (true, Reason::FailedKept) };
        items.push(PlanItem { id: candidate.id.clone(), kind: "backup", keep, reasons: vec![reason] });
    }
    for leftover in leftovers {
        let (kind, keep, reason) = match leftover.kind {
            LeftoverKind::Incomplete if leftover.age >= LEFTOVER_AGE => ("incomplete", false, Reason::IncompleteOld),
            LeftoverKind::Incomplete => ("incomplete", true, Reason::IncompleteRecent),
            LeftoverKind::Deleting => ("deleting", false, Reason::Deleting),
            LeftoverKind::Unreadable => ("unreadable", true, Reason::Unreadable),
        };
        items.push(PlanItem { id: leftover.name.clone(), kind, keep, reasons: vec![reason] });
    }
    items
}

/// Converts `t` to the local time zone of this host, as the C library sees it (`TZ`, then
/// `/etc/localtime`).
///
/// # Caveats
/// Falls back to UTC when the C library cannot tell the offset.
pub fn local_time(t: OffsetDateTime) -> OffsetDateTime {
    let seconds = t.unix_timestamp() as libc::time_t;
    // SAFETY: `tm` is a plain C struct that localtime_r fills; both pointers are valid for the call.
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i32
        }
    };
    match time::UtcOffset::from_whole_seconds(offset) {
        Ok(offset) => t.to_offset(offset),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests;
