//! The v2 API, which the platform's older clusters still serve (etcd 3.4 with `--enable-v2=true`):
//! what `etcdctl cluster-health` and `etcdctl member list` report with `ETCDCTL_API=2`.
//!
//! The v2 API is plain HTTP+JSON: `GET /v2/members` lists the members, `GET /health` on each
//! member's client URL returns `{"health": "true"}` when that member is healthy, and
//! `GET /v2/stats/self` names the leader the member follows.

use std::time::{Duration, Instant};

use caasctl_core::{Localize, Message};
use futures::future::join_all;
use tracing::{info_span, Instrument};

use crate::client::http_client;
use crate::error::{chain_text, ConnectFailure, EtcdError};
use crate::tls::TlsMaterial;

/// A member as the v2 API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct V2Member {
    /// Member ID, lower-case hex.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Peer URLs.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Client URLs.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

#[derive(serde::Deserialize)]
struct MembersBody {
    members: Vec<V2Member>,
}

#[derive(serde::Deserialize)]
struct HealthBody {
    health: String,
}

#[derive(serde::Deserialize)]
struct SelfStats {
    #[serde(rename = "leaderInfo", default)]
    leader_info: Option<LeaderInfo>,
}

#[derive(serde::Deserialize)]
struct LeaderInfo {
    #[serde(default)]
    leader: String,
}

/// Health of one member over the v2 API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V2MemberHealth {
    /// Member ID, hex.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Client URL that was asked.
    pub client_url: Option<String>,
    /// True when `/health` returned `"true"`.
    pub healthy: bool,
    /// True when the member is the leader.
    pub is_leader: bool,
    /// Round trip of the `/health` request, in milliseconds.
    pub took_ms: Option<f64>,
    /// Why it is unhealthy, in English.
    pub error: Option<String>,
    #[serde(skip)]
    /// Localisable form of `error`.
    pub error_message: Option<Message>,
}

/// The v2 view of a cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct V2Cluster {
    /// Endpoint the member list came from.
    pub source: String,
    /// Members with their health.
    pub members: Vec<V2MemberHealth>,
    /// True when every member is healthy.
    pub healthy: bool,
}

fn connect_error(endpoint: &str, error: &reqwest::Error) -> EtcdError {
    let reason = chain_text(error);
    EtcdError::Connect { endpoint: endpoint.to_owned(), failure: ConnectFailure::classify_for(endpoint, &reason), reason }
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, endpoint: &str, path: &str) -> Result<T, EtcdError> {
    let response = client.get(format!("{endpoint}{path}")).send().await.map_err(|e| connect_error(endpoint, &e))?;
    let status = response.status();
    if !status.is_success() {
        let reason = format!("HTTP {status}{}", if status.as_u16() == 404 { " (is the v2 API enabled with --enable-v2=true?)" } else { "" });
        return Err(EtcdError::Request { endpoint: endpoint.to_owned(), operation: "v2 request", reason });
    }
    response
        .json::<T>()
        .await
        .map_err(|e| EtcdError::Request { endpoint: endpoint.to_owned(), operation: "v2 request", reason: e.to_string() })
}

/// Lists the members through the first endpoint that responds, and returns that endpoint too.
///
/// # Errors
/// The last endpoint's error when none responds.
pub async fn members(endpoints: &[String], tls: &TlsMaterial, timeout: Duration) -> Result<(String, Vec<V2Member>), EtcdError> {
    let client = http_client(tls, timeout).ok_or_else(|| EtcdError::Request {
        endpoint: endpoints.join(","),
        operation: "v2 request",
        reason: "the TLS files cannot be used for HTTPS".to_owned(),
    })?;
    let mut last = EtcdError::NoEndpoints;
    for endpoint in endpoints {
        match get_json::<MembersBody>(&client, endpoint, "/v2/members").await {
            Ok(body) => return Ok((endpoint.clone(), body.members)),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Checks every member's `/health`, as `etcdctl cluster-health` does.
///
/// # Errors
/// Only when the member list itself cannot be read.
pub async fn cluster_health(endpoints: &[String], tls: &TlsMaterial, timeout: Duration) -> Result<V2Cluster, EtcdError> {
    let span = info_span!("etcd.v2.cluster_health", endpoints = endpoints.len());
    async move {
        let (source, list) = members(endpoints, tls, timeout).await?;
        let client = http_client(tls, timeout).expect("checked by members()");
        let checks = list.iter().map(|member| check_member(&client, member));
        let members: Vec<V2MemberHealth> = join_all(checks).await;
        let healthy = !members.is_empty() && members.iter().all(|m| m.healthy);
        Ok(V2Cluster { source, members, healthy })
    }
    .instrument(span)
    .await
}

async fn check_member(client: &reqwest::Client, member: &V2Member) -> V2MemberHealth {
    let mut health = V2MemberHealth {
        id: member.id.clone(),
        name: member.name.clone(),
        client_url: None,
        healthy: false,
        is_leader: false,
        took_ms: None,
        error: None,
        error_message: None,
    };
    let Some(url) = member.client_urls.first() else {
        health.error = Some("the member has no client URL (added but never started)".to_owned());
        health.error_message = Some(Message::new("etcd.v2.no_client_url"));
        return health;
    };
    health.client_url = Some(url.clone());

    let started = Instant::now();
    match get_json::<HealthBody>(client, url, "/health").await {
        Ok(body) if body.health == "true" => {
            health.healthy = true;
            health.took_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(body) => {
            health.error = Some(format!("/health returned {}", body.health));
            health.error_message = Some(Message::new("etcd.v2.unhealthy_result").arg("result", body.health));
        }
        Err(error) => {
            health.error = Some(error.to_string());
            health.error_message = Some(error.message());
        }
    }
    if let Ok(stats) = get_json::<SelfStats>(client, url, "/v2/stats/self").await {
        health.is_leader = stats.leader_info.map(|l| l.leader == member.id).unwrap_or(false);
    }
    health
}
