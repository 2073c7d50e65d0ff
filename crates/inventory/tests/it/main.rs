//! Integration tests of the inventory crate: the corpus compared with the real
//! `ansible-inventory`, and edits checked byte for byte.

mod ansible;
mod edit;
