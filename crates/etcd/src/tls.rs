//! TLS material for etcd clients: loads the PEM files named by `--cacert`, `--cert` and `--key`
//! and checks them before any connection, so that a wrong key or an expired certificate is
//! reported as such instead of as a failed handshake.

use std::path::{Path, PathBuf};

use caasctl_core::{Localize, Message};
use x509_parser::prelude::*;

use crate::endpoints::TlsFiles;

/// A problem with the TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A file holds no PEM block of the expected kind.
    #[error("{} holds no PEM {what}", path.display())]
    NoPem {
        /// File path.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
    },

    /// A certificate could not be parsed.
    #[error("{} is not a valid X.509 certificate: {reason}", path.display())]
    BadCertificate {
        /// File path.
        path: PathBuf,
        /// Parser's reason.
        reason: String,
    },

    /// A private key is of a type rustls cannot use.
    #[error("{} holds an unsupported private key", path.display())]
    BadKey {
        /// File path.
        path: PathBuf,
    },

    /// Only one of `--cert` and `--key` was given.
    #[error("--cert and --key must be given together")]
    CertWithoutKey,

    /// The private key does not belong to the certificate.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },

    /// The certificate's validity period has ended.
    #[error("certificate {} expired on {not_after}", path.display())]
    Expired {
        /// Certificate file.
        path: PathBuf,
        /// End of validity, RFC 3339.
        not_after: String,
    },

    /// The certificate's validity period has not begun.
    #[error("certificate {} is not valid before {not_before}", path.display())]
    NotYetValid {
        /// Certificate file.
        path: PathBuf,
        /// Start of validity, RFC 3339.
        not_before: String,
    },
}

impl Localize for TlsError {
    fn message(&self) -> Message {
        match self {
            TlsError::Read { path, source } => Message::new("tls.error.read").arg("path", path.display()).arg("reason", source),
            TlsError::NoPem { path, what } => Message::new(if *what == "certificate" { "tls.error.no_pem_cert" } else { "tls.error.no_pem_key" })
                .arg("path", path.display()),
            TlsError::BadCertificate { path, reason } => Message::new("tls.error.bad_certificate").arg("path", path.display()).arg("reason", reason),
            TlsError::BadKey { path } => Message::new("tls.error.bad_key").arg("path", path.display()),
            TlsError::CertWithoutKey => Message::new("tls.error.cert_without_key"),
            TlsError::KeyMismatch { cert, key } => Message::new("tls.error.key_mismatch").arg("cert", cert.display()).arg("key", key.display()),
            TlsError::Expired { path, not_after } => Message::new("tls.error.expired").arg("path", path.display()).arg("not_after", not_after),
            TlsError::NotYetValid { path, not_before } => Message::new("tls.error.not_yet_valid").arg("path", path.display()).arg("not_before", not_before),
        }
    }

    fn hint(&self) -> Option<Message> {
        Some(Message::new(match self {
            TlsError::Read { .. } | TlsError::NoPem { .. } | TlsError::BadCertificate { .. } | TlsError::BadKey { .. } => "tls.hint.files",
            TlsError::CertWithoutKey => "tls.hint.cert_without_key",
            TlsError::KeyMismatch { .. } => "tls.hint.key_mismatch",
            TlsError::Expired { .. } | TlsError::NotYetValid { .. } => "tls.hint.expired",
        }))
    }
}

/// PEM bytes of the TLS files, read once and checked.
#[derive(Clone)]
pub struct TlsMaterial {
    /// CA bundle.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key's bytes never reach a log.
        f.debug_struct("TlsMaterial")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl TlsMaterial {
    /// Reads the files and checks that the key matches the certificate and that the certificate
    /// is within its validity period.
    ///
    /// # Errors
    /// Any [`TlsError`]; each names the file at fault.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        let ca_pem = files.cacert.as_deref().map(read).transpose()?;
        if let (Some(path), Some(pem)) = (files.cacert.as_deref(), ca_pem.as_deref()) {
            parse_certificates(path, pem)?;
        }
        let identity = match (files.cert.as_deref(), files.key.as_deref()) {
            (None, None) => None,
            (Some(cert_path), Some(key_path)) => {
                let cert_pem = read(cert_path)?;
                let key_pem = read(key_path)?;
                let info = CertInfo::from_pem(cert_path, &cert_pem)?;
                info.check_validity(cert_path)?;
                check_key_matches(cert_path, &cert_pem, key_path, &key_pem)?;
                Some((cert_pem, key_pem))
            }
            _ => return Err(TlsError::CertWithoutKey),
        };
        Ok(TlsMaterial { ca_pem, identity })
    }

    /// Returns true when no TLS file was configured.
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.identity.is_none()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// What caasctl reports about one certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// DER of the SubjectPublicKeyInfo.
    #[serde(skip)]
    pub spki: Vec<u8>,
    /// DER of the whole certificate.
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertInfo {
    /// Parses the first certificate of a PEM file.
    ///
    /// # Errors
    /// [`TlsError::NoPem`] or [`TlsError::BadCertificate`].
    pub fn from_pem(path: &Path, pem: &[u8]) -> Result<CertInfo, TlsError> {
        parse_certificates(path, pem)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoPem { path: path.to_owned(), what: "certificate" })
    }

    /// Returns whole days until the certificate expires, negative once it has.
    pub fn days_left(&self) -> i64 {
        let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
        (self.not_after - now).div_euclid(86_400)
    }

    /// Checks the validity period against the current time.
    ///
    /// # Errors
    /// [`TlsError::Expired`] or [`TlsError::NotYetValid`].
    pub fn check_validity(&self, path: &Path) -> Result<(), TlsError> {
        let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
        let stamp = |t: i64| {
            ::time::OffsetDateTime::from_unix_timestamp(t)
                .map(caasctl_core::timefmt::rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        if now > self.not_after {
            return Err(TlsError::Expired { path: path.to_owned(), not_after: stamp(self.not_after) });
        }
        if now < self.not_before {
            return Err(TlsError::NotYetValid { path: path.to_owned(), not_before: stamp(self.not_before) });
        }
        Ok(())
    }

    /// Returns true when one of the `cas` issued this certificate and its signature verifies.
    pub fn verified_by(&self, cas: &[CertInfo]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(&self.der) else { return false };
        cas.iter().any(|ca| {
            let Ok((_, ca_cert)) = X509Certificate::from_der(&ca.der) else { return false };
            ca_cert.subject() == cert.issuer() && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
        })
    }
}

/// Parses every certificate of a PEM file.
///
/// # Errors
/// [`TlsError::NoPem`] when the file holds none, [`TlsError::BadCertificate`] for a broken one.
pub fn parse_certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertInfo>, TlsError> {
    let mut out = Vec::new();
    for item in rustls_pemfile::certs(&mut &pem[..]) {
        let der = item.map_err(|e| TlsError::BadCertificate { path: path.to_owned(), reason: e.to_string() })?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| TlsError::BadCertificate { path: path.to_owned(), reason: e.to_string() })?;
        out.push(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            spki: cert.public_key().raw.to_vec(),
            der: der.to_vec(),
        });
    }
    if out.is_empty() {
        return Err(TlsError::NoPem { path: path.to_owned(), what: "certificate" });
    }
    Ok(out)
}

/// Checks that the private key in `key_pem` belongs to the first certificate in `cert_pem`.
///
/// # Errors
/// [`TlsError::KeyMismatch`] when it does not; [`TlsError::NoPem`] or [`TlsError::BadKey`] when
/// the key cannot be read.
pub fn check_key_matches(cert_path: &Path, cert_pem: &[u8], key_path: &Path, key_pem: &[u8]) -> Result<(), TlsError> {
    let cert = CertInfo::from_pem(cert_path, cert_pem)?;
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoPem { path: key_path.to_owned(), what: "private key" })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|_| TlsError::BadKey { path: key_path.to_owned() })?;
    // NOTE: rustls cannot derive the public key of every key type; when it cannot, the handshake
    // is left to report a mismatch.
    match signing.public_key() {
        Some(spki) if spki.as_ref() != cert.spki.as_slice() => Err(TlsError::KeyMismatch { cert: cert_path.to_owned(), key: key_path.to_owned() }),
        _ => Ok(()),
    }
}
