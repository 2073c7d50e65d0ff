//! The manifest of a volume backup, `volumes/ID/manifest.json` in the repository.

use caasctl_etcd::repo::Encryption;

/// Manifest format version written by this code.
pub const FORMAT: u32 = 1;
/// `kind` of a volume backup manifest.
pub const KIND: &str = "volume-tar";
/// File name of the archive inside a backup, before the `.age` suffix of encrypted backups.
pub const ARCHIVE: &str = "data.tar";

/// The stored tar archive of a backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveFile {
    /// File name inside the backup, such as `data.tar` or `data.tar.age`.
    pub file: String,
    /// Size of the tar stream in bytes.
    pub size: u64,
    /// SHA-256 of the tar stream, hex.
    pub sha256: String,
    /// Size of the stored (encrypted) file, for encrypted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_size: Option<u64>,
    /// SHA-256 of the stored (encrypted) file, hex, for encrypted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_sha256: Option<String>,
}

impl ArchiveFile {
    /// Returns the size and SHA-256 of the bytes in the repository: the ciphertext for
    /// encrypted backups, the tar stream otherwise.
    pub fn stored_digest(&self) -> (u64, &str) {
        match (&self.ciphertext_size, &self.ciphertext_sha256) {
            (Some(size), Some(sha256)) => (*size, sha256),
            _ => (self.size, &self.sha256),
        }
    }
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the backed-up directory, `/`-separated, without a leading `./`.
    pub path: String,
    /// `file`, `dir`, `symlink` or `hardlink`.
    pub kind: String,
    /// Size in bytes of a regular file's content; 0 for other kinds.
    pub size: u64,
    /// SHA-256 of a regular file's content, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Permission bits as tar stored them, such as `0o644` written as 420.
    pub mode: u32,
    /// Target of a symbolic link, or the archive path a hard link refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSource {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID at backup time.
    pub pod_uid: String,
    /// Container whose mount was read.
    pub container: String,
    /// Mount path of the volume in the container.
    pub mount_path: String,
    /// Directory that was archived, as a path inside the container.
    pub path: String,
    /// PersistentVolumeClaim mounted there.
    pub pvc: String,
    /// PersistentVolume bound to the claim.
    pub volume: Option<String>,
    /// Node the pod ran on.
    pub node: Option<String>,
    /// `exec` (tar in the container) or `node` (tar on the node over SSH).
    pub transport: String,
    /// Directory read on the node, for the `node` transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_path: Option<String>,
}

/// The manifest of a volume backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeManifest {
    /// Manifest format version.
    pub format: u32,
    /// Backup ID, the directory name below `volumes/`.
    pub id: String,
    /// Kind of backup: `volume-tar`.
    pub kind: String,
    /// Where the data came from.
    pub source: VolumeSource,
    /// The stored tar archive.
    pub archive: ArchiveFile,
    /// Every entry of the archive, in archive order.
    pub files: Vec<FileEntry>,
    /// Number of regular files.
    pub file_count: u64,
    /// Sum of the regular files' sizes in bytes.
    pub total_bytes: u64,
    /// caasctl version that wrote the backup.
    pub caasctl_version: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// End time, RFC 3339.
    pub finished_at: String,
    /// Encryption of the archive; `null` for a plain archive.
    pub encryption: Option<Encryption>,
}
