//! The two meta pages at the start of a bbolt file, and the choice between them.
//!
//! bbolt writes the meta of each committed transaction alternately to page 0 and page 1, so after
//! a crash one of them may be torn. A meta is valid when its magic is `0xED0CDAED`, its version is
//! 2 and its checksum (FNV-1a 64 over the 56 bytes before the checksum field) matches. Of the two,
//! the valid one with the higher transaction ID describes the database. The page size is not known
//! before a meta is read, so page 1 is looked for at each page size bbolt may use when page 0 is
//! damaged.

use crate::error::BoltError;
use crate::page::{read_u32, read_u64, PAGE_HEADER_SIZE};

/// bbolt's marker value at the start of a meta.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file format version bbolt has written since 2014.
pub const VERSION: u32 = 2;
/// Size of a meta, from the magic to the end of the checksum.
pub(crate) const META_SIZE: usize = 64;
/// Offset of the checksum inside the meta, which is also the length the checksum covers.
const CHECKSUM_OFFSET: usize = 56;
/// Page sizes tried for page 1 when page 0 cannot tell the page size.
const CANDIDATE_PAGE_SIZES: [usize; 7] = [4096, 8192, 16384, 32768, 65536, 1024, 2048];

/// A bucket header: the root page of the bucket's B+tree (0 for an inline bucket) and its
/// sequence counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketHeader {
    /// Root page ID, or 0 when the bucket's single leaf page is stored inline in its value.
    pub root: u64,
    /// The bucket's sequence counter (`NextSequence` in bbolt).
    pub sequence: u64,
}

/// The meta that describes the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// ID of the page (0 or 1) it was read from.
    pub page: u64,
    /// Page size in bytes.
    pub page_size: u32,
    /// Meta flags (unused by bbolt so far).
    pub flags: u32,
    /// Header of the root bucket, whose keys are the top-level buckets.
    pub root: BucketHeader,
    /// Page ID of the freelist, or `u64::MAX` when the freelist is not stored.
    pub freelist: u64,
    /// High-water mark: the number of pages in use, so every valid page ID is below it.
    pub high_water: u64,
    /// Transaction ID of the commit that wrote this meta.
    pub txid: u64,
    /// Stored checksum.
    pub checksum: u64,
}

/// Returns the FNV-1a 64-bit hash of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// Reads and validates the meta of the page at `offset`.
fn parse(data: &[u8], offset: usize, page: u64) -> Result<Meta, String> {
    let start = offset + PAGE_HEADER_SIZE;
    let Some(bytes) = data.get(start..start + META_SIZE) else {
        return Err(format!("file ends at byte {} before the meta at bytes {start}..{}", data.len(), start + META_SIZE));
    };
    let field32 = |at| read_u32(bytes, at).unwrap_or(0);
    let field64 = |at| read_u64(bytes, at).unwrap_or(0);
    let meta = Meta {
        page,
        page_size: field32(8),
        flags: field32(12),
        root: BucketHeader { root: field64(16), sequence: field64(24) },
        freelist: field64(32),
        high_water: field64(40),
        txid: field64(48),
        checksum: field64(CHECKSUM_OFFSET),
    };
    let magic = field32(0);
    let version = field32(4);
    if magic != MAGIC {
        return Err(format!("magic is {magic:#010x}, not {MAGIC:#010x}"));
    }
    if version != VERSION {
        return Err(format!("format version is {version}, not {VERSION}"));
    }
    let expected = fnv1a64(&bytes[..CHECKSUM_OFFSET]);
    if meta.checksum != expected {
        return Err(format!("checksum is {:#018x}, the meta hashes to {expected:#018x}", meta.checksum));
    }
    let page_size = meta.page_size as usize;
    if !page_size.is_power_of_two() || !(1024..=1 << 20).contains(&page_size) {
        return Err(format!("page size {page_size} is not a power of two between 1 KiB and 1 MiB"));
    }
    Ok(meta)
}

/// Reads both meta pages and returns the valid one with the higher transaction ID.
///
/// # Errors
/// [`BoltError::TooSmall`] for a file shorter than one meta, [`BoltError::NoValidMeta`] when
/// neither meta is valid.
pub(crate) fn select(data: &[u8]) -> Result<Meta, BoltError> {
    if data.len() < PAGE_HEADER_SIZE + META_SIZE {
        return Err(BoltError::TooSmall { len: data.len() as u64 });
    }
    let meta0 = parse(data, 0, 0);
    let meta1 = match &meta0 {
        Ok(meta) => parse(data, meta.page_size as usize, 1),
        Err(_) => {
            let mut first_failure = None;
            let mut found = None;
            for size in CANDIDATE_PAGE_SIZES {
                match parse(data, size, 1) {
                    Ok(meta) if meta.page_size as usize == size => {
                        found = Some(meta);
                        break;
                    }
                    Ok(meta) => {
                        first_failure.get_or_insert(format!("meta at byte {size} names page size {}", meta.page_size));
                    }
                    Err(reason) => {
                        first_failure.get_or_insert(format!("at page size {size}: {reason}"));
                    }
                }
            }
            found.ok_or_else(|| first_failure.unwrap_or_default())
        }
    };
    match (meta0, meta1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(page0), Err(page1)) => Err(BoltError::NoValidMeta { page0, page1 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn select_rejects_short_and_zero_files() {
        assert!(matches!(select(&[0u8; 10]), Err(BoltError::TooSmall { len: 10 })));
        assert!(matches!(select(&vec![0u8; 16384]), Err(BoltError::NoValidMeta { .. })));
    }
}
