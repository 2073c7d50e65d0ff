//! Writing a volume backup back, into a local directory or a pod's mount.
//!
//! The stored archive is read twice. The first pass checks the stored hash and compares every
//! entry with the manifest. It also rejects entries that would land outside the target (see
//! [`check_entries`]), and nothing is written when one check fails. The second pass writes. An existing,
//! non-empty target is moved aside with a timestamp first and never deleted: a local directory
//! is renamed to `DIR.caasctl-moved-STAMP`, and in a pod, where the mount point cannot be renamed,
//! its entries move into `PATH/.caasctl-moved-STAMP/` on the same volume.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caasctl_core::timefmt;
use caasctl_etcd::blob::Identities;
use caasctl_etcd::store::Repository;
use tokio::sync::mpsc;
use tracing::{info, info_span, Instrument};

use crate::archive::{check_entries, scan, Digest256, TeeReader};
use crate::error::VolumeBackupError;
use crate::exec::{run_with_input, ContainerRef};
use crate::manifest::{FileEntry, VolumeManifest};
use crate::store::open_file;

/// Name part of a directory moved aside.
pub const MOVED_ASIDE: &str = "caasctl-moved";

/// Destination of a restore.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RestoreTarget {
    /// A local directory.
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// A directory in a pod's container.
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container.
        container: String,
        /// Directory inside the container.
        path: String,
    },
}

/// Plan of a restore. JSON: `{id, target, files, bytes, existing, moved_to}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestorePlan {
    /// Backup ID.
    pub id: String,
    /// Target.
    pub target: RestoreTarget,
    /// Regular files to write.
    pub files: u64,
    /// Bytes of regular files to write.
    pub bytes: u64,
    /// `missing`, `empty` or `non-empty`.
    pub existing: String,
    /// Destination of the current content, which is moved first, for a non-empty target.
    pub moved_to: Option<String>,
}

/// Opens the plaintext of a backup's archive, decrypting with `identities` when needed.
async fn open_plain<'a>(area: &Repository, manifest: &VolumeManifest, identities: Option<&'a Identities>) -> Result<(Box<dyn Read + Send>, Option<&'a Identities>), VolumeBackupError> {
    if manifest.encryption.is_some() && identities.is_none() {
        return Err(VolumeBackupError::NeedsIdentity { id: manifest.id.clone() });
    }
    let reader = open_file(area, &manifest.id, &manifest.archive.file).await?;
    Ok((reader, identities.filter(|_| manifest.encryption.is_some())))
}

fn stream_error(id: &str, action: &'static str) -> impl FnOnce(io::Error) -> VolumeBackupError {
    let source_name = format!("backup {id}");
    move |source| VolumeBackupError::Stream { action, source_name, source }
}

/// Reads the whole archive once: checks the stored hash and the plaintext hash against the
/// manifest, compares the entries with it and rejects unsafe entries.
///
/// # Errors
/// [`VolumeBackupError::HashMismatch`], [`VolumeBackupError::UnsafeEntries`],
/// [`VolumeBackupError::NeedsIdentity`], or the archive cannot be read.
pub async fn check_backup(area: &Repository, manifest: &VolumeManifest, identities: Option<&Identities>) -> Result<(), VolumeBackupError> {
    let (reader, identities) = open_plain(area, manifest, identities).await?;
    let (files, stored, plain) = std::thread::scope(|scope| {
        scope
            .spawn(|| -> io::Result<(Vec<FileEntry>, (u64, String), (u64, String))> {
                let mut stored = TeeReader::new(reader, Digest256::default());
                let (files, plain) = match identities {
                    Some(identities) => {
                        let mut plain = TeeReader::new(identities.decrypt(BufReader::new(&mut stored))?, Digest256::default());
                        let files = scan(&mut plain)?;
                        (files, plain.into_copy().finish())
                    }
                    None => {
                        let files = scan(&mut stored)?;
                        (files, (0, String::new()))
                    }
                };
                io::copy(&mut stored, &mut io::sink())?;
                let stored = stored.into_copy().finish();
                let plain = if identities.is_some() { plain } else { stored.clone() };
                Ok((files, stored, plain))
            })
            .join()
            .expect("check thread panicked")
    })
    .map_err(stream_error(&manifest.id, "read"))?;

    let mismatch = |what: &str, expected: (u64, &str), actual: &(u64, String)| VolumeBackupError::HashMismatch {
        id: manifest.id.clone(),
        what: what.to_owned(),
        expected: format!("{} bytes, sha256 {}", expected.0, expected.1),
        actual: format!("{} bytes, sha256 {}", actual.0, actual.1),
    };
    let (stored_size, stored_sha) = manifest.archive.stored_digest();
    if (stored.0, stored.1.as_str()) != (stored_size, stored_sha) {
        return Err(mismatch(&manifest.archive.file, (stored_size, stored_sha), &stored));
    }
    if (plain.0, plain.1.as_str()) != (manifest.archive.size, manifest.archive.sha256.as_str()) {
        return Err(mismatch("the tar stream", (manifest.archive.size, &manifest.archive.sha256), &plain));
    }
    if files != manifest.files {
        let differing = files.iter().zip(&manifest.files).find(|(a, b)| a != b).map(|(a, _)| a.path.clone()).unwrap_or_else(|| "the entry list".to_owned());
        return Err(VolumeBackupError::HashMismatch {
            id: manifest.id.clone(),
            what: differing,
            expected: format!("{} entries as listed in the manifest", manifest.files.len()),
            actual: format!("{} entries in the archive", files.len()),
        });
    }
    let problems = check_entries(&files);
    if !problems.is_empty() {
        return Err(VolumeBackupError::UnsafeEntries { id: manifest.id.clone(), problems });
    }
    Ok(())
}

/// Returns `missing`, `empty` or `non-empty` for a local directory.
///
/// # Errors
/// [`VolumeBackupError::TargetNotDir`], or the directory cannot be read.
pub fn dir_state(path: &Path) -> Result<&'static str, VolumeBackupError> {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok("missing"),
        Err(source) => Err(VolumeBackupError::Io { action: "inspect", path: path.to_owned(), source }),
        Ok(meta) if !meta.is_dir() => Err(VolumeBackupError::TargetNotDir { path: path.to_owned() }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(path).map_err(|source| VolumeBackupError::Io { action: "read", path: path.to_owned(), source })?;
            Ok(if entries.next().is_some() { "non-empty" } else { "empty" })
        }
    }
}

/// Plans a restore into a local directory.
///
/// # Errors
/// As [`dir_state`].
pub fn plan_dir(manifest: &VolumeManifest, path: &Path) -> Result<RestorePlan, VolumeBackupError> {
    let existing = dir_state(path)?;
    let stamp = timefmt::compact(timefmt::now());
    let moved_to = (existing == "non-empty").then(|| format!("{}.{MOVED_ASIDE}-{stamp}", path.display()));
    Ok(RestorePlan {
        id: manifest.id.clone(),
        target: RestoreTarget::Dir { path: path.to_owned() },
        files: manifest.file_count,
        bytes: manifest.total_bytes,
        existing: existing.to_owned(),
        moved_to,
    })
}

/// Restores into a local directory after [`check_backup`] passed. A non-empty target is first
/// moved to the plan's `moved_to`.
///
/// # Errors
/// [`VolumeBackupError::Io`] or [`VolumeBackupError::Stream`].
pub async fn restore_dir(area: &Repository, manifest: &VolumeManifest, plan: &RestorePlan, identities: Option<&Identities>) -> Result<(), VolumeBackupError> {
    let RestoreTarget::Dir { path } = &plan.target else { unreachable!("plan_dir makes directory plans") };
    let span = info_span!("volume.restore", id = %manifest.id, target = %path.display());
    async move {
        if let Some(aside) = &plan.moved_to {
            std::fs::rename(path, aside).map_err(|source| VolumeBackupError::Io { action: "move aside", path: path.clone(), source })?;
            info!(moved_to = %aside, "existing directory moved aside");
        }
        std::fs::create_dir_all(path).map_err(|source| VolumeBackupError::Io { action: "create", path: path.clone(), source })?;
        let (reader, identities) = open_plain(area, manifest, identities).await?;
        std::thread::scope(|scope| scope.spawn(|| unpack(reader, identities, path)).join().expect("unpack thread panicked")).map_err(stream_error(&manifest.id, "unpack"))?;
        info!(files = manifest.file_count, "restored");
        Ok(())
    }
    .instrument(span)
    .await
}

fn unpack(reader: Box<dyn Read + Send>, identities: Option<&Identities>, target: &Path) -> io::Result<()> {
    let plain: Box<dyn Read + '_> = match identities {
        Some(identities) => identities.decrypt(BufReader::new(reader))?,
        None => reader,
    };
    let mut archive = tar::Archive::new(plain);
    archive.set_preserve_permissions(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    // SAFETY: geteuid has no preconditions.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    for entry in archive.entries()? {
        let mut entry = entry?;
        // check_backup already rejected escaping entries; unpack_in refuses them again.
        if !entry.unpack_in(target)? {
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path}: entry outside the target directory")));
        }
    }
    Ok(())
}

/// Prints `empty`, `missing` or `non-empty` for the directory `$1`.
const STATE_SCRIPT: &str = r#"if [ ! -e "$1" ]; then echo missing; elif [ -z "$(ls -A "$1")" ]; then echo empty; else echo non-empty; fi"#;

/// Moves every entry of `$1` into the new directory `$1/$2`, so that the mount point stays.
const MOVE_ASIDE_SCRIPT: &str = r#"set -e
cd "$1"
mkdir "$2"
for entry in * .[!.]* ..?*; do
  if [ -e "$entry" ] || [ -L "$entry" ]; then
    [ "$entry" = "$2" ] || mv -- "$entry" "$2/"
  fi
done"#;

fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut command = vec!["sh".to_owned(), "-c".to_owned(), script.to_owned(), "sh".to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    command
}

/// Plans a restore into a pod's directory; reads its state with `sh` and `ls` in the container.
///
/// # Errors
/// The exec fails.
pub async fn plan_pod(client: &kube::Client, manifest: &VolumeManifest, target: &ContainerRef, path: &str) -> Result<RestorePlan, VolumeBackupError> {
    let state = run_with_input(client, target, sh(STATE_SCRIPT, &[path]), None).await?;
    let existing = state.trim().to_owned();
    let stamp = timefmt::compact(timefmt::now());
    let moved_to = (existing == "non-empty").then(|| format!("{}/.{MOVED_ASIDE}-{stamp}", path.trim_end_matches('/')));
    Ok(RestorePlan {
        id: manifest.id.clone(),
        target: RestoreTarget::Pod { namespace: target.namespace.clone(), pod: target.pod.clone(), container: target.container.clone(), path: path.to_owned() },
        files: manifest.file_count,
        bytes: manifest.total_bytes,
        existing,
        moved_to,
    })
}

/// Restores into a pod's directory after [`check_backup`] passed. Its entries first move to the
/// plan's `moved_to`, then the archive streams into `tar -x` in the container.
///
/// # Errors
/// The exec fails or `tar` in the container fails.
pub async fn restore_pod(
    client: &kube::Client,
    area: &Repository,
    manifest: &VolumeManifest,
    plan: &RestorePlan,
    identities: Option<Arc<Identities>>,
) -> Result<(), VolumeBackupError> {
    let RestoreTarget::Pod { namespace, pod, container, path } = &plan.target else { unreachable!("plan_pod makes pod plans") };
    let identities_owned = identities.clone();
    let target = ContainerRef { namespace: namespace.clone(), pod: pod.clone(), container: container.clone() };
    let span = info_span!("volume.restore", id = %manifest.id, pod = %pod, path = %path);
    async move {
        if let Some(aside) = &plan.moved_to {
            let name = aside.rsplit('/').next().unwrap_or(aside);
            run_with_input(client, &target, sh(MOVE_ASIDE_SCRIPT, &[path, name]), None).await?;
            info!(moved_to = %aside, "existing entries moved aside");
        } else if plan.existing == "missing" {
            run_with_input(client, &target, vec!["mkdir".to_owned(), "-p".to_owned(), path.clone()], None).await?;
        }

        let (reader, identities) = open_plain(area, manifest, identities.as_deref()).await?;
        let identities = identities.and(identities_owned);
        let (sender, receiver) = mpsc::channel::<Vec<u8>>(16);
        let command = ["tar", "-x", "-f", "-", "-C", path.as_str()].iter().map(|s| (*s).to_owned()).collect();
        let producer = tokio::task::spawn_blocking(move || send_plain(reader, identities.as_deref(), &sender));
        let extracted = run_with_input(client, &target, command, Some(receiver)).await;
        let sent = producer.await.expect("send thread panicked");
        extracted?;
        sent.map_err(stream_error(&manifest.id, "send"))?;
        info!(files = manifest.file_count, "restored");
        Ok(())
    }
    .instrument(span)
    .await
}

/// Sends the plaintext of the archive through `sender` in chunks.
fn send_plain(reader: Box<dyn Read + Send>, identities: Option<&Identities>, sender: &mpsc::Sender<Vec<u8>>) -> io::Result<()> {
    let mut plain: Box<dyn Read + '_> = match identities {
        Some(identities) => identities.decrypt(BufReader::new(reader))?,
        None => reader,
    };
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = plain.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        if sender.blocking_send(chunk[..n].to_vec()).is_err() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "tar in the container stopped reading"));
        }
    }
}
