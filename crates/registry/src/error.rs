//! Errors of registry access, image copies and rollouts, with their catalogue messages and hints.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An image reference does not parse.
    #[error("invalid image reference {value:?}: {reason}")]
    InvalidReference {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A line of an image list file does not hold a source and a destination reference.
    #[error("invalid line {line} of {}: {reason}", path.display())]
    InvalidListLine {
        /// List file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A local file could not be read.
    #[error("failed to read {}", path.display())]
    ReadFile {
        /// File path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A Docker `config.json` cannot be used.
    #[error("invalid registry credentials file {}: {reason}", path.display())]
    AuthConfig {
        /// The config.json path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A request did not reach the registry or its response broke off.
    #[error("failed to {operation} on {registry}")]
    Transport {
        /// Registry host.
        registry: String,
        /// What was being done, such as `fetch manifest 99cloud/etcd:v3.4`.
        // NOTE: operation texts are English in every language; the Chinese templates quote them.
        operation: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },

    /// The registry answered with an unexpected HTTP status.
    #[error("failed to {operation} on {registry}: HTTP {status} {body}")]
    Status {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body, usually the registry's JSON error list.
        body: String,
    },

    /// The registry rejected the credentials, or none were found for it.
    #[error("access denied by {registry} to {operation} (HTTP {status})")]
    Denied {
        /// Registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// 401 or 403.
        status: u16,
    },

    /// The token endpoint named in a `WWW-Authenticate` challenge did not issue a token.
    #[error("failed to get a token from {realm}: {reason}")]
    Token {
        /// Token endpoint URL.
        realm: String,
        /// Status or parse failure.
        reason: String,
    },

    /// The manifest or blob does not exist in the registry.
    #[error("{kind} {name} not found in {registry}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// `manifest` or `blob`.
        kind: &'static str,
        /// Repository and tag or digest, such as `99cloud/etcd:v3.4`.
        name: String,
    },

    /// A manifest has a media type that this client does not copy.
    #[error("manifest {reference} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// Image reference.
        reference: String,
        /// Content-Type or mediaType field.
        media_type: String,
    },

    /// A manifest is not valid JSON of its media type.
    #[error("invalid manifest {reference}: {reason}")]
    BadManifest {
        /// Image reference.
        reference: String,
        /// Parser's reason.
        reason: String,
    },

    /// Content would not keep its digest, so the copy stopped instead of changing it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The manifest or blob.
        what: String,
        /// Digest of the source.
        expected: String,
        /// Digest computed or reported on the other side.
        actual: String,
    },

    /// The registry lacks the image for a platform that a node runs.
    #[error("{reference} has no image for platform {platform}")]
    MissingPlatform {
        /// Image reference.
        reference: String,
        /// Platform, such as `linux/arm64`.
        platform: String,
    },

    /// A command on a node failed.
    #[error("`{command}` failed on {host} (exit status {status}): {stderr}")]
    NodeCommand {
        /// Host name.
        host: String,
        /// Command run.
        command: String,
        /// Exit status, -1 when killed by a signal or not started.
        status: i32,
        /// Last lines of its standard error.
        stderr: String,
    },

    /// A node's output could not be understood.
    #[error("unexpected output from {host} for `{command}`: {reason}")]
    NodeOutput {
        /// Host name.
        host: String,
        /// Command run.
        command: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The operation was cancelled before it finished.
    #[error("cancelled")]
    Cancelled,
}

impl RegistryError {
    /// Returns true when repeating the request may succeed: transport failures other than TLS
    /// failures, HTTP 429 and HTTP 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => !source.is_builder() && !is_tls_failure(&chain_text(source)),
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Returns true for a missing manifest or blob.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

impl Localize for RegistryError {
    fn message(&self) -> Message {
        match self {
            RegistryError::InvalidReference { value, reason } => Message::new("registry.error.invalid_reference").arg("value", value).arg("reason", reason),
            RegistryError::InvalidListLine { path, line, reason } => Message::new("registry.error.invalid_list_line")
                .arg("path", path.display())
                .arg("line", line)
                .arg("reason", reason),
            RegistryError::ReadFile { path, source } => Message::new("registry.error.read_file").arg("path", path.display()).arg("reason", source),
            RegistryError::AuthConfig { path, reason } => Message::new("registry.error.auth_config").arg("path", path.display()).arg("reason", reason),
            RegistryError::Transport { registry, operation, source } => Message::new("registry.error.transport")
                .arg("registry", registry)
                .arg("operation", operation)
                .arg("reason", chain_text(source)),
            RegistryError::Status { registry, operation, status, body } => Message::new("registry.error.status")
                .arg("registry", registry)
                .arg("operation", operation)
                .arg("status", status)
                .arg("body", body),
            RegistryError::Denied { registry, operation, status } => Message::new("registry.error.denied")
                .arg("registry", registry)
                .arg("operation", operation)
                .arg("status", status),
            RegistryError::Token { realm, reason } => Message::new("registry.error.token").arg("realm", realm).arg("reason", reason),
            RegistryError::NotFound { registry, kind, name } => {
                let key = if *kind == "blob" { "registry.error.blob_not_found" } else { "registry.error.manifest_not_found" };
                Message::new(key).arg("registry", registry).arg("name", name)
            }
            RegistryError::UnsupportedMediaType { reference, media_type } => Message::new("registry.error.unsupported_media_type")
                .arg("reference", reference)
                .arg("media_type", media_type),
            RegistryError::BadManifest { reference, reason } => Message::new("registry.error.bad_manifest").arg("reference", reference).arg("reason", reason),
            RegistryError::DigestMismatch { what, expected, actual } => Message::new("registry.error.digest_mismatch")
                .arg("what", what)
                .arg("expected", expected)
                .arg("actual", actual),
            RegistryError::MissingPlatform { reference, platform } => Message::new("registry.error.missing_platform")
                .arg("reference", reference)
                .arg("platform", platform),
            RegistryError::NodeCommand { host, command, status, stderr } => Message::new("registry.error.node_command")
                .arg("host", host)
                .arg("command", command)
                .arg("status", status)
                .arg("stderr", stderr),
            RegistryError::NodeOutput { host, command, reason } => Message::new("registry.error.node_output")
                .arg("host", host)
                .arg("command", command)
                .arg("reason", reason),
            RegistryError::Cancelled => Message::new("registry.error.cancelled"),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            RegistryError::Transport { source, registry, .. } => {
                let text = chain_text(source).to_ascii_lowercase();
                if text.contains("invalidcontenttype") || text.contains("corrupt message") {
                    Some(Message::new("registry.hint.insecure").arg("registry", registry))
                } else {
                    Some(Message::new("registry.hint.transport"))
                }
            }
            RegistryError::Denied { registry, .. } | RegistryError::Token { realm: registry, .. } => {
                Some(Message::new("registry.hint.credentials").arg("registry", registry))
            }
            RegistryError::DigestMismatch { .. } => Some(Message::new("registry.hint.digest_mismatch")),
            RegistryError::MissingPlatform { .. } => Some(Message::new("registry.hint.missing_platform")),
            RegistryError::InvalidReference { .. } | RegistryError::InvalidListLine { .. } => Some(Message::new("registry.hint.reference")),
            _ => None,
        }
    }
}

/// Returns true for error texts of a TLS handshake that cannot succeed on retry: a plain-HTTP
/// server responding to a TLS client (rustls reports `InvalidContentType`), or a certificate that
/// does not verify.
fn is_tls_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["invalidcontenttype", "corrupt message", "certificate", "unknownissuer", "invalid peer"].iter().any(|marker| lower.contains(marker))
}

pub use caasctl_core::error::chain_text;
