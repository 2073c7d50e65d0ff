//! Certificates made in the test: a CA, a server certificate for 127.0.0.1 and localhost, and a
//! client certificate, written as PEM files the way openshift-ansible lays out `/etc/etcd`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// PEM files of a test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate.
    pub ca: PathBuf,
    /// Server (and peer) certificate.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Authority { cert, key }
}

fn leaf(ca: &Authority, name: &str, not_after: Option<::time::OffsetDateTime>) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if let Some(not_after) = not_after {
        params.not_before = not_after - ::time::Duration::days(30);
        params.not_after = not_after;
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

impl TestPki {
    /// Creates a CA, a server certificate and a client certificate in `dir`, named as in
    /// `/etc/etcd`: `ca.crt`, `server.crt`, `server.key`, `peer.crt`, `peer.key`.
    pub fn create(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = authority("caasctl-test-ca");
        let (server_cert, server_key) = leaf(&ca, "etcd-server", None);
        let (client_cert, client_key) = leaf(&ca, "etcd-client", None);
        TestPki {
            dir: dir.to_owned(),
            ca: write(dir, "ca.crt", &ca.cert.pem()),
            server_cert: write(dir, "server.crt", &server_cert),
            server_key: write(dir, "server.key", &server_key),
            client_cert: write(dir, "peer.crt", &client_cert),
            client_key: write(dir, "peer.key", &client_key),
        }
    }

    /// Writes a CA that did not sign anything of this PKI, and returns its path.
    pub fn write_other_ca(&self) -> PathBuf {
        let other = authority("unrelated-ca");
        write(&self.dir, "other-ca.crt", &other.cert.pem())
    }

    /// Writes a client certificate that expired yesterday and returns its certificate and key
    /// paths. Its issuer is unrelated to this PKI, which does not matter to caasctl: it rejects
    /// an expired certificate by its dates before connecting.
    pub fn write_expired_client(&self) -> (PathBuf, PathBuf) {
        let ca = authority("expired-issuer");
        let (cert, key) = leaf(&ca, "expired-client", Some(::time::OffsetDateTime::now_utc() - ::time::Duration::days(1)));
        (write(&self.dir, "expired.crt", &cert), write(&self.dir, "expired.key", &key))
    }

    /// Writes a second client key that does not belong to the client certificate.
    pub fn write_wrong_key(&self) -> PathBuf {
        let key = KeyPair::generate().unwrap();
        write(&self.dir, "wrong.key", &key.serialize_pem())
    }
}
