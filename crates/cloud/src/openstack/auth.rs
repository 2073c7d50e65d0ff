//! Keystone v3 authentication and the service catalog.
//!
//! `POST /v3/auth/tokens` with a password (scoped to a project) or an application credential
//! (which carries its own scope) returns the token in the `X-Subject-Token` header and the
//! catalog in the body. The catalog gives the Cinder (`volumev3`, or `block-storage` in newer
//! clouds) and Nova (`compute`) endpoints for the configured interface and region.

use serde::Deserialize;
use serde_json::json;
use tracing::{debug, info_span, Instrument};

use crate::config::{OpenstackConfig, Secret};
use crate::error::CloudError;
use crate::openstack::api::{error_from_response, http_error};

/// Credentials for one Keystone authentication.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A user and password, scoped to a project.
    Password {
        /// User name.
        username: String,
        /// User's domain name.
        user_domain: String,
        /// Password.
        password: Secret,
        /// Project name, or ID when `project_is_id`.
        project: String,
        /// Whether `project` is an ID.
        project_is_id: bool,
        /// Project's domain name.
        project_domain: String,
    },
    /// An application credential.
    ApplicationCredential {
        /// Credential ID.
        id: String,
        /// Credential secret.
        secret: Secret,
    },
}

impl Credentials {
    /// Reads the credentials named in the `[cloud.openstack]` section, resolving secret references.
    ///
    /// # Errors
    /// [`CloudError::Credential`] or [`CloudError::Config`] when neither form is complete.
    pub fn from_config(config: &OpenstackConfig) -> Result<Credentials, CloudError> {
        if let (Some(id), Some(secret)) = (&config.application_credential_id, &config.application_credential_secret) {
            return Ok(Credentials::ApplicationCredential { id: id.clone(), secret: secret.resolve()? });
        }
        let incomplete = |what: &str| CloudError::Config { path: "caasctl.toml".into(), reason: format!("[cloud.openstack] needs {what}") };
        let username = config.username.clone().ok_or_else(|| incomplete("username and password, or application_credential_id and application_credential_secret"))?;
        let password = config.password.as_ref().ok_or_else(|| incomplete("password = { env = \"NAME\" } or { file = \"PATH\" }"))?.resolve()?;
        let (project, project_is_id) = match (&config.project_id, &config.project_name) {
            (Some(id), _) => (id.clone(), true),
            (None, Some(name)) => (name.clone(), false),
            (None, None) => return Err(incomplete("project_name or project_id")),
        };
        Ok(Credentials::Password {
            username,
            user_domain: config.user_domain_name.clone().unwrap_or_else(|| "Default".to_owned()),
            password,
            project,
            project_is_id,
            project_domain: config.project_domain_name.clone().unwrap_or_else(|| "Default".to_owned()),
        })
    }

    fn request_body(&self) -> serde_json::Value {
        match self {
            Credentials::Password { username, user_domain, password, project, project_is_id, project_domain } => {
                let project = if *project_is_id { json!({ "id": project }) } else { json!({ "name": project, "domain": { "name": project_domain } }) };
                json!({ "auth": {
                    "identity": { "methods": ["password"], "password": { "user": {
                        "name": username, "domain": { "name": user_domain }, "password": password.expose() } } },
                    "scope": { "project": project }
                } })
            }
            Credentials::ApplicationCredential { id, secret } => json!({ "auth": { "identity": {
                "methods": ["application_credential"],
                "application_credential": { "id": id, "secret": secret.expose() } } } }),
        }
    }
}

/// A token and the endpoints it can be used with.
#[derive(Debug, Clone)]
pub struct Session {
    /// The `X-Subject-Token` value.
    pub token: Secret,
    /// Cinder v3 endpoint, including the project ID when the catalog has it.
    pub volume_url: String,
    /// Nova endpoint.
    pub compute_url: String,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    token: TokenBody,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Deserialize)]
struct CatalogEndpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

/// Authenticates and picks the endpoints.
///
/// # Errors
/// [`CloudError::Auth`] on 401, [`CloudError::Http`] when Keystone cannot be reached, and
/// [`CloudError::Config`] when the catalog lacks a volume or compute endpoint.
pub async fn authenticate(http: &reqwest::Client, config: &OpenstackConfig, credentials: &Credentials) -> Result<Session, CloudError> {
    let url = format!("{}/auth/tokens", config.auth_url.trim_end_matches('/'));
    let span = info_span!("cloud.openstack.auth", url = %url);
    async move {
        let response = http.post(&url).json(&credentials.request_body()).send().await.map_err(|e| http_error(&url, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let error = error_from_response("POST /auth/tokens", response).await;
            let message = match error {
                CloudError::Api { message, .. } => message,
                other => other.to_string(),
            };
            return Err(CloudError::Auth { provider: "openstack", message });
        }
        if !status.is_success() {
            return Err(error_from_response("POST /auth/tokens", response).await);
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(Secret::new)
            .ok_or_else(|| CloudError::Parse { source_name: url.clone(), reason: "no X-Subject-Token header".to_owned() })?;
        let body: TokenResponse = response.json().await.map_err(|e| CloudError::Parse { source_name: url.clone(), reason: e.to_string() })?;
        let volume_url = endpoint(&body.token.catalog, &["volumev3", "block-storage"], config)?;
        let compute_url = endpoint(&body.token.catalog, &["compute"], config)?;
        debug!(volume = %volume_url, compute = %compute_url, "catalog read");
        Ok(Session { token, volume_url, compute_url })
    }
    .instrument(span)
    .await
}

fn endpoint(catalog: &[CatalogEntry], types: &[&str], config: &OpenstackConfig) -> Result<String, CloudError> {
    for service_type in types {
        for entry in catalog.iter().filter(|e| e.service_type == *service_type) {
            let found = entry.endpoints.iter().find(|e| {
                let region_matches = match &config.region {
                    Some(wanted) => e.region_id.as_deref() == Some(wanted) || e.region.as_deref() == Some(wanted),
                    None => true,
                };
                e.interface == config.interface && region_matches
            });
            if let Some(found) = found {
                return Ok(found.url.trim_end_matches('/').to_owned());
            }
        }
    }
    Err(CloudError::Config {
        path: "caasctl.toml".into(),
        reason: format!(
            "the Keystone catalog has no {} endpoint with interface {} in region {}",
            types.join(" or "),
            config.interface,
            config.region.as_deref().unwrap_or("(any)")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(region: Option<&str>) -> OpenstackConfig {
        OpenstackConfig {
            auth_url: "http://k/v3".into(),
            region: region.map(str::to_owned),
            interface: "public".into(),
            username: None,
            user_domain_name: None,
            password: None,
            project_name: None,
            project_id: None,
            project_domain_name: None,
            application_credential_id: None,
            application_credential_secret: None,
            request_timeout_seconds: None,
        }
    }

    #[test]
    fn catalog_picks_interface_and_region() {
        let catalog: Vec<CatalogEntry> = serde_json::from_value(json!([
            { "type": "volumev3", "endpoints": [
                { "interface": "internal", "region_id": "R1", "url": "http://internal/v3/p" },
                { "interface": "public", "region_id": "R2", "url": "http://r2/v3/p/" },
                { "interface": "public", "region_id": "R1", "url": "http://r1/v3/p" } ] }
        ]))
        .unwrap();
        assert_eq!(endpoint(&catalog, &["volumev3"], &config(Some("R1"))).unwrap(), "http://r1/v3/p");
        assert_eq!(endpoint(&catalog, &["volumev3"], &config(None)).unwrap(), "http://r2/v3/p");
        assert!(endpoint(&catalog, &["compute"], &config(None)).is_err());
    }

    #[test]
    fn password_body_scopes_project() {
        let credentials = Credentials::Password {
            username: "ops".into(),
            user_domain: "Default".into(),
            password: Secret::new("pw"),
            project: "caas".into(),
            project_is_id: false,
            project_domain: "Default".into(),
        };
        let body = credentials.request_body();
        assert_eq!(body["auth"]["identity"]["methods"][0], "password");
        assert_eq!(body["auth"]["scope"]["project"]["name"], "caas");
        assert_eq!(body["auth"]["identity"]["password"]["user"]["password"], "pw");
    }
}
