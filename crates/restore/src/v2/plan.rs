//! The v2 restore plan. The backed-up data dir goes into the first member, which starts once with
//! `--force-new-cluster` and restarts in cluster mode. Its `localhost` peer URL is corrected, and
//! then every other member is added and started one at a time with an empty data dir.
//!
//! Unlike the v3 restore, members come up in order, so the steps after the data is in place are
//! cluster-wide steps (no member), which [`crate::apply::apply`] runs one after the other.

use tracing::info;

use crate::error::RestoreError;
use crate::plan::{parent_dir, Action, ClientTls, Host, MemberTarget, Phase, Plan, PlannedMember, SnapshotSource, Step};

use super::V2Action;

/// `kind` of a v2 restore plan.
pub const V2_RESTORE_KIND: &str = "etcd-v2-restore";

/// Data facts from the backup manifest.
#[derive(Debug, Clone, Default)]
pub struct V2Source {
    /// `consistent_index` of the backed-up `member/snap/db`.
    pub consistent_index: Option<u64>,
    /// v2 keys counted at backup time.
    pub v2_keys: Option<u64>,
}

/// Builds a v2 restore plan for `members`, the first of which receives the data. It only reads:
/// it looks up the first host's `etcd` user and whether SELinux is enabled.
///
/// # Errors
/// [`RestoreError::CheckFailed`] when a member has no service or client URL; a host cannot be
/// reached.
pub fn build(id: String, archive: SnapshotSource, source: V2Source, tls: ClientTls, members: &[MemberTarget]) -> Result<Plan, RestoreError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = caasctl_core::timefmt::compact(now);
    let archive_path = archive.path.display().to_string();
    let invalid = |reason: String| RestoreError::CheckFailed { check: "plan".to_owned(), reason };
    let Some(first) = members.first() else { return Err(invalid("the cluster file lists no members".to_owned())) };
    for member in members {
        if member.service.is_none() || member.client_url.is_none() {
            return Err(invalid(format!("member {} needs a service and a client URL, because the v2 restore starts every member", member.name)));
        }
    }
    let service = |m: &MemberTarget| m.service.clone().expect("checked above");
    let client = |m: &MemberTarget| m.client_url.clone().expect("checked above");

    let mut steps = Vec::new();
    let mut push = |id: String, phase: Phase, member: Option<&MemberTarget>, host: &Host, action: Action| {
        steps.push(Step { id, phase, member: member.map(|m| m.name.clone()), host: host.clone(), action });
    };
    let v2 = |action: V2Action| Action::V2 { v2: action };

    push("backup.verify".to_owned(), Phase::Check, None, &Host::Local, v2(V2Action::VerifyArchive { path: archive_path.clone(), sha256: archive.sha256.clone() }));

    // The first member: the archive copied over, unpacked beside the data dir and swapped in.
    let executor = first.host.executor();
    let owner = match &first.owner {
        Some(owner) => owner.clone(),
        None if executor.user_exists("etcd")? => "etcd:etcd".to_owned(),
        None => String::new(),
    };
    let selinux = executor.selinux_enabled()?;
    info!(member = %first.name, host = %executor.host(), owner = %owner, selinux, "first member planned");
    let on_host = match first.host {
        Host::Local => archive_path.clone(),
        Host::Ssh(_) | Host::Pod(_) => format!("{}/.{id}-v2-backup.tar.gz", parent_dir(&first.data_dir)),
    };
    let uploaded = on_host != archive_path;
    if uploaded {
        let action = Action::Upload { local: archive_path.clone(), remote: on_host.clone(), sha256: archive.sha256.clone() };
        push(format!("{}.upload", first.name), Phase::Prepare, Some(first), &first.host, action);
    }
    for member in members {
        let action = Action::Stop { service: service(member), client_url: Some(client(member)) };
        push(format!("{}.stop", member.name), Phase::Stop, Some(member), &member.host, action);
    }
    let temp_dir = format!("{}.caasctl-restore-{stamp}", first.data_dir);
    let data_dir = first.data_dir.clone();
    push(format!("{}.unpack", first.name), Phase::Restore, Some(first), &first.host, v2(V2Action::Unpack { archive: on_host.clone(), temp_dir: temp_dir.clone() }));
    for member in members {
        let aside = format!("{}.caasctl-{stamp}", member.data_dir);
        push(format!("{}.move-aside", member.name), Phase::Restore, Some(member), &member.host, Action::MoveAside { data_dir: member.data_dir.clone(), aside });
    }
    push(format!("{}.install", first.name), Phase::Restore, Some(first), &first.host, Action::Install { temp_dir, data_dir: data_dir.clone() });
    if !owner.is_empty() {
        push(format!("{}.chown", first.name), Phase::Restore, Some(first), &first.host, Action::Chown { data_dir: data_dir.clone(), owner });
    }
    if selinux {
        push(format!("{}.restorecon", first.name), Phase::Restore, Some(first), &first.host, Action::Restorecon { data_dir: data_dir.clone() });
    }
    if uploaded {
        push(format!("{}.remove-upload", first.name), Phase::Restore, Some(first), &first.host, Action::RemoveUpload { path: on_host });
    }

    // The first member alone: --force-new-cluster, then cluster mode and the peer URL fixed.
    let first_client = client(first);
    let start = |suffix: &str, member: &MemberTarget, action: V2Action, steps: &mut Vec<Step>| {
        steps.push(Step { id: format!("{}.{suffix}", member.name), phase: Phase::Start, member: None, host: member.host.clone(), action: Action::V2 { v2: action } });
    };
    let check = |suffix: &str, member: &MemberTarget, action: V2Action, steps: &mut Vec<Step>| {
        steps.push(Step { id: format!("{}.{suffix}", member.name), phase: Phase::Start, member: None, host: Host::Local, action: Action::V2 { v2: action } });
    };
    let healthy = |m: &MemberTarget| V2Action::WaitHealthy { endpoints: vec![client(m)] };
    start("force-new-cluster", first, V2Action::StartWithFlags { service: service(first), flags: vec!["--force-new-cluster".to_owned()] }, &mut steps);
    check("healthy", first, healthy(first), &mut steps);
    start("restart", first, V2Action::RestartPlain { service: service(first), client_url: first_client.clone() }, &mut steps);
    check("healthy-again", first, healthy(first), &mut steps);
    let fix = V2Action::FixPeerUrl { endpoint: first_client.clone(), name: first.name.clone(), peer_url: first.peer_url.clone() };
    check("peer-url", first, fix, &mut steps);
    if let Some(consistent_index) = source.consistent_index {
        check("advance-index", first, V2Action::AdvanceIndex { endpoint: first_client.clone(), consistent_index }, &mut steps);
    }

    // The other members, one at a time.
    for (index, member) in members.iter().enumerate().skip(1) {
        let running: Vec<String> = members[..index].iter().map(client).collect();
        let initial_cluster = members[..=index].iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let add = V2Action::MemberAdd { endpoints: running, name: member.name.clone(), peer_url: member.peer_url.clone() };
        check("member-add", member, add, &mut steps);
        let flags = vec!["--initial-cluster-state=existing".to_owned(), format!("--initial-cluster={initial_cluster}")];
        start("start-join", member, V2Action::StartWithFlags { service: service(member), flags }, &mut steps);
        check("healthy", member, healthy(member), &mut steps);
        start("restart", member, V2Action::RestartPlain { service: service(member), client_url: client(member) }, &mut steps);
        check("healthy-again", member, healthy(member), &mut steps);
    }

    let endpoints: Vec<String> = members.iter().map(client).collect();
    let planned: Vec<PlannedMember> = members.iter().map(|m| PlannedMember { name: m.name.clone(), peer_url: m.peer_url.clone(), client_url: client(m) }).collect();
    let cluster_step = |id: &str, action: Action| Step { id: id.to_owned(), phase: Phase::Verify, member: None, host: Host::Local, action };
    steps.push(cluster_step("cluster.healthy", v2(V2Action::WaitHealthy { endpoints: endpoints.clone() })));
    steps.push(cluster_step("cluster.members", Action::CheckMembers { members: planned }));
    steps.push(cluster_step("cluster.v2-keys", v2(V2Action::CheckV2Keys { endpoints: endpoints.clone(), expected: source.v2_keys })));
    steps.push(cluster_step("cluster.data", Action::CheckData { endpoints, min_revision: archive.revision, key_count: archive.key_count }));

    Ok(Plan { id, kind: V2_RESTORE_KIND.to_owned(), created_at: caasctl_core::timefmt::rfc3339(now), snapshot: archive, tls, steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Service;

    fn member(name: &str) -> MemberTarget {
        MemberTarget {
            name: name.to_owned(),
            host: Host::Local,
            data_dir: format!("/var/lib/etcd-{name}"),
            engine: None,
            owner: Some(String::new()),
            initial_cluster: String::new(),
            token: "t".to_owned(),
            restore_peer_url: format!("https://{name}:2380"),
            peer_url: format!("https://{name}:2380"),
            service: Some(Service::Systemd { unit: "etcd".to_owned() }),
            client_url: Some(format!("https://{name}:2379")),
        }
    }

    fn source() -> SnapshotSource {
        SnapshotSource {
            path: "/backup/v2-backup.tar.gz".into(),
            backup_id: Some("b1".to_owned()),
            manifest_sha256: Some("aa".to_owned()),
            sha256: "aa".to_owned(),
            revision: Some(10),
            key_count: Some(5),
            skip_hash_check: false,
        }
    }

    #[test]
    fn members_join_one_at_a_time() {
        let members = [member("a"), member("b"), member("c")];
        let v2 = V2Source { consistent_index: Some(42), v2_keys: Some(3) };
        let plan = build("op1".to_owned(), source(), v2, ClientTls::default(), &members).unwrap();
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "backup.verify", "a.stop", "b.stop", "c.stop", "a.unpack", "a.move-aside", "b.move-aside", "c.move-aside", "a.install",
                "a.force-new-cluster", "a.healthy", "a.restart", "a.healthy-again", "a.peer-url", "a.advance-index",
                "b.member-add", "b.start-join", "b.healthy", "b.restart", "b.healthy-again",
                "c.member-add", "c.start-join", "c.healthy", "c.restart", "c.healthy-again",
                "cluster.healthy", "cluster.members", "cluster.v2-keys", "cluster.data"
            ]
        );
        let join = plan.steps.iter().find(|s| s.id == "c.start-join").unwrap();
        match &join.action {
            Action::V2 { v2: V2Action::StartWithFlags { flags, .. } } => {
                assert_eq!(flags, &["--initial-cluster-state=existing", "--initial-cluster=a=https://a:2380,b=https://b:2380,c=https://c:2380"]);
            }
            other => panic!("unexpected action {other:?}"),
        }
        let add = plan.steps.iter().find(|s| s.id == "c.member-add").unwrap();
        assert!(matches!(&add.action, Action::V2 { v2: V2Action::MemberAdd { endpoints, .. } } if endpoints.len() == 2));

        let what = |id: &str| {
            let step = plan.steps.iter().find(|s| s.id == id).unwrap();
            crate::describe::describe(step).what.render(caasctl_core::Lang::En)
        };
        assert!(what("a.force-new-cluster").contains("/etc/systemd/system/etcd.service.d/caasctl-restore.conf"), "{}", what("a.force-new-cluster"));

        let json = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn member_without_service_rejected() {
        let mut members = [member("a"), member("b")];
        members[1].service = None;
        let error = build("op1".to_owned(), source(), V2Source::default(), ClientTls::default(), &members).unwrap_err();
        assert!(error.to_string().contains("member b"), "{error}");
    }
}
