//! Buckets and cursors: walking a bucket's B+tree in key order.
//!
//! A bucket is either a tree of file pages under a root page, or (when small and without
//! sub-buckets) a single leaf page stored inline after the 16-byte bucket header in its parent's
//! leaf value. A cursor keeps a stack of pages from the root to the current leaf. It refuses to go
//! deeper than [`MAX_DEPTH`] levels and to visit more pages than the file holds, so branch pages
//! that point back at their ancestors or share children end the walk with an error instead of
//! looping.

use crate::error::{BoltError, PageLocation};
use crate::page::{read_u64, Page, BUCKET_LEAF_FLAG};
use crate::Db;

/// Maximum depth of a bucket's tree. A bbolt tree of a few billion keys is well under 20 levels
/// deep, because every branch page contains dozens of children.
pub const MAX_DEPTH: usize = 64;

/// Released pages are collected into one range up to this size before one `madvise` call drops
/// them, because a call per page costs more than the walk itself on a large snapshot.
const RELEASE_BATCH: usize = 8 << 20;

/// Size of the bucket header in a bucket's leaf value.
const BUCKET_HEADER_SIZE: usize = 16;

/// The start of a bucket's tree.
#[derive(Debug, Clone, Copy)]
enum Root<'a> {
    /// Root page ID of a tree of file pages.
    Page(u64),
    /// The inline leaf page.
    Inline(Page<'a>),
}

/// A bucket of a [`Db`].
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    db: &'a Db,
    root: Root<'a>,
    sequence: u64,
}

/// A key and its value, or a key that names a sub-bucket.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value; for a sub-bucket, the bucket header and inline page (see [`Entry::is_bucket`]).
    pub value: &'a [u8],
    /// Element flags of the leaf element.
    pub flags: u32,
    /// The page that contains the element, for errors about it.
    pub location: PageLocation,
}

impl Entry<'_> {
    /// Returns true when the key names a sub-bucket rather than a value.
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

impl<'a> Bucket<'a> {
    pub(crate) fn from_root(db: &'a Db, root: u64, sequence: u64) -> Bucket<'a> {
        Bucket { db, root: Root::Page(root), sequence }
    }

    /// Opens the sub-bucket that `entry`, an entry of a bucket of the same database, names.
    ///
    /// # Errors
    /// [`BoltError::NotABucket`] for an entry holding a value, [`BoltError::Corrupt`] when the
    /// bucket header or its inline page is damaged.
    pub fn open(db: &'a Db, entry: &Entry<'a>) -> Result<Bucket<'a>, BoltError> {
        if !entry.is_bucket() {
            return Err(BoltError::NotABucket { name: String::from_utf8_lossy(entry.key).into_owned() });
        }
        let corrupt = |reason: String| BoltError::Corrupt { location: entry.location, reason };
        if entry.value.len() < BUCKET_HEADER_SIZE {
            return Err(corrupt(format!("bucket {:?} has a {}-byte header, expected {BUCKET_HEADER_SIZE}", String::from_utf8_lossy(entry.key), entry.value.len())));
        }
        let root = read_u64(entry.value, 0).unwrap_or(0);
        let sequence = read_u64(entry.value, 8).unwrap_or(0);
        if root != 0 {
            return Ok(Bucket { db, root: Root::Page(root), sequence });
        }
        let parent = match entry.location {
            PageLocation::File(id) | PageLocation::Inline(id) => id,
        };
        let page = Page::parse(&entry.value[BUCKET_HEADER_SIZE..], PageLocation::Inline(parent))?;
        if !page.is_leaf() {
            return Err(corrupt(format!("inline bucket {:?} holds a branch page", String::from_utf8_lossy(entry.key))));
        }
        Ok(Bucket { db, root: Root::Inline(page), sequence })
    }

    /// Returns the bucket's sequence counter.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Returns true when the bucket is stored inline in its parent's leaf.
    pub fn is_inline(&self) -> bool {
        matches!(self.root, Root::Inline(_))
    }

    fn root_page(&self) -> Result<Page<'a>, BoltError> {
        match self.root {
            Root::Page(id) => self.db.page(id),
            Root::Inline(page) => Ok(page),
        }
    }

    /// Returns a cursor positioned before the first key.
    pub fn cursor(&self) -> Cursor<'a> {
        Cursor { bucket: *self, stack: Vec::new(), started: false, failed: false, visited: 0, pending_release: None }
    }

    /// Returns a cursor positioned before the first key that is not less than `key`.
    pub fn seek(&self, key: &[u8]) -> Cursor<'a> {
        let mut cursor = self.cursor();
        cursor.started = true;
        if let Err(error) = cursor.descend_to(key) {
            cursor.failed = true;
            cursor.stack.clear();
            // Surface the error on the first call to next().
            cursor.stack.push(Frame::Failed(error));
        }
        cursor
    }

    /// Returns the entry for `key`, value or sub-bucket.
    ///
    /// # Errors
    /// The errors of reading the pages on the way to the key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry<'a>>, BoltError> {
        match self.seek(key).next() {
            Some(Ok(entry)) if entry.key == key => Ok(Some(entry)),
            Some(Err(error)) => Err(error),
            _ => Ok(None),
        }
    }

    /// Returns the sub-bucket called `name`, if there is one.
    ///
    /// # Errors
    /// The errors of [`Bucket::get`] and [`Bucket::open`].
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        match self.get(name)? {
            Some(entry) => Bucket::open(self.db, &entry).map(Some),
            None => Ok(None),
        }
    }
}

/// One level of a cursor's path: a page and the index of the next element to visit.
#[derive(Debug)]
enum Frame<'a> {
    Page { page: Page<'a>, next: usize },
    Failed(BoltError),
}

/// An iterator over a bucket's entries in key order. After an error it ends.
#[derive(Debug)]
pub struct Cursor<'a> {
    bucket: Bucket<'a>,
    stack: Vec<Frame<'a>>,
    started: bool,
    failed: bool,
    visited: u64,
    /// Byte range of passed pages not yet released (offset, length).
    pending_release: Option<(usize, usize)>,
}

impl<'a> Cursor<'a> {
    /// Adds a passed page to the pending range, releasing the range when the page does not
    /// extend it or it has grown to [`RELEASE_BATCH`].
    fn passed(&mut self, page: &Page<'a>) {
        let Some((offset, len)) = self.bucket.db.releasable(page) else { return };
        match self.pending_release {
            Some((start, pending)) if start + pending == offset && pending < RELEASE_BATCH => {
                self.pending_release = Some((start, pending + len));
            }
            _ => {
                self.flush_release();
                self.pending_release = Some((offset, len));
            }
        }
    }

    fn flush_release(&mut self) {
        if let Some((offset, len)) = self.pending_release.take() {
            self.bucket.db.release(offset, len);
        }
    }

    /// Pushes a page onto the path after checking depth and the visit budget.
    fn push(&mut self, page: Page<'a>, next: usize) -> Result<(), BoltError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(BoltError::TooDeep { location: page.location, max: MAX_DEPTH });
        }
        self.visited += 1;
        // In a sound file each page belongs to one bucket, so a walk visits each page at most once.
        if self.visited > self.bucket.db.meta().high_water {
            return Err(BoltError::Corrupt {
                location: page.location,
                reason: format!("a walk of one bucket reached {} pages, more than the file's {}, so branch pages share children", self.visited, self.bucket.db.meta().high_water),
            });
        }
        self.stack.push(Frame::Page { page, next });
        Ok(())
    }

    fn child(&self, parent: &Page<'a>, index: usize) -> Result<Page<'a>, BoltError> {
        let (_, child) = parent.branch_element(index)?;
        self.bucket.db.page(child)
    }

    /// Builds the path to the first key not less than `key`.
    fn descend_to(&mut self, key: &[u8]) -> Result<(), BoltError> {
        let mut page = self.bucket.root_page()?;
        loop {
            if page.is_leaf() {
                let index = page.lower_bound(key)?;
                return self.push(page, index);
            }
            // The child that may hold `key` is the last one whose first key is <= key.
            let index = page.lower_bound(key)?;
            let index = if index < page.count && page.key(index)? == key { index } else { index.saturating_sub(1) };
            if page.count == 0 {
                return self.push(page, 0);
            }
            let child = self.child(&page, index)?;
            self.push(page, index + 1)?;
            page = child;
        }
    }

    fn advance(&mut self) -> Result<Option<Entry<'a>>, BoltError> {
        if !self.started {
            self.started = true;
            let root = self.bucket.root_page()?;
            self.push(root, 0)?;
        }
        loop {
            let (page, index) = match self.stack.last_mut() {
                None => {
                    self.flush_release();
                    return Ok(None);
                }
                Some(Frame::Failed(_)) => match self.stack.pop() {
                    Some(Frame::Failed(error)) => return Err(error),
                    _ => return Ok(None),
                },
                Some(Frame::Page { page, next }) => {
                    if *next >= page.count {
                        let done = *page;
                        self.stack.pop();
                        self.passed(&done);
                        continue;
                    }
                    *next += 1;
                    (*page, *next - 1)
                }
            };
            if page.is_leaf() {
                let element = page.leaf_element(index)?;
                return Ok(Some(Entry { key: element.key, value: element.value, flags: element.flags, location: page.location }));
            }
            let child = self.child(&page, index)?;
            self.push(child, 0)?;
        }
    }
}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        self.flush_release();
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = Result<Entry<'a>, BoltError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed && !matches!(self.stack.last(), Some(Frame::Failed(_))) {
            return None;
        }
        match self.advance() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.failed = true;
                self.stack.clear();
                Some(Err(error))
            }
        }
    }
}
