//! Errors of the bbolt reader. Every error about the file's contents names the page where the
//! reader found the problem, so an operator can tell a truncated copy from a damaged page.

use std::fmt;
use std::path::PathBuf;

/// Location of a page: a page of the file, or a bucket's inline page stored inside the value of
/// a leaf element on a file page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLocation {
    /// Page with this ID, at byte offset `id * page_size`.
    File(u64),
    /// Inline page of a bucket whose header is stored on this file page.
    Inline(u64),
}

impl fmt::Display for PageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageLocation::File(id) => write!(f, "page {id}"),
            PageLocation::Inline(parent) => write!(f, "inline bucket page stored on page {parent}"),
        }
    }
}

/// A failure to open or read a bbolt file.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    /// The file could not be opened or memory-mapped.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// Action that failed: `open`, `stat` or `map`.
        action: &'static str,
        /// File path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The file is shorter than two meta pages of the smallest page size, so it cannot be a bbolt
    /// database.
    #[error("file is too small for a bbolt database: {len} bytes")]
    TooSmall {
        /// File length in bytes.
        len: u64,
    },

    /// Neither meta page (page 0 and page 1) has the bbolt magic, version 2 and a matching
    /// checksum.
    #[error("no valid meta page: page 0: {page0}; page 1: {page1}")]
    NoValidMeta {
        /// Reason page 0 was rejected.
        page0: String,
        /// Reason page 1 was rejected.
        page1: String,
    },

    /// A page ID points past the database's high-water mark or past the end of the file.
    #[error("{location} is out of bounds: {reason}")]
    OutOfBounds {
        /// The page that was requested, or the page whose element pointed outside it.
        location: PageLocation,
        /// The limit that was crossed.
        reason: String,
    },

    /// A page's header or elements are not what its place in the tree requires.
    #[error("{location} is corrupt: {reason}")]
    Corrupt {
        /// The page.
        location: PageLocation,
        /// The defect found.
        reason: String,
    },

    /// A B+tree is deeper than any real database gets, which means its branch pages form a cycle.
    #[error("tree below {location} is deeper than {max} levels, so its branch pages form a cycle")]
    TooDeep {
        /// The page where the limit was hit.
        location: PageLocation,
        /// The depth limit.
        max: usize,
    },

    /// A key names a value, not a bucket.
    #[error("key {name:?} is not a bucket")]
    NotABucket {
        /// Key, lossily decoded as UTF-8.
        name: String,
    },
}

impl BoltError {
    /// Returns the page where the problem was found, for errors about the file's contents.
    pub fn location(&self) -> Option<PageLocation> {
        match self {
            BoltError::OutOfBounds { location, .. } | BoltError::Corrupt { location, .. } | BoltError::TooDeep { location, .. } => {
                Some(*location)
            }
            _ => None,
        }
    }

    /// Returns true when the file itself is damaged, truncated or not a bbolt file, rather than
    /// unreadable.
    pub fn is_corrupt(&self) -> bool {
        !matches!(self, BoltError::Io { .. } | BoltError::NotABucket { .. })
    }
}
