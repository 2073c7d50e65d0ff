//! The snapshot check against files written by real etcd: a snapshot saved by etcdctl, the
//! `db` of a stopped member's data dir, and damaged copies of the snapshot.


use caasctl_core::NoProgress;
use caasctl_restore::check::{check_snapshot, HashStatus};
use caasctl_restore::RestoreError;
use caasctl_testing::etcd::ClusterOptions;
use caasctl_testing::{EtcdCluster, EtcdVersion};

#[test]
fn real_snapshot_and_copied_db() {
    for version in [EtcdVersion::V34, EtcdVersion::V35] {
        if !caasctl_testing::require(version.available(), &version.etcd_binary().display().to_string()) {
            continue;
        }
        let mut cluster = EtcdCluster::start(ClusterOptions::new(1, version, false));
        for i in 0..50 {
            assert!(cluster.etcdctl(&["put", &format!("k{i}"), "v"]).status.success());
        }
        let snap = cluster.path().join("snap.db");
        let saved = cluster.etcdctl(&["snapshot", "save", &snap.display().to_string()]);
        assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));

        let checked = check_snapshot(&snap, None, false, &NoProgress).unwrap();
        assert_eq!(checked.hash, HashStatus::Verified, "etcd {}", version.label());
        assert!(checked.has_appended_hash);

        let mut bytes = std::fs::read(&snap).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let corrupted = cluster.path().join("corrupted.db");
        std::fs::write(&corrupted, &bytes).unwrap();
        assert!(matches!(check_snapshot(&corrupted, None, false, &NoProgress), Err(RestoreError::AppendedHashMismatch { .. })));

        let truncated = cluster.path().join("truncated.db");
        std::fs::write(&truncated, &std::fs::read(&snap).unwrap()[..middle + 7]).unwrap();
        assert!(matches!(check_snapshot(&truncated, None, true, &NoProgress), Err(RestoreError::Truncated { .. })));

        cluster.stop_all();
        let db = cluster.members[0].data_dir.join("member/snap/db");
        let copied = cluster.path().join("copied.db");
        std::fs::copy(&db, &copied).unwrap();
        assert!(matches!(check_snapshot(&copied, None, false, &NoProgress), Err(RestoreError::NoAppendedHash { .. })));
        assert_eq!(check_snapshot(&copied, None, true, &NoProgress).unwrap().hash, HashStatus::NoHashSkipped);
    }
}
