//! Backup and restore of etcd v2 data (etcd 3.4 with `--enable-v2=true`), the way the runbook does
//! it by hand. The backup runs `etcdctl backup` on one stopped member's data dir. The restore
//! starts the first member with `--force-new-cluster` and then adds the other members one at a
//! time.
//!
//! The restore is a [`crate::plan::Plan`] like the v3 restore, so it is printed first, journaled
//! and resumable with `ops resume`; its own steps are the [`V2Action`]s below, carried inside
//! [`crate::plan::Action::V2`].

pub mod backup;
pub mod checks;
pub mod describe;
pub mod overrides;
pub mod plan;
pub mod steps;

use crate::cluster::Service;

/// Action of a v2 restore step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum V2Action {
    /// Checks the SHA-256 of the backup archive on this host against the manifest.
    VerifyArchive {
        /// Archive on this host.
        path: String,
        /// SHA-256 the manifest records.
        sha256: String,
    },
    /// Unpacks the archive into a new temporary directory beside the data dir.
    Unpack {
        /// Archive on the member's host.
        archive: String,
        /// Directory to create.
        temp_dir: String,
    },
    /// Installs the override that adds `flags` and starts etcd.
    StartWithFlags {
        /// Service that runs etcd.
        service: Service,
        /// Extra etcd flags.
        flags: Vec<String>,
    },
    /// Stops etcd, removes the override and starts etcd with its own configuration.
    RestartPlain {
        /// Service that runs etcd.
        service: Service,
        /// Client URL that must refuse connections before the override is removed.
        client_url: String,
    },
    /// Waits until `/health` of every endpoint reports true.
    WaitHealthy {
        /// Client URLs.
        endpoints: Vec<String>,
    },
    /// Sets the peer URL of a member that shows `localhost` (`etcdctl member update`).
    FixPeerUrl {
        /// Client URL to ask.
        endpoint: String,
        /// Member name.
        name: String,
        /// Peer URL the member listens on.
        peer_url: String,
    },
    /// Writes and deletes a scratch v2 key until the raft index passes the backup's consistent
    /// index, so that the restored member applies v3 writes again.
    AdvanceIndex {
        /// Client URL to write to.
        endpoint: String,
        /// `consistent_index` of the backed-up `member/snap/db`.
        consistent_index: u64,
    },
    /// Adds a member (`etcdctl member add`) unless one with its peer URL exists.
    MemberAdd {
        /// Client URLs of the members already running.
        endpoints: Vec<String>,
        /// Name of the new member.
        name: String,
        /// Its peer URL.
        peer_url: String,
    },
    /// Counts the v2 keys on every member and compares them with the backup's count.
    CheckV2Keys {
        /// Client URLs.
        endpoints: Vec<String>,
        /// v2 keys the backup counted.
        expected: Option<u64>,
    },
}

impl V2Action {
    /// Returns true for the steps that talk to etcd from this host, which run asynchronously in
    /// [`checks::run`]; the others run commands on their host in [`steps::run`].
    pub fn is_cluster_step(&self) -> bool {
        matches!(
            self,
            V2Action::WaitHealthy { .. } | V2Action::FixPeerUrl { .. } | V2Action::AdvanceIndex { .. } | V2Action::MemberAdd { .. } | V2Action::CheckV2Keys { .. }
        )
    }
}
