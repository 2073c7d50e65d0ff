//! Synthetic images pushed with the client under test: random layers, a config blob per
//! platform, Docker or OCI manifests, and manifest lists or indexes over them.

use std::sync::Arc;

use bytes::Bytes;
use caasctl_registry::client::blob::UploadStart;
use caasctl_registry::client::RequestBody;
use caasctl_registry::manifest::{sha256_digest, Manifest, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use caasctl_registry::{ClientOptions, Registries};
use caasctl_testing::registry::Registry;
use rand::RngCore;

/// Starts a plain registry, or returns `None` (skip) when the binary is missing outside CI.
pub fn registry() -> Option<Registry> {
    caasctl_testing::require(Registry::available(), &Registry::binary().display().to_string()).then(Registry::start)
}

/// Clients that reach every given registry over plain HTTP.
pub fn registries(hosts: &[&str]) -> Arc<Registries> {
    Arc::new(Registries::new(ClientOptions { insecure: hosts.iter().map(|h| h.to_string()).collect(), ..ClientOptions::default() }))
}

/// Returns `size` random bytes.
pub fn random_blob(size: usize) -> Bytes {
    let mut data = vec![0u8; size];
    rand::thread_rng().fill_bytes(&mut data);
    Bytes::from(data)
}

/// Uploads a blob into `repository` and returns its digest.
pub async fn push_blob(registries: &Registries, host: &str, repository: &str, data: Bytes) -> String {
    let client = registries.client(host);
    let digest = sha256_digest(&data);
    if client.blob_exists(repository, &digest).await.unwrap().is_some() {
        return digest;
    }
    let UploadStart::Session(location) = client.start_upload(repository, None).await.unwrap() else { panic!("no upload session") };
    client.finish_upload(location, repository, &digest, RequestBody::Bytes(data)).await.unwrap();
    digest
}

/// Format of a synthetic image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker schema 2 manifests and a Docker manifest list.
    Docker,
    /// OCI manifests and an OCI image index.
    Oci,
}

/// Pushes a single-platform image whose layers are `layers`, and returns its manifest.
pub async fn push_image(registries: &Registries, host: &str, repository: &str, tag: Option<&str>, format: Format, arch: &str, layers: &[Bytes]) -> Manifest {
    let layer_type = match format {
        Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let config_type = match format {
        Format::Docker => "application/vnd.docker.container.image.v1+json",
        Format::Oci => "application/vnd.oci.image.config.v1+json",
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let digest = push_blob(registries, host, repository, layer.clone()).await;
        diff_ids.push(digest.clone());
        descriptors.push(serde_json::json!({ "mediaType": layer_type, "digest": digest, "size": layer.len() }));
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": { "Labels": { "nonce": hex::encode(random_blob(8)) } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_digest = push_blob(registries, host, repository, Bytes::from(config.clone())).await;
    let media_type = match format {
        Format::Docker => DOCKER_MANIFEST,
        Format::Oci => OCI_MANIFEST,
    };
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type,
        "config": { "mediaType": config_type, "digest": config_digest, "size": config.len() },
        "layers": descriptors,
    });
    // Pretty printing makes the bytes differ from what a re-serialisation would produce, so a
    // client that rewrote manifests would change the digest and fail the tests.
    let bytes = Bytes::from(serde_json::to_vec_pretty(&body).unwrap());
    let manifest = Manifest::parse(repository, bytes, Some(media_type)).unwrap();
    let client = registries.client(host);
    client.put_manifest(repository, tag.unwrap_or(&manifest.digest), &manifest).await.unwrap();
    manifest
}

/// Pushes a multi-platform image: one image per architecture sharing `base`, each with its
/// own random layer of `own_layer` bytes, under a list or index tagged `tag`.
pub async fn push_multi_arch(registries: &Registries, host: &str, repository: &str, tag: &str, format: Format, base: &Bytes, own_layer: usize) -> Manifest {
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let child = push_image(registries, host, repository, None, format, arch, &[base.clone(), random_blob(own_layer)]).await;
        entries.push(serde_json::json!({
            "mediaType": child.media_type, "digest": child.digest, "size": child.bytes.len(),
            "platform": { "architecture": arch, "os": "linux" },
        }));
    }
    let media_type = match format {
        Format::Docker => DOCKER_LIST,
        Format::Oci => OCI_INDEX,
    };
    let body = serde_json::json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": entries });
    let bytes = Bytes::from(serde_json::to_vec_pretty(&body).unwrap());
    let manifest = Manifest::parse(repository, bytes, Some(media_type)).unwrap();
    registries.client(host).put_manifest(repository, tag, &manifest).await.unwrap();
    manifest
}
