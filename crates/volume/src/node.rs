//! The node transport: `tar` run on the pod's node over SSH, reading the volume's directory
//! where the kubelet mounted it, for images that have no `tar`.
//!
//! The kubelet mounts a pod's volume at `PODS_DIR/POD_UID/volumes/PLUGIN/PV_NAME` (CSI volumes one
//! level deeper, in `mount/`). PODS_DIR is `/var/lib/origin/openshift.local.volumes/pods` on
//! OpenShift 3.x and `/var/lib/kubelet/pods` on Kubernetes. `hostPath` and `local` volumes are not
//! mounted there, so their own path is read instead. The system's OpenSSH client runs with
//! `BatchMode=yes`, so `~/.ssh/config`, agents and jump hosts work and no prompt can hang a run.

use std::process::{Child, Command, Stdio};

use tracing::debug;

use crate::error::VolumeBackupError;
use crate::shell::{quote, sh_command};
use crate::source::VolumeLocation;

/// Pods directories searched when none is configured: OpenShift 3.x's, then Kubernetes'.
pub const DEFAULT_PODS_DIRS: [&str; 2] = ["/var/lib/origin/openshift.local.volumes/pods", "/var/lib/kubelet/pods"];

/// How to reach nodes over SSH.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Destination template; `{node}` is replaced by the node name. `{node}` alone when empty.
    pub target: String,
    /// Port, when not the configured one.
    pub port: Option<u16>,
    /// Extra `ssh` arguments, such as `-i KEY` or `-F FILE`.
    pub options: Vec<String>,
    /// Pods directories to search on the node.
    pub pods_dirs: Vec<String>,
}

impl SshOptions {
    /// Returns the `ssh` destination for `node`.
    pub fn destination(&self, node: &str) -> String {
        if self.target.is_empty() { node.to_owned() } else { self.target.replace("{node}", node) }
    }

    /// Returns the `ssh` arguments up to and including the destination.
    pub fn ssh_args(&self, node: &str) -> Vec<String> {
        // LogLevel=ERROR keeps notices such as "Permanently added ..." out of stderr.
        let mut args = vec!["-o".to_owned(), "BatchMode=yes".to_owned(), "-o".to_owned(), "LogLevel=ERROR".to_owned()];
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(self.options.iter().cloned());
        args.push("--".to_owned());
        args.push(self.destination(node));
        args
    }

    fn pods_dirs(&self) -> Vec<String> {
        if self.pods_dirs.is_empty() { DEFAULT_PODS_DIRS.iter().map(|d| (*d).to_owned()).collect() } else { self.pods_dirs.clone() }
    }

    fn place(&self, node: &str) -> String {
        format!("ssh:{}", self.destination(node))
    }
}

/// Prints every directory `DIR/UID/volumes/*/PV` (or its `mount/` for CSI) under the pods
/// directories given after the UID and volume name.
const LOCATE_SCRIPT: &str = r#"uid=$1; pv=$2; shift 2
for root in "$@"; do
  for dir in "$root/$uid/volumes"/*/"$pv"; do
    [ -d "$dir" ] || continue
    case "$dir" in
      */kubernetes.io~csi/*) [ -d "$dir/mount" ] && dir="$dir/mount" ;;
    esac
    printf '%s\n' "$dir"
  done
done"#;

/// Finds the directory on `node` that contains the volume of pod `uid`.
///
/// # Errors
/// [`VolumeBackupError::NodeDirNotFound`] when no pods directory has it, or `ssh` fails.
pub fn locate(ssh: &SshOptions, node: &str, uid: &str, location: &VolumeLocation) -> Result<String, VolumeBackupError> {
    let volume = match location {
        VolumeLocation::HostPath { path, .. } => return Ok(path.clone()),
        VolumeLocation::PodsDir { volume } => volume,
    };
    let dirs = ssh.pods_dirs();
    let mut args: Vec<&str> = vec![uid, volume];
    args.extend(dirs.iter().map(String::as_str));
    let command = sh_command(LOCATE_SCRIPT, &args);
    let output = Command::new("ssh").args(ssh.ssh_args(node)).arg(&command).stdin(Stdio::null()).output().map_err(|source| VolumeBackupError::Io {
        action: "start",
        path: "ssh".into(),
        source,
    })?;
    if !output.status.success() {
        return Err(VolumeBackupError::CommandFailed {
            place: ssh.place(node),
            command: "locate the volume directory".to_owned(),
            reason: format!("{}; stderr: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    let found: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect();
    debug!(node, uid, volume = %volume, found = ?found, "volume directory search");
    match found.into_iter().next() {
        Some(dir) => Ok(dir),
        None => Err(VolumeBackupError::NodeDirNotFound { node: node.to_owned(), uid: uid.to_owned(), volume: volume.clone(), dirs: dirs.join(", ") }),
    }
}

/// A `tar` process on the node whose stdout is the archive.
pub struct NodeTar {
    /// The local `ssh` process.
    pub child: Child,
    /// Host it runs on, for messages.
    pub place: String,
    /// The remote command.
    pub command: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// Starts `tar -c -f - -C DIR .` on `node` over SSH.
///
/// # Errors
/// [`VolumeBackupError::Io`] when `ssh` cannot be started.
pub fn spawn_tar(ssh: &SshOptions, node: &str, dir: &str) -> Result<NodeTar, VolumeBackupError> {
    let command = format!("tar -c -f - -C {} .", quote(dir));
    let mut child = Command::new("ssh")
        .args(ssh.ssh_args(node))
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| VolumeBackupError::Io { action: "start", path: "ssh".into(), source })?;
    // stderr is drained on its own thread, so a full stderr pipe cannot stall the archive.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    Ok(NodeTar { child, place: ssh.place(node), command, stderr })
}

impl NodeTar {
    /// Waits for the process and checks its exit status.
    ///
    /// # Errors
    /// [`VolumeBackupError::CommandFailed`] for a non-zero status (255 is `ssh` itself).
    pub fn finish(mut self) -> Result<(), VolumeBackupError> {
        let status = self.child.wait().map_err(|source| VolumeBackupError::Io { action: "wait for", path: "ssh".into(), source })?;
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let tail: String = stderr.trim().chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
        Err(VolumeBackupError::CommandFailed { place: self.place, command: self.command, reason: format!("{status}; stderr: {tail}") })
    }
}
