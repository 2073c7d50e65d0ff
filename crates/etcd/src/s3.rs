//! Backup repositories in S3-compatible object storage (AWS, MinIO, Ceph RGW, Alibaba OSS,
//! OpenStack Swift's S3 API) through the `object_store` crate.
//!
//! Layout under `s3://BUCKET/PREFIX/`: `ID/manifest.json`, `ID/snapshot.db[.age]`,
//! `ID/config/NAME.tar.gz[.age]` and `ID/verify.json`, as in a local repository. Object stores
//! have no rename, so the manifest is written last and a backup without one is listed as
//! incomplete. The snapshot goes up as a multipart upload, which becomes an object only when it
//! is completed and is aborted on failure. Removal writes `ID/deleting` and deletes the manifest
//! first, so a removal cut short never leaves a backup listed as complete.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
//! or else from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`, profile `AWS_PROFILE` or `default`). No `Debug` output shows them.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart};
use tokio::runtime::Handle;

use crate::blob::BlobSink;

/// Default part size of multipart uploads in bytes. S3 allows at most 10,000 parts, so 8 MiB
/// parts cover snapshots of up to about 78 GiB, far above etcd's 8 GiB backend limit.
/// `scripts/bench-s3.sh` measured no gain from 16 MiB parts with 4 in flight, only more memory.
pub const PART_SIZE: usize = 8 << 20;
/// Default number of parts uploaded at the same time. An upload keeps about
/// `PART_SIZE * (UPLOAD_CONCURRENCY + 1)` bytes of memory.
pub const UPLOAD_CONCURRENCY: usize = 2;
/// Environment variable that overrides [`PART_SIZE`], in MiB (5 to 5120, the S3 limits).
pub const PART_SIZE_ENV: &str = "CAASCTL_S3_PART_MIB";
/// Environment variable that overrides [`UPLOAD_CONCURRENCY`] (1 to 64).
pub const CONCURRENCY_ENV: &str = "CAASCTL_S3_UPLOAD_CONCURRENCY";

/// Returns the part size and the parts in flight: the defaults, or the values of
/// [`PART_SIZE_ENV`] and [`CONCURRENCY_ENV`]. Values out of range are logged and ignored.
pub fn upload_tuning() -> (usize, usize) {
    let read = |name: &str, range: std::ops::RangeInclusive<usize>, default: usize| match env(name).map(|v| v.parse::<usize>()) {
        None => default,
        Some(Ok(value)) if range.contains(&value) => value,
        Some(_) => {
            tracing::warn!(variable = name, min = *range.start(), max = *range.end(), default, "ignoring an invalid upload setting; using the default");
            default
        }
    };
    let part_mib = read(PART_SIZE_ENV, 5..=5120, PART_SIZE >> 20);
    (part_mib << 20, read(CONCURRENCY_ENV, 1..=64, UPLOAD_CONCURRENCY))
}
/// Marker object of a backup being removed.
pub const DELETING_MARKER: &str = "deleting";

/// Connection settings of an S3 repository.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL; AWS when `None`.
    pub endpoint: Option<String>,
    /// Region; `AWS_REGION`, then `us-east-1`, when `None`.
    pub region: Option<String>,
    /// `ENDPOINT/BUCKET` addressing instead of `BUCKET.ENDPOINT`.
    pub path_style: bool,
}

/// An S3 error.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The URL is not `s3://BUCKET[/PREFIX]`.
    #[error("invalid S3 repository URL {url}")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The endpoint is not an http or https URL with a host.
    #[error("invalid S3 endpoint {value}")]
    BadEndpoint {
        /// The value given.
        value: String,
    },
    /// No credentials were found.
    #[error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or write a credentials file")]
    NoCredentials,
    /// A request failed.
    #[error("failed to {action} {location}")]
    Request {
        /// Failed action, such as `list`.
        action: &'static str,
        /// `s3://BUCKET/KEY` acted on.
        location: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
}

impl S3Error {
    /// Returns true when the server rejected the credentials or the signature.
    pub fn is_auth(&self) -> bool {
        match self {
            S3Error::Request { source, .. } => {
                let text = format!("{source:?}");
                matches!(source, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
                    || text.contains("403")
                    || text.contains("SignatureDoesNotMatch")
                    || text.contains("InvalidAccessKeyId")
            }
            S3Error::NoCredentials => true,
            S3Error::BadUrl { .. } | S3Error::BadEndpoint { .. } => false,
        }
    }
}

struct Credentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("key_id", &self.key_id).field("secret", &"<redacted>").field("token", &self.token.as_ref().map(|_| "<redacted>")).finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Finds credentials in the environment, then in the shared credentials file.
fn credentials() -> Option<Credentials> {
    if let (Some(key_id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Some(Credentials { key_id, secret, token: env("AWS_SESSION_TOKEN") });
    }
    let path = env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(path).ok()?;
    parse_credentials_file(&text, &env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned()))
}

/// Reads one profile of an INI credentials file.
fn parse_credentials_file(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
            continue;
        }
        let Some((name, value)) = line.split_once('=') else { continue };
        if !in_profile {
            continue;
        }
        let value = value.trim().to_owned();
        match name.trim() {
            "aws_access_key_id" => key_id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    Some(Credentials { key_id: key_id?, secret: secret?, token })
}

/// An S3 backup repository.
#[derive(Clone)]
pub struct ObjectRepo {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for ObjectRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectRepo({})", self.url())
    }
}

/// Splits `s3://BUCKET/PREFIX` into bucket and prefix (without slashes at either end).
pub fn parse_url(url: &str) -> Result<(String, String), S3Error> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| S3Error::BadUrl { url: url.to_owned() })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains(|c: char| c.is_whitespace()) {
        return Err(S3Error::BadUrl { url: url.to_owned() });
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Returns the endpoint URL to hand to object_store and whether requests use path-style
/// addressing. object_store sends virtual-hosted requests to a custom endpoint as it is, so
/// that endpoint must already name the bucket: `https://oss.example.com` becomes
/// `https://BUCKET.oss.example.com`. An endpoint whose host is an IP address or `localhost`
/// cannot carry a bucket name, so it is always addressed path-style, as the AWS SDKs do.
fn endpoint_for(endpoint: &str, bucket: &str, path_style: bool) -> Result<(String, bool), S3Error> {
    let bad = || S3Error::BadEndpoint { value: endpoint.to_owned() };
    let url = url::Url::parse(endpoint).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    let host = match url.host() {
        Some(url::Host::Domain(host)) if !host.eq_ignore_ascii_case("localhost") => host.to_owned(),
        Some(_) => return Ok((endpoint.trim_end_matches('/').to_owned(), true)),
        None => return Err(bad()),
    };
    if path_style || host.starts_with(&format!("{bucket}.")) {
        return Ok((endpoint.trim_end_matches('/').to_owned(), path_style));
    }
    let mut hosted = url.clone();
    hosted.set_host(Some(&format!("{bucket}.{host}"))).map_err(|_| bad())?;
    Ok((hosted.as_str().trim_end_matches('/').to_owned(), false))
}

impl ObjectRepo {
    /// Connects to `s3://BUCKET/PREFIX`. No request is sent yet.
    ///
    /// # Errors
    /// [`S3Error::BadUrl`], [`S3Error::NoCredentials`], or the client cannot be built.
    pub fn open(url: &str, options: &S3Options) -> Result<ObjectRepo, S3Error> {
        let (bucket, prefix) = parse_url(url)?;
        let credentials = credentials().ok_or(S3Error::NoCredentials)?;
        let region = options.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
        let (endpoint, path_style) = match &options.endpoint {
            Some(endpoint) => {
                let (endpoint, path_style) = endpoint_for(endpoint, &bucket, options.path_style)?;
                (Some(endpoint), path_style)
            }
            None => (None, options.path_style),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(region)
            .with_access_key_id(credentials.key_id)
            .with_secret_access_key(credentials.secret)
            .with_virtual_hosted_style_request(!path_style)
            .with_client_options(ClientOptions::new().with_allow_http(true).with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(120)))
            .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(20), ..RetryConfig::default() });
        if let Some(token) = credentials.token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|source| S3Error::Request { action: "configure", location: url.to_owned(), source })?;
        Ok(ObjectRepo { store: Arc::new(store), bucket, prefix })
    }

    /// Returns `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() { format!("s3://{}", self.bucket) } else { format!("s3://{}/{}", self.bucket, self.prefix) }
    }

    /// Returns the object path of `name` below the prefix.
    pub fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() { ObjectPath::from(name) } else { ObjectPath::from(format!("{}/{name}", self.prefix)) }
    }

    fn error(&self, action: &'static str, path: &ObjectPath) -> impl FnOnce(object_store::Error) -> S3Error {
        let location = format!("s3://{}/{}", self.bucket, path);
        move |source| S3Error::Request { action, location, source }
    }

    /// Lists every object below the prefix as (name relative to the prefix, size, modified).
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn list_objects(&self) -> Result<Vec<(String, u64, SystemTime)>, S3Error> {
        let root = if self.prefix.is_empty() { None } else { Some(ObjectPath::from(self.prefix.as_str())) };
        let mut stream = self.store.list(root.as_ref());
        let mut objects = Vec::new();
        let skip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        while let Some(item) = stream.next().await {
            let meta = item.map_err(self.error("list", &root.clone().unwrap_or_default()))?;
            let name = meta.location.as_ref().get(skip..).unwrap_or_default().to_owned();
            let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.last_modified.timestamp().max(0) as u64);
            objects.push((name, meta.size, modified));
        }
        Ok(objects)
    }

    /// Reads a whole (small) object.
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn get_bytes(&self, name: &str) -> Result<Bytes, S3Error> {
        let path = self.path(name);
        let result = self.store.get(&path).await.map_err(self.error("read", &path))?;
        result.bytes().await.map_err(self.error("read", &path))
    }

    /// Writes a whole (small) object in one request.
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn put_bytes(&self, name: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let path = self.path(name);
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(self.error("write", &path))?;
        Ok(())
    }

    /// Deletes one object.
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn delete(&self, name: &str) -> Result<(), S3Error> {
        let path = self.path(name);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.error("delete", &path)(source)),
        }
    }

    /// Starts a multipart upload of `name` and returns it as a sink for a writer thread.
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn upload(&self, name: &str) -> Result<Box<dyn BlobSink>, S3Error> {
        let path = self.path(name);
        let upload = self.store.put_multipart(&path).await.map_err(self.error("start the upload of", &path))?;
        let (part_size, concurrency) = upload_tuning();
        let writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        Ok(Box::new(UploadSink { upload: Some(writer), concurrency, handle: Handle::current(), location: path.to_string() }))
    }

    /// Opens an object for reading from a thread outside the runtime.
    ///
    /// # Errors
    /// [`S3Error::Request`].
    pub async fn reader(&self, name: &str) -> Result<Box<dyn Read + Send>, S3Error> {
        let path = self.path(name);
        let result = self.store.get(&path).await.map_err(self.error("read", &path))?;
        Ok(Box::new(ObjectReader { stream: result.into_stream(), handle: Handle::current(), pending: Bytes::new() }))
    }
}

/// A multipart upload driven from a plain thread: each write waits until fewer than
/// `concurrency` parts are in flight, so memory stays bounded.
struct UploadSink {
    upload: Option<WriteMultipart>,
    concurrency: usize,
    handle: Handle,
    location: String,
}

impl Write for UploadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let upload = self.upload.as_mut().ok_or_else(|| io::Error::other("upload already finished"))?;
        self.handle.block_on(upload.wait_for_capacity(self.concurrency)).map_err(io::Error::other)?;
        // A full part is sent by a task spawned on the runtime, which needs its context here.
        let _runtime = self.handle.enter();
        upload.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobSink for UploadSink {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        let upload = self.upload.take().ok_or_else(|| io::Error::other("upload already finished"))?;
        self.handle.block_on(upload.finish()).map(|_| ()).map_err(io::Error::other)
    }

    fn abort(mut self: Box<Self>) {
        if let Some(upload) = self.upload.take() {
            match self.handle.block_on(upload.abort()) {
                Ok(()) => tracing::info!(location = %self.location, "multipart upload aborted"),
                Err(error) => tracing::warn!(location = %self.location, error = %error, "failed to abort the multipart upload; the store keeps its parts until its lifecycle rules remove them"),
            }
        }
    }
}

struct ObjectReader {
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    handle: Handle,
    pending: Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(error)) => return Err(io::Error::other(error)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_the_bucket() {
        let hosted = endpoint_for("https://oss-cn-hangzhou.aliyuncs.com", "etcd-backups", false).unwrap();
        assert_eq!(hosted, ("https://etcd-backups.oss-cn-hangzhou.aliyuncs.com".to_owned(), false));
        let already = endpoint_for("https://etcd-backups.s3.example.com/", "etcd-backups", false).unwrap();
        assert_eq!(already, ("https://etcd-backups.s3.example.com".to_owned(), false));
        let path = endpoint_for("https://s3.example.com:9000", "b", true).unwrap();
        assert_eq!(path, ("https://s3.example.com:9000".to_owned(), true));
        for address in ["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"] {
            let (endpoint, path_style) = endpoint_for(address, "b", false).unwrap();
            assert_eq!(endpoint, address, "an address endpoint is kept");
            assert!(path_style, "{address} is addressed path-style");
        }
        for bad in ["127.0.0.1:9000", "ftp://s3.example.com", "not a url"] {
            assert!(matches!(endpoint_for(bad, "b", false), Err(S3Error::BadEndpoint { .. })), "{bad}");
        }
    }

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(parse_url("s3://b/p/q/").unwrap(), ("b".to_owned(), "p/q".to_owned()));
        assert_eq!(parse_url("s3://b").unwrap(), ("b".to_owned(), String::new()));
        assert!(parse_url("s3:///p").is_err());
        assert!(parse_url("/tmp/x").is_err());
    }

    #[test]
    fn credentials_file_profiles_and_redaction() {
        let text = "[default]\naws_access_key_id = AK1\naws_secret_access_key = S1\n\n[ops]\naws_access_key_id=AK2\naws_secret_access_key=S2\naws_session_token=T2\n";
        let ops = parse_credentials_file(text, "ops").unwrap();
        assert_eq!((ops.key_id.as_str(), ops.secret.as_str(), ops.token.as_deref()), ("AK2", "S2", Some("T2")));
        let shown = format!("{ops:?}");
        assert!(!shown.contains("S2") && !shown.contains("T2"), "{shown}");
        assert!(parse_credentials_file(text, "missing").is_none());
    }
}
