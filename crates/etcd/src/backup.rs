//! `etcd backup`: health first, then a snapshot streamed from a healthy member. Followers come
//! before the leader, and the next member is tried when a stream breaks. The configuration
//! directories are archived and the manifest is written last, so a backup appears in the
//! repository only when whole.
//! With recipients, the snapshot and the archives are encrypted with age on their way to the
//! repository, after the plaintext was hashed.

use std::path::PathBuf;

use caasctl_core::{timefmt, Localize, Message, Progress};
use tracing::{info, info_span, warn, Instrument};

use crate::client::{MemberClient, Timeouts};
use crate::blob::{parse_recipients, BlobSink, KeyError, StoredDigest, StoredWriter, AGE_SCHEME, AGE_SUFFIX};
use crate::config_archive::{archive_bytes, FetchedArchive};
use crate::endpoints::ClusterAccess;
use crate::error::EtcdError;
use crate::health::{check_all, members, EndpointHealth};
use crate::repo::{ConfigArchive, Manifest, RepoError, SnapshotFile, SourceMember, SNAPSHOT};
use crate::s3::S3Options;
use crate::store::{Repository, StoreError, Work};
use crate::snapshot::{stream_to_sink, StreamOptions};
use crate::tls::TlsMaterial;

/// A configuration directory to archive with the snapshot.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// Member or host the directory belongs to; names the archive file.
    pub member: String,
    /// Directory, such as `/etc/etcd`.
    pub dir: PathBuf,
}

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Cluster endpoints and TLS files.
    pub access: ClusterAccess,
    /// Repository directory or `s3://BUCKET/PREFIX`.
    pub repo: String,
    /// How to reach an S3 repository.
    pub s3: S3Options,
    /// Configuration directories to archive.
    pub config: Vec<ConfigSource>,
    /// Timeouts for requests.
    pub timeouts: Timeouts,
    /// Snapshot stream options.
    pub stream: StreamOptions,
    /// age X25519 public keys (`age1...`) to encrypt the files to; plain files when empty.
    pub recipients: Vec<String>,
}

/// A member that was tried and failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedAttempt {
    /// Endpoint tried.
    pub endpoint: String,
    /// Why it failed.
    pub error: String,
}

/// The result of a successful backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupOutcome {
    /// The manifest written.
    pub manifest: Manifest,
    /// Backup directory.
    pub path: PathBuf,
    /// Health of every endpoint before the snapshot.
    pub health: Vec<EndpointHealth>,
    /// Members tried before the one that succeeded.
    pub failed_attempts: Vec<FailedAttempt>,
}

/// A failed backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Talking to etcd failed.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// Writing the repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Writing the repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A configuration directory could not be archived.
    #[error("failed to archive {}", dir.display())]
    Config {
        /// The directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An encryption recipient is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No endpoint was healthy.
    #[error("no healthy etcd member to take a snapshot from")]
    NoHealthyMember {
        /// Health of every endpoint.
        health: Vec<EndpointHealth>,
    },
}

impl Localize for BackupError {
    fn message(&self) -> Message {
        match self {
            BackupError::Etcd(inner) => inner.message(),
            BackupError::Repo(inner) => inner.message(),
            BackupError::Store(inner) => inner.message(),
            BackupError::Config { dir, source } => Message::new("backup.error.config").arg("dir", dir.display()).arg("reason", source),
            BackupError::Key(inner) => inner.message(),
            BackupError::NoHealthyMember { .. } => EtcdError::NoHealthyMember.message(),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            BackupError::Etcd(inner) => inner.hint(),
            BackupError::Repo(inner) => inner.hint(),
            BackupError::Store(inner) => inner.hint(),
            BackupError::Config { .. } => Some(Message::new("backup.hint.config")),
            BackupError::Key(inner) => inner.hint(),
            BackupError::NoHealthyMember { .. } => EtcdError::NoHealthyMember.hint(),
        }
    }
}

/// Orders healthy endpoints for the snapshot: followers first, the leader last, so that the
/// leader's disk and network stay free for the cluster.
pub fn snapshot_order(checked: Vec<(EndpointHealth, Option<MemberClient>)>) -> (Vec<EndpointHealth>, Vec<(EndpointHealth, MemberClient)>) {
    let health: Vec<EndpointHealth> = checked.iter().map(|(h, _)| h.clone()).collect();
    let mut candidates: Vec<(EndpointHealth, MemberClient)> = checked
        .into_iter()
        .filter_map(|(h, c)| if h.healthy { c.map(|c| (h, c)) } else { None })
        .collect();
    candidates.sort_by_key(|(h, _)| h.is_leader);
    (health, candidates)
}

/// Runs a backup.
///
/// # Errors
/// [`BackupError`]; the working directory of a failed backup is removed, so nothing incomplete
/// is left behind, except after a crash, when `backups list` shows it as incomplete.
pub async fn run_backup(request: &BackupRequest, progress: &dyn Progress) -> Result<BackupOutcome, BackupError> {
    run_backup_with_archives(request, &[], progress).await
}

/// Runs a backup that also stores `fetched`, the configuration archives built on the members'
/// own hosts, beside the directories of `request.config`.
///
/// # Errors
/// As [`run_backup`].
pub async fn run_backup_with_archives(request: &BackupRequest, fetched: &[FetchedArchive], progress: &dyn Progress) -> Result<BackupOutcome, BackupError> {
    let span = info_span!("etcd.backup", repo = %request.repo);
    async move {
        let started = timefmt::now();
        let tls = TlsMaterial::load(&request.access.tls).map_err(EtcdError::from)?;
        let recipients = parse_recipients(&request.recipients)?;
        let repo = Repository::open(&request.repo, &request.s3)?;
        if repo.is_remote() && recipients.is_empty() {
            // The CLI and the service warn the operator themselves; this is the log's record.
            info!(repo = %repo.display(), encrypted = false, "writing an unencrypted backup to a remote repository");
        }

        let checked = check_all(&request.access.endpoints, &tls, request.timeouts).await;
        let (health, candidates) = snapshot_order(checked);
        if candidates.is_empty() {
            return Err(BackupError::NoHealthyMember { health });
        }
        let (cluster_id, member_list) = members(&candidates[0].1).await?;

        let work = repo.begin(&format!("etcd-{}", timefmt::compact(started))).await?;
        let id = work.id.clone();
        info!(id = %id, "backup started");
        let result = write_backup(request, fetched, &recipients, &work, &candidates, progress).await;
        let (snapshot, source, revision, key_count, failed_attempts, config_archives) = match result {
            Ok(parts) => parts,
            Err(error) => {
                work.discard().await;
                return Err(error);
            }
        };

        let source_health = candidates.iter().find(|(h, _)| h.endpoint == source.endpoint).map(|(h, _)| h.clone());
        let manifest = Manifest {
            format: 1,
            id: id.clone(),
            kind: "etcd-v3-snapshot".to_owned(),
            cluster_id,
            members: member_list.clone(),
            etcd_version: source_health.as_ref().and_then(|h| h.version.clone()).unwrap_or_default(),
            revision,
            key_count,
            db_size: source_health.as_ref().and_then(|h| h.db_size).unwrap_or(0),
            snapshot,
            source_member: SourceMember {
                name: member_list.iter().find(|m| Some(&m.id) == source_health.as_ref().and_then(|h| h.member_id.as_ref())).map(|m| m.name.clone()).unwrap_or_default(),
                id: source_health.as_ref().and_then(|h| h.member_id.clone()).unwrap_or_default(),
                endpoint: source.endpoint.clone(),
            },
            caasctl_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: timefmt::rfc3339(started),
            finished_at: timefmt::rfc3339(timefmt::now()),
            config_archives,
            encryption: (!request.recipients.is_empty())
                .then(|| serde_json::json!({ "scheme": AGE_SCHEME, "recipients": request.recipients })),
            v2: None,
        };
        let path = work.commit(&manifest).await?;
        info!(id = %id, bytes = manifest.snapshot.size, revision, key_count, "backup finished");
        Ok(BackupOutcome { manifest, path, health, failed_attempts })
    }
    .instrument(span)
    .await
}

type BackupParts = (SnapshotFile, SourceMember, i64, i64, Vec<FailedAttempt>, Vec<ConfigArchive>);

async fn write_backup(
    request: &BackupRequest,
    fetched: &[FetchedArchive],
    recipients: &[age::x25519::Recipient],
    work: &Work,
    candidates: &[(EndpointHealth, MemberClient)],
    progress: &dyn Progress,
) -> Result<BackupParts, BackupError> {
    let suffix = if recipients.is_empty() { "" } else { AGE_SUFFIX };
    let snapshot_file = format!("{SNAPSHOT}{suffix}");
    let target = work.describe(&snapshot_file);
    let mut failed_attempts = Vec::new();
    let mut saved = None;

    for (health, client) in candidates {
        // NOTE: revision and key count are read right before the stream starts. Writes that land
        // between this read and the snapshot make the manifest lag the snapshot by those writes.
        let counted = client.revision_and_count().await;
        let streamed = match counted {
            Ok(counts) => {
                let sink = work.sink(&snapshot_file).await?;
                stream_to_sink(client, sink, recipients, &target, progress, request.stream).await.map(|digest| (counts, digest))
            }
            Err(error) => Err(error),
        };
        match streamed {
            Ok(((revision, key_count), digest)) => {
                saved = Some((health, revision, key_count, digest));
                break;
            }
            Err(error) if error.is_retryable() => {
                warn!(endpoint = %health.endpoint, error = %error, "snapshot failed, trying the next healthy member");
                failed_attempts.push(FailedAttempt { endpoint: health.endpoint.clone(), error: error.to_string() });
            }
            Err(error) => return Err(error.into()),
        }
    }
    let Some((health, revision, key_count, (digest, stored))) = saved else {
        return Err(EtcdError::AllSnapshotsFailed { attempts: failed_attempts.len() }.into());
    };
    work.publish(&snapshot_file)?;

    let mut archives = Vec::new();
    for config in &request.config {
        let file = format!("config/{}.tar.gz{suffix}", sanitize(&config.member));
        let (bytes, sha256) = archive_bytes(&config.dir).map_err(|source| BackupError::Config { dir: config.dir.clone(), source })?;
        archives.push(store_archive(work, recipients, &config.member, &config.dir.display().to_string(), &file, &bytes, sha256).await?);
    }
    for archive in fetched {
        let file = format!("config/{}.tar.gz{suffix}", sanitize(&archive.file_stem));
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&archive.bytes));
        archives.push(store_archive(work, recipients, &archive.member, &archive.source, &file, &archive.bytes, sha256).await?);
    }
    info!(id = %work.id, archives = archives.len(), "snapshot and configuration stored");

    let encrypted = !recipients.is_empty();
    let snapshot = SnapshotFile {
        file: snapshot_file,
        size: digest.size,
        sha256: digest.file_sha256,
        db_sha256: digest.db_sha256,
        ciphertext_size: encrypted.then_some(stored.size),
        ciphertext_sha256: encrypted.then_some(stored.sha256),
    };
    let source = SourceMember { name: String::new(), id: health.member_id.clone().unwrap_or_default(), endpoint: health.endpoint.clone() };
    Ok((snapshot, source, revision, key_count, failed_attempts, archives))
}

/// Stores one configuration archive as `file` of the backup and returns its manifest entry.
async fn store_archive(
    work: &Work,
    recipients: &[age::x25519::Recipient],
    member: &str,
    source: &str,
    file: &str,
    bytes: &[u8],
    sha256: String,
) -> Result<ConfigArchive, BackupError> {
    let sink = work.sink(file).await?;
    // An upload sink blocks on the runtime, so the bytes are written from a plain thread.
    let written = std::thread::scope(|scope| scope.spawn(|| write_stored(sink, recipients, bytes)).join());
    let stored = written
        .unwrap_or_else(|_| Err(std::io::Error::other("archive writer thread panicked")))
        .map_err(|source| RepoError::Io { action: "write", path: PathBuf::from(work.describe(file)), source })?;
    work.publish(file)?;
    let encrypted = !recipients.is_empty();
    Ok(ConfigArchive {
        member: member.to_owned(),
        source: source.to_owned(),
        file: file.to_owned(),
        size: bytes.len() as u64,
        sha256,
        ciphertext_size: encrypted.then_some(stored.size),
        ciphertext_sha256: encrypted.then_some(stored.sha256),
    })
}

/// Writes `bytes` through optional encryption into `sink` and commits it.
fn write_stored(sink: Box<dyn BlobSink>, recipients: &[age::x25519::Recipient], bytes: &[u8]) -> std::io::Result<StoredDigest> {
    let mut writer = StoredWriter::new(sink, recipients)?;
    if let Err(error) = std::io::Write::write_all(&mut writer, bytes) {
        writer.abort();
        return Err(error);
    }
    writer.finish()
}

/// Makes a member name safe as a file name.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}
