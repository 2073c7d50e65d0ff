//! Fuzz target: open arbitrary bytes as a bbolt database and walk every bucket, nested ones
//! included, then look up some of the keys found. Any panic, overflow or out-of-bounds read is a
//! bug, because the reader must turn every damaged input into a `BoltError`.
#![no_main]

use caasctl_bbolt::{Bucket, Db};
use libfuzzer_sys::fuzz_target;

/// Nesting limit of the walk: a corrupt file may make a bucket contain itself.
const MAX_NESTING: usize = 4;

fn walk(db: &Db, bucket: Bucket<'_>, nesting: usize) {
    let mut sampled = Vec::new();
    for entry in bucket.cursor() {
        let Ok(entry) = entry else { return };
        if sampled.len() < 8 {
            sampled.push(entry.key.to_vec());
        }
        if entry.is_bucket() && nesting < MAX_NESTING {
            if let Ok(child) = Bucket::open(db, &entry) {
                walk(db, child, nesting + 1);
            }
        }
    }
    for key in &sampled {
        let _ = bucket.get(key);
        let _ = bucket.seek(key).take(4).count();
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = Db::from_bytes(data.to_vec()) {
        let _ = db.size();
        walk(&db, db.root(), 0);
    }
});
