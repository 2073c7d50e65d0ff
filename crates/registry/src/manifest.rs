//! Manifests that the copy understands: Docker image manifest schema 2, OCI image manifest, Docker
//! manifest list and OCI image index.
//!
//! A manifest is kept as the exact bytes the registry served, because its digest is the SHA-256 of
//! those bytes. Re-serialising the parsed JSON could reorder keys or change whitespace, and so
//! change the digest that nodes and deployments refer to. The parsed form is only read to find the
//! blobs and child manifests that must be copied first.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::error::RegistryError;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `Accept` header value for manifest requests, listing every type above.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Returns `sha256:HEX` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The platform an image manifest is built for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's naming: `amd64`, `arm64`, `ppc64le`, `s390x`.
    pub architecture: String,
    /// Operating system, `linux` in practice.
    pub os: String,
    /// CPU variant, such as `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A reference from a manifest to a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the target.
    pub digest: String,
    /// Size of the target in bytes.
    #[serde(default)]
    pub size: u64,
    /// External locations; layers with URLs (Windows foreign layers) are not stored in the registry.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Platform, for the entries of a manifest list or index.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// Content a manifest refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image for one platform: its config blob and layer blobs.
    Image {
        /// Config blob.
        config: Descriptor,
        /// Layer blobs, base layer first.
        layers: Vec<Descriptor>,
    },
    /// A manifest list or image index: one manifest per platform.
    Index {
        /// Child manifests.
        manifests: Vec<Descriptor>,
    },
}

/// A manifest as served, with its digest and what it refers to.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Exact bytes served by the registry.
    pub bytes: Bytes,
    /// Media type, one of the four constants of this module.
    pub media_type: String,
    /// SHA-256 digest of `bytes`.
    pub digest: String,
    /// Parsed content.
    pub kind: ManifestKind,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Parses the bytes of a manifest; `content_type` is the response's `Content-Type`.
    ///
    /// # Errors
    /// [`RegistryError::BadManifest`] for invalid JSON, [`RegistryError::UnsupportedMediaType`]
    /// for schema 1 and other types.
    pub fn parse(reference: &str, bytes: Bytes, content_type: Option<&str>) -> Result<Manifest, RegistryError> {
        let bad = |reason: String| RegistryError::BadManifest { reference: reference.to_owned(), reason };
        let raw: RawManifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let header_type = content_type.map(|t| t.split(';').next().unwrap_or(t).trim().to_owned());
        // The header is authoritative for what the registry stored. An OCI manifest may omit its
        // mediaType field, so the shape decides when neither names a known type.
        let media_type = [header_type.as_deref(), raw.media_type.as_deref()]
            .into_iter()
            .flatten()
            .find(|t| [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX].contains(t))
            .map(str::to_owned)
            .or_else(|| match (raw.schema_version, &raw.manifests, &raw.layers) {
                (Some(2), Some(_), _) => Some(OCI_INDEX.to_owned()),
                (Some(2), None, Some(_)) => Some(OCI_MANIFEST.to_owned()),
                _ => None,
            })
            .ok_or_else(|| RegistryError::UnsupportedMediaType {
                reference: reference.to_owned(),
                media_type: header_type.clone().or(raw.media_type.clone()).unwrap_or_default(),
            })?;
        let kind = if media_type == DOCKER_LIST || media_type == OCI_INDEX {
            ManifestKind::Index { manifests: raw.manifests.ok_or_else(|| bad("an index has no manifests field".to_owned()))? }
        } else {
            ManifestKind::Image {
                config: raw.config.ok_or_else(|| bad("an image manifest has no config field".to_owned()))?,
                layers: raw.layers.unwrap_or_default(),
            }
        };
        let descriptors: Vec<&Descriptor> = match &kind {
            ManifestKind::Image { config, layers } => std::iter::once(config).chain(layers.iter()).collect(),
            ManifestKind::Index { manifests } => manifests.iter().collect(),
        };
        for descriptor in descriptors {
            crate::reference::validate_digest(&descriptor.digest).map_err(|reason| bad(format!("{}: {reason}", descriptor.digest)))?;
        }
        let digest = sha256_digest(&bytes);
        Ok(Manifest { bytes, media_type, digest, kind })
    }

    /// Returns true for a manifest list or image index.
    pub fn is_index(&self) -> bool {
        matches!(self.kind, ManifestKind::Index { .. })
    }

    /// Returns the blobs an image manifest needs in the registry, config first; layers that name
    /// external URLs are left out, as `docker push` leaves them out. Empty for an index.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        match &self.kind {
            ManifestKind::Image { config, layers } => {
                std::iter::once(config).chain(layers.iter().filter(|layer| layer.urls.is_empty())).collect()
            }
            ManifestKind::Index { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn docker_manifest_parsed_and_foreign_layer_skipped() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{A}","size":3}},"layers":[{{"digest":"{B}","size":5}},{{"digest":"{A}","size":1,"urls":["https://x"]}}]}}"#
        );
        let manifest = Manifest::parse("r", Bytes::from(text.clone()), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(manifest.media_type, DOCKER_MANIFEST);
        assert_eq!(manifest.digest, sha256_digest(text.as_bytes()));
        assert_eq!(manifest.blobs().len(), 2);
    }

    #[test]
    fn oci_index_without_media_type_field() {
        let text = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":3,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#);
        let manifest = Manifest::parse("r", Bytes::from(text), Some("application/json")).unwrap();
        assert_eq!(manifest.media_type, OCI_INDEX);
        let ManifestKind::Index { manifests } = &manifest.kind else { panic!("expected an index") };
        assert_eq!(manifests[0].platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
    }

    #[test]
    fn schema1_and_bad_digest_rejected() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let error = Manifest::parse("r", Bytes::from(schema1), Some("application/vnd.docker.distribution.manifest.v1+prettyjws")).unwrap_err();
        assert!(matches!(error, RegistryError::UnsupportedMediaType { .. }), "{error}");
        let bad = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256:12","size":1}},"layers":[]}}"#);
        assert!(matches!(Manifest::parse("r", Bytes::from(bad), None), Err(RegistryError::BadManifest { .. })));
    }
}
