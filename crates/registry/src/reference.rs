//! Image references (`[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`) as Docker parses them, and the mapping
//! of a source reference onto a destination registry.
//!
//! A reference without a registry means Docker Hub (`docker.io`), and a Docker Hub repository
//! without a namespace lives under `library/`, so `nginx` is `docker.io/library/nginx:latest`. The
//! first path component is a registry only when it contains `.` or `:` or is `localhost`.

use std::fmt;

use crate::error::RegistryError;

/// Registry name of Docker Hub in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry as written, such as `docker.io` or `10.0.0.5:5000`.
    pub registry: String,
    /// Repository path inside the registry, such as `99cloud/etcd`.
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest (`sha256:HEX`), when given.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference.
    ///
    /// # Errors
    /// [`RegistryError::InvalidReference`] when the text is empty, has upper-case letters in the
    /// repository, or has a malformed tag or digest.
    pub fn parse(text: &str) -> Result<Reference, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidReference { value: text.to_owned(), reason: reason.to_owned() };
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (name_and_tag, digest) = match text_trimmed.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_owned())),
            None => (text_trimmed, None),
        };
        if let Some(digest) = &digest {
            validate_digest(digest).map_err(|reason| invalid(&reason))?;
        }
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let last_slash = name_and_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                (&name_and_tag[..at], Some(name_and_tag[at + 1..].to_owned()))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(invalid("a tag has up to 128 letters, digits, '_', '.' or '-' and does not start with '.' or '-'"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first.to_owned(), rest.to_owned()),
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_owned() } else { registry };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') { format!("library/{repository}") } else { repository };
        let repository_valid = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
                    && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            });
        if !repository_valid {
            return Err(invalid("a repository path has lower-case letters, digits, '.', '_' and '-' between '/'"));
        }
        Ok(Reference { registry, repository, tag, digest })
    }

    /// Returns the tag or digest to fetch: the digest when given, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// Returns the tag, `latest` when none was given; `None` for a digest-only reference.
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// Returns the host (and port) that serves the registry API for this reference.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Maps this (source) reference onto `target`, the way the runbook retags
    /// `docker.io/99cloud/NAME:TAG` as `REGISTRY/99cloud/NAME:VERSION`.
    ///
    /// `target` is a registry alone (`10.0.0.5:5000`: the repository path and tag are kept), a
    /// repository (`10.0.0.5:5000/99cloud/etcd`: the tag is kept) or a whole reference. A digest
    /// is kept only when the source was named by digest alone.
    ///
    /// # Errors
    /// [`RegistryError::InvalidReference`] when `target` does not parse.
    pub fn map_to(&self, target: &str) -> Result<Reference, RegistryError> {
        let target = target.trim().trim_end_matches('/');
        let registry_only = !target.contains('/') && (target.contains(['.', ':']) || target == "localhost");
        let mut mapped = if registry_only {
            Reference { registry: target.to_owned(), repository: self.repository.clone(), tag: None, digest: None }
        } else {
            Reference::parse(target)?
        };
        if mapped.tag.is_none() && mapped.digest.is_none() {
            mapped.tag = self.tag.clone();
            if mapped.tag.is_none() {
                mapped.digest = self.digest.clone();
            }
        }
        Ok(mapped)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        if self.tag.is_none() && self.digest.is_none() {
            write!(f, ":{DEFAULT_TAG}")?;
        }
        Ok(())
    }
}

/// Checks that `digest` is `sha256:` followed by 64 lower-case hex digits, the only algorithm
/// registries use for content addresses in practice.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    match digest.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) => Ok(()),
        Some((algorithm, _)) if algorithm != "sha256" => Err(format!("unsupported digest algorithm {algorithm:?}")),
        _ => Err("a digest is sha256: followed by 64 lower-case hex digits".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_defaults() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.reference()), ("docker.io", "library/nginx", "latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        let r = Reference::parse("99cloud/etcd:3.4").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("docker.io", "99cloud/etcd", Some("3.4")));
        let r = Reference::parse("index.docker.io/library/busybox:1").unwrap();
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn registry_with_port_and_tag() {
        let r = Reference::parse("127.0.0.1:5000/99cloud/etcd:v3.4.23").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "99cloud/etcd");
        assert_eq!(r.tag.as_deref(), Some("v3.4.23"));
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost", "app"));
        let r = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), "latest");
    }

    #[test]
    fn digest_and_tag_with_digest() {
        let r = Reference::parse(&format!("reg.local/app@{DIGEST}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.reference(), DIGEST);
        assert_eq!(r.tag_or_default(), None);
        let r = Reference::parse(&format!("reg.local/app:1.0@{DIGEST}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.reference(), DIGEST);
    }

    #[test]
    fn invalid_references_rejected() {
        for bad in ["", "Upper/case", "reg.local/app:", "reg.local/app@sha256:abc", "reg.local/app@md5:00", "reg.local//app", "app:-x"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn map_to_registry_keeps_path_and_tag() {
        let source = Reference::parse("docker.io/99cloud/etcd:v3.4").unwrap();
        let mapped = source.map_to("10.0.0.5:5000").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.5:5000/99cloud/etcd:v3.4");
        let mapped = source.map_to("10.0.0.5:5000/99cloud/etcd:v3.3").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.5:5000/99cloud/etcd:v3.3");
        let mapped = source.map_to("10.0.0.5:5000/mirror/etcd").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.5:5000/mirror/etcd:v3.4");
        let by_digest = Reference::parse(&format!("docker.io/99cloud/etcd@{DIGEST}")).unwrap();
        assert_eq!(by_digest.map_to("reg.local").unwrap().digest.as_deref(), Some(DIGEST));
    }
}
