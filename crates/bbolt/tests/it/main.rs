//! Reads real etcd snapshots (see `tests/fixtures/README.md`) and damaged copies of them. Damaged
//! files must give errors that name a page, never a panic.

use std::path::PathBuf;

use caasctl_bbolt::{BoltError, Bucket, Db, PageLocation};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// Counts every entry of `bucket` and, recursively, of its sub-buckets, as a full walk.
fn walk(db: &Db, bucket: Bucket<'_>, depth: usize) -> Result<u64, BoltError> {
    let mut count = 0;
    for entry in bucket.cursor() {
        let entry = entry?;
        count += 1;
        if entry.is_bucket() && depth < 8 {
            count += walk(db, Bucket::open(db, &entry)?, depth + 1)?;
        }
    }
    Ok(count)
}

fn walk_bytes(data: Vec<u8>) -> Result<u64, BoltError> {
    let db = Db::from_bytes(data)?;
    walk(&db, db.root(), 0)
}

/// A small deterministic generator, so failures reproduce.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn small_snapshot_buckets_and_size() {
    let db = Db::open(&fixture("etcd34-small.db")).unwrap();
    assert_eq!(db.page_size(), 4096);
    assert_eq!(db.size(), 20480);
    let names: Vec<String> = db.root().cursor().map(|e| String::from_utf8_lossy(e.unwrap().key).into_owned()).collect();
    assert!(names.contains(&"key".to_owned()), "{names:?}");
    assert!(names.contains(&"meta".to_owned()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "cursor must return keys in order");

    // etcdctl snapshot status counts 8 entries over all top-level buckets.
    let mut total = 0;
    for entry in db.root().cursor() {
        let bucket = Bucket::open(&db, &entry.unwrap()).unwrap();
        total += bucket.cursor().count();
    }
    assert_eq!(total, 8);
}

#[test]
fn overflow_snapshot_has_branch_and_overflow_pages() {
    let db = Db::open(&fixture("etcd34-overflow.db")).unwrap();
    let keys = db.bucket(b"key").unwrap().unwrap();
    assert!(!keys.is_inline());
    let entries: Vec<_> = keys.cursor().map(Result::unwrap).collect();
    // Revisions 2 to 407: three puts, one delete (a tombstone), 400 puts and two puts of the large value.
    assert_eq!(entries.len(), 406);
    let largest = entries.iter().map(|e| e.value.len()).max().unwrap();
    assert!(largest > 3 * 4096, "largest value is {largest} bytes");
    for pair in entries.windows(2) {
        assert!(pair[0].key < pair[1].key, "keys out of order");
    }
    assert_eq!(walk(&db, db.root(), 0).unwrap(), 410 + 10);
}

#[test]
fn released_pages_read_back_the_same() {
    let mut db = Db::open(&fixture("etcd34-overflow.db")).unwrap();
    let before = walk(&db, db.root(), 0).unwrap();
    db.release_visited_pages(true);
    let keys = db.bucket(b"key").unwrap().unwrap();
    let entries: Vec<_> = keys.cursor().map(Result::unwrap).collect();
    // The entries' pages were released as the cursor moved on; reading them faults them back in.
    let total: usize = entries.iter().map(|e| e.key.len() + e.value.len()).sum();
    assert!(total > 100_000, "{total} bytes");
    assert_eq!(walk(&db, db.root(), 0).unwrap(), before);
}

#[test]
fn get_and_seek_find_keys() {
    let db = Db::open(&fixture("etcd34-overflow.db")).unwrap();
    let keys = db.bucket(b"key").unwrap().unwrap();
    let all: Vec<Vec<u8>> = keys.cursor().map(|e| e.unwrap().key.to_vec()).collect();
    for key in all.iter().step_by(37) {
        let entry = keys.get(key).unwrap().expect("key present");
        assert_eq!(entry.key, key.as_slice());
        let from: Vec<Vec<u8>> = keys.seek(key).map(|e| e.unwrap().key.to_vec()).collect();
        let position = all.iter().position(|k| k == key).unwrap();
        assert_eq!(from, all[position..].to_vec());
    }
    assert!(keys.get(b"no such key").unwrap().is_none());
    assert!(db.bucket(b"no-such-bucket").unwrap().is_none());
    let past_end: Vec<_> = keys.seek(&[0xff; 20]).collect();
    assert!(past_end.is_empty());
}

#[test]
fn value_is_not_a_bucket() {
    let db = Db::open(&fixture("etcd34-small.db")).unwrap();
    let meta = db.bucket(b"meta").unwrap().unwrap();
    let error = meta.bucket(b"consistent_index").unwrap_err();
    assert!(matches!(error, BoltError::NotABucket { .. }), "{error}");
}

#[test]
fn truncated_files_return_errors() {
    for name in ["etcd34-small.db", "etcd34-overflow.db"] {
        let data = bytes(name);
        let db_len = data.len() - 32;
        for cut in (0..db_len).step_by(509).chain([db_len - 1, 4096, 8192]) {
            let result = walk_bytes(data[..cut].to_vec());
            assert!(result.is_err(), "{name} cut at {cut} bytes was read without error");
        }
        // Dropping only etcd's trailing SHA-256 leaves a whole database.
        assert!(walk_bytes(data[..db_len].to_vec()).is_ok());
    }
}

#[test]
fn zero_filled_files_and_pages() {
    assert!(matches!(walk_bytes(vec![0; 20480]), Err(BoltError::NoValidMeta { .. })));
    assert!(matches!(walk_bytes(Vec::new()), Err(BoltError::TooSmall { len: 0 })));

    let data = bytes("etcd34-overflow.db");
    let expected = walk_bytes(data.clone()).unwrap();
    // Either meta page alone may be lost: the other one still describes a database.
    for meta_page in 0..2 {
        let mut copy = data.clone();
        copy[meta_page * 4096..(meta_page + 1) * 4096].fill(0);
        assert!(walk_bytes(copy).is_ok(), "meta page {meta_page} zeroed");
    }
    let mut copy = data.clone();
    copy[..8192].fill(0);
    assert!(matches!(walk_bytes(copy), Err(BoltError::NoValidMeta { .. })));

    // A zeroed page in use must be reported by its ID; a free page changes nothing.
    let pages = (data.len() - 32) / 4096;
    let mut reported = 0;
    for page in 2..pages {
        let mut copy = data.clone();
        copy[page * 4096..(page + 1) * 4096].fill(0);
        match walk_bytes(copy) {
            Ok(count) => assert_eq!(count, expected, "page {page} zeroed changed the walk without an error"),
            Err(error) => {
                reported += 1;
                assert_eq!(error.location(), Some(PageLocation::File(page as u64)), "page {page}: {error}");
            }
        }
    }
    assert!(reported > 5, "only {reported} zeroed pages were reported");
}

#[test]
fn bit_flips_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for name in ["etcd34-small.db", "etcd34-overflow.db"] {
        let data = bytes(name);
        for _ in 0..3000 {
            let mut copy = data.clone();
            let flips = 1 + next_random(&mut state) % 4;
            for _ in 0..flips {
                let position = (next_random(&mut state) % copy.len() as u64) as usize;
                copy[position] ^= 1 << (next_random(&mut state) % 8);
            }
            // Only the absence of a panic is checked: a flip inside a value is not detectable.
            let _ = walk_bytes(copy);
        }
    }
}

#[test]
fn bit_flips_in_headers_are_errors() {
    let data = bytes("etcd34-overflow.db");
    let db = Db::from_bytes(data.clone()).unwrap();
    let root = db.meta().root.root as usize;
    // The page ID field of the root page: any flip makes the header name another page.
    for bit in 0..64 {
        let mut copy = data.clone();
        copy[root * 4096 + bit / 8] ^= 1 << (bit % 8);
        let error = walk_bytes(copy).unwrap_err();
        assert_eq!(error.location(), Some(PageLocation::File(root as u64)), "bit {bit}: {error}");
    }
}
