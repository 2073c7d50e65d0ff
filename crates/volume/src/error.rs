//! Errors of volume backup and restore, with their catalogue messages and hints.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};
use caasctl_etcd::store::StoreError;

use crate::archive::EntryProblem;

/// A volume backup or restore that failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeBackupError {
    /// A Kubernetes request failed, or the kubeconfig is unusable.
    #[error(transparent)]
    Kube(#[from] caasctl_kube::VolumeError),

    /// The pod does not exist.
    #[error("pod {namespace}/{pod} not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },

    /// The pod mounts no PersistentVolumeClaim that matches the options.
    #[error("pod {namespace}/{pod} has no PersistentVolumeClaim mount{}", detail)]
    NoClaimMount {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// What was looked for, such as ` in container es at /data`.
        detail: String,
    },

    /// Several claim mounts match and the options do not pick one.
    #[error("pod {namespace}/{pod} mounts several PersistentVolumeClaims: {mounts}")]
    AmbiguousMount {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// The candidates as `container:path`.
        mounts: String,
    },

    /// The label selector matched no pod.
    #[error("no pod in namespace {namespace} matches the label selector {selector}")]
    NoPodsSelected {
        /// Namespace.
        namespace: String,
        /// The selector.
        selector: String,
    },

    /// Opening the exec stream failed.
    #[error("failed to exec {command} in {namespace}/{pod} container {container}")]
    Exec {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container.
        container: String,
        /// The command.
        command: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },

    /// A command in the container or on the node failed.
    #[error("{command} failed on {place}: {reason}")]
    CommandFailed {
        /// Where it ran, such as `pod logging/es-0 container es` or `ssh:root@node1`.
        place: String,
        /// The command.
        command: String,
        /// Exit status or the Kubernetes status message, and the last lines of stderr.
        reason: String,
    },

    /// The volume's directory was not found on the node.
    #[error("volume {volume} of pod UID {uid} not found on node {node} under {dirs}")]
    NodeDirNotFound {
        /// Node.
        node: String,
        /// Pod UID.
        uid: String,
        /// PersistentVolume name.
        volume: String,
        /// Pods directories searched.
        dirs: String,
    },

    /// The claim is not bound, so the node has no directory for it.
    #[error("PersistentVolumeClaim {namespace}/{pvc} is not bound to a PersistentVolume")]
    NotBound {
        /// Namespace.
        namespace: String,
        /// Claim.
        pvc: String,
    },

    /// The pod is not scheduled to a node.
    #[error("pod {namespace}/{pod} is not scheduled to a node")]
    NotScheduled {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },

    /// `--path` is not inside the mount.
    #[error("path {path} is not inside the mount {mount_path}")]
    PathOutsideMount {
        /// The path given.
        path: String,
        /// The mount path.
        mount_path: String,
    },

    /// The stream was not a valid tar archive, or reading or storing it failed.
    #[error("failed to {action} the tar stream of {source_name}")]
    Stream {
        /// What was being done, such as `read` or `store`.
        action: &'static str,
        /// The pod or backup.
        source_name: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A stored archive does not hash to what its manifest says.
    #[error("{what} of backup {id} does not match its manifest: expected {expected}, found {actual}")]
    HashMismatch {
        /// Backup ID.
        id: String,
        /// What was checked, such as `data.tar` or a file path.
        what: String,
        /// Expected size and SHA-256.
        expected: String,
        /// Found size and SHA-256.
        actual: String,
    },

    /// The repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The backup ID names no complete volume backup.
    #[error("volume backup {id} not found in {repo}")]
    BackupNotFound {
        /// The ID given.
        id: String,
        /// Repository.
        repo: String,
    },

    /// An encrypted backup needs an identity to be read.
    #[error("volume backup {id} is encrypted; an age identity is needed to read it")]
    NeedsIdentity {
        /// Backup ID.
        id: String,
    },

    /// The archive has entries that would be written outside the target.
    #[error("backup {id} has {} unsafe entries, nothing was restored: {}", problems.len(), problems.iter().take(5).map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnsafeEntries {
        /// Backup ID.
        id: String,
        /// Each rejected entry.
        problems: Vec<EntryProblem>,
    },

    /// A local file operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Path acted on.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The restore target exists and is not a directory.
    #[error("restore target {} exists and is not a directory", path.display())]
    TargetNotDir {
        /// The target.
        path: PathBuf,
    },
}

impl VolumeBackupError {
    /// Returns true when the error comes from the user's input rather than a failed operation.
    pub fn is_usage(&self) -> bool {
        match self {
            VolumeBackupError::Kube(inner) => inner.is_usage(),
            VolumeBackupError::AmbiguousMount { .. } | VolumeBackupError::PathOutsideMount { .. } | VolumeBackupError::NeedsIdentity { .. } | VolumeBackupError::TargetNotDir { .. } => true,
            _ => false,
        }
    }
}

impl Localize for VolumeBackupError {
    fn message(&self) -> Message {
        match self {
            VolumeBackupError::Kube(inner) => inner.message(),
            VolumeBackupError::Store(inner) => inner.message(),
            VolumeBackupError::PodNotFound { namespace, pod } => Message::new("vbackup.error.pod_not_found").arg("namespace", namespace).arg("pod", pod),
            VolumeBackupError::NoClaimMount { namespace, pod, detail } => {
                Message::new("vbackup.error.no_claim_mount").arg("namespace", namespace).arg("pod", pod).arg("detail", detail)
            }
            VolumeBackupError::AmbiguousMount { namespace, pod, mounts } => {
                Message::new("vbackup.error.ambiguous_mount").arg("namespace", namespace).arg("pod", pod).arg("mounts", mounts)
            }
            VolumeBackupError::NoPodsSelected { namespace, selector } => Message::new("vbackup.error.no_pods").arg("namespace", namespace).arg("selector", selector),
            VolumeBackupError::Exec { namespace, pod, container, command, source } => Message::new("vbackup.error.exec")
                .arg("namespace", namespace)
                .arg("pod", pod)
                .arg("container", container)
                .arg("command", command)
                .arg("reason", source),
            VolumeBackupError::CommandFailed { place, command, reason } => Message::new("vbackup.error.command").arg("place", place).arg("command", command).arg("reason", reason),
            VolumeBackupError::NodeDirNotFound { node, uid, volume, dirs } => {
                Message::new("vbackup.error.node_dir").arg("node", node).arg("uid", uid).arg("volume", volume).arg("dirs", dirs)
            }
            VolumeBackupError::NotBound { namespace, pvc } => Message::new("vbackup.error.not_bound").arg("namespace", namespace).arg("pvc", pvc),
            VolumeBackupError::NotScheduled { namespace, pod } => Message::new("vbackup.error.not_scheduled").arg("namespace", namespace).arg("pod", pod),
            VolumeBackupError::PathOutsideMount { path, mount_path } => Message::new("vbackup.error.path_outside").arg("path", path).arg("mount", mount_path),
            VolumeBackupError::Stream { action, source_name, source } => {
                Message::new("vbackup.error.stream").arg("action", action).arg("source", source_name).arg("reason", source)
            }
            VolumeBackupError::HashMismatch { id, what, expected, actual } => {
                Message::new("vbackup.error.hash_mismatch").arg("id", id).arg("what", what).arg("expected", expected).arg("actual", actual)
            }
            VolumeBackupError::BackupNotFound { id, repo } => Message::new("vbackup.error.not_found").arg("id", id).arg("repo", repo),
            VolumeBackupError::NeedsIdentity { id } => Message::new("vbackup.error.needs_identity").arg("id", id),
            VolumeBackupError::UnsafeEntries { id, problems } => Message::new("vbackup.error.unsafe_entries")
                .arg("id", id)
                .arg("count", problems.len())
                .arg("entries", problems.iter().take(5).map(ToString::to_string).collect::<Vec<_>>().join("; ")),
            VolumeBackupError::Io { action, path, source } => Message::new("vbackup.error.io").arg("action", action).arg("path", path.display()).arg("reason", source),
            VolumeBackupError::TargetNotDir { path } => Message::new("vbackup.error.target_not_dir").arg("path", path.display()),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            VolumeBackupError::Kube(inner) => inner.hint(),
            VolumeBackupError::Store(inner) => inner.hint(),
            VolumeBackupError::AmbiguousMount { .. } => Some(Message::new("vbackup.hint.ambiguous_mount")),
            VolumeBackupError::NoClaimMount { .. } => Some(Message::new("vbackup.hint.no_claim_mount")),
            VolumeBackupError::CommandFailed { .. } => Some(Message::new("vbackup.hint.command")),
            VolumeBackupError::NodeDirNotFound { .. } => Some(Message::new("vbackup.hint.node_dir")),
            VolumeBackupError::BackupNotFound { .. } => Some(Message::new("vbackup.hint.not_found")),
            VolumeBackupError::NeedsIdentity { .. } => Some(Message::new("vbackup.hint.needs_identity")),
            VolumeBackupError::UnsafeEntries { .. } => Some(Message::new("vbackup.hint.unsafe_entries")),
            VolumeBackupError::HashMismatch { .. } => Some(Message::new("vbackup.hint.hash_mismatch")),
            VolumeBackupError::Exec { .. } => Some(Message::new("vbackup.hint.exec")),
            _ => None,
        }
    }
}
