//! The on-disk layout of bbolt pages, read with bounds checks.
//!
//! Every page starts with a 16-byte header: page ID (u64), flags (u16), element count (u16) and
//! the number of overflow pages that follow it (u32), all little-endian as bbolt writes them on
//! the little-endian machines etcd runs on. Branch and leaf pages then hold `count` 16-byte
//! elements, whose key and value offsets are relative to the element's own position. Nothing here
//! trusts an offset: every read goes through `slice::get`, so a damaged page yields an error.

use crate::error::{BoltError, PageLocation};

/// Size of the page header.
pub(crate) const PAGE_HEADER_SIZE: usize = 16;
/// Size of one branch or leaf element.
pub(crate) const ELEMENT_SIZE: usize = 16;

/// Page flag of a branch page.
pub(crate) const BRANCH_PAGE: u16 = 0x01;
/// Page flag of a leaf page.
pub(crate) const LEAF_PAGE: u16 = 0x02;
/// Leaf element flag: the value is a bucket header, not a plain value.
pub(crate) const BUCKET_LEAF_FLAG: u32 = 0x01;

pub(crate) fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(offset..offset.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(offset..offset.checked_add(8)?)?.try_into().ok()?))
}

/// A branch or leaf page whose element array was checked to lie inside the page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page<'a> {
    /// The page's bytes, from its header to the end of its last overflow page.
    bytes: &'a [u8],
    /// Location of the page, for errors.
    pub location: PageLocation,
    /// Page flags from the header.
    pub flags: u16,
    /// Number of elements.
    pub count: usize,
}

/// One element of a leaf page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeafElement<'a> {
    /// Element flags; [`BUCKET_LEAF_FLAG`] marks a bucket.
    pub flags: u32,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes, or the bucket header (and inline page) for a bucket.
    pub value: &'a [u8],
}

impl<'a> Page<'a> {
    /// Parses a branch or leaf page header and checks that the element array fits in `bytes`.
    pub fn parse(bytes: &'a [u8], location: PageLocation) -> Result<Page<'a>, BoltError> {
        let corrupt = |reason: String| BoltError::Corrupt { location, reason };
        let flags = read_u16(bytes, 8).ok_or_else(|| corrupt(format!("page is {} bytes, shorter than its header", bytes.len())))?;
        let count = usize::from(read_u16(bytes, 10).unwrap_or(0));
        if flags != BRANCH_PAGE && flags != LEAF_PAGE {
            return Err(corrupt(format!("expected a branch or leaf page, found page flags {flags:#06x}")));
        }
        let elements_end = PAGE_HEADER_SIZE + count * ELEMENT_SIZE;
        if elements_end > bytes.len() {
            return Err(corrupt(format!("{count} elements need {elements_end} bytes but the page has {}", bytes.len())));
        }
        Ok(Page { bytes, location, flags, count })
    }

    /// Returns the page's length in bytes, overflow pages included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Returns true for a leaf page.
    pub fn is_leaf(&self) -> bool {
        self.flags == LEAF_PAGE
    }

    fn element_offset(&self, index: usize) -> Result<usize, BoltError> {
        if index >= self.count {
            return Err(BoltError::Corrupt { location: self.location, reason: format!("element {index} requested of {}", self.count) });
        }
        Ok(PAGE_HEADER_SIZE + index * ELEMENT_SIZE)
    }

    /// Returns the bytes `[start, start + len)` of the page, or an error naming the element.
    fn span(&self, index: usize, start: usize, len: usize, what: &str) -> Result<&'a [u8], BoltError> {
        let end = start.checked_add(len);
        end.and_then(|end| self.bytes.get(start..end)).ok_or_else(|| BoltError::OutOfBounds {
            location: self.location,
            reason: format!("{what} of element {index} spans bytes {start}+{len}, past the page's {} bytes", self.bytes.len()),
        })
    }

    /// Returns the key and child page ID of a branch element.
    pub fn branch_element(&self, index: usize) -> Result<(&'a [u8], u64), BoltError> {
        let offset = self.element_offset(index)?;
        let position = read_u32(self.bytes, offset).unwrap_or(0) as usize;
        let key_size = read_u32(self.bytes, offset + 4).unwrap_or(0) as usize;
        let child = read_u64(self.bytes, offset + 8).unwrap_or(0);
        let key = self.span(index, offset + position, key_size, "key")?;
        Ok((key, child))
    }

    /// Returns a leaf element.
    pub fn leaf_element(&self, index: usize) -> Result<LeafElement<'a>, BoltError> {
        let offset = self.element_offset(index)?;
        let flags = read_u32(self.bytes, offset).unwrap_or(0);
        let position = read_u32(self.bytes, offset + 4).unwrap_or(0) as usize;
        let key_size = read_u32(self.bytes, offset + 8).unwrap_or(0) as usize;
        let value_size = read_u32(self.bytes, offset + 12).unwrap_or(0) as usize;
        let key_start = offset + position;
        let key = self.span(index, key_start, key_size, "key")?;
        let value = self.span(index, key_start + key_size, value_size, "value")?;
        Ok(LeafElement { flags, key, value })
    }

    /// Returns the key of element `index`, for branch and leaf pages alike.
    pub fn key(&self, index: usize) -> Result<&'a [u8], BoltError> {
        if self.is_leaf() {
            Ok(self.leaf_element(index)?.key)
        } else {
            Ok(self.branch_element(index)?.0)
        }
    }

    /// Returns the index of the first element whose key is not less than `target`, or `count`.
    pub fn lower_bound(&self, target: &[u8]) -> Result<usize, BoltError> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.key(middle)? < target {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }
}
