//! A signed ECS RPC call: common parameters, signature, retries and error bodies.
//!
//! Each call is a `GET` on the endpoint with every parameter in the query string, signed as
//! [`super::sign`] describes, with a fresh `SignatureNonce` and `Timestamp` per attempt. A
//! throttled or failed-on-the-server call is retried with backoff. Parameters the caller gives,
//! such as `ClientToken`, stay the same across attempts, so that ECS can recognise a retried
//! CreateSnapshot as the same request and return the same snapshot instead of taking another.
//! An error response `{"Code": ..., "Message": ..., "RequestId": ...}` becomes [`CloudError::Api`].

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::aliyun::sign::{percent_encode, signature};
use crate::config::Secret;
use crate::error::CloudError;
use crate::openstack::api::http_error;

/// The ECS API version all actions here are documented for.
pub const API_VERSION: &str = "2014-05-26";

/// An ECS API client for one account and region.
pub struct EcsClient {
    http: reqwest::Client,
    endpoint: String,
    access_key_id: Secret,
    access_key_secret: Secret,
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// Pause before the first retry; doubled for each further one.
    pub backoff: Duration,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "RequestId", default)]
    request_id: String,
}

impl EcsClient {
    /// Creates a client for `endpoint`, such as `https://ecs.cn-hangzhou.aliyuncs.com`.
    ///
    /// # Errors
    /// [`CloudError::Http`] when the HTTP client cannot be built.
    pub fn new(endpoint: &str, access_key_id: Secret, access_key_secret: Secret, timeout: Duration) -> Result<EcsClient, CloudError> {
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| http_error(endpoint, &e))?;
        Ok(EcsClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            access_key_id,
            access_key_secret,
            attempts: 4,
            backoff: Duration::from_millis(500),
        })
    }

    /// Calls `action` with `params` and returns the JSON response.
    ///
    /// # Errors
    /// [`CloudError::Api`] with the ECS error code, or [`CloudError::Http`]; throttling, 5xx and
    /// transport errors only after the last attempt.
    pub async fn call(&self, action: &str, params: &[(&str, String)]) -> Result<serde_json::Value, CloudError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(action, params).await {
                Err(error) if error.is_retryable() && attempt < self.attempts => {
                    let pause = self.backoff * 2u32.pow(attempt - 1);
                    warn!(action, attempt, error = %error, pause_ms = pause.as_millis() as u64, "ECS call failed, retrying");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, action: &str, params: &[(&str, String)]) -> Result<serde_json::Value, CloudError> {
        let mut all: BTreeMap<String, String> = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let nonce: u128 = rand::thread_rng().gen();
        for (name, value) in [
            ("Action", action.to_owned()),
            ("Format", "JSON".to_owned()),
            ("Version", API_VERSION.to_owned()),
            ("AccessKeyId", self.access_key_id.expose().to_owned()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureVersion", "1.0".to_owned()),
            ("SignatureNonce", format!("{nonce:032x}")),
            ("Timestamp", timestamp()),
        ] {
            all.insert(name.to_owned(), value);
        }
        let signed = signature(self.access_key_secret.expose(), "GET", &all);
        all.insert("Signature".to_owned(), signed);
        let query = all.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&");
        let url = format!("{}/?{query}", self.endpoint);
        debug!(action, "ECS request");

        let response = self.http.get(&url).send().await.map_err(|e| http_error(&self.endpoint, &e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| http_error(&self.endpoint, &e))?;
        if !status.is_success() {
            let body: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody { code: String::new(), message: text.chars().take(300).collect(), request_id: String::new() });
            debug!(action, code = %body.code, request_id = %body.request_id, "ECS error");
            return Err(CloudError::Api { provider: "aliyun", operation: action.to_owned(), status: status.as_u16(), code: body.code, message: body.message });
        }
        serde_json::from_str(&text).map_err(|e| CloudError::Parse { source_name: format!("ECS {action}"), reason: e.to_string() })
    }
}

/// Formats the current UTC time as ECS expects: `YYYY-MM-DDThh:mm:ssZ`.
fn timestamp() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// Returns a fresh idempotency token (ECS accepts up to 64 ASCII characters).
pub fn client_token() -> String {
    let value: u128 = rand::thread_rng().gen();
    format!("caasctl-{value:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_shape() {
        let text = timestamp();
        assert_eq!(text.len(), 20, "{text}");
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(text.as_bytes()[10], b'T', "{text}");
    }

    #[test]
    fn client_token_fits() {
        let token = client_token();
        assert!(token.len() <= 64, "{token}");
        assert!(token.is_ascii(), "{token}");
        assert_ne!(token, client_token());
    }
}
