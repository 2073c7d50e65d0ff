//! Per-endpoint health: what `etcdctl endpoint health` and `endpoint status` report, gathered from
//! every endpoint at once, plus alarms and the backend quota.

use std::time::Instant;

use caasctl_core::{Localize, Message};
use futures::future::join_all;
use tracing::{debug, info_span, Instrument};

use crate::client::{quota_bytes, MemberClient, Timeouts};
use crate::error::EtcdError;
use crate::tls::TlsMaterial;

/// Health of one endpoint.
///
/// JSON schema: every field below, member IDs as lower-case hex strings as etcdctl prints them;
/// fields unknown for an unreachable endpoint are `null`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointHealth {
    /// Endpoint URL.
    pub endpoint: String,
    /// True when the member answered a linearizable read and reports no error.
    pub healthy: bool,
    /// Why it is unhealthy, in English; the CLI localises [`EndpointHealth::error_message`].
    pub error: Option<String>,
    /// Round-trip time of the linearizable read, in milliseconds.
    pub took_ms: Option<f64>,
    /// Server version.
    pub version: Option<String>,
    /// Backend size in bytes.
    pub db_size: Option<i64>,
    /// Backend quota in bytes, from the member's metrics.
    pub quota_bytes: Option<u64>,
    /// Member ID of this endpoint.
    pub member_id: Option<String>,
    /// Member ID of the leader this member follows.
    pub leader: Option<String>,
    /// True when this member is the leader.
    pub is_leader: bool,
    /// Raft term.
    pub raft_term: Option<u64>,
    /// Raft index.
    pub raft_index: Option<u64>,
    /// Cluster ID.
    pub cluster_id: Option<String>,
    /// Active alarms raised by this member (`NOSPACE`, `CORRUPT`).
    pub alarms: Vec<String>,
    /// Errors the member reports in its status.
    pub status_errors: Vec<String>,
    #[serde(skip)]
    /// Localisable form of `error`.
    pub error_message: Option<(Message, Option<Message>)>,
}

impl EndpointHealth {
    fn failed(endpoint: &str, error: &EtcdError) -> EndpointHealth {
        EndpointHealth {
            endpoint: endpoint.to_owned(),
            healthy: false,
            error: Some(error.to_string()),
            took_ms: None,
            version: None,
            db_size: None,
            quota_bytes: None,
            member_id: None,
            leader: None,
            is_leader: false,
            raft_term: None,
            raft_index: None,
            cluster_id: None,
            alarms: Vec::new(),
            status_errors: Vec::new(),
            error_message: Some((error.message(), error.hint())),
        }
    }
}

/// Formats a member ID the way etcdctl does.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

/// Checks one endpoint and returns its health and, when it answered, its client.
pub async fn check_endpoint(endpoint: &str, tls: &TlsMaterial, timeouts: Timeouts) -> (EndpointHealth, Option<MemberClient>) {
    let span = info_span!("etcd.endpoint.health", endpoint = %endpoint);
    async move {
        let client = match MemberClient::connect(endpoint, tls, timeouts).await {
            Ok(client) => client,
            Err(error) => return (EndpointHealth::failed(endpoint, &error), None),
        };
        let started = Instant::now();
        let probe = client.linearizable_probe().await;
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        let status = match client.status().await {
            Ok(status) => status,
            Err(error) => return (EndpointHealth::failed(endpoint, &error), None),
        };
        let header = status.header();
        let member_id = header.map(|h| h.member_id()).unwrap_or(0);
        let alarms = client
            .alarms()
            .await
            .map(|all| all.into_iter().filter(|(id, _)| *id == member_id).map(|(_, name)| name).collect())
            .unwrap_or_default();
        let quota = quota_bytes(endpoint, tls, timeouts.request).await;

        let mut health = EndpointHealth {
            endpoint: endpoint.to_owned(),
            healthy: true,
            error: None,
            took_ms: Some(took_ms),
            version: Some(status.version().to_owned()),
            db_size: Some(status.db_size()),
            quota_bytes: quota,
            member_id: Some(hex_id(member_id)),
            leader: Some(hex_id(status.leader())),
            is_leader: status.leader() == member_id,
            raft_term: Some(status.raft_term()),
            raft_index: Some(status.raft_index()),
            cluster_id: header.map(|h| hex_id(h.cluster_id())),
            alarms,
            status_errors: status.errors().to_vec(),
            error_message: None,
        };
        if let Err(error) = probe {
            health.healthy = false;
            health.error = Some(error.to_string());
            health.error_message = Some((error.message(), error.hint()));
        } else if !health.alarms.is_empty() {
            health.healthy = false;
            let alarms = health.alarms.join(",");
            health.error = Some(format!("active alarm: {alarms}"));
            health.error_message = Some((Message::new("etcd.health.alarm").arg("alarms", alarms), Some(Message::new("etcd.hint.alarm"))));
        } else if !health.status_errors.is_empty() {
            health.healthy = false;
            let errors = health.status_errors.join("; ");
            health.error = Some(errors.clone());
            health.error_message = Some((Message::new("etcd.health.status_errors").arg("errors", errors), None));
        }
        debug!(healthy = health.healthy, took_ms, "endpoint checked");
        (health, Some(client))
    }
    .instrument(span)
    .await
}

/// Checks every endpoint concurrently, keeping the given order.
///
/// Endpoints must belong to one cluster: a member restored on its own starts a cluster of one.
/// When cluster IDs differ, members outside the largest group are marked unhealthy. When no group
/// is largest, every member is, so that neither health nor a backup trusts them.
pub async fn check_all(endpoints: &[String], tls: &TlsMaterial, timeouts: Timeouts) -> Vec<(EndpointHealth, Option<MemberClient>)> {
    let mut checked = join_all(endpoints.iter().map(|e| check_endpoint(e, tls, timeouts))).await;
    mark_foreign_clusters(&mut checked);
    checked
}

fn mark_foreign_clusters(checked: &mut [(EndpointHealth, Option<MemberClient>)]) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (health, _) in checked.iter() {
        let Some(id) = health.cluster_id.clone() else { continue };
        match counts.iter_mut().find(|(known, _)| *known == id) {
            Some((_, count)) => *count += 1,
            None => counts.push((id, 1)),
        }
    }
    if counts.len() < 2 {
        return;
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1));
    let majority = (counts[0].1 > counts[1].1).then(|| counts[0].0.clone());
    let ids = counts.iter().map(|(id, count)| format!("{id} ({count})")).collect::<Vec<_>>().join(", ");
    for (health, _) in checked.iter_mut() {
        let Some(id) = health.cluster_id.clone() else { continue };
        if majority.as_ref() == Some(&id) {
            continue;
        }
        health.healthy = false;
        health.error = Some(format!("member of cluster {id}, while the endpoints span clusters {ids}"));
        health.error_message = Some((
            Message::new("etcd.health.foreign_cluster").arg("cluster", &id).arg("clusters", &ids),
            Some(Message::new("etcd.hint.foreign_cluster")),
        ));
    }
}

/// A cluster member as listed by the member API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    /// Member ID, lower-case hex.
    pub id: String,
    /// Member name; empty for a member that was added but never started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// True for a raft learner.
    #[serde(default)]
    pub is_learner: bool,
}

/// Lists the members through `client` and returns them with the cluster ID.
///
/// # Errors
/// [`EtcdError::Connect`] or [`EtcdError::Request`].
pub async fn members(client: &MemberClient) -> Result<(String, Vec<MemberInfo>), EtcdError> {
    let response = client.member_list().await?;
    let cluster_id = response.header().map(|h| hex_id(h.cluster_id())).unwrap_or_default();
    let members = response
        .members()
        .iter()
        .map(|m| MemberInfo {
            id: hex_id(m.id()),
            name: m.name().to_owned(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect();
    Ok((cluster_id, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member_of(cluster: &str) -> (EndpointHealth, Option<MemberClient>) {
        let mut health = EndpointHealth::failed("https://127.0.0.1:2379", &EtcdError::NoEndpoints);
        health.healthy = true;
        health.error = None;
        health.error_message = None;
        health.cluster_id = Some(cluster.to_owned());
        (health, None)
    }

    #[test]
    fn foreign_clusters_stray_member_marked_unhealthy() {
        let mut checked = vec![member_of("9bed"), member_of("9bed"), member_of("c9be")];
        mark_foreign_clusters(&mut checked);
        let healthy: Vec<bool> = checked.iter().map(|(h, _)| h.healthy).collect();
        assert_eq!(healthy, [true, true, false]);
        assert!(checked[2].0.error.as_deref().unwrap().contains("c9be"));
    }

    #[test]
    fn foreign_clusters_even_split_trusts_none() {
        let mut checked = vec![member_of("9bed"), member_of("c9be")];
        mark_foreign_clusters(&mut checked);
        assert!(checked.iter().all(|(h, _)| !h.healthy));
    }

    #[test]
    fn foreign_clusters_one_cluster_left_alone() {
        let mut checked = vec![member_of("9bed"), member_of("9bed")];
        mark_foreign_clusters(&mut checked);
        assert!(checked.iter().all(|(h, _)| h.healthy));
    }
}
