//! Checks after the restored members start: every member healthy, the member list as planned
//! (after correcting a `localhost` peer URL), and revision and key count against the backup's.

use std::time::{Duration, Instant};

use caasctl_etcd::client::{MemberClient, Timeouts};
use caasctl_etcd::health::hex_id;
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::EtcdError;
use tracing::{info, warn};

use crate::error::RestoreError;
use crate::plan::{Action, ClientTls, PlannedMember, Step};

/// How long the restored cluster may take to become healthy.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(120);

fn failed(check: &str, reason: impl Into<String>) -> RestoreError {
    RestoreError::CheckFailed { check: check.to_owned(), reason: reason.into() }
}

async fn connect(endpoint: &str, tls: &TlsMaterial) -> Result<MemberClient, EtcdError> {
    MemberClient::connect(endpoint, tls, Timeouts::default()).await
}

/// Runs a cluster check step. Returns a note for the journal.
///
/// # Errors
/// [`RestoreError::CheckFailed`] when the cluster is not as planned, or the TLS files are unusable.
pub async fn run_check(step: &Step, tls: &ClientTls) -> Result<Option<String>, RestoreError> {
    let material = TlsMaterial::load(&tls.files()).map_err(EtcdError::from)?;
    match &step.action {
        Action::WaitHealthy { endpoints } => wait_healthy(endpoints, &material, HEALTHY_TIMEOUT).await,
        Action::FixPeerUrls { members } => fix_peer_urls(members, &material).await,
        Action::CheckMembers { members } => check_members(members, &material).await,
        Action::CheckData { endpoints, min_revision, key_count } => check_data(endpoints, *min_revision, *key_count, &material).await,
        _ => unreachable!("host steps run in crate::actions"),
    }
}

async fn wait_healthy(endpoints: &[String], tls: &TlsMaterial, timeout: Duration) -> Result<Option<String>, RestoreError> {
    let started = Instant::now();
    let deadline = started + timeout;
    for endpoint in endpoints {
        loop {
            let probe = match connect(endpoint, tls).await {
                Ok(client) => client.linearizable_probe().await,
                Err(error) => Err(error),
            };
            match probe {
                Ok(()) => break,
                Err(error) if Instant::now() > deadline => return Err(failed("healthy", format!("{endpoint}: {error}"))),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }
    Ok(Some(format!("{} members healthy after {:.1} s", endpoints.len(), started.elapsed().as_secs_f64())))
}

async fn first_client(members: &[PlannedMember], tls: &TlsMaterial) -> Result<MemberClient, RestoreError> {
    let mut last = None;
    for member in members {
        match connect(&member.client_url, tls).await {
            Ok(client) => return Ok(client),
            Err(error) => last = Some(error),
        }
    }
    Err(last.map(RestoreError::from).unwrap_or_else(|| failed("members", "no member to ask")))
}

/// Returns true for a URL whose host is `localhost`, which a member restored without its peer
/// URL advertises (the runbook's case after `--force-new-cluster`).
pub(crate) fn names_localhost(url: &str) -> bool {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case("localhost"))).unwrap_or(false)
}

async fn fix_peer_urls(members: &[PlannedMember], tls: &TlsMaterial) -> Result<Option<String>, RestoreError> {
    let client = first_client(members, tls).await?;
    let list = client.member_list().await?;
    let mut fixed = Vec::new();
    for found in list.members() {
        let Some(planned) = members.iter().find(|m| m.name == found.name()) else { continue };
        let urls = found.peer_urls();
        let shows_localhost = urls.iter().any(|u| names_localhost(u));
        if shows_localhost && urls != [planned.peer_url.clone()] {
            warn!(member = %planned.name, from = ?urls, to = %planned.peer_url, "peer URL shows localhost; updating the member");
            client
                .raw()
                .member_update(found.id(), vec![planned.peer_url.clone()])
                .await
                .map_err(|e| failed("peer-urls", format!("member update {} failed: {e}", hex_id(found.id()))))?;
            fixed.push(format!("{} {} -> {}", planned.name, urls.join(","), planned.peer_url));
        }
    }
    Ok(Some(if fixed.is_empty() { "no peer URL shows localhost".to_owned() } else { format!("updated {}", fixed.join("; ")) }))
}

async fn check_members(members: &[PlannedMember], tls: &TlsMaterial) -> Result<Option<String>, RestoreError> {
    let client = first_client(members, tls).await?;
    let list = client.member_list().await?;
    let mut found: Vec<(String, Vec<String>)> = list.members().iter().map(|m| (m.name().to_owned(), m.peer_urls().to_vec())).collect();
    let mut expected: Vec<(String, Vec<String>)> = members.iter().map(|m| (m.name.clone(), vec![m.peer_url.clone()])).collect();
    found.sort();
    expected.sort();
    if found != expected {
        let show = |list: &[(String, Vec<String>)]| list.iter().map(|(n, u)| format!("{n}={}", u.join("|"))).collect::<Vec<_>>().join(",");
        return Err(failed("members", format!("member list is {}, planned {}", show(&found), show(&expected))));
    }
    Ok(Some(format!("{} members as planned", found.len())))
}

async fn check_data(endpoints: &[String], min_revision: Option<i64>, key_count: Option<i64>, tls: &TlsMaterial) -> Result<Option<String>, RestoreError> {
    let mut notes = Vec::new();
    for endpoint in endpoints {
        let client = connect(endpoint, tls).await?;
        let (revision, count) = client.revision_and_count().await?;
        info!(endpoint = %endpoint, revision, count, "restored data counted");
        if let Some(min) = min_revision {
            if revision < min {
                return Err(failed("data", format!("{endpoint}: revision {revision} is below the backup's {min}")));
            }
        }
        if let Some(expected) = key_count {
            if count != expected {
                return Err(failed("data", format!("{endpoint}: {count} keys, the backup has {expected}")));
            }
        }
        notes.push(format!("{endpoint} revision {revision} keys {count}"));
    }
    Ok(Some(notes.join("; ")))
}
