//! One volume backup. It finds the mount, starts `tar` in the container or on the node, and
//! stores the stream while recording its entries. The stored file is read back to check its hash,
//! and only then is the manifest written, which makes the backup listed.

use std::io::{self, Read};
use std::path::PathBuf;

use caasctl_core::timefmt;
use caasctl_etcd::blob::{parse_recipients, HashingWriter, StoredDigest, StoredWriter, AGE_SCHEME, AGE_SUFFIX};
use caasctl_etcd::repo::Encryption;
use caasctl_etcd::store::{Repository, Work};
use tracing::{info, info_span, Instrument};

use crate::archive::{scan, Digest256, TeeReader};
use crate::error::VolumeBackupError;
use crate::exec::{open_stdout, ContainerRef};
use crate::manifest::{ArchiveFile, FileEntry, VolumeManifest, VolumeSource, ARCHIVE, FORMAT, KIND};
use crate::node::{locate, spawn_tar, SshOptions};
use crate::source::{find_mount, volume_location, MountTarget};
use crate::store::open_unpublished;

/// Transport of the tar stream.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `tar` in the container through the Kubernetes exec API.
    Exec,
    /// `tar` on the node over SSH, reading the kubelet's volume directory.
    Node(SshOptions),
}

/// A backup request for one pod.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container whose mount to read; the only claim mount of the pod when `None`.
    pub container: Option<String>,
    /// Directory inside the container to archive, at or below a claim's mount path.
    pub path: Option<String>,
    /// How to read it.
    pub transport: Transport,
    /// age public keys to encrypt the archive to; plain when empty.
    pub recipients: Vec<String>,
}

/// A finished, checked backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupOutcome {
    /// Its manifest.
    pub manifest: VolumeManifest,
    /// Directory or `s3://` URL of the backup.
    pub location: PathBuf,
}

/// Result of the storing thread: the entries, the tar stream's digest and the stored digest.
type Stored = (Vec<FileEntry>, (u64, String), StoredDigest);

/// Backs up one pod's volume into the repository area `area` (see [`crate::store::open_area`]).
///
/// # Errors
/// [`VolumeBackupError`]; nothing is listed in the repository after a failure.
pub async fn backup_pod(client: &kube::Client, area: &Repository, request: &BackupRequest) -> Result<BackupOutcome, VolumeBackupError> {
    let span = info_span!("volume.backup", namespace = %request.namespace, pod = %request.pod);
    async move {
        let started = timefmt::now();
        let mount = find_mount(client, &request.namespace, &request.pod, request.container.as_deref(), request.path.as_deref()).await?;
        let recipients = parse_recipients(&request.recipients).map_err(|e| VolumeBackupError::Stream {
            action: "encrypt",
            source_name: request.pod.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let (transport, volume, node_path) = describe_transport(client, request, &mount).await?;

        let work = area.begin(&format!("{}-{}-{}", timefmt::compact(started), mount.namespace, mount.pod)).await?;
        let file = if recipients.is_empty() { ARCHIVE.to_owned() } else { format!("{ARCHIVE}{AGE_SUFFIX}") };
        info!(id = %work.id, container = %mount.container, path = %mount.path, transport, "backup started");
        let stored = match store_stream(client, area, &work, &file, request, &mount, node_path.as_deref(), recipients).await {
            Ok(stored) => stored,
            Err(error) => {
                work.discard().await;
                return Err(error);
            }
        };

        let (files, (size, sha256), digest) = stored;
        let encrypted = !request.recipients.is_empty();
        let archive = ArchiveFile {
            file: file.clone(),
            size,
            sha256,
            ciphertext_size: encrypted.then_some(digest.size),
            ciphertext_sha256: encrypted.then(|| digest.sha256.clone()),
        };
        let manifest = VolumeManifest {
            format: FORMAT,
            id: work.id.clone(),
            kind: KIND.to_owned(),
            source: VolumeSource {
                namespace: mount.namespace.clone(),
                pod: mount.pod.clone(),
                pod_uid: mount.pod_uid.clone(),
                container: mount.container.clone(),
                mount_path: mount.mount_path.clone(),
                path: mount.path.clone(),
                pvc: mount.pvc.clone(),
                volume,
                node: mount.node.clone(),
                transport: transport.to_owned(),
                node_path,
            },
            archive,
            file_count: files.iter().filter(|f| f.kind == "file").count() as u64,
            total_bytes: files.iter().map(|f| f.size).sum(),
            files,
            caasctl_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: timefmt::rfc3339(started),
            finished_at: timefmt::rfc3339(timefmt::now()),
            encryption: encrypted.then(|| Encryption { scheme: AGE_SCHEME.to_owned(), recipients: request.recipients.clone() }),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        let location = work.commit_json(json).await?;
        info!(id = %manifest.id, files = manifest.file_count, bytes = manifest.total_bytes, "backup complete");
        Ok(BackupOutcome { manifest, location })
    }
    .instrument(span)
    .await
}

/// Returns the transport name, the PersistentVolume name and, for the node transport, the
/// directory to archive on the node.
async fn describe_transport(client: &kube::Client, request: &BackupRequest, mount: &MountTarget) -> Result<(&'static str, Option<String>, Option<String>), VolumeBackupError> {
    let location = volume_location(client, &mount.namespace, &mount.pvc).await;
    match &request.transport {
        Transport::Exec => Ok(("exec", location.ok().map(|l| l.volume().to_owned()), None)),
        Transport::Node(ssh) => {
            let location = location?;
            let node = mount.node.clone().ok_or_else(|| VolumeBackupError::NotScheduled { namespace: mount.namespace.clone(), pod: mount.pod.clone() })?;
            let (ssh, uid, where_) = (ssh.clone(), mount.pod_uid.clone(), location.clone());
            let dir = tokio::task::spawn_blocking(move || locate(&ssh, &node, &uid, &where_)).await.expect("locate thread panicked")?;
            let relative = mount.path.strip_prefix(&mount.mount_path).unwrap_or("").trim_start_matches('/');
            let dir = if relative.is_empty() { dir } else { format!("{}/{relative}", dir.trim_end_matches('/')) };
            Ok(("node", Some(location.volume().to_owned()), Some(dir)))
        }
    }
}

/// Streams the archive into the repository and checks the stored bytes.
#[allow(clippy::too_many_arguments)]
async fn store_stream(
    client: &kube::Client,
    area: &Repository,
    work: &Work,
    file: &str,
    request: &BackupRequest,
    mount: &MountTarget,
    node_path: Option<&str>,
    recipients: Vec<age::x25519::Recipient>,
) -> Result<Stored, VolumeBackupError> {
    let sink = work.sink(file).await?;
    let source_name = format!("{}/{}", mount.namespace, mount.pod);
    let stream_error = |action: &'static str| {
        let source_name = source_name.clone();
        move |source: io::Error| VolumeBackupError::Stream { action, source_name, source }
    };

    // NOTE: GNU tar exits with 1 when a file changed while it was read, which a pod that keeps
    // writing (Elasticsearch indexing) causes often. That fails the backup like any other
    // non-zero exit, so writes should stop for the copy, as the runbook advises.
    let stored = match (&request.transport, node_path) {
        (Transport::Node(ssh), Some(dir)) => {
            let node = mount.node.clone().unwrap_or_default();
            let mut tar = spawn_tar(ssh, &node, dir)?;
            let stdout = tar.child.stdout.take().expect("stdout is piped");
            let result = tokio::task::spawn_blocking(move || write_archive(stdout, sink, &recipients)).await.expect("store thread panicked");
            let finished = tokio::task::spawn_blocking(move || tar.finish()).await.expect("wait thread panicked");
            finished?;
            result.map_err(stream_error("store"))?
        }
        _ => {
            let target = ContainerRef { namespace: mount.namespace.clone(), pod: mount.pod.clone(), container: mount.container.clone() };
            let command = ["tar", "-c", "-f", "-", "-C", mount.path.as_str(), "."].iter().map(|s| (*s).to_owned()).collect();
            let stream = open_stdout(client, &target, command).await?;
            let stdout = stream.stdout;
            let result = tokio::task::spawn_blocking(move || write_archive(stdout, sink, &recipients)).await.expect("store thread panicked");
            stream.outcome.await.expect("exec task panicked")?;
            result.map_err(stream_error("store"))?
        }
    };
    work.publish(file)?;

    // The stored bytes are read back before the manifest is written: a backup is listed only
    // after its hash was checked.
    let (_, _, digest) = &stored;
    let reader = open_unpublished(area, &work.id, file).await?;
    let found = tokio::task::spawn_blocking(move || hash_all(reader)).await.expect("hash thread panicked").map_err(stream_error("read back"))?;
    if found != (digest.size, digest.sha256.clone()) {
        return Err(VolumeBackupError::HashMismatch {
            id: work.id.clone(),
            what: file.to_owned(),
            expected: format!("{} bytes, sha256 {}", digest.size, digest.sha256),
            actual: format!("{} bytes, sha256 {}", found.0, found.1),
        });
    }
    Ok(stored)
}

/// Passes `stream` through optional encryption into `sink` while parsing it as tar.
fn write_archive(stream: impl Read, sink: Box<dyn caasctl_etcd::blob::BlobSink>, recipients: &[age::x25519::Recipient]) -> io::Result<Stored> {
    let writer = StoredWriter::new(sink, recipients)?;
    let mut tee = TeeReader::new(stream, HashingWriter::new(writer));
    let scanned = scan(&mut tee);
    let hashing = tee.into_copy();
    let files = match scanned {
        Ok(files) => files,
        Err(error) => {
            hashing.inner.abort();
            return Err(error);
        }
    };
    let plain = hashing.digest();
    let stored = hashing.inner.finish()?;
    Ok((files, plain, stored))
}

/// Returns the size and SHA-256 of everything `reader` yields.
pub fn hash_all(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut digest = Digest256::default();
    io::copy(&mut reader, &mut digest)?;
    Ok(digest.finish())
}
