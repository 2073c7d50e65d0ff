//! The v2 restore steps that talk to etcd from this host over the v2 API: health waits, the
//! `localhost` peer URL fix, `member add`, the raft index advance and the v2 key count.

use std::time::{Duration, Instant};

use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::v2_admin::V2Admin;
use caasctl_etcd::EtcdError;
use tracing::{info, warn};

use crate::error::RestoreError;
use crate::plan::ClientTls;

use super::V2Action;

/// How long a member may take to report healthy after a start.
pub const HEALTHY_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of one v2 request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Scratch key the index advance writes and deletes.
pub const SCRATCH_KEY: &str = "/caasctl-restore-index";
/// Maximum scratch writes; a backup whose consistent index lies further ahead is rejected
/// because so many writes would take too long.
pub const MAX_SCRATCH_WRITES: u64 = 100_000;

fn failed(check: &str, reason: impl Into<String>) -> RestoreError {
    RestoreError::CheckFailed { check: check.to_owned(), reason: reason.into() }
}

/// Runs a cluster step of a v2 restore. Returns a note for the journal.
///
/// # Errors
/// [`RestoreError::CheckFailed`] when the cluster is not as expected, or an etcd request failed.
pub async fn run(action: &V2Action, tls: &ClientTls) -> Result<Option<String>, RestoreError> {
    let material = TlsMaterial::load(&tls.files()).map_err(EtcdError::from)?;
    let admin = |endpoint: &str| V2Admin::new(endpoint, &material, REQUEST_TIMEOUT);
    match action {
        V2Action::WaitHealthy { endpoints } => {
            let started = Instant::now();
            for endpoint in endpoints {
                let client = admin(endpoint)?;
                while !client.healthy().await {
                    if started.elapsed() > HEALTHY_TIMEOUT {
                        return Err(failed("healthy", format!("{endpoint} is not healthy after {} s", HEALTHY_TIMEOUT.as_secs())));
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            Ok(Some(format!("{} members healthy after {:.1} s", endpoints.len(), started.elapsed().as_secs_f64())))
        }
        V2Action::FixPeerUrl { endpoint, name, peer_url } => fix_peer_url(&admin(endpoint)?, name, peer_url).await,
        V2Action::AdvanceIndex { endpoint, consistent_index } => advance_index(&admin(endpoint)?, *consistent_index).await,
        V2Action::MemberAdd { endpoints, name, peer_url } => member_add(endpoints, name, peer_url, &material).await,
        V2Action::CheckV2Keys { endpoints, expected } => {
            let mut notes = Vec::new();
            for endpoint in endpoints {
                let count = admin(endpoint)?.count_keys().await?;
                if let Some(expected) = expected {
                    if count < *expected {
                        return Err(failed("v2-keys", format!("{endpoint}: {count} v2 keys, the backup counted {expected}")));
                    }
                }
                notes.push(format!("{endpoint} {count} v2 keys"));
            }
            Ok(Some(notes.join("; ")))
        }
        _ => unreachable!("host steps run in v2::steps"),
    }
}

/// Adds the member, retrying while etcd rejects it. etcd 3.4 rejects `member add` (HTTP 500 over
/// the v2 API) until the leader has been connected to every started member for 5 seconds, which
/// is right after the previous member joined.
async fn member_add(endpoints: &[String], name: &str, peer_url: &str, tls: &TlsMaterial) -> Result<Option<String>, RestoreError> {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        let client = first_answering(endpoints, tls).await?;
        let (_, members) = client.members().await?;
        if let Some(found) = members.iter().find(|m| m.peer_urls.iter().any(|u| u == peer_url)) {
            return Ok(Some(format!("member {} with {peer_url} already exists", found.id)));
        }
        attempts += 1;
        match client.member_add(peer_url).await {
            Ok(added) => {
                info!(name = %name, id = %added.id, peer_url = %peer_url, attempts, "member added");
                return Ok(Some(format!("added {name} as {} after {attempts} attempts", added.id)));
            }
            Err(error) if started.elapsed() > HEALTHY_TIMEOUT => return Err(error.into()),
            Err(error) => {
                warn!(name = %name, attempt = attempts, error = %error, "member add rejected; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn first_answering(endpoints: &[String], tls: &TlsMaterial) -> Result<V2Admin, RestoreError> {
    let mut last = None;
    for endpoint in endpoints {
        let client = V2Admin::new(endpoint, tls, REQUEST_TIMEOUT)?;
        match client.members().await {
            Ok(_) => return Ok(client),
            Err(error) => last = Some(error),
        }
    }
    Err(last.map(RestoreError::from).unwrap_or_else(|| failed("member-add", "no endpoint to ask")))
}

/// Updates the member named `name` (or the only member, whose name a fresh start may not have
/// published yet) when its peer URLs show `localhost`, as after `--force-new-cluster`.
async fn fix_peer_url(client: &V2Admin, name: &str, peer_url: &str) -> Result<Option<String>, RestoreError> {
    let (_, members) = client.members().await?;
    let member = match members.iter().find(|m| m.name == name) {
        Some(member) => member,
        None if members.len() == 1 => &members[0],
        None => return Err(failed("peer-url", format!("no member named {name} in the member list"))),
    };
    if member.peer_urls == [peer_url.to_owned()] {
        return Ok(Some(format!("{name} already has {peer_url}")));
    }
    if !member.peer_urls.iter().any(|u| crate::verify::names_localhost(u)) {
        warn!(member = %name, found = ?member.peer_urls, planned = %peer_url, "peer URL differs from the plan but shows no localhost; updating it");
    }
    client.member_update(&member.id, &[peer_url.to_owned()]).await?;
    Ok(Some(format!("{name} {} -> {peer_url}", member.peer_urls.join(","))))
}

/// Writes the scratch key until the raft index passes `consistent_index`, then deletes it.
///
/// After `etcdctl backup` drops entries from the WAL, the restored raft log is shorter than the
/// log the backend was written from, while `member/snap/db` keeps its `consistent_index`. etcd
/// 3.4 applies a v3 entry only when its index is above that value, so until the log passes it,
/// v3 writes are acknowledged by raft but never applied, and clients time out. v2 writes are
/// applied regardless, so scratch v2 writes move the index forward.
async fn advance_index(client: &V2Admin, consistent_index: u64) -> Result<Option<String>, RestoreError> {
    let mut writes = 0u64;
    let mut index = client.put(SCRATCH_KEY, "0").await?;
    writes += 1;
    let first = index;
    if consistent_index.saturating_sub(index) > MAX_SCRATCH_WRITES {
        client.delete(SCRATCH_KEY).await?;
        return Err(failed("advance-index", format!("raft index {index} is more than {MAX_SCRATCH_WRITES} below the backup's consistent index {consistent_index}")));
    }
    while index <= consistent_index {
        index = client.put(SCRATCH_KEY, &writes.to_string()).await?;
        writes += 1;
    }
    client.delete(SCRATCH_KEY).await?;
    info!(first, index, consistent_index, writes, "raft index advanced past the backup's consistent index");
    Ok(Some(format!("raft index {first} -> {index} (consistent index {consistent_index}) after {writes} scratch writes")))
}
