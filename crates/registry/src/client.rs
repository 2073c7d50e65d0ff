//! HTTP access to one registry: URL building, authentication, retries, and the manifest calls of
//! the registry HTTP API v2. Blob calls are in [`crate::client::blob`].
//!
//! Every request goes through [`RegistryClient::send`], which adds the `Authorization` header the
//! registry requested, handles a 401 challenge once per request by fetching a token for the
//! request's scopes, and retries HTTP 429, HTTP 5xx and transport failures with backoff.

pub mod blob;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::auth::{AuthStore, Challenge, Credentials, TokenResponse};
use crate::error::RegistryError;
use crate::manifest::{Manifest, ACCEPT as MANIFEST_ACCEPT};
use crate::retry::{parse_retry_after, RetryPolicy};

/// Header in which registries return the digest of a manifest or blob.
pub const DIGEST_HEADER: &str = "docker-content-digest";

/// Settings shared by the clients of every registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Registries (`host[:port]` as in references) reached over plain HTTP; all others use HTTPS.
    pub insecure: Vec<String>,
    /// Credentials by registry.
    pub auth: AuthStore,
    /// Retry policy for each request.
    pub retry: RetryPolicy,
}

/// Clients for every registry a run talks to, sharing one connection pool.
#[derive(Debug)]
pub struct Registries {
    options: ClientOptions,
    http: reqwest::Client,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl Registries {
    /// Creates the shared HTTP client.
    pub fn new(options: ClientOptions) -> Registries {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A stalled transfer fails after this long without a byte; whole transfers have no
            // limit, because layers can be gigabytes.
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("caasctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Registries { options, http, clients: Mutex::new(HashMap::new()) }
    }

    /// Returns the retry policy of every request.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.options.retry
    }

    /// Returns the client of `registry` (as written in references, such as `docker.io`).
    pub fn client(&self, registry: &str) -> Arc<RegistryClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(registry.to_owned())
            .or_insert_with(|| {
                let insecure = self.options.insecure.iter().any(|r| r == registry);
                Arc::new(RegistryClient::new(registry, insecure, self.http.clone(), self.options.auth.get(registry).cloned(), self.options.retry))
            })
            .clone()
    }
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

/// A client of one registry.
#[derive(Debug)]
pub struct RegistryClient {
    registry: String,
    base: Url,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    retry: RetryPolicy,
    auth: Mutex<AuthState>,
}

/// A request body that can be sent again on retry, or a stream that can be sent once.
pub enum RequestBody {
    /// No body.
    Empty,
    /// A body held in memory.
    Bytes(Bytes),
    /// A streamed body with its length; a retry after it was sent fails the request.
    Stream(Option<reqwest::Body>, u64),
}

/// One request to a registry.
pub struct RegistryRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    /// Token scopes the request needs, such as `repository:99cloud/etcd:pull,push`.
    pub scopes: Vec<String>,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: RequestBody,
    /// Description of the request, for errors and logs.
    pub operation: String,
}

/// Scope for reading a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// Scope for reading and writing a repository.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl RegistryClient {
    fn new(registry: &str, insecure: bool, http: reqwest::Client, credentials: Option<Credentials>, retry: RetryPolicy) -> RegistryClient {
        let host = if registry == crate::reference::DOCKER_HUB { crate::reference::DOCKER_HUB_API } else { registry };
        let scheme = if insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/")).unwrap_or_else(|_| Url::parse("https://invalid.invalid/").expect("static URL"));
        RegistryClient { registry: registry.to_owned(), base, http, credentials, retry, auth: Mutex::new(AuthState::default()) }
    }

    /// Returns the registry name as written in references.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Returns `https://HOST/v2/PATH` (or `http://` for an insecure registry).
    pub fn url(&self, path: &str) -> Url {
        self.base.join(&format!("v2/{path}")).unwrap_or_else(|_| self.base.clone())
    }

    /// Resolves a `Location` header, absolute or relative to the registry.
    pub fn resolve(&self, location: &str) -> Url {
        self.base.join(location).unwrap_or_else(|_| self.base.clone())
    }

    fn authorization(&self, scopes: &[String]) -> Option<String> {
        let state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        match &state.challenge {
            Some(Challenge::Basic) => self.credentials.as_ref().map(Credentials::basic_header),
            Some(Challenge::Bearer { .. }) => state.tokens.get(&scopes.join(" ")).map(|token| format!("Bearer {token}")),
            None => None,
        }
    }

    /// Handles a 401: stores the challenge and, for Bearer, fetches a token for `scopes`.
    /// Returns false when there is nothing new to try.
    async fn authenticate(&self, headers: &HeaderMap, scopes: &[String]) -> Result<bool, RegistryError> {
        let Some(challenge) = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(Challenge::parse) else {
            return Ok(false);
        };
        match &challenge {
            Challenge::Basic => {
                self.auth.lock().unwrap_or_else(|e| e.into_inner()).challenge = Some(challenge);
                Ok(self.credentials.is_some())
            }
            Challenge::Bearer { realm, service } => {
                let token = self.fetch_token(realm, service.as_deref(), scopes).await?;
                let mut state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                state.challenge = Some(challenge.clone());
                state.tokens.insert(scopes.join(" "), token);
                Ok(true)
            }
        }
    }

    async fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String, RegistryError> {
        let token_error = |reason: String| RegistryError::Token { realm: realm.to_owned(), reason };
        let mut url = Url::parse(realm).map_err(|e| token_error(format!("invalid realm URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let _span = tracing::debug_span!("registry.token", realm, scopes = %scopes.join(" ")).entered();
        let mut request = self.http.get(url);
        if let Some(credentials) = &self.credentials {
            request = request.header(AUTHORIZATION, credentials.basic_header());
        }
        let response = request.send().await.map_err(|e| token_error(crate::error::chain_text(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(token_error(format!("HTTP {}", status.as_u16())));
        }
        let body: TokenResponse = response.json().await.map_err(|e| token_error(format!("invalid token response: {e}")))?;
        body.into_token().ok_or_else(|| token_error("the response holds no token".to_owned()))
    }

    /// Sends a request with authentication and retries, and returns the response whatever its
    /// status, except that 401/403 after authentication become [`RegistryError::Denied`] and
    /// 429/5xx left after the last retry become [`RegistryError::Status`].
    pub async fn send(&self, mut request: RegistryRequest) -> Result<Response, RegistryError> {
        let mut authenticated = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut builder = self.http.request(request.method.clone(), request.url.clone()).headers(request.headers.clone());
            if let Some(value) = self.authorization(&request.scopes) {
                builder = builder.header(AUTHORIZATION, value);
            }
            builder = match &mut request.body {
                RequestBody::Empty => builder,
                RequestBody::Bytes(bytes) => builder.body(bytes.clone()),
                RequestBody::Stream(stream, length) => match stream.take() {
                    Some(body) => builder.header(reqwest::header::CONTENT_LENGTH, *length).body(body),
                    None => {
                        return Err(RegistryError::Status {
                            registry: self.registry.clone(),
                            operation: request.operation.clone(),
                            status: 503,
                            body: "a streamed body cannot be sent twice".to_owned(),
                        })
                    }
                },
            };
            let outcome = builder.send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(source) => {
                    let error = RegistryError::Transport { registry: self.registry.clone(), operation: request.operation.clone(), source };
                    if attempt < self.retry.attempts && error.is_retryable() && !matches!(request.body, RequestBody::Stream(None, _)) {
                        let delay = self.retry.delay(attempt, None);
                        tracing::warn!(registry = %self.registry, operation = %request.operation, attempt, delay_ms = delay.as_millis() as u64, error = %crate::error::chain_text(&error), "retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                attempt -= 1;
                if self.authenticate(response.headers(), &request.scopes).await? && !matches!(request.body, RequestBody::Stream(None, _)) {
                    continue;
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Denied { registry: self.registry.clone(), operation: request.operation.clone(), status: status.as_u16() });
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let retry_after = response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
                if attempt < self.retry.attempts && !matches!(request.body, RequestBody::Stream(None, _)) {
                    let delay = self.retry.delay(attempt, retry_after);
                    tracing::warn!(registry = %self.registry, operation = %request.operation, status = status.as_u16(), attempt, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(self.status_error(&request.operation, response).await);
            }
            return Ok(response);
        }
    }

    /// Builds a [`RegistryError::Status`] from a response, reading up to 512 bytes of its body.
    pub async fn status_error(&self, operation: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let mut body: String = body.trim().chars().take(512).collect();
        if body.is_empty() {
            body = "(empty body)".to_owned();
        }
        RegistryError::Status { registry: self.registry.clone(), operation: operation.to_owned(), status, body }
    }

    fn request(&self, method: Method, url: Url, scopes: Vec<String>, operation: String) -> RegistryRequest {
        RegistryRequest { method, url, scopes, headers: HeaderMap::new(), body: RequestBody::Empty, operation }
    }

    /// Fetches a manifest by tag or digest, exactly as stored.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the registry has no such manifest;
    /// [`RegistryError::DigestMismatch`] when the bytes do not hash to the requested digest or to
    /// the digest the registry reports.
    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let what = format!("{repository}:{reference}");
        let mut request = self.request(Method::GET, self.url(&format!("{repository}/manifests/{reference}")), vec![pull_scope(repository)], format!("fetch manifest {what}"));
        request.headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static header"));
        let response = self.send(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound { registry: self.registry.clone(), kind: "manifest", name: what });
        }
        if !response.status().is_success() {
            return Err(self.status_error(&format!("fetch manifest {what}"), response).await);
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let reported = response.headers().get(DIGEST_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.bytes().await.map_err(|source| RegistryError::Transport {
            registry: self.registry.clone(),
            operation: format!("fetch manifest {what}"),
            source,
        })?;
        let manifest = Manifest::parse(&what, bytes, content_type.as_deref())?;
        let expected = if reference.starts_with("sha256:") { Some(reference.to_owned()) } else { reported };
        if let Some(expected) = expected {
            if expected != manifest.digest {
                return Err(RegistryError::DigestMismatch { what: format!("manifest {what}"), expected, actual: manifest.digest });
            }
        }
        Ok(manifest)
    }

    /// Returns the digest of a manifest by tag or digest, or `None` when it does not exist.
    pub async fn head_manifest(&self, repository: &str, reference: &str) -> Result<Option<String>, RegistryError> {
        let what = format!("{repository}:{reference}");
        let mut request = self.request(Method::HEAD, self.url(&format!("{repository}/manifests/{reference}")), vec![pull_scope(repository)], format!("check manifest {what}"));
        request.headers.insert(ACCEPT, MANIFEST_ACCEPT.parse().expect("static header"));
        let response = self.send(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.status_error(&format!("check manifest {what}"), response).await);
        }
        match response.headers().get(DIGEST_HEADER).and_then(|v| v.to_str().ok()) {
            Some(digest) => Ok(Some(digest.to_owned())),
            // Without the header the digest is only known from the bytes.
            None => Ok(Some(self.get_manifest(repository, reference).await?.digest)),
        }
    }

    /// Stores `manifest` under `reference` (a tag or its digest), byte for byte.
    ///
    /// # Errors
    /// [`RegistryError::DigestMismatch`] when the registry reports a different digest than the
    /// bytes have.
    pub async fn put_manifest(&self, repository: &str, reference: &str, manifest: &Manifest) -> Result<(), RegistryError> {
        let what = format!("{repository}:{reference}");
        let operation = format!("push manifest {what}");
        let mut request = self.request(Method::PUT, self.url(&format!("{repository}/manifests/{reference}")), vec![push_scope(repository)], operation.clone());
        request.headers.insert(CONTENT_TYPE, manifest.media_type.parse().expect("media types are valid header values"));
        request.body = RequestBody::Bytes(manifest.bytes.clone());
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(self.status_error(&operation, response).await);
        }
        if let Some(reported) = response.headers().get(DIGEST_HEADER).and_then(|v| v.to_str().ok()) {
            if reported != manifest.digest {
                return Err(RegistryError::DigestMismatch { what: format!("manifest {what}"), expected: manifest.digest.clone(), actual: reported.to_owned() });
            }
        }
        Ok(())
    }
}
