//! The prune table: each case is a set of backups, a policy and the IDs that must stay and go.

use super::*;
use time::format_description::well_known::Rfc3339;

struct Case {
    name: &'static str,
    /// (ID, local start time with its offset, failed verification)
    backups: &'static [(&'static str, &'static str, bool)],
    leftovers: &'static [(&'static str, LeftoverKind, u64)],
    policy: Policy,
    include_failed: bool,
    keep: &'static [&'static str],
    remove: &'static [&'static str],
}

const fn policy(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32) -> Policy {
    Policy { last, hourly, daily, weekly, monthly, yearly: 0 }
}

const THREE_DAYS: &[(&str, &str, bool)] = &[
    ("d3b", "2026-11-05T18:00:00+08:00", false),
    ("d3a", "2026-11-05T06:00:00+08:00", false),
    ("d2b", "2026-11-04T18:00:00+08:00", false),
    ("d2a", "2026-11-04T06:00:00+08:00", false),
    ("d1b", "2026-11-03T18:00:00+08:00", false),
    ("d1a", "2026-11-03T06:00:00+08:00", false),
];

const CASES: &[Case] = &[
    Case { name: "last keeps the newest n", backups: THREE_DAYS, leftovers: &[], policy: policy(3, 0, 0, 0, 0), include_failed: false,
        keep: &["d3b", "d3a", "d2b"], remove: &["d2a", "d1b", "d1a"] },
    Case { name: "daily keeps the newest of each day until the count is used", backups: THREE_DAYS, leftovers: &[], policy: policy(0, 0, 2, 0, 0), include_failed: false,
        keep: &["d3b", "d2b"], remove: &["d3a", "d2a", "d1b", "d1a"] },
    Case { name: "daily with count left also keeps the oldest backup", backups: THREE_DAYS, leftovers: &[], policy: policy(0, 0, 5, 0, 0), include_failed: false,
        keep: &["d3b", "d2b", "d1b", "d1a"], remove: &["d3a", "d2a"] },
    Case { name: "rules combine as a union", backups: THREE_DAYS, leftovers: &[], policy: policy(2, 0, 3, 0, 0), include_failed: false,
        keep: &["d3b", "d3a", "d2b", "d1b"], remove: &["d2a", "d1a"] },
    Case { name: "hourly buckets by the hour", backups: &[
            ("h3", "2026-11-05T10:50:00+08:00", false),
            ("h2", "2026-11-05T10:10:00+08:00", false),
            ("h1", "2026-11-05T09:59:00+08:00", false),
            ("h0", "2026-11-05T08:30:00+08:00", false),
        ], leftovers: &[], policy: policy(0, 2, 0, 0, 0), include_failed: false,
        keep: &["h3", "h1"], remove: &["h2", "h0"] },
    Case { name: "days follow local time, not UTC", backups: &[
            // 17:00Z and 15:00Z fall on one UTC day but on two days at +08:00.
            ("late", "2026-11-06T01:00:00+08:00", false),
            ("early", "2026-11-05T23:00:00+08:00", false),
            ("before", "2026-11-05T20:00:00+08:00", false),
        ], leftovers: &[], policy: policy(0, 0, 2, 0, 0), include_failed: false,
        keep: &["late", "early"], remove: &["before"] },
    Case { name: "weeks are ISO weeks starting on Monday", backups: &[
            ("mon", "2026-11-30T12:00:00+00:00", false),
            ("sun", "2026-11-29T12:00:00+00:00", false),
            ("sat", "2026-11-28T12:00:00+00:00", false),
            ("prev", "2026-11-20T12:00:00+00:00", false),
        ], leftovers: &[], policy: policy(0, 0, 0, 2, 0), include_failed: false,
        keep: &["mon", "sun"], remove: &["sat", "prev"] },
    Case { name: "monthly keeps the newest of each month", backups: &[
            ("dec", "2026-12-01T00:10:00+00:00", false),
            ("nov2", "2026-11-30T23:50:00+00:00", false),
            ("nov1", "2026-11-02T00:00:00+00:00", false),
            ("oct", "2026-10-15T00:00:00+00:00", false),
            ("sep", "2026-09-15T00:00:00+00:00", false),
        ], leftovers: &[], policy: policy(0, 0, 0, 0, 3), include_failed: false,
        keep: &["dec", "nov2", "oct"], remove: &["nov1", "sep"] },
    Case { name: "no rule keeps everything", backups: THREE_DAYS, leftovers: &[], policy: policy(0, 0, 0, 0, 0), include_failed: false,
        keep: &["d3b", "d3a", "d2b", "d2a", "d1b", "d1a"], remove: &[] },
    Case { name: "a failed backup takes no bucket and stays without --include-failed", backups: &[
            ("bad", "2026-11-05T18:00:00+08:00", true),
            ("good2", "2026-11-04T18:00:00+08:00", false),
            ("good1", "2026-11-03T18:00:00+08:00", false),
        ], leftovers: &[], policy: policy(0, 0, 1, 0, 0), include_failed: false,
        keep: &["bad", "good2"], remove: &["good1"] },
    Case { name: "a failed backup goes with --include-failed, the newest verified stays", backups: &[
            ("bad", "2026-11-05T18:00:00+08:00", true),
            ("good2", "2026-11-04T18:00:00+08:00", false),
            ("good1", "2026-11-03T18:00:00+08:00", false),
        ], leftovers: &[], policy: policy(1, 0, 0, 0, 0), include_failed: true,
        keep: &["good2"], remove: &["bad", "good1"] },
    Case { name: "leftovers: old incomplete and deleting go, recent incomplete and unreadable stay", backups: &[
            ("only", "2026-11-05T18:00:00+08:00", false),
        ], leftovers: &[
            ("old", LeftoverKind::Incomplete, 7200),
            ("fresh", LeftoverKind::Incomplete, 600),
            ("gone", LeftoverKind::Deleting, 5),
            ("broken", LeftoverKind::Unreadable, 7200),
        ], policy: policy(1, 0, 0, 0, 0), include_failed: true,
        keep: &["only", "fresh", "broken"], remove: &["old", "gone"] },
];

#[test]
fn prune_table() {
    for case in CASES {
        let candidates: Vec<Candidate> = case
            .backups
            .iter()
            .map(|(id, t, failed)| Candidate { id: (*id).to_owned(), time: OffsetDateTime::parse(t, &Rfc3339).unwrap(), failed: *failed })
            .collect();
        let leftovers: Vec<Leftover> = case
            .leftovers
            .iter()
            .map(|(name, kind, age)| Leftover { name: (*name).to_owned(), kind: *kind, age: Duration::from_secs(*age) })
            .collect();
        let items = plan(&candidates, &leftovers, case.policy, PruneOptions { include_failed: case.include_failed });
        assert_eq!(items.len(), candidates.len() + leftovers.len(), "{}: every item appears once", case.name);
        let mut kept: Vec<&str> = items.iter().filter(|i| i.keep).map(|i| i.id.as_str()).collect();
        let mut removed: Vec<&str> = items.iter().filter(|i| !i.keep).map(|i| i.id.as_str()).collect();
        let (mut want_keep, mut want_remove) = (case.keep.to_vec(), case.remove.to_vec());
        for list in [&mut kept, &mut removed, &mut want_keep, &mut want_remove] {
            list.sort();
        }
        assert_eq!(kept, want_keep, "{}: kept", case.name);
        assert_eq!(removed, want_remove, "{}: removed", case.name);
        assert!(items.iter().all(|i| !i.reasons.is_empty()), "{}: every item has a reason", case.name);
    }
}

#[test]
fn reasons_name_the_rules() {
    let candidates: Vec<Candidate> = THREE_DAYS
        .iter()
        .map(|(id, t, _)| Candidate { id: (*id).to_owned(), time: OffsetDateTime::parse(t, &Rfc3339).unwrap(), failed: false })
        .collect();
    let items = plan(&candidates, &[], policy(1, 0, 5, 0, 0), PruneOptions::default());
    assert_eq!(items[0].reasons, vec![Reason::Rule { rule: "last", oldest: false }, Reason::Rule { rule: "daily", oldest: false }, Reason::NewestVerified]);
    let oldest = items.iter().find(|i| i.id == "d1a").unwrap();
    assert_eq!(oldest.reasons, vec![Reason::Rule { rule: "daily", oldest: true }]);
    let dropped = items.iter().find(|i| i.id == "d3a").unwrap();
    assert_eq!(dropped.reasons, vec![Reason::NotMatched]);
}

#[test]
fn local_time_keeps_the_instant() {
    let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    assert_eq!(local_time(t).unix_timestamp(), t.unix_timestamp());
}
