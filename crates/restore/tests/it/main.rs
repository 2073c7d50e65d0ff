//! Integration tests of caasctl-restore: the executors against real local processes and a real
//! sshd on loopback, and the snapshot check against snapshots written by real etcd.

mod executors;
mod snapshots;
