//! Streaming a v3 snapshot from one member into a file.
//!
//! etcd sends the backend database in chunks and then one more message holding the SHA-256 of
//! those bytes; `etcdctl snapshot save` writes both into the file, and `snapshot restore` later
//! recognises the appended hash by the file size (`size % 512 == 32`). caasctl writes the same
//! bytes, so its files stay usable by etcdctl and etcdutl, and checks the appended hash while the
//! stream arrives. Receiving and hashing run on different threads so that hashing costs no wall
//! time on a machine with two cores.
//!
//! The writing thread hashes the plaintext first and then hands the bytes to a
//! [`StoredWriter`], which may encrypt them and sends them to a local file or an object upload.
//! The destination is committed only after the appended hash matched, and aborted otherwise.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use caasctl_core::Progress;
use sha2::{Digest, Sha256};
use tracing::{info, info_span, Instrument};

use crate::blob::{BlobSink, FileSink, StoredDigest, StoredWriter};
use crate::client::MemberClient;
use crate::error::{chain_text, EtcdError};

/// Length of the SHA-256 that etcd appends to a snapshot stream.
pub const HASH_LEN: usize = 32;

/// Incremental hashes of a snapshot file: the whole file, and the database part without the
/// trailing 32 bytes, computed in one pass by holding the last 32 bytes back.
#[derive(Clone, Default)]
pub struct SnapshotHasher {
    db: Sha256,
    tail: Vec<u8>,
    total: u64,
}

/// The hashes of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDigest {
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub file_sha256: String,
    /// SHA-256 of the file without its last 32 bytes, hex.
    pub db_sha256: String,
    /// The last 32 bytes, hex; they are etcd's hash when [`SnapshotDigest::has_appended_hash`].
    pub trailer: String,
}

impl SnapshotDigest {
    /// Returns true when the file's size says it carries an appended hash, by the rule
    /// `etcdutl snapshot restore` uses: a bbolt file is a whole number of pages (multiples of 512
    /// bytes), so 32 extra bytes can only be the hash.
    pub fn has_appended_hash(&self) -> bool {
        self.size % 512 == HASH_LEN as u64
    }

    /// Returns true when the appended hash matches the database bytes.
    pub fn appended_hash_matches(&self) -> bool {
        self.has_appended_hash() && self.trailer == self.db_sha256
    }
}

impl SnapshotHasher {
    /// Feeds the next bytes of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if chunk.len() >= HASH_LEN {
            self.db.update(&self.tail);
            self.db.update(&chunk[..chunk.len() - HASH_LEN]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - HASH_LEN..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > HASH_LEN {
                let spill = self.tail.len() - HASH_LEN;
                self.db.update(&self.tail[..spill]);
                self.tail.drain(..spill);
            }
        }
    }

    /// Returns the hashes of everything fed so far.
    pub fn finish(self) -> SnapshotDigest {
        let mut file = self.db.clone();
        file.update(&self.tail);
        SnapshotDigest {
            size: self.total,
            file_sha256: hex::encode(file.finalize()),
            db_sha256: hex::encode(self.db.finalize()),
            trailer: hex::encode(&self.tail),
        }
    }
}

/// Hashes an existing snapshot file, reporting progress.
///
/// # Errors
/// The file cannot be read.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> std::io::Result<SnapshotDigest> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    progress.start(&path.display().to_string(), Some(total));
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = SnapshotHasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        progress.advance(read as u64);
    }
    progress.finish();
    Ok(hasher.finish())
}

/// Options for one snapshot download.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamOptions {
    /// Maximum transfer rate in bytes per second; unlimited when `None`.
    pub rate_limit: Option<u64>,
}

/// Streams a snapshot from `client` into a new file at `path` (created with mode 0600, fsynced),
/// checking the hash etcd appends.
///
/// On error the partial file is removed.
///
/// # Errors
/// [`EtcdError::SnapshotStream`] when the stream breaks, [`EtcdError::SnapshotHashMismatch`]
/// when the appended hash does not match, [`EtcdError::WriteFile`] for local I/O.
pub async fn stream_to_file(client: &MemberClient, path: &Path, progress: &dyn Progress, options: StreamOptions) -> Result<SnapshotDigest, EtcdError> {
    let sink = FileSink::create(path).map_err(|source| EtcdError::WriteFile { path: path.to_owned(), source })?;
    let (digest, _) = stream_to_sink(client, Box::new(sink), &[], &path.display().to_string(), progress, options).await?;
    Ok(digest)
}

/// Streams a snapshot from `client` through the plaintext hashes and (with `recipients`) age
/// encryption into `sink`, named `target` in logs and errors. The sink is committed only after
/// etcd's appended hash matched the received bytes; on any error it is aborted.
///
/// # Errors
/// [`EtcdError::SnapshotStream`] when the stream breaks, [`EtcdError::SnapshotHashMismatch`]
/// when the appended hash does not match, [`EtcdError::WriteFile`] when the sink fails.
pub async fn stream_to_sink(
    client: &MemberClient,
    sink: Box<dyn BlobSink>,
    recipients: &[age::x25519::Recipient],
    target: &str,
    progress: &dyn Progress,
    options: StreamOptions,
) -> Result<(SnapshotDigest, StoredDigest), EtcdError> {
    let span = info_span!("etcd.snapshot.save", endpoint = %client.endpoint, target = %target, encrypted = !recipients.is_empty());
    async move {
        let started = Instant::now();
        let write_error = |source: std::io::Error| EtcdError::WriteFile { path: target.into(), source };
        let (sender, receiver) = mpsc::sync_channel::<Chunk>(256);
        // The writer is created on its own thread too: the age header goes out at once, and an
        // upload sink must not block a runtime thread.
        let recipients = recipients.to_vec();
        let writer = std::thread::spawn(move || match StoredWriter::new_hashed_upstream(sink, &recipients) {
            Ok(writer) => write_chunks(writer, receiver),
            Err(error) => Err(error),
        });

        let received = receive(client, &sender, progress, options).await;
        if received.is_ok() {
            let _ = sender.send(Chunk::End);
        }
        drop(sender);
        let written = writer.join().unwrap_or_else(|_| Err(std::io::Error::other("snapshot writer thread panicked")));
        progress.finish();
        let received = received?;
        let (digest, stored) = match written.map_err(write_error)? {
            Written::Stored(digest, stored) => (digest, stored),
            Written::Mismatch(digest) => {
                return Err(EtcdError::SnapshotHashMismatch { endpoint: client.endpoint.clone(), expected: digest.trailer.clone(), actual: digest.db_sha256.clone() });
            }
        };
        info!(bytes = received, stored_bytes = stored.size, elapsed_ms = started.elapsed().as_millis() as u64, sha256 = %digest.file_sha256, "snapshot saved");
        Ok((digest, stored))
    }
    .instrument(span)
    .await
}

/// A message to the writing thread.
enum Chunk {
    Data(Vec<u8>),
    /// The stream ended normally; without it the writer aborts.
    End,
}

enum Written {
    Stored(SnapshotDigest, StoredDigest),
    Mismatch(SnapshotDigest),
}

async fn receive(client: &MemberClient, sender: &mpsc::SyncSender<Chunk>, progress: &dyn Progress, options: StreamOptions) -> Result<u64, EtcdError> {
    let started = Instant::now();
    let mut received: u64 = 0;
    let broken = |received: u64, reason: String| EtcdError::SnapshotStream { endpoint: client.endpoint.clone(), received, reason };
    let mut stream = client.snapshot().await?;
    let mut announced = false;
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => return Err(broken(received, chain_text(&error))),
        };
        let blob = message.blob();
        if !announced {
            let total = received + blob.len() as u64 + message.remaining_bytes() + HASH_LEN as u64;
            progress.start(&client.endpoint, Some(total));
            announced = true;
        }
        received += blob.len() as u64;
        progress.advance(blob.len() as u64);
        if sender.send(Chunk::Data(blob.to_vec())).is_err() {
            // The writer stopped early; its own error explains why.
            break;
        }
        if let Some(limit) = options.rate_limit.filter(|l| *l > 0) {
            let due = Duration::from_secs_f64(received as f64 / limit as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
    if received == 0 {
        return Err(broken(0, "the stream ended without data".to_owned()));
    }
    Ok(received)
}

fn write_chunks(mut writer: StoredWriter, receiver: mpsc::Receiver<Chunk>) -> std::io::Result<Written> {
    let mut hasher = SnapshotHasher::default();
    let mut ended = false;
    for chunk in receiver {
        match chunk {
            Chunk::Data(bytes) => {
                hasher.update(&bytes);
                if let Err(error) = writer.write_all(&bytes) {
                    writer.abort();
                    return Err(error);
                }
            }
            Chunk::End => {
                ended = true;
                break;
            }
        }
    }
    let digest = hasher.finish();
    if !ended {
        writer.abort();
        return Err(std::io::Error::other("the snapshot stream stopped early"));
    }
    if !digest.appended_hash_matches() {
        writer.abort();
        return Ok(Written::Mismatch(digest));
    }
    let mut stored = writer.finish()?;
    // A plain snapshot is stored as received, so the file hash above is the stored bytes' hash.
    if stored.sha256.is_empty() {
        stored.sha256.clone_from(&digest.file_sha256);
    }
    Ok(Written::Stored(digest, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_chunking_does_not_change_digest() {
        let mut data: Vec<u8> = (0..4096u32 * 3).map(|i| (i % 251) as u8).collect();
        let db_hash = Sha256::digest(&data);
        data.extend_from_slice(&db_hash);

        let whole = {
            let mut h = SnapshotHasher::default();
            h.update(&data);
            h.finish()
        };
        for chunk_size in [1, 7, 31, 32, 33, 1000, 4096] {
            let mut h = SnapshotHasher::default();
            for chunk in data.chunks(chunk_size) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), whole, "chunk size {chunk_size}");
        }
        assert!(whole.has_appended_hash());
        assert!(whole.appended_hash_matches());
        assert_eq!(whole.file_sha256, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn db_without_hash_is_recognised() {
        let data = vec![0u8; 4096 * 2];
        let mut h = SnapshotHasher::default();
        h.update(&data);
        let digest = h.finish();
        assert!(!digest.has_appended_hash());
        assert!(!digest.appended_hash_matches());
    }
}
