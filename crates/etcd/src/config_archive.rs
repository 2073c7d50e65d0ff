//! Archives of an etcd member's configuration directory (`/etc/etcd`: `etcd.conf` and the
//! certificates and keys the cluster uses), stored beside the snapshot as a gzip-compressed tar.
//!
//! [`archive_bytes`] builds the archive in memory, which suits a configuration directory of a few
//! files and lets a failed write abort its destination cleanly.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// A configuration archive built on a member's host (through SSH or a pod's container) and
/// handed to the backup as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedArchive {
    /// Member the archive belongs to, as the manifest records it.
    pub member: String,
    /// File name in the backup's `config/` directory, without `.tar.gz`, such as `master-0` or
    /// `master-0.static-pod`.
    pub file_stem: String,
    /// What was archived, such as `ssh:root@10.0.0.1:/etc/etcd`.
    pub source: String,
    /// The `.tar.gz` bytes.
    pub bytes: Vec<u8>,
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `source` (a directory, recursively, keeping modes) as a `.tar.gz` to the new file
/// `target` with mode 0600, fsyncs it, and returns its size and SHA-256.
///
/// Symbolic links are stored as links, not followed.
///
/// # Errors
/// Reading the directory or writing the archive failed.
pub fn write_archive(source: &Path, target: &Path) -> std::io::Result<(u64, String)> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(target)?;
    let hashing = HashingWriter { inner: file, hasher: Sha256::new(), written: 0 };
    let mut builder = tar::Builder::new(GzEncoder::new(hashing, Compression::default()));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", source)?;
    let encoder = builder.into_inner()?;
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    hashing.inner.sync_all()?;
    Ok((hashing.written, hex::encode(hashing.hasher.finalize())))
}

/// Builds the `.tar.gz` of `source` in memory and returns it with its SHA-256.
///
/// Symbolic links are stored as links, not followed.
///
/// # Errors
/// Reading the directory failed.
pub fn archive_bytes(source: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", source)?;
    let bytes = builder.into_inner()?.finish()?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// Hashes an existing file.
///
/// # Errors
/// The file cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = HashingWriter { inner: std::io::sink(), hasher: Sha256::new(), written: 0 };
    std::io::copy(&mut file, &mut hasher)?;
    Ok((hasher.written, hex::encode(hasher.hasher.finalize())))
}
