//! A read-only reader of bbolt database files.
//!
//! etcd keeps its backend, and writes its snapshots, as a bbolt database: a B+tree of pages whose
//! top-level keys are buckets (`key`, `meta`, `members` ...). This crate maps such a file into
//! memory and walks it without etcd or Go, so caasctl can report a snapshot's status, list keys and
//! pull single objects out of a backup.
//!
//! The reader assumes nothing about the file. Every page ID is checked against the meta's
//! high-water mark and the file's length, and every element offset against its page. A
//! truncated, bit-flipped or zero-filled file therefore yields a [`BoltError`] that names the page,
//! never a panic or an out-of-bounds read. Trailing bytes after the last page are ignored: etcd appends a
//! 32-byte SHA-256 to the snapshots that `etcdctl snapshot save` writes.
//!
//! # Examples
//! ```no_run
//! let db = caasctl_bbolt::Db::open(std::path::Path::new("snapshot.db"))?;
//! for entry in db.root().cursor() {
//!     let entry = entry?;
//!     println!("bucket {}", String::from_utf8_lossy(entry.key));
//! }
//! # Ok::<(), caasctl_bbolt::BoltError>(())
//! ```
//!
//! # Limitations
//! The reader never writes and ignores the freelist, so it cannot tell free pages from lost ones;
//! it checks what a walk of the tree touches, not the whole file the way `bbolt check` does.
#![deny(missing_docs)]

mod bucket;
mod error;
mod meta;
mod page;

use std::fs::File;
use std::path::Path;

pub use bucket::{Bucket, Cursor, Entry};
pub use error::{BoltError, PageLocation};
pub use meta::{BucketHeader, Meta, MAGIC, VERSION};

use page::{read_u32, read_u64, Page, PAGE_HEADER_SIZE};

/// The bytes of the database: a read-only memory map of a file, or a buffer.
#[derive(Debug)]
enum Storage {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// An open, read-only bbolt database.
#[derive(Debug)]
pub struct Db {
    storage: Storage,
    meta: Meta,
    release_visited: bool,
}

impl Db {
    /// Maps the file at `path` read-only and reads its meta.
    ///
    /// # Errors
    /// [`BoltError::Io`] when the file cannot be opened or mapped, and the errors of
    /// [`Db::from_bytes`] for its contents.
    pub fn open(path: &Path) -> Result<Db, BoltError> {
        let _span = tracing::debug_span!("bbolt.open", path = %path.display()).entered();
        let io = |action| move |source| BoltError::Io { action, path: path.to_owned(), source };
        let file = File::open(path).map_err(io("open"))?;
        let len = file.metadata().map_err(io("stat"))?.len();
        if len == 0 {
            return Err(BoltError::TooSmall { len });
        }
        // SAFETY: the map is read-only and private to this process. A writer that truncates the
        // file while it is mapped would make reads fault, which is why callers should point this
        // at snapshot files and stopped members' data, never at a running etcd's live db.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io("map"))?;
        Db::with_storage(Storage::Map(map))
    }

    /// Reads a database held in memory.
    ///
    /// # Errors
    /// [`BoltError::TooSmall`] and [`BoltError::NoValidMeta`] for a file that is not a bbolt
    /// database, and [`BoltError::OutOfBounds`] when the meta counts more pages than the file
    /// contains (a truncated copy).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Db, BoltError> {
        Db::with_storage(Storage::Owned(bytes))
    }

    fn with_storage(storage: Storage) -> Result<Db, BoltError> {
        let data: &[u8] = match &storage {
            Storage::Map(map) => map,
            Storage::Owned(bytes) => bytes,
        };
        let meta = meta::select(data)?;
        let needed = meta.high_water.checked_mul(u64::from(meta.page_size));
        if needed.is_none_or(|needed| needed > data.len() as u64) {
            return Err(BoltError::OutOfBounds {
                location: PageLocation::File(meta.page),
                reason: format!(
                    "the meta counts {} pages of {} bytes but the file has only {} bytes, so it is truncated",
                    meta.high_water,
                    meta.page_size,
                    data.len()
                ),
            });
        }
        tracing::debug!(page_size = meta.page_size, pages = meta.high_water, txid = meta.txid, meta_page = meta.page, "bbolt meta selected");
        Ok(Db { storage, meta, release_visited: false })
    }

    fn data(&self) -> &[u8] {
        match &self.storage {
            Storage::Map(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }

    /// Makes cursors drop each file page from this process's memory once they have moved past it,
    /// so a full walk of a mapped file keeps about one root-to-leaf path resident instead of the
    /// whole file. Entries read before stay valid: reading them again faults the page back in
    /// from the page cache. Does nothing for a database read with [`Db::from_bytes`].
    pub fn release_visited_pages(&mut self, release: bool) {
        self.release_visited = release;
    }

    /// Returns the byte range of a file page that cursors may release, or `None` when
    /// [`Db::release_visited_pages`] is off, the data is not mapped, or the page is inline.
    pub(crate) fn releasable(&self, page: &Page<'_>) -> Option<(usize, usize)> {
        match (&self.storage, self.release_visited, page.location) {
            (Storage::Map(_), true, PageLocation::File(id)) => Some((id as usize * self.page_size(), page.len())),
            _ => None,
        }
    }

    /// Drops the bytes `[offset, offset + len)` of the map from memory. Failures only cost
    /// memory, so they are ignored.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        let Storage::Map(map) = &self.storage else { return };
        // SAFETY: the map is a read-only private mapping that this process never writes, so
        // MADV_DONTNEED only drops resident copies and the next read faults the same file bytes
        // back in. madvise rejects offsets that are not multiples of the OS page size, which
        // happens only for bbolt page sizes below it, and that error is ignored.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    }

    /// Returns the meta that describes the database.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Returns the page size in bytes.
    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    /// Returns the size of the database in bytes: high-water mark times page size, the value
    /// bbolt's `Tx.Size` returns and `etcdutl snapshot status` prints as total size.
    pub fn size(&self) -> u64 {
        self.meta.high_water * u64::from(self.meta.page_size)
    }

    /// Returns the root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'_> {
        Bucket::from_root(self, self.meta.root.root, self.meta.root.sequence)
    }

    /// Returns the top-level bucket called `name`, if there is one.
    ///
    /// # Errors
    /// The errors of reading the root bucket's pages, and [`BoltError::NotABucket`] when the key
    /// holds a value.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_>>, BoltError> {
        self.root().bucket(name)
    }

    /// Returns branch or leaf page `id` with its overflow pages.
    pub(crate) fn page(&self, id: u64) -> Result<Page<'_>, BoltError> {
        let location = PageLocation::File(id);
        let out_of_bounds = |reason: String| BoltError::OutOfBounds { location, reason };
        if id < 2 || id >= self.meta.high_water {
            return Err(out_of_bounds(format!("valid tree pages are 2 to {}", self.meta.high_water.saturating_sub(1))));
        }
        let data = self.data();
        let page_size = self.page_size() as u64;
        let start = id * page_size;
        let header = data.get(start as usize..start as usize + PAGE_HEADER_SIZE).ok_or_else(|| out_of_bounds(format!("file ends before byte {start}")))?;
        let stored_id = read_u64(header, 0).unwrap_or(0);
        if stored_id != id {
            return Err(BoltError::Corrupt { location, reason: format!("page header names page {stored_id}") });
        }
        let overflow = u64::from(read_u32(header, 12).unwrap_or(0));
        if id + overflow >= self.meta.high_water {
            return Err(out_of_bounds(format!("its {overflow} overflow pages run past the high-water mark {}", self.meta.high_water)));
        }
        let end = start + (overflow + 1) * page_size;
        let bytes = data.get(start as usize..end as usize).ok_or_else(|| out_of_bounds(format!("the page ends at byte {end}, past the file's end")))?;
        Page::parse(bytes, location)
    }
}
