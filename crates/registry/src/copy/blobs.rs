//! Copying one blob into the destination: skip it when present, mount it when another
//! repository of the destination registry holds it, else stream it from the source to the
//! destination without storing it locally, in one request or in chunks.
//!
//! A streamed upload cannot be replayed by the request layer, so a failed transfer is retried
//! here: the blob is fetched again and a new upload session is opened. A chunked upload instead
//! asks the session how many bytes it holds and continues from there.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use caasctl_core::Progress;
use futures::{StreamExt, TryStreamExt};

use super::Copier;
use crate::client::blob::UploadStart;
use crate::client::{RegistryClient, RequestBody};
use crate::error::RegistryError;
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// Outcome of one blob copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlobOutcome {
    /// The destination repository had it.
    Skipped,
    /// Linked from another repository of the destination registry.
    Mounted,
    /// Uploaded, with this many bytes.
    Uploaded(u64),
}

impl Copier {
    pub(super) async fn copy_blob(&self, source: &Reference, destination: &Reference, blob: &Descriptor, progress: Arc<dyn Progress>) -> Result<BlobOutcome, RegistryError> {
        let _permit = self.blob_limit.acquire().await.map_err(|_| RegistryError::Cancelled)?;
        self.check_cancel()?;
        let slot = {
            let mut placements = self.placements.lock().unwrap_or_else(|e| e.into_inner());
            placements.entry((destination.registry.clone(), blob.digest.clone())).or_default().clone()
        };
        let mut holder = slot.lock().await;
        let dst = self.registries.client(&destination.registry);
        if holder.as_deref() == Some(destination.repository.as_str()) {
            progress.advance(blob.size);
            return Ok(BlobOutcome::Skipped);
        }
        if dst.blob_exists(&destination.repository, &blob.digest).await?.is_some() {
            *holder = Some(destination.repository.clone());
            progress.advance(blob.size);
            return Ok(BlobOutcome::Skipped);
        }
        // A repository of the same registry that holds the blob: one this run put it into, or
        // the source repository when source and destination are the same registry.
        let mount_from = holder.clone().or_else(|| (source.registry == destination.registry).then(|| source.repository.clone()));
        let start = dst.start_upload(&destination.repository, mount_from.as_deref().map(|from| (blob.digest.as_str(), from))).await?;
        let session = match start {
            UploadStart::Mounted => {
                tracing::debug!(digest = %blob.digest, from = ?mount_from, repository = %destination.repository, "blob mounted");
                *holder = Some(destination.repository.clone());
                progress.advance(blob.size);
                return Ok(BlobOutcome::Mounted);
            }
            UploadStart::Session(url) => url,
        };
        let bytes = self.upload_with_retries(source, destination, blob, session, progress).await?;
        *holder = Some(destination.repository.clone());
        Ok(BlobOutcome::Uploaded(bytes))
    }

    async fn upload_with_retries(&self, source: &Reference, destination: &Reference, blob: &Descriptor, first_session: url::Url, progress: Arc<dyn Progress>) -> Result<u64, RegistryError> {
        let src = self.registries.client(&source.registry);
        let dst = self.registries.client(&destination.registry);
        let policy = self.registries.retry_policy();
        let mut session = Some(first_session);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = match session.take() {
                Some(url) => url,
                None => match dst.start_upload(&destination.repository, None).await? {
                    UploadStart::Session(url) => url,
                    UploadStart::Mounted => return Ok(0),
                },
            };
            let transfer = async {
                match self.options.chunk_size {
                    Some(chunk) if blob.size > chunk => self.upload_chunked(&src, &dst, source, destination, blob, location, chunk, progress.clone()).await,
                    _ => upload_monolithic(&src, &dst, source, destination, blob, location, progress.clone()).await,
                }
            };
            let result = tokio::select! {
                result = transfer => result,
                _ = self.cancel.cancelled() => Err(RegistryError::Cancelled),
            };
            match result {
                Ok(bytes) => return Ok(bytes),
                Err(error) if error.is_retryable() && attempt < policy.attempts => {
                    let delay = policy.delay(attempt, None);
                    tracing::warn!(digest = %blob.digest, attempt, delay_ms = delay.as_millis() as u64, error = %crate::error::chain_text(&error), "blob upload failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_chunked(
        &self,
        src: &RegistryClient,
        dst: &RegistryClient,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
        mut location: url::Url,
        chunk_size: u64,
        progress: Arc<dyn Progress>,
    ) -> Result<u64, RegistryError> {
        let response = src.get_blob(&source.repository, &blob.digest).await?;
        let transport = |error: reqwest::Error| RegistryError::Transport {
            registry: src.registry().to_owned(),
            operation: format!("fetch blob {}@{}", source.repository, blob.digest),
            source: error,
        };
        let mut stream = response.bytes_stream();
        let mut buffer = BytesMut::with_capacity(chunk_size as usize);
        let mut offset = 0u64;
        loop {
            let next = stream.next().await.transpose().map_err(transport)?;
            if let Some(data) = &next {
                buffer.extend_from_slice(data);
            }
            let done = next.is_none();
            while buffer.len() as u64 >= chunk_size || (done && !buffer.is_empty()) {
                let take = (chunk_size as usize).min(buffer.len());
                let chunk: Bytes = buffer.split_to(take).freeze();
                location = self.send_chunk(dst, destination, location, chunk, offset).await?;
                offset += take as u64;
                progress.advance(take as u64);
            }
            if done {
                break;
            }
        }
        dst.finish_upload(location, &destination.repository, &blob.digest, RequestBody::Empty).await?;
        Ok(offset)
    }

    /// Sends one chunk. When the request fails, it queries how many bytes the session stored and
    /// sends only the rest, so a broken connection does not restart the whole blob.
    async fn send_chunk(&self, dst: &RegistryClient, destination: &Reference, location: url::Url, chunk: Bytes, offset: u64) -> Result<url::Url, RegistryError> {
        match dst.upload_chunk(location.clone(), &destination.repository, chunk.clone(), offset).await {
            Ok(next) => Ok(next),
            Err(error) if error.is_retryable() => {
                let (next, held) = dst.upload_offset(location, &destination.repository).await?;
                let end = offset + chunk.len() as u64;
                if held < offset || held > end {
                    return Err(error);
                }
                if held == end {
                    return Ok(next);
                }
                tracing::info!(repository = %destination.repository, offset, held, "resuming a chunk where the upload session stopped");
                dst.upload_chunk(next, &destination.repository, chunk.slice((held - offset) as usize..), held).await
            }
            Err(error) => Err(error),
        }
    }
}

async fn upload_monolithic(
    src: &RegistryClient,
    dst: &RegistryClient,
    source: &Reference,
    destination: &Reference,
    blob: &Descriptor,
    location: url::Url,
    progress: Arc<dyn Progress>,
) -> Result<u64, RegistryError> {
    let response = src.get_blob(&source.repository, &blob.digest).await?;
    let length = response.content_length().unwrap_or(blob.size);
    let counter = progress.clone();
    let stream = response.bytes_stream().inspect_ok(move |data| counter.advance(data.len() as u64));
    let body = reqwest::Body::wrap_stream(stream);
    dst.finish_upload(location, &destination.repository, &blob.digest, RequestBody::Stream(Some(body), length)).await?;
    Ok(length)
}
