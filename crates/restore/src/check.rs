//! Checks of a snapshot file before anything is changed: is it an etcd (bbolt) database, is it
//! whole, and do its hashes match.
//!
//! A file written by `etcdctl snapshot save` (or `caasctl etcd backup`) is the bbolt database
//! followed by the 32-byte SHA-256 of it; bbolt files are whole pages of at least 512 bytes, so
//! `size % 512 == 32` marks the appended hash, the rule `etcdutl snapshot restore` uses. A `db`
//! copied out of a member's data dir has no hash and is a multiple of 512 bytes. Anything else,
//! or a database shorter than the page count its meta page records, was cut off.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use caasctl_core::Progress;
use caasctl_etcd::snapshot::{hash_file, SnapshotDigest, HASH_LEN};

use crate::error::RestoreError;

/// bbolt's magic number, in the meta pages at offset 16.
pub const BOLT_MAGIC: u32 = 0xED0C_DAED;

/// Header fields read from the two meta pages of a bbolt file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BoltHeader {
    /// Page size in bytes.
    pub page_size: u32,
    /// Pages in use (the high-water mark) by the newest valid meta page.
    pub pages: u64,
    /// Transaction ID of that meta page.
    pub txid: u64,
}

/// How the snapshot's integrity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashStatus {
    /// The appended hash matched the database (and the manifest's SHA-256, when there is one).
    Verified,
    /// The file has no appended hash (a db copied from a data dir); accepted by `--skip-hash-check`.
    NoHashSkipped,
    /// A hash did not match; accepted by `--skip-hash-check`.
    MismatchSkipped,
}

/// The result of checking a snapshot file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotCheck {
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// True when the file ends with etcd's appended hash.
    pub has_appended_hash: bool,
    /// bbolt header.
    pub header: BoltHeader,
    /// Outcome of the hash checks.
    pub hash: HashStatus,
}

/// FNV-1a, 64 bits: bbolt's meta page checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Parses one meta page (page header of 16 bytes, then magic, version, page size, flags, root
/// bucket, freelist, high-water mark, txid and checksum); `None` when its magic or checksum is bad.
fn parse_meta(page: &[u8]) -> Option<BoltHeader> {
    if page.len() < 80 || u32_at(page, 16) != BOLT_MAGIC {
        return None;
    }
    if fnv1a64(&page[16..72]) != u64_at(page, 72) {
        return None;
    }
    Some(BoltHeader { page_size: u32_at(page, 24), pages: u64_at(page, 56), txid: u64_at(page, 64) })
}

/// Reads the bbolt header of `path`, from the newer of the two meta pages whose checksum holds.
///
/// # Errors
/// [`RestoreError::SnapshotRead`], [`RestoreError::NotBolt`] when neither meta page is valid,
/// [`RestoreError::Truncated`] when the file ends inside the meta pages.
pub fn read_header(path: &Path, size: u64) -> Result<BoltHeader, RestoreError> {
    let read_error = |source| RestoreError::SnapshotRead { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(read_error)?;
    let mut first = vec![0u8; 4096.min(size as usize)];
    file.read_exact(&mut first).map_err(read_error)?;
    if first.len() < 80 || u32_at(&first, 16) != BOLT_MAGIC {
        return Err(RestoreError::NotBolt { path: path.to_owned() });
    }
    let page_size = u32_at(&first, 24);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(RestoreError::NotBolt { path: path.to_owned() });
    }
    if size < 2 * u64::from(page_size) {
        return Err(RestoreError::Truncated { path: path.to_owned(), size, expected: 2 * u64::from(page_size) });
    }
    let mut pages = vec![0u8; 2 * page_size as usize];
    let mut file = File::open(path).map_err(read_error)?;
    file.read_exact(&mut pages).map_err(read_error)?;
    let metas = [parse_meta(&pages[..page_size as usize]), parse_meta(&pages[page_size as usize..])];
    metas
        .into_iter()
        .flatten()
        .max_by_key(|m| m.txid)
        .ok_or_else(|| RestoreError::NotBolt { path: path.to_owned() })
}

/// Checks a snapshot: bbolt header, completeness, etcd's appended hash and, when the snapshot
/// comes from a repository, the manifest's SHA-256 of the whole file.
///
/// With `skip_hash_check`, a missing or mismatching hash is accepted and reported in
/// [`SnapshotCheck::hash`]; a file that is not bbolt or is cut off is rejected regardless.
///
/// # Errors
/// [`RestoreError::NotBolt`], [`RestoreError::Truncated`], [`RestoreError::NoAppendedHash`],
/// [`RestoreError::AppendedHashMismatch`], [`RestoreError::ManifestHashMismatch`] or a read error.
pub fn check_snapshot(path: &Path, manifest_sha256: Option<&str>, skip_hash_check: bool, progress: &dyn Progress) -> Result<SnapshotCheck, RestoreError> {
    let size = std::fs::metadata(path).map_err(|source| RestoreError::SnapshotRead { path: path.to_owned(), source })?.len();
    let header = read_header(path, size)?;
    let has_appended_hash = size % 512 == HASH_LEN as u64;
    let db_len = if has_appended_hash { size - HASH_LEN as u64 } else { size };
    let page = u64::from(header.page_size);
    let needed = header.pages.saturating_mul(page);
    if db_len % page != 0 || db_len < needed {
        return Err(RestoreError::Truncated { path: path.to_owned(), size, expected: needed.max(db_len.next_multiple_of(page)) });
    }

    let digest: SnapshotDigest = hash_file(path, progress).map_err(|source| RestoreError::SnapshotRead { path: path.to_owned(), source })?;
    let mut hash = HashStatus::Verified;
    if let Some(expected) = manifest_sha256 {
        if expected != digest.file_sha256 {
            if !skip_hash_check {
                return Err(RestoreError::ManifestHashMismatch { path: path.to_owned(), expected: expected.to_owned(), actual: digest.file_sha256 });
            }
            hash = HashStatus::MismatchSkipped;
        }
    }
    if !has_appended_hash {
        if !skip_hash_check {
            return Err(RestoreError::NoAppendedHash { path: path.to_owned() });
        }
        hash = HashStatus::NoHashSkipped;
    } else if !digest.appended_hash_matches() {
        if !skip_hash_check {
            return Err(RestoreError::AppendedHashMismatch { path: path.to_owned(), expected: digest.trailer, actual: digest.db_sha256 });
        }
        hash = HashStatus::MismatchSkipped;
    }
    Ok(SnapshotCheck { size, sha256: digest.file_sha256, has_appended_hash, header, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caasctl_core::NoProgress;
    use sha2::{Digest, Sha256};

    /// Builds a minimal bbolt-shaped file: two meta pages and `extra` more pages.
    fn bolt(page_size: u32, extra: u64) -> Vec<u8> {
        let pages = 2 + extra;
        let mut data = vec![0u8; (pages * u64::from(page_size)) as usize];
        for (index, txid) in [(0usize, 1u64), (1, 2)] {
            let page = &mut data[index * page_size as usize..(index + 1) * page_size as usize];
            page[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
            page[20..24].copy_from_slice(&2u32.to_le_bytes());
            page[24..28].copy_from_slice(&page_size.to_le_bytes());
            page[56..64].copy_from_slice(&pages.to_le_bytes());
            page[64..72].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&page[16..72]);
            page[72..80].copy_from_slice(&sum.to_le_bytes());
        }
        data
    }

    fn with_hash(mut db: Vec<u8>) -> Vec<u8> {
        let hash = Sha256::digest(&db);
        db.extend_from_slice(&hash);
        db
    }

    fn check(bytes: &[u8], manifest: Option<&str>, skip: bool) -> Result<SnapshotCheck, RestoreError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db");
        std::fs::write(&path, bytes).unwrap();
        check_snapshot(&path, manifest, skip, &NoProgress)
    }

    #[test]
    fn snapshot_with_hash_is_verified() {
        let file = with_hash(bolt(4096, 3));
        let result = check(&file, None, false).unwrap();
        assert_eq!(result.hash, HashStatus::Verified);
        assert_eq!(result.header.pages, 5);
        assert_eq!(result.header.txid, 2);
    }

    #[test]
    fn flipped_byte_fails_appended_hash() {
        let mut file = with_hash(bolt(4096, 3));
        file[3 * 4096 + 10] ^= 0xff;
        assert!(matches!(check(&file, None, false), Err(RestoreError::AppendedHashMismatch { .. })));
        assert_eq!(check(&file, None, true).unwrap().hash, HashStatus::MismatchSkipped);
    }

    #[test]
    fn manifest_hash_mismatch_rejected() {
        let file = with_hash(bolt(4096, 1));
        assert!(matches!(check(&file, Some("00"), false), Err(RestoreError::ManifestHashMismatch { .. })));
    }

    #[test]
    fn copied_db_needs_skip_hash_check() {
        let file = bolt(4096, 3);
        assert!(matches!(check(&file, None, false), Err(RestoreError::NoAppendedHash { .. })));
        assert_eq!(check(&file, None, true).unwrap().hash, HashStatus::NoHashSkipped);
    }

    #[test]
    fn cut_file_is_truncated() {
        let file = with_hash(bolt(4096, 3));
        assert!(matches!(check(&file[..4 * 4096 + 100], None, true), Err(RestoreError::Truncated { .. })));
        // Whole pages, but fewer than the meta page records.
        assert!(matches!(check(&file[..4 * 4096], None, true), Err(RestoreError::Truncated { .. })));
    }

    #[test]
    fn non_bolt_file_rejected() {
        assert!(matches!(check(&[7u8; 8192], None, true), Err(RestoreError::NotBolt { .. })));
    }
}
