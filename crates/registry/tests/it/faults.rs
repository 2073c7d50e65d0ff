//! Transient failures: a proxy in front of a real registry responds with 429 with `Retry-After`, and
//! the copy still finishes with the right digest.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use caasctl_core::NoProgress;
use caasctl_registry::copy::{Copier, CopyOptions, CopyStatus};
use caasctl_registry::Reference;
use caasctl_testing::fault_proxy::{Fault, FaultProxy};
use tokio_util::sync::CancellationToken;

use crate::support::{self, Format};

fn too_many_requests(method: &str, path: &str) -> Fault {
    Fault { method: method.to_owned(), path_contains: path.to_owned(), times: 1, status: "429 Too Many Requests".to_owned(), retry_after: Some("1".to_owned()) }
}

#[tokio::test]
async fn rate_limited_requests_retried() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let seed = support::registries(&[&source.host]);
    let image = support::push_image(&seed, &source.host, "99cloud/metrics", Some("v1"), Format::Docker, "amd64", &[support::random_blob(1024 * 1024)]).await;
    let manifest_proxy = FaultProxy::start(&source.host, too_many_requests("GET", "/manifests/"));
    let blob_proxy = FaultProxy::start(&target.host, too_many_requests("PUT", "/blobs/uploads/"));

    let registries = support::registries(&[&manifest_proxy.host, &blob_proxy.host]);
    let copier = Copier::new(registries.clone(), CopyOptions::default(), CancellationToken::new());
    let from = Reference::parse(&format!("{}/99cloud/metrics:v1", manifest_proxy.host)).unwrap();
    let to = from.map_to(&blob_proxy.host).unwrap();
    let started = std::time::Instant::now();
    let (report, error) = copier.copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::Copied);
    assert_eq!(manifest_proxy.injected.load(Ordering::SeqCst), 1);
    assert_eq!(blob_proxy.injected.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 must be honoured");
    let stored = registries.client(&blob_proxy.host).head_manifest("99cloud/metrics", "v1").await.unwrap();
    assert_eq!(stored.as_deref(), Some(image.digest.as_str()));
}

#[tokio::test]
async fn failed_chunk_retried() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let seed = support::registries(&[&source.host]);
    let image = support::push_image(&seed, &source.host, "99cloud/es", Some("v6"), Format::Oci, "amd64", &[support::random_blob(3 * 1024 * 1024)]).await;
    let fault = Fault { method: "PATCH".to_owned(), path_contains: "/blobs/uploads/".to_owned(), times: 1, status: "503 Service Unavailable".to_owned(), retry_after: None };
    let proxy = FaultProxy::start(&target.host, fault);

    let registries = support::registries(&[&source.host, &proxy.host]);
    let options = CopyOptions { chunk_size: Some(1024 * 1024), ..CopyOptions::default() };
    let from = Reference::parse(&format!("{}/99cloud/es:v6", source.host)).unwrap();
    let to = from.map_to(&proxy.host).unwrap();
    let (report, error) = Copier::new(registries.clone(), options, CancellationToken::new()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::Copied);
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1);
    let stored = registries.client(&proxy.host).head_manifest("99cloud/es", "v6").await.unwrap();
    assert_eq!(stored.as_deref(), Some(image.digest.as_str()));
}

#[tokio::test]
async fn plain_http_registry_without_insecure_fails_fast() {
    let Some(registry) = support::registry() else { return };
    let registries = Arc::new(caasctl_registry::Registries::new(caasctl_registry::ClientOptions::default()));
    let started = std::time::Instant::now();
    let error = registries.client(&registry.host).get_manifest("99cloud/etcd", "v3.4").await.unwrap_err();
    assert!(matches!(error, caasctl_registry::RegistryError::Transport { .. }), "{error}");
    assert!(!error.is_retryable(), "a TLS handshake with a plain-HTTP server cannot succeed on retry");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "no backoff expected: {:?}", started.elapsed());
    let hint = caasctl_core::Localize::hint(&error).expect("a hint");
    assert_eq!(hint.key, "registry.hint.insecure");
}
