//! Blob calls of the registry HTTP API v2: existence check, download, cross-repository mount, and
//! upload in one request (monolithic) or in chunks.
//!
//! An upload starts with `POST /v2/NAME/blobs/uploads/`, which returns a session URL in
//! `Location`. A monolithic upload sends the whole blob with `PUT LOCATION?digest=D`; a chunked one
//! sends `PATCH LOCATION` with `Content-Range` per chunk, each response carrying the next session URL,
//! and ends with an empty `PUT ...?digest=D`. The registry checks the digest when the upload ends,
//! so a corrupted transfer fails there.

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use url::Url;

use super::{pull_scope, push_scope, RegistryClient, RegistryRequest, RequestBody};
use crate::error::RegistryError;

/// The result of starting an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// The blob was mounted from another repository; nothing is left to send.
    Mounted,
    /// An upload session; send the blob to this URL.
    Session(Url),
}

impl RegistryClient {
    fn blob_request(&self, method: Method, url: Url, scopes: Vec<String>, operation: String, body: RequestBody) -> RegistryRequest {
        RegistryRequest { method, url, scopes, headers: HeaderMap::new(), body, operation }
    }

    fn location(&self, response: &reqwest::Response, operation: &str) -> Result<Url, RegistryError> {
        response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|location| self.resolve(location))
            .ok_or_else(|| RegistryError::Status {
                registry: self.registry.clone(),
                operation: operation.to_owned(),
                status: response.status().as_u16(),
                body: "the response has no Location header".to_owned(),
            })
    }

    /// Returns the size of a blob when the repository has it, `None` when not.
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<Option<u64>, RegistryError> {
        let operation = format!("check blob {repository}@{digest}");
        let request = self.blob_request(Method::HEAD, self.url(&format!("{repository}/blobs/{digest}")), vec![pull_scope(repository)], operation.clone(), RequestBody::Empty);
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let length = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
                Ok(Some(length.unwrap_or(0)))
            }
            _ => Err(self.status_error(&operation, response).await),
        }
    }

    /// Starts downloading a blob and returns the response, whose body is the blob.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the repository has no such blob.
    pub async fn get_blob(&self, repository: &str, digest: &str) -> Result<reqwest::Response, RegistryError> {
        let operation = format!("fetch blob {repository}@{digest}");
        let request = self.blob_request(Method::GET, self.url(&format!("{repository}/blobs/{digest}")), vec![pull_scope(repository)], operation.clone(), RequestBody::Empty);
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound { registry: self.registry.clone(), kind: "blob", name: format!("{repository}@{digest}") }),
            status if status.is_success() => Ok(response),
            _ => Err(self.status_error(&operation, response).await),
        }
    }

    /// Starts an upload to `repository`. With `mount = Some((digest, from))` the registry is
    /// requested to link the blob from repository `from`. A registry that cannot (the blob is not
    /// there, or mounts are off) opens an ordinary upload session instead (202), which the
    /// caller fills.
    pub async fn start_upload(&self, repository: &str, mount: Option<(&str, &str)>) -> Result<UploadStart, RegistryError> {
        let mut url = self.url(&format!("{repository}/blobs/uploads/"));
        let mut scopes = vec![push_scope(repository)];
        if let Some((digest, from)) = mount {
            url.query_pairs_mut().append_pair("mount", digest).append_pair("from", from);
            scopes.push(pull_scope(from));
        }
        let operation = match mount {
            Some((digest, from)) => format!("mount blob {digest} from {from} into {repository}"),
            None => format!("start upload to {repository}"),
        };
        let mut request = self.blob_request(Method::POST, url, scopes, operation.clone(), RequestBody::Bytes(Bytes::new()));
        request.headers.insert(CONTENT_LENGTH, 0.into());
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED => Ok(UploadStart::Session(self.location(&response, &operation)?)),
            _ => Err(self.status_error(&operation, response).await),
        }
    }

    /// Ends an upload with `PUT LOCATION?digest=D`, sending `body` (the whole blob, or nothing
    /// after chunks).
    pub async fn finish_upload(&self, location: Url, repository: &str, digest: &str, body: RequestBody) -> Result<(), RegistryError> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest);
        let operation = format!("upload blob {digest} to {repository}");
        let mut request = self.blob_request(Method::PUT, url, vec![push_scope(repository)], operation.clone(), body);
        request.headers.insert(CONTENT_TYPE, "application/octet-stream".parse().expect("static header"));
        if matches!(request.body, RequestBody::Empty) {
            request.headers.insert(CONTENT_LENGTH, 0.into());
        }
        let response = self.send(request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.status_error(&operation, response).await);
        }
        Ok(())
    }

    /// Sends one chunk of a chunked upload that starts at byte `offset`, and returns the session
    /// URL for the next chunk.
    pub async fn upload_chunk(&self, location: Url, repository: &str, chunk: Bytes, offset: u64) -> Result<Url, RegistryError> {
        let end = offset + chunk.len() as u64 - 1;
        let operation = format!("upload bytes {offset}-{end} to {repository}");
        let mut request = self.blob_request(Method::PATCH, location, vec![push_scope(repository)], operation.clone(), RequestBody::Bytes(chunk));
        request.headers.insert(CONTENT_TYPE, "application/octet-stream".parse().expect("static header"));
        request.headers.insert("content-range", format!("{offset}-{end}").parse().expect("digits are a valid header value"));
        let response = self.send(request).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&operation, response).await);
        }
        self.location(&response, &operation)
    }

    /// Returns how many bytes an upload session holds, from the `Range: 0-N` of a status request;
    /// a retried chunk resumes from there.
    pub async fn upload_offset(&self, location: Url, repository: &str) -> Result<(Url, u64), RegistryError> {
        let operation = format!("check upload to {repository}");
        let request = self.blob_request(Method::GET, location, vec![push_scope(repository)], operation.clone(), RequestBody::Empty);
        let response = self.send(request).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(self.status_error(&operation, response).await);
        }
        let next = self.location(&response, &operation)?;
        let offset = response
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|range| range.rsplit('-').next())
            .and_then(|end| end.parse::<u64>().ok())
            .map(|end| end + 1)
            .unwrap_or(0);
        Ok((next, offset))
    }
}
