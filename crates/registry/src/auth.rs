//! Registry credentials and the authentication handshake.
//!
//! Credentials come from a Docker `config.json` (`auths.<registry>.auth`, the base64 of
//! `user:password`), the file `docker login` writes. A registry that requires authentication
//! responds with 401 and a `WWW-Authenticate` challenge. With `Basic`, the credentials go in every
//! request. With `Bearer realm=...,service=...`, the client requests a token for the scope it needs
//! (`repository:NAME:pull,push`) from the realm (the token endpoint), sending the credentials
//! there if it has any, and then sends `Authorization: Bearer TOKEN`.
//!
//! # Limitations
//! Credential helpers (`credsStore`, `credHelpers`) are not run; only inline `auth` entries are read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::error::RegistryError;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password must never reach a log line.
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    /// Returns the value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// Credentials by registry, read from a Docker `config.json`.
#[derive(Debug, Clone, Default)]
pub struct AuthStore {
    entries: HashMap<String, Credentials>,
}

impl AuthStore {
    /// Returns the default `config.json` path: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
    }

    /// Reads `path`; a missing file gives an empty store when `required` is false.
    ///
    /// # Errors
    /// [`RegistryError::ReadFile`] when the file cannot be read, [`RegistryError::AuthConfig`]
    /// when it is not a config.json or an `auth` entry does not decode to `user:password`.
    pub fn load(path: &Path, required: bool) -> Result<AuthStore, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => return Ok(AuthStore::default()),
            Err(source) => return Err(RegistryError::ReadFile { path: path.to_owned(), source }),
        };
        AuthStore::parse(&text).map_err(|reason| RegistryError::AuthConfig { path: path.to_owned(), reason })
    }

    /// Parses the text of a config.json.
    pub fn parse(text: &str) -> Result<AuthStore, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = HashMap::new();
        let Some(auths) = value.get("auths").and_then(|a| a.as_object()) else {
            return Ok(AuthStore { entries });
        };
        for (key, entry) in auths {
            let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| format!("auths.{key}.auth is not UTF-8"))?;
            let (username, password) = decoded.split_once(':').ok_or_else(|| format!("auths.{key}.auth does not decode to user:password"))?;
            let credentials = Credentials { username: username.to_owned(), password: password.to_owned() };
            entries.insert(normalize_registry_key(key), credentials);
        }
        Ok(AuthStore { entries })
    }

    /// Adds credentials for `registry`.
    pub fn insert(&mut self, registry: &str, credentials: Credentials) {
        self.entries.insert(normalize_registry_key(registry), credentials);
    }

    /// Returns the credentials for a registry as written in a reference (`docker.io`,
    /// `10.0.0.5:5000`).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.entries.get(&normalize_registry_key(registry))
    }
}

/// Reduces a config.json key (`https://index.docker.io/v1/`, `http://reg:5000`, `reg:5000`) to
/// the registry name used in references.
fn normalize_registry_key(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => crate::reference::DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send credentials with HTTP basic authentication.
    Basic,
    /// Get a token from `realm` for `service`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// Service name to send to the token endpoint.
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` for schemes other than Basic and Bearer.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let realm = params.get("realm")?.clone();
        Some(Challenge::Bearer { realm, service: params.get("service").cloned() })
    }
}

/// Parses `key="value",key2=value2`, where quoted values may contain commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_owned();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    params
}

/// The body a token endpoint returns; registries have used both field names.
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    /// Token, in the Docker token specification.
    #[serde(default)]
    pub token: Option<String>,
    /// Token, in the OAuth 2 spelling.
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenResponse {
    /// Returns the token from whichever field contains it.
    pub fn into_token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_commas_in_scope() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        let challenge = Challenge::parse(header).unwrap();
        assert_eq!(
            challenge,
            Challenge::Bearer { realm: "https://auth.example/token".into(), service: Some("registry.example".into()) }
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn config_json_auths_decoded() {
        let text = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"10.0.0.5:5000":{"auth":"YWRtaW46czNjcjN0OmNvbG9u"},"empty.example":{}}}"#;
        let store = AuthStore::parse(text).unwrap();
        assert_eq!(store.get("docker.io").unwrap().username, "user");
        let local = store.get("10.0.0.5:5000").unwrap();
        assert_eq!((local.username.as_str(), local.password.as_str()), ("admin", "s3cr3t:colon"));
        assert!(store.get("empty.example").is_none());
        assert!(!format!("{local:?}").contains("s3cr3t"));
    }

    #[test]
    fn config_json_bad_auth_rejected() {
        assert!(AuthStore::parse(r#"{"auths":{"r":{"auth":"!!"}}}"#).is_err());
        assert!(AuthStore::parse(r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#).is_err());
    }
}
