//! Restore drills: a backup is restored into a scratch etcd on loopback to prove that it restores.
//!
//! The backup is fetched (and decrypted) into a scratch directory and checked against its
//! manifest. Its live key count and keyspace hash are then read offline, and it is restored with
//! etcd's own tool into a new data dir. A single-member etcd is started on free loopback ports
//! from that dir and asked for the same two numbers (`HashKV` at the snapshot's revision). The
//! member is stopped by its PID afterwards, and its data dir is kept in the scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caasctl_core::{Localize, Message, NoProgress};
use caasctl_etcd::blob::Identities;
use caasctl_etcd::fetch::{fetch_backup, FetchError};
use caasctl_etcd::inspect::{self, hashkv, keys, InspectError};
use caasctl_etcd::repo::BackupEntry;
use caasctl_etcd::store::Repository;
use tracing::{info, info_span, warn, Instrument};

use crate::engine::{Engine, RestoreParams};
use crate::exec::{Executor, LocalExecutor};

/// Name of the scratch member.
const MEMBER: &str = "caasctl-drill";

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// etcd server binary; `etcd` on `PATH` when `None`.
    pub etcd: Option<PathBuf>,
    /// Restore tool (etcdutl or etcdctl); etcdutl, then etcdctl, on `PATH` when `None`.
    pub engine: Option<String>,
    /// Directory for drills; each drill gets `SCRATCH/BACKUP_ID`.
    pub scratch: PathBuf,
    /// Time allowed for the scratch etcd to answer.
    pub timeout: Duration,
    /// Identities for encrypted backups.
    pub identities: Option<Arc<Identities>>,
}

/// The outcome of a drill that ran to the end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    /// Backup ID.
    pub id: String,
    /// True when the restored member's key count and hash equal the snapshot's.
    pub ok: bool,
    /// Revision compared.
    pub revision: i64,
    /// Live keys in the snapshot, read offline.
    pub snapshot_keys: u64,
    /// Live keys the restored member returned.
    pub restored_keys: u64,
    /// Keys the manifest recorded when the backup was taken.
    pub manifest_keys: i64,
    /// Keyspace hash of the snapshot, read offline.
    pub snapshot_hash: u32,
    /// `HashKV` of the restored member at the same revision.
    pub restored_hash: u32,
    /// Directory that keeps the fetched snapshot, the restored data dir and the member's log.
    pub dir: PathBuf,
    /// Wall time of the drill in milliseconds.
    pub elapsed_ms: u64,
}

/// A drill that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// No etcd binary was found.
    #[error("etcd binary not found: {searched}")]
    NoEtcd {
        /// Path or `PATH` searched.
        searched: String,
    },
    /// The backup could not be fetched or failed its checks.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The snapshot could not be read offline.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// etcd's restore tool failed.
    #[error("failed to restore the drill data dir {data_dir} with {engine}: {stderr}")]
    Restore {
        /// Tool.
        engine: String,
        /// Target data dir.
        data_dir: String,
        /// What the tool printed on stderr.
        stderr: String,
    },
    /// The scratch etcd did not start or did not answer in time.
    #[error("scratch etcd on {url} did not answer within {seconds} s (log: {})", log.display())]
    NotReady {
        /// Client URL.
        url: String,
        /// Time allowed.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
    },
    /// A file operation or a process start failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// Action, such as `create`.
        action: &'static str,
        /// Path acted on.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Localize for DrillError {
    fn message(&self) -> Message {
        match self {
            DrillError::NoEtcd { searched } => Message::new("drill.error.no_etcd").arg("searched", searched),
            DrillError::Fetch(inner) => inner.message(),
            DrillError::Inspect(inner) => inner.message(),
            DrillError::Restore { engine, data_dir, stderr } => Message::new("drill.error.restore").arg("engine", engine).arg("data_dir", data_dir).arg("stderr", stderr),
            DrillError::NotReady { url, seconds, log } => Message::new("drill.error.not_ready").arg("url", url).arg("seconds", seconds).arg("log", log.display()),
            DrillError::Io { action, path, source } => Message::new("drill.error.io").arg("action", action).arg("path", path.display()).arg("reason", source),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            DrillError::NoEtcd { .. } => Some(Message::new("drill.hint.no_etcd")),
            DrillError::Fetch(inner) => inner.hint(),
            _ => None,
        }
    }
}

impl DrillError {
    /// Returns a short label for metrics: `fetch`, `inspect`, `restore`, `start` or `setup`.
    pub fn reason(&self) -> &'static str {
        match self {
            DrillError::Fetch(_) => "fetch",
            DrillError::Inspect(_) => "inspect",
            DrillError::Restore { .. } => "restore",
            DrillError::NotReady { .. } => "start",
            DrillError::NoEtcd { .. } | DrillError::Io { .. } => "setup",
        }
    }
}

/// A scratch etcd process, stopped by its PID when dropped.
struct ScratchEtcd {
    child: Option<Child>,
}

impl ScratchEtcd {
    /// Sends SIGTERM, waits up to ten seconds, then sends SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id();
        // SAFETY: the PID belongs to the child this process started and has not reaped yet.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                info!(pid, "scratch etcd stopped");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        warn!(pid, "scratch etcd ignored SIGTERM for 10 s; sending SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ScratchEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Finds `name` in the directories of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Returns a port on 127.0.0.1 that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Removes the directories of earlier drills, so that the scratch directory keeps only the
/// newest one. They contain copies of backups that stay in the repository.
fn remove_older_drills(scratch: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == keep || !path.is_dir() {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => info!(dir = %path.display(), "removed an earlier drill directory"),
            Err(error) => warn!(dir = %path.display(), error = %error, "failed to remove an earlier drill directory"),
        }
    }
}

/// Restores `entry` into a scratch etcd and compares its key count and keyspace hash with the
/// snapshot's.
///
/// # Errors
/// [`DrillError`] when the drill could not be carried out; a drill that ran but found different
/// numbers returns a report with `ok: false`.
pub async fn run_drill(repo: &Repository, entry: &BackupEntry, options: &DrillOptions) -> Result<DrillReport, DrillError> {
    let manifest = entry.manifest.clone().expect("drills take complete entries");
    let span = info_span!("etcd.drill", id = %manifest.id);
    async move {
        let started = Instant::now();
        let etcd = match &options.etcd {
            Some(path) if path.is_file() => path.clone(),
            Some(path) => return Err(DrillError::NoEtcd { searched: path.display().to_string() }),
            None => find_on_path("etcd").ok_or_else(|| DrillError::NoEtcd { searched: "PATH".to_owned() })?,
        };
        let engine_path = options.engine.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::find(&LocalExecutor, engine_path.as_deref()))
            .await
            .map_err(|error| DrillError::Io { action: "run", path: PathBuf::from("etcdutl"), source: std::io::Error::other(error.to_string()) })?
            .map_err(|error| DrillError::Restore { engine: "etcdutl/etcdctl".to_owned(), data_dir: String::new(), stderr: error.to_string() })?;

        let dir = options.scratch.join(&manifest.id);
        if dir.exists() {
            let aside = options.scratch.join(format!("{}.{}", manifest.id, std::process::id()));
            std::fs::rename(&dir, &aside).map_err(|source| DrillError::Io { action: "move aside", path: dir.clone(), source })?;
        }
        caasctl_etcd::repo::create_private_dir(&dir).map_err(|error| DrillError::Io { action: "create", path: dir.clone(), source: std::io::Error::other(error) })?;
        remove_older_drills(&options.scratch, &dir);
        info!(dir = %dir.display(), "drill started");

        // Fetch and check the backup, then read the expected numbers offline.
        let fetched = fetch_backup(repo, entry, options.identities.clone(), &dir.join("fetched"), Arc::new(NoProgress)).await?;
        let snapshot = fetched.snapshot.clone();
        let expected = tokio::task::spawn_blocking(move || -> Result<(u64, hashkv::KeyspaceHash), InspectError> {
            let db = inspect::open(&snapshot)?;
            let live = keys::list(&db, &snapshot, b"")?.len() as u64;
            let hash = hashkv::keyspace_hash(&db, &snapshot, None)?;
            Ok((live, hash))
        })
        .await
        .map_err(|error| DrillError::Io { action: "read", path: fetched.snapshot.clone(), source: std::io::Error::other(error.to_string()) })??;
        let (snapshot_keys, snapshot_hash) = expected;

        // Restore with etcd's tool into a new data dir.
        let (client_port, peer_port) = (free_port(), free_port());
        let io_error = |source| DrillError::Io { action: "reserve a port on", path: PathBuf::from("127.0.0.1"), source };
        let (client_port, peer_port) = (client_port.map_err(io_error)?, peer_port.map_err(io_error)?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.join("data");
        let params = RestoreParams {
            snapshot: fetched.snapshot.display().to_string(),
            data_dir: data_dir.display().to_string(),
            name: MEMBER.to_owned(),
            initial_cluster: format!("{MEMBER}={peer_url}"),
            token: MEMBER.to_owned(),
            peer_url: peer_url.clone(),
            skip_hash_check: false,
        };
        let script = engine.restore_command(&params);
        let output = tokio::task::spawn_blocking(move || LocalExecutor.run_script(&script, None))
            .await
            .map_err(|error| DrillError::Io { action: "run", path: PathBuf::from(&engine.path), source: std::io::Error::other(error.to_string()) })?
            .map_err(|error| DrillError::Restore { engine: engine.path.clone(), data_dir: params.data_dir.clone(), stderr: error.to_string() })?;
        if !output.success() {
            return Err(DrillError::Restore { engine: engine.path.clone(), data_dir: params.data_dir.clone(), stderr: output.stderr.trim().to_owned() });
        }

        // Start the scratch member, ask it, and stop it by PID.
        let log = dir.join("etcd.log");
        let mut member = start_member(&etcd, &data_dir, &client_url, &peer_url, &log)?;
        let answered = query_member(&client_url, snapshot_hash.revision, options.timeout).await;
        member.stop();
        let (restored_keys, restored_hash) = answered.ok_or_else(|| DrillError::NotReady { url: client_url.clone(), seconds: options.timeout.as_secs(), log: log.clone() })?;

        let ok = restored_keys == snapshot_keys && restored_hash == snapshot_hash.hash;
        let report = DrillReport {
            id: manifest.id.clone(),
            ok,
            revision: snapshot_hash.revision,
            snapshot_keys,
            restored_keys,
            manifest_keys: manifest.key_count,
            snapshot_hash: snapshot_hash.hash,
            restored_hash,
            dir: dir.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        if ok {
            info!(revision = report.revision, keys = restored_keys, hash = restored_hash, elapsed_ms = report.elapsed_ms, "drill finished: the restored member matches the snapshot");
        } else {
            warn!(revision = report.revision, snapshot_keys, restored_keys, snapshot_hash = snapshot_hash.hash, restored_hash, "drill finished: the restored member differs from the snapshot");
        }
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Starts a single-member etcd on the restored data dir, logging to `log`.
fn start_member(etcd: &Path, data_dir: &Path, client_url: &str, peer_url: &str, log: &Path) -> Result<ScratchEtcd, DrillError> {
    let file = std::fs::File::create(log).map_err(|source| DrillError::Io { action: "create", path: log.to_owned(), source })?;
    let errors = file.try_clone().map_err(|source| DrillError::Io { action: "open", path: log.to_owned(), source })?;
    let child = Command::new(etcd)
        .arg("--name")
        .arg(MEMBER)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", client_url, "--advertise-client-urls", client_url])
        .args(["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("{MEMBER}={peer_url}"), "--initial-cluster-token", MEMBER])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(errors)
        .spawn()
        .map_err(|source| DrillError::Io { action: "start", path: etcd.to_owned(), source })?;
    info!(pid = child.id(), url = %client_url, "scratch etcd started");
    Ok(ScratchEtcd { child: Some(child) })
}

/// Asks the member for its live key count and `HashKV` at `revision`, retrying until `timeout`.
async fn query_member(url: &str, revision: i64, timeout: Duration) -> Option<(u64, u32)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(10));
        if let Ok(mut client) = etcd_client::Client::connect([url], Some(options)).await {
            let counted = client.get(vec![0u8], Some(etcd_client::GetOptions::new().with_from_key().with_count_only())).await;
            let hashed = client.hash_kv(revision).await;
            if let (Ok(counted), Ok(hashed)) = (counted, hashed) {
                return Some((counted.count() as u64, hashed.hash()));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
