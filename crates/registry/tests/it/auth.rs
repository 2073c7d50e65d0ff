//! Authentication against real registries: one configured with `auth: token:` (realm, service,
//! issuer, rootcertbundle), for which the harness's token server issues ES256 tokens, and one
//! configured with `auth: htpasswd:` for HTTP basic authentication.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use caasctl_core::NoProgress;
use caasctl_registry::auth::{AuthStore, Credentials};
use caasctl_registry::copy::{Copier, CopyOptions, CopyStatus};
use caasctl_registry::{ClientOptions, Reference, Registries, RegistryError};
use caasctl_testing::registry::Registry;
use caasctl_testing::token_server::TokenServer;
use tokio_util::sync::CancellationToken;

use crate::support::{self, Format};

fn registries_with(hosts: &[&str], credentials: Option<(&str, &str, &str)>) -> Arc<Registries> {
    let mut auth = AuthStore::default();
    if let Some((host, username, password)) = credentials {
        auth.insert(host, Credentials { username: username.to_owned(), password: password.to_owned() });
    }
    Arc::new(Registries::new(ClientOptions { insecure: hosts.iter().map(|h| h.to_string()).collect(), auth, ..ClientOptions::default() }))
}

#[tokio::test]
async fn token_auth_copy_and_denial() {
    let Some(source) = support::registry() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path(), Some(("mirror", "s3cret")));
    let secured = Registry::start_with(Some(&tokens.auth));
    assert_eq!(secured.status("GET", "/v2/"), Some(401), "the registry must demand a token");

    let seed = support::registries(&[&source.host]);
    let image = support::push_image(&seed, &source.host, "99cloud/console", Some("v3.11"), Format::Oci, "amd64", &[support::random_blob(512 * 1024)]).await;
    let from = Reference::parse(&format!("{}/99cloud/console:v3.11", source.host)).unwrap();
    let to = from.map_to(&secured.host).unwrap();

    let anonymous = registries_with(&[&source.host, &secured.host], None);
    let (_, error) = Copier::new(anonymous, CopyOptions::default(), CancellationToken::new()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(matches!(error, Some(RegistryError::Token { .. })), "{error:?}");
    assert!(tokens.rejected.load(Ordering::SeqCst) >= 1);

    let wrong = registries_with(&[&source.host, &secured.host], Some((&secured.host, "mirror", "wrong")));
    let (_, error) = Copier::new(wrong, CopyOptions::default(), CancellationToken::new()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(matches!(error, Some(RegistryError::Token { .. })), "{error:?}");

    let authorized = registries_with(&[&source.host, &secured.host], Some((&secured.host, "mirror", "s3cret")));
    let copier = Copier::new(authorized.clone(), CopyOptions::default(), CancellationToken::new());
    let (report, error) = copier.copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::Copied);
    assert!(tokens.issued.load(Ordering::SeqCst) >= 1);
    let stored = authorized.client(&secured.host).head_manifest("99cloud/console", "v3.11").await.unwrap();
    assert_eq!(stored.as_deref(), Some(image.digest.as_str()));
    // Tokens are cached per scope, so a second, no-op run requests at most one new token.
    let before = tokens.issued.load(Ordering::SeqCst);
    let (again, _) = copier.copy(&from, &to, Arc::new(NoProgress)).await;
    assert_eq!(again.status, CopyStatus::UpToDate);
    assert!(tokens.issued.load(Ordering::SeqCst) - before <= 1);
}

#[tokio::test]
async fn basic_auth_from_config_json() {
    let Some(source) = support::registry() else { return };
    let Some(secured) = Registry::start_with_htpasswd("mirror", "s3cret") else {
        caasctl_testing::require(false, "a bcrypt hash from /usr/bin/python3 (crypt module)");
        return;
    };
    assert_eq!(secured.status("GET", "/v2/"), Some(401), "the registry must demand credentials");
    let seed = support::registries(&[&source.host]);
    let image = support::push_image(&seed, &source.host, "99cloud/haproxy", Some("v1"), Format::Docker, "amd64", &[support::random_blob(256 * 1024)]).await;
    let from = Reference::parse(&format!("{}/99cloud/haproxy:v1", source.host)).unwrap();
    let to = from.map_to(&secured.host).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write_config = |password: &str| {
        let path = dir.path().join(format!("config-{password}.json"));
        let auth = base64_encode(&format!("mirror:{password}"));
        std::fs::write(&path, format!(r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#, secured.host)).unwrap();
        path
    };
    let with_config = |path: std::path::PathBuf| {
        let auth = AuthStore::load(&path, true).unwrap();
        Arc::new(Registries::new(ClientOptions { insecure: vec![source.host.clone(), secured.host.clone()], auth, ..ClientOptions::default() }))
    };

    let wrong = with_config(write_config("wrong"));
    let (_, error) = Copier::new(wrong, CopyOptions::default(), CancellationToken::new()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(matches!(error, Some(RegistryError::Denied { status: 401, .. })), "{error:?}");

    let right = with_config(write_config("s3cret"));
    let (report, error) = Copier::new(right.clone(), CopyOptions::default(), CancellationToken::new()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::Copied);
    let stored = right.client(&secured.host).head_manifest("99cloud/haproxy", "v1").await.unwrap();
    assert_eq!(stored.as_deref(), Some(image.digest.as_str()));
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
