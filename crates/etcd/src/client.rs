//! One v3 client per endpoint. caasctl talks to each member on its own, so that health, alarms and
//! the snapshot source are known per member rather than through a balancer.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

use crate::endpoints::authority;
use crate::error::{chain_text, ConnectFailure, EtcdError};
use crate::tls::TlsMaterial;

/// Timeouts for talking to etcd.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time allowed to open a connection.
    pub dial: Duration,
    /// Time allowed for one unary request.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { dial: Duration::from_secs(5), request: Duration::from_secs(10) }
    }
}

/// A client bound to a single endpoint.
#[derive(Clone)]
pub struct MemberClient {
    /// The endpoint URL.
    pub endpoint: String,
    inner: Client,
}

impl MemberClient {
    /// Opens a connection to `endpoint`, with TLS when the URL is `https://`.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] with the classified cause.
    pub async fn connect(endpoint: &str, tls: &TlsMaterial, timeouts: Timeouts) -> Result<MemberClient, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeouts.dial)
            .with_timeout(timeouts.request)
            .with_keep_alive(Duration::from_secs(10), timeouts.request);
        if endpoint.starts_with("https://") {
            let host = authority(endpoint).rsplit_once(':').map(|(h, _)| h).unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let mut tls_options = TlsOptions::new().domain_name(host.to_owned());
            if let Some(ca) = &tls.ca_pem {
                tls_options = tls_options.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &tls.identity {
                tls_options = tls_options.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls_options);
        }
        let inner = Client::connect([endpoint], Some(options))
            .await
            .map_err(|e| connect_error(endpoint, &e))?;
        Ok(MemberClient { endpoint: endpoint.to_owned(), inner })
    }

    /// Returns the underlying etcd-client handle.
    pub fn raw(&self) -> Client {
        self.inner.clone()
    }

    /// Calls Maintenance.Status.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] when the transport fails, [`EtcdError::Request`] otherwise.
    pub async fn status(&self) -> Result<etcd_client::StatusResponse, EtcdError> {
        self.inner.clone().status().await.map_err(|e| self.request_error("status", &e))
    }

    /// Reads the `health` key with a linearizable read, as `etcdctl endpoint health` does, which
    /// succeeds only when the member can reach a quorum.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn linearizable_probe(&self) -> Result<(), EtcdError> {
        self.inner
            .clone()
            .get("health", None)
            .await
            .map(|_| ())
            .map_err(|e| self.request_error("get health", &e))
    }

    /// Returns the keyspace revision and the number of live keys.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn revision_and_count(&self) -> Result<(i64, i64), EtcdError> {
        let response = self
            .inner
            .clone()
            .get(vec![0u8], Some(GetOptions::new().with_from_key().with_count_only()))
            .await
            .map_err(|e| self.request_error("count keys", &e))?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        Ok((revision, response.count()))
    }

    /// Calls Cluster.MemberList.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn member_list(&self) -> Result<etcd_client::MemberListResponse, EtcdError> {
        self.inner.clone().member_list().await.map_err(|e| self.request_error("member list", &e))
    }

    /// Lists the cluster's active alarms as (member ID, alarm name).
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn alarms(&self) -> Result<Vec<(u64, String)>, EtcdError> {
        let response = self
            .inner
            .clone()
            .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
            .await
            .map_err(|e| self.request_error("alarm list", &e))?;
        Ok(response
            .alarms()
            .iter()
            .map(|a| (a.member_id(), a.alarm().as_str_name().to_owned()))
            .collect())
    }

    /// Opens the Maintenance.Snapshot stream.
    ///
    /// # Errors
    /// [`EtcdError::Connect`] or [`EtcdError::Request`].
    pub async fn snapshot(&self) -> Result<etcd_client::SnapshotStreaming, EtcdError> {
        self.inner.clone().snapshot().await.map_err(|e| self.request_error("snapshot", &e))
    }

    fn request_error(&self, operation: &'static str, error: &etcd_client::Error) -> EtcdError {
        let reason = chain_text(error);
        let failure = ConnectFailure::classify_for(&self.endpoint, &reason);
        let transport = matches!(error, etcd_client::Error::TransportError(_))
            || matches!(error, etcd_client::Error::GRpcStatus(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded));
        if transport || failure != ConnectFailure::Other {
            EtcdError::Connect { endpoint: self.endpoint.clone(), failure, reason }
        } else {
            EtcdError::Request { endpoint: self.endpoint.clone(), operation, reason }
        }
    }
}

fn connect_error(endpoint: &str, error: &etcd_client::Error) -> EtcdError {
    let reason = chain_text(error);
    EtcdError::Connect { endpoint: endpoint.to_owned(), failure: ConnectFailure::classify_for(endpoint, &reason), reason }
}

/// Builds an HTTP client that trusts the given CA and presents the client certificate, for the
/// parts of etcd that speak plain HTTP: `/metrics`, `/health` and the v2 API.
///
/// Returns `None` when the PEM material cannot be used by the HTTP stack.
pub fn http_client(tls: &TlsMaterial, timeout: Duration) -> Option<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout).use_rustls_tls();
    if let Some(ca) = &tls.ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(ca).ok()? {
            builder = builder.add_root_certificate(cert);
        }
        builder = builder.tls_built_in_root_certs(false);
    }
    if let Some((cert, key)) = &tls.identity {
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).ok()?);
    }
    builder.build().ok()
}

/// Reads `etcd_server_quota_backend_bytes` from the member's `/metrics`, which is the only place
/// a client can learn the backend quota (`--quota-backend-bytes`).
///
/// Returns `None` when the metrics endpoint cannot be read.
pub async fn quota_bytes(endpoint: &str, tls: &TlsMaterial, timeout: Duration) -> Option<u64> {
    let client = http_client(tls, timeout)?;
    let body = client.get(format!("{endpoint}/metrics")).send().await.ok()?.text().await.ok()?;
    body.lines()
        .find_map(|line| line.strip_prefix("etcd_server_quota_backend_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}
