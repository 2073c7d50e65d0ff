//! Writes and counts over the v2 API that a v2 backup and restore need: the cluster ID, the
//! number of v2 keys, `member add`, `member update` and scratch writes that move the raft index.
//!
//! Every call is one plain HTTP request to a member's client URL, the same requests `etcdctl`
//! sends with `ETCDCTL_API=2`.

use std::time::Duration;

use crate::client::http_client;
use crate::error::{chain_text, ConnectFailure, EtcdError};
use crate::tls::TlsMaterial;
use crate::v2::V2Member;

/// Response header that carries the cluster ID in hex.
const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";
/// Response header of the v2 keys API that carries the raft commit index.
const RAFT_INDEX_HEADER: &str = "x-raft-index";

/// A v2 API client bound to one endpoint.
#[derive(Debug, Clone)]
pub struct V2Admin {
    client: reqwest::Client,
    endpoint: String,
}

fn connect_error(endpoint: &str, error: &reqwest::Error) -> EtcdError {
    let reason = chain_text(error);
    EtcdError::Connect { endpoint: endpoint.to_owned(), failure: ConnectFailure::classify_for(endpoint, &reason), reason }
}

fn request_error(endpoint: &str, operation: &'static str, reason: String) -> EtcdError {
    EtcdError::Request { endpoint: endpoint.to_owned(), operation, reason }
}

#[derive(serde::Deserialize)]
struct KeysBody {
    node: Option<Node>,
}

#[derive(serde::Deserialize)]
struct Node {
    #[serde(default)]
    dir: bool,
    #[serde(default)]
    nodes: Vec<Node>,
}

fn count_leaves(node: &Node) -> u64 {
    if node.dir {
        node.nodes.iter().map(count_leaves).sum()
    } else {
        1
    }
}

impl V2Admin {
    /// Creates a client for `endpoint` with the given TLS files and request timeout.
    ///
    /// # Errors
    /// [`EtcdError::Request`] when the TLS material cannot be used for HTTPS.
    pub fn new(endpoint: &str, tls: &TlsMaterial, timeout: Duration) -> Result<V2Admin, EtcdError> {
        let client = http_client(tls, timeout)
            .ok_or_else(|| request_error(endpoint, "v2 request", "the TLS files cannot be used for HTTPS".to_owned()))?;
        Ok(V2Admin { client, endpoint: endpoint.trim_end_matches('/').to_owned() })
    }

    /// Returns the endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn send(&self, operation: &'static str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, EtcdError> {
        let response = request.send().await.map_err(|e| connect_error(&self.endpoint, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let hint = if status.as_u16() == 404 { " (is the v2 API enabled with --enable-v2=true?)" } else { "" };
        Err(request_error(&self.endpoint, operation, format!("HTTP {status}{hint}: {}", body.trim())))
    }

    /// Returns true when the member's `/health` reports `"true"`.
    pub async fn healthy(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Health {
            health: String,
        }
        let Ok(response) = self.client.get(format!("{}/health", self.endpoint)).send().await else { return false };
        response.json::<Health>().await.map(|h| h.health == "true").unwrap_or(false)
    }

    /// Returns the server version from `/version`, such as `3.4.23`.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn version(&self) -> Result<String, EtcdError> {
        #[derive(serde::Deserialize)]
        struct Version {
            etcdserver: String,
        }
        let response = self.send("version", self.client.get(format!("{}/version", self.endpoint))).await?;
        let body: Version = response.json().await.map_err(|e| request_error(&self.endpoint, "version", e.to_string()))?;
        Ok(body.etcdserver)
    }

    /// Lists the members and returns them with the cluster ID (hex, from the response header).
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn members(&self) -> Result<(String, Vec<V2Member>), EtcdError> {
        #[derive(serde::Deserialize)]
        struct Body {
            members: Vec<V2Member>,
        }
        let response = self.send("v2 member list", self.client.get(format!("{}/v2/members", self.endpoint))).await?;
        let cluster_id = response.headers().get(CLUSTER_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body: Body = response.json().await.map_err(|e| request_error(&self.endpoint, "v2 member list", e.to_string()))?;
        Ok((cluster_id, body.members))
    }

    /// Counts the v2 keys (leaf nodes) that `GET /v2/keys/?recursive=true` returns. etcd leaves
    /// hidden keys (names starting with `_`) out of that listing, so they are not counted.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn count_keys(&self) -> Result<u64, EtcdError> {
        let url = format!("{}/v2/keys/?recursive=true", self.endpoint);
        let response = self.send("v2 get", self.client.get(url)).await?;
        let body: KeysBody = response.json().await.map_err(|e| request_error(&self.endpoint, "v2 get", e.to_string()))?;
        Ok(body.node.map(|n| count_leaves(&n)).unwrap_or(0))
    }

    /// Sets the peer URLs of member `id` (`etcdctl member update ID URL`).
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn member_update(&self, id: &str, peer_urls: &[String]) -> Result<(), EtcdError> {
        let body = serde_json::json!({ "peerURLs": peer_urls });
        self.send("v2 member update", self.client.put(format!("{}/v2/members/{id}", self.endpoint)).json(&body)).await?;
        Ok(())
    }

    /// Adds a member with `peer_url` (`etcdctl member add NAME URL`) and returns it.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`], such as HTTP 409 when a member already
    /// has that peer URL.
    pub async fn member_add(&self, peer_url: &str) -> Result<V2Member, EtcdError> {
        let body = serde_json::json!({ "peerURLs": [peer_url] });
        let response = self.send("v2 member add", self.client.post(format!("{}/v2/members", self.endpoint)).json(&body)).await?;
        response.json().await.map_err(|e| request_error(&self.endpoint, "v2 member add", e.to_string()))
    }

    /// Sets the v2 key `key` to `value` and returns the raft index the response reports.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn put(&self, key: &str, value: &str) -> Result<u64, EtcdError> {
        let url = format!("{}/v2/keys/{}", self.endpoint, key.trim_start_matches('/'));
        let response = self.send("v2 put", self.client.put(url).form(&[("value", value)])).await?;
        Ok(raft_index(&response))
    }

    /// Deletes the v2 key `key`; a key that does not exist is not an error.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let url = format!("{}/v2/keys/{}", self.endpoint, key.trim_start_matches('/'));
        let response = self.client.delete(url).send().await.map_err(|e| connect_error(&self.endpoint, &e))?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(request_error(&self.endpoint, "v2 delete", format!("HTTP {}", response.status())))
        }
    }
}

fn raft_index(response: &reqwest::Response) -> u64 {
    response.headers().get(RAFT_INDEX_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_counted_through_directories() {
        let body: KeysBody = serde_json::from_str(
            r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/a","value":"1"},{"key":"/d","dir":true,"nodes":[{"key":"/d/b","value":"2"},{"key":"/d/e","dir":true}]}]}}"#,
        )
        .unwrap();
        assert_eq!(count_leaves(&body.node.unwrap()), 2);
    }
}
