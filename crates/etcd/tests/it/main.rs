//! Integration tests of the etcd crate against real etcd servers started by the harness.

mod inspect;
