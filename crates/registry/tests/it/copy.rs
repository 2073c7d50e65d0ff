//! Copies between two real registries: multi-platform images kept whole with their digests,
//! no-op second runs, backup tags, cross-repository mounts, chunked uploads, dry runs, and a copy
//! interrupted and resumed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use caasctl_core::{NoProgress, Progress};
use caasctl_registry::copy::{Copier, CopyOptions, CopyStatus, BACKUP_TAG_MARKER};
use caasctl_registry::manifest::ManifestKind;
use caasctl_registry::sync::{self, NoProgressFactory, SyncJob};
use caasctl_registry::{Reference, RegistryError};
use tokio_util::sync::CancellationToken;

use crate::support::{self, Format};

const MIB: usize = 1024 * 1024;

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn copier(registries: &Arc<caasctl_registry::Registries>, options: CopyOptions) -> Copier {
    Copier::new(registries.clone(), options, CancellationToken::new())
}

#[tokio::test]
async fn oci_index_copied_whole() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    let base = support::random_blob(3 * MIB);
    let index = support::push_multi_arch(&registries, &source.host, "99cloud/etcd", "v3.4", Format::Oci, &base, 2 * MIB).await;

    let copier = copier(&registries, CopyOptions::default());
    let from = reference(&format!("{}/99cloud/etcd:v3.4", source.host));
    let to = from.map_to(&target.host).unwrap();
    let (report, error) = copier.copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::Copied);
    assert_eq!(report.digest.as_deref(), Some(index.digest.as_str()));
    assert_eq!(report.platforms, vec!["linux/amd64", "linux/arm64"]);
    // The shared base layer is one blob: base + two own layers + two configs.
    assert_eq!(report.blobs_total, 5);
    assert_eq!(report.manifests_pushed, 3);

    let dst = registries.client(&target.host);
    let copied = dst.get_manifest("99cloud/etcd", "v3.4").await.unwrap();
    assert_eq!(copied.digest, index.digest);
    assert_eq!(copied.bytes, index.bytes, "manifest bytes must be identical");
    let ManifestKind::Index { manifests } = &copied.kind else { panic!("expected an index") };
    for child in manifests {
        let child_manifest = dst.get_manifest("99cloud/etcd", &child.digest).await.unwrap();
        for blob in child_manifest.blobs() {
            assert!(dst.blob_exists("99cloud/etcd", &blob.digest).await.unwrap().is_some(), "blob {} missing", blob.digest);
        }
    }

    let (again, error) = copier.copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(again.status, CopyStatus::UpToDate);
    assert_eq!(again.blobs_copied + again.manifests_pushed, 0);
}

#[tokio::test]
async fn docker_list_with_large_layer_chunked() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    let base = support::random_blob(40 * MIB);
    let list = support::push_multi_arch(&registries, &source.host, "99cloud/router", "v3.11", Format::Docker, &base, MIB).await;

    let options = CopyOptions { chunk_size: Some(8 * MIB as u64), ..CopyOptions::default() };
    let from = reference(&format!("{}/99cloud/router:v3.11", source.host));
    let to = reference(&format!("{}/mirror/router:v3.11", target.host));
    let (report, error) = copier(&registries, options).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.media_type.as_deref(), Some(caasctl_registry::manifest::DOCKER_LIST));
    assert!(report.bytes_copied > 40 * MIB as u64, "{}", report.bytes_copied);
    let copied = registries.client(&target.host).get_manifest("mirror/router", "v3.11").await.unwrap();
    assert_eq!(copied.digest, list.digest);
    assert_eq!(registries.client(&target.host).blob_exists("mirror/router", &caasctl_registry::manifest::sha256_digest(&base)).await.unwrap(), Some(40 * MIB as u64));
}

#[tokio::test]
async fn overwritten_tag_kept_as_backup() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    let old = support::push_image(&registries, &target.host, "99cloud/web", Some("v1"), Format::Docker, "amd64", &[support::random_blob(MIB)]).await;
    let new = support::push_image(&registries, &source.host, "99cloud/web", Some("v2"), Format::Docker, "amd64", &[support::random_blob(MIB)]).await;

    let from = reference(&format!("{}/99cloud/web:v2", source.host));
    let to = reference(&format!("{}/99cloud/web:v1", target.host));
    let options = CopyOptions { timestamp: "20261204T210000".to_owned(), ..CopyOptions::default() };
    let (report, error) = copier(&registries, options).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.previous_digest.as_deref(), Some(old.digest.as_str()));
    let backup = report.backup_tag.clone().expect("a backup tag");
    assert_eq!(backup, format!("v1{BACKUP_TAG_MARKER}20261204T210000"));
    let dst = registries.client(&target.host);
    assert_eq!(dst.head_manifest("99cloud/web", &backup).await.unwrap().as_deref(), Some(old.digest.as_str()));
    assert_eq!(dst.head_manifest("99cloud/web", "v1").await.unwrap().as_deref(), Some(new.digest.as_str()));
}

#[tokio::test]
async fn shared_layers_mounted_across_repositories() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    let base = support::random_blob(2 * MIB);
    for name in ["a", "b", "c"] {
        support::push_image(&registries, &source.host, &format!("99cloud/{name}"), Some("1.0"), Format::Oci, "amd64", &[base.clone(), support::random_blob(MIB / 2)]).await;
    }
    let jobs: Vec<SyncJob> = ["a", "b", "c"].iter().map(|n| SyncJob::new(&format!("{}/99cloud/{n}:1.0", source.host), &target.host).unwrap()).collect();
    // One image at a time makes the order, and so which image uploads the base, deterministic.
    let copier = Arc::new(copier(&registries, CopyOptions::default()));
    let reports = sync::run(copier, &jobs, 1, &NoProgressFactory).await;
    assert!(reports.iter().all(|r| r.status == CopyStatus::Copied), "{reports:#?}");
    assert_eq!(reports[0].blobs_mounted, 0);
    assert_eq!(reports[1].blobs_mounted, 1);
    assert_eq!(reports[2].blobs_mounted, 1);
    let base_digest = caasctl_registry::manifest::sha256_digest(&base);
    assert!(registries.client(&target.host).blob_exists("99cloud/c", &base_digest).await.unwrap().is_some());
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    support::push_image(&registries, &source.host, "99cloud/dns", Some("v1"), Format::Docker, "amd64", &[support::random_blob(MIB)]).await;
    let from = reference(&format!("{}/99cloud/dns:v1", source.host));
    let to = from.map_to(&target.host).unwrap();
    let options = CopyOptions { dry_run: true, ..CopyOptions::default() };
    let (report, error) = copier(&registries, options).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.status, CopyStatus::WouldCopy);
    assert_eq!(report.blobs_copied, 2);
    assert!(report.bytes_copied >= MIB as u64);
    assert_eq!(registries.client(&target.host).head_manifest("99cloud/dns", "v1").await.unwrap(), None);
}

#[tokio::test]
async fn digest_changing_destination_rejected() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    support::push_image(&registries, &source.host, "99cloud/dns", Some("v1"), Format::Docker, "amd64", &[support::random_blob(1024)]).await;
    let from = reference(&format!("{}/99cloud/dns:v1", source.host));
    let other = format!("sha256:{}", "0".repeat(64));
    let to = reference(&format!("{}/99cloud/dns@{other}", target.host));
    let (report, error) = copier(&registries, CopyOptions::default()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(matches!(error, Some(RegistryError::DigestMismatch { .. })), "{error:?}");
    assert_eq!(report.status, CopyStatus::Failed);
}

/// Cancels the copy once `limit` bytes were reported.
struct CancelAfter {
    seen: AtomicU64,
    limit: u64,
    cancel: CancellationToken,
}

impl Progress for CancelAfter {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, bytes: u64) {
        if self.seen.fetch_add(bytes, Ordering::SeqCst) + bytes >= self.limit {
            self.cancel.cancel();
        }
    }
    fn finish(&self) {}
}

#[tokio::test]
async fn interrupted_copy_resumed() {
    let (Some(source), Some(target)) = (support::registry(), support::registry()) else { return };
    let registries = support::registries(&[&source.host, &target.host]);
    let layers: Vec<_> = (0..6).map(|_| support::random_blob(3 * MIB)).collect();
    let image = support::push_image(&registries, &source.host, "99cloud/logging", Some("v5"), Format::Oci, "amd64", &layers).await;
    let from = reference(&format!("{}/99cloud/logging:v5", source.host));
    let to = from.map_to(&target.host).unwrap();

    let cancel = CancellationToken::new();
    let interrupted = Copier::new(registries.clone(), CopyOptions { blob_jobs: 1, ..CopyOptions::default() }, cancel.clone());
    let progress = Arc::new(CancelAfter { seen: AtomicU64::new(0), limit: 7 * MIB as u64, cancel });
    let (report, error) = interrupted.copy(&from, &to, progress).await;
    assert!(matches!(error, Some(RegistryError::Cancelled)), "{error:?}");
    assert_eq!(report.status, CopyStatus::Failed);
    assert_eq!(registries.client(&target.host).head_manifest("99cloud/logging", "v5").await.unwrap(), None);

    let (resumed, error) = copier(&registries, CopyOptions::default()).copy(&from, &to, Arc::new(NoProgress)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(resumed.status, CopyStatus::Copied);
    assert!(resumed.blobs_skipped >= 2, "blobs finished before the interruption must be skipped: {resumed:?}");
    assert!(resumed.blobs_copied < 7, "{resumed:?}");
    assert_eq!(registries.client(&target.host).head_manifest("99cloud/logging", "v5").await.unwrap().as_deref(), Some(image.digest.as_str()));
}
