//! Errors of etcd access, with their catalogue messages and hints.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};

/// Cause of a failed connection, as far as the transport's error shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectFailure {
    /// Nothing listens on the address.
    Refused,
    /// The endpoint did not respond within the timeout.
    Timeout,
    /// The server's certificate was not issued by the given CA.
    UnknownCa,
    /// The server's certificate has expired or is not yet valid.
    ServerCertExpired,
    /// The server rejected the client certificate.
    ClientCertRejected,
    /// The endpoint speaks plain HTTP where TLS was expected, or the other way round.
    TlsMismatch,
    /// The server closed the connection during or right after the TLS handshake, as etcd does
    /// when it requires a client certificate and none was sent.
    Closed,
    /// Any other failure. The reason text gives the details.
    Other,
}

impl ConnectFailure {
    /// Classifies a failure of `endpoint` as [`ConnectFailure::classify`] does, and a server that
    /// closes the connection by the endpoint's scheme: behind a plain `http://` endpoint it is a
    /// TLS port, behind an `https://` one it ended the handshake.
    pub fn classify_for(endpoint: &str, reason: &str) -> ConnectFailure {
        let failure = ConnectFailure::classify(reason);
        let closed = failure == ConnectFailure::Closed || (failure == ConnectFailure::Other && reason.to_ascii_lowercase().contains("connection closed"));
        match (closed, endpoint.starts_with("http://")) {
            (true, true) => ConnectFailure::TlsMismatch,
            (true, false) => ConnectFailure::Closed,
            (false, _) => failure,
        }
    }

    /// Classifies a transport error by the texts in its source chain.
    pub fn classify(reason: &str) -> ConnectFailure {
        let lower = reason.to_ascii_lowercase();
        if lower.contains("unknownissuer") || lower.contains("unknown issuer") || lower.contains("badsignature") {
            ConnectFailure::UnknownCa
        } else if lower.contains("expired") || lower.contains("notvalidyet") {
            ConnectFailure::ServerCertExpired
        } else if lower.contains("bad certificate")
            || lower.contains("badcertificate")
            || lower.contains("certificate required")
            || lower.contains("certificaterequired")
            || lower.contains("unknown ca")
            || lower.contains("unknownca")
        {
            ConnectFailure::ClientCertRejected
        } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") || lower.contains("http/1") {
            ConnectFailure::TlsMismatch
        } else if lower.contains("broken pipe") || lower.contains("brokenpipe") || lower.contains("connection reset") {
            ConnectFailure::Closed
        } else if lower.contains("connection refused") {
            ConnectFailure::Refused
        } else if lower.contains("timed out") || lower.contains("deadline") || lower.contains("timeout") {
            ConnectFailure::Timeout
        } else {
            ConnectFailure::Other
        }
    }
}

/// An etcd operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint is not a `http://` or `https://` URL with a host and port.
    #[error("invalid endpoint {value:?}: expected a URL such as https://HOST:2379")]
    InvalidEndpoint {
        /// The value given.
        value: String,
    },

    /// No endpoint was given by flag, etcd.conf or static pod manifest.
    #[error("no etcd endpoint given")]
    NoEndpoints,

    /// A configuration file could not be read.
    #[error("failed to read {}", path.display())]
    ReadFile {
        /// File that could not be read.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A static pod manifest could not be used.
    #[error("invalid static pod manifest {}: {reason}", path.display())]
    StaticPod {
        /// Manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An etcd.conf contains no client URL.
    #[error("{} sets no ETCD_ADVERTISE_CLIENT_URLS", path.display())]
    ConfNoClientUrls {
        /// The etcd.conf file.
        path: PathBuf,
    },

    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),

    /// The client could not connect or the first request failed at the transport.
    #[error("failed to connect to {endpoint}: {reason}")]
    Connect {
        /// Endpoint URL.
        endpoint: String,
        /// Classified cause.
        failure: ConnectFailure,
        /// Transport's error text.
        reason: String,
    },

    /// A request to a connected endpoint failed.
    #[error("{operation} failed on {endpoint}: {reason}")]
    Request {
        /// Endpoint URL.
        endpoint: String,
        /// RPC name, such as `status`.
        operation: &'static str,
        /// Server's or transport's error text.
        reason: String,
    },

    /// No endpoint was healthy, so nothing can be backed up.
    #[error("no healthy etcd member to take a snapshot from")]
    NoHealthyMember,

    /// The snapshot stream broke off.
    #[error("snapshot stream from {endpoint} broke off after {received} bytes: {reason}")]
    SnapshotStream {
        /// Endpoint URL.
        endpoint: String,
        /// Bytes received before the failure.
        received: u64,
        /// Cause.
        reason: String,
    },

    /// The SHA-256 that etcd appended to the stream does not match the bytes received.
    #[error("snapshot from {endpoint} failed its integrity check: etcd sent sha256 {expected}, received data hashes to {actual}")]
    SnapshotHashMismatch {
        /// Endpoint URL.
        endpoint: String,
        /// Hash appended by etcd.
        expected: String,
        /// Hash of the received bytes.
        actual: String,
    },

    /// A local file could not be written.
    #[error("failed to write {}", path.display())]
    WriteFile {
        /// File path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// Every healthy member was tried and none delivered a whole snapshot.
    #[error("every healthy member failed to deliver a snapshot ({attempts} attempts)")]
    AllSnapshotsFailed {
        /// Number of members tried.
        attempts: usize,
    },
}

impl EtcdError {
    /// Returns true when trying another member may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EtcdError::Connect { .. } | EtcdError::Request { .. } | EtcdError::SnapshotStream { .. } | EtcdError::SnapshotHashMismatch { .. }
        )
    }
}

impl Localize for EtcdError {
    fn message(&self) -> Message {
        match self {
            EtcdError::InvalidEndpoint { value } => Message::new("etcd.error.invalid_endpoint").arg("value", format!("{value:?}")),
            EtcdError::NoEndpoints => Message::new("etcd.error.no_endpoints"),
            EtcdError::ReadFile { path, source } => Message::new("etcd.error.read_file")
                .arg("path", path.display())
                .arg("reason", source),
            EtcdError::StaticPod { path, reason } => Message::new("etcd.error.static_pod")
                .arg("path", path.display())
                .arg("reason", reason),
            EtcdError::ConfNoClientUrls { path } => Message::new("etcd.error.conf_no_client_urls").arg("path", path.display()),
            EtcdError::Tls(inner) => inner.message(),
            EtcdError::Connect { endpoint, failure, reason } => {
                let key = match failure {
                    ConnectFailure::Refused => "etcd.error.connect_refused",
                    ConnectFailure::Timeout => "etcd.error.connect_timeout",
                    ConnectFailure::UnknownCa => "etcd.error.connect_unknown_ca",
                    ConnectFailure::ServerCertExpired => "etcd.error.connect_server_cert_expired",
                    ConnectFailure::ClientCertRejected => "etcd.error.connect_client_cert_rejected",
                    ConnectFailure::TlsMismatch => "etcd.error.connect_tls_mismatch",
                    ConnectFailure::Closed => "etcd.error.connect_closed",
                    ConnectFailure::Other => "etcd.error.connect_other",
                };
                Message::new(key).arg("endpoint", endpoint).arg("reason", reason)
            }
            EtcdError::Request { endpoint, operation, reason } => Message::new("etcd.error.request")
                .arg("endpoint", endpoint)
                .arg("operation", operation)
                .arg("reason", reason),
            EtcdError::NoHealthyMember => Message::new("etcd.error.no_healthy_member"),
            EtcdError::SnapshotStream { endpoint, received, reason } => Message::new("etcd.error.snapshot_stream")
                .arg("endpoint", endpoint)
                .arg("received", received)
                .arg("reason", reason),
            EtcdError::SnapshotHashMismatch { endpoint, expected, actual } => Message::new("etcd.error.snapshot_hash_mismatch")
                .arg("endpoint", endpoint)
                .arg("expected", expected)
                .arg("actual", actual),
            EtcdError::WriteFile { path, source } => Message::new("etcd.error.write_file")
                .arg("path", path.display())
                .arg("reason", source),
            EtcdError::AllSnapshotsFailed { attempts } => Message::new("etcd.error.all_snapshots_failed").arg("attempts", attempts),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            EtcdError::InvalidEndpoint { .. } | EtcdError::NoEndpoints => Some(Message::new("etcd.hint.endpoints")),
            EtcdError::Tls(inner) => inner.hint(),
            EtcdError::Connect { failure, .. } => Some(Message::new(match failure {
                ConnectFailure::Refused => "etcd.hint.connect_refused",
                ConnectFailure::Timeout => "etcd.hint.connect_timeout",
                ConnectFailure::UnknownCa => "etcd.hint.connect_unknown_ca",
                ConnectFailure::ServerCertExpired => "etcd.hint.connect_server_cert_expired",
                ConnectFailure::ClientCertRejected => "etcd.hint.connect_client_cert_rejected",
                ConnectFailure::TlsMismatch => "etcd.hint.connect_tls_mismatch",
                ConnectFailure::Closed => "etcd.hint.connect_closed",
                ConnectFailure::Other => "etcd.hint.connect_other",
            })),
            EtcdError::NoHealthyMember | EtcdError::AllSnapshotsFailed { .. } => Some(Message::new("etcd.hint.run_health")),
            _ => None,
        }
    }
}

pub use caasctl_core::error::chain_text;
