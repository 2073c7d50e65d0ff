//! A token server for registry tests, in process: the endpoint a registry configured with
//! `auth: token:` sends clients to. It issues ES256 JSON Web Tokens signed by a key whose
//! certificate (issued by a test CA) travels in the `x5c` header. The registry trusts that CA
//! through its `rootcertbundle`.
//!
//! It implements the Docker token protocol as far as the registry and clients use it:
//! `GET /token?service=S&scope=repository:NAME:ACTIONS` (scope repeated), optional HTTP basic
//! credentials, and a JSON answer `{"token": ..., "access_token": ...}`. It grants every action
//! asked for when the credentials match. It does not model refresh tokens, OAuth POST, or
//! per-repository policies.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use crate::ports::free_port;
use crate::registry::TokenAuth;

/// A running token server; its thread ends when the guard drops.
pub struct TokenServer {
    /// Settings for the registry's `auth.token` section.
    pub auth: TokenAuth,
    /// Tokens issued so far.
    pub issued: Arc<AtomicUsize>,
    /// Requests rejected for missing or wrong credentials.
    pub rejected: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

struct Signer {
    key: EcdsaKeyPair,
    leaf_der: Vec<u8>,
    service: String,
    issuer: String,
    credentials: Option<(String, String)>,
}

impl TokenServer {
    /// Starts the server; `credentials` (user, password) are required from clients when given.
    /// The CA bundle is written into `dir`.
    pub fn start(dir: &Path, credentials: Option<(&str, &str)>) -> TokenServer {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, "caasctl test token CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf_params.distinguished_name.push(DnType::CommonName, "caasctl test token signer");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let bundle: PathBuf = dir.join("token-ca.pem");
        std::fs::write(&bundle, ca.pem()).unwrap();

        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &leaf_key.serialize_der(), &SystemRandom::new()).unwrap();
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let auth = TokenAuth {
            realm: format!("http://127.0.0.1:{port}/token"),
            service: "caasctl-test-registry".to_owned(),
            issuer: "caasctl-test-issuer".to_owned(),
            rootcertbundle: bundle,
        };
        let signer = Arc::new(Signer {
            key,
            leaf_der: leaf.der().to_vec(),
            service: auth.service.clone(),
            issuer: auth.issuer.clone(),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        });
        let issued = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_issued, thread_rejected, thread_stop) = (issued.clone(), rejected.clone(), stop.clone());
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        serve(stream, &signer, &thread_issued, &thread_rejected);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer { auth, issued, rejected, stop, port }
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, signer: &Signer, issued: &AtomicUsize, rejected: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let user = match check_credentials(signer, authorization.as_deref()) {
        Some(user) => user,
        None => {
            rejected.fetch_add(1, Ordering::SeqCst);
            respond(stream, "401 Unauthorized", "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
            return;
        }
    };
    let scopes: Vec<&str> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()).collect();
    let token = sign(signer, &user, &scopes);
    issued.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 }).to_string();
    respond(stream, "200 OK", &body);
}

fn check_credentials(signer: &Signer, authorization: Option<&str>) -> Option<String> {
    let Some((user, password)) = &signer.credentials else {
        return Some("anonymous".to_owned());
    };
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()?;
    (decoded == format!("{user}:{password}")).then(|| user.clone())
}

fn sign(signer: &Signer, subject: &str, scopes: &[&str]) -> String {
    let b64 = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|scope| scope.split(' '))
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, rest) = (parts.next()?, scope.split_once(':')?.1);
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
        })
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [base64::engine::general_purpose::STANDARD.encode(&signer.leaf_der)] });
    let claims = serde_json::json!({
        "iss": signer.issuer, "sub": subject, "aud": signer.service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand::random::<u64>()),
        "access": access,
    });
    let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = signer.key.sign(&SystemRandom::new(), signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

fn respond(mut stream: TcpStream, status: &str, body: &str) {
    let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}
