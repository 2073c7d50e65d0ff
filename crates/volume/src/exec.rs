//! The exec transport: commands in a pod's container through the Kubernetes exec API, the way
//! `oc rsync` falls back to `tar` when the image has no rsync.
//!
//! kube's client offers the WebSocket subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`.
//! Kubernetes 1.20 and OpenShift 3.11 speak only v4, which cannot close stdin on its own: kube
//! then closes the whole connection and the exit status is lost. So a command that reads stdin
//! must end on its own input (tar stops at the end-of-archive blocks), and stdin stays open until
//! the status arrives on channel 3.

use std::io::{self, Read};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, AttachedProcess};
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::error::VolumeBackupError;

/// Bytes buffered between the WebSocket and the reader of a stream.
const STREAM_BUFFER: usize = 1 << 20;
/// Time allowed for the exit status after the command's output ended or its input was sent.
// NOTE: a command that waits for stdin to close never sends its status over v4; this bounds the
// wait, and the command may still be running in the container afterwards.
const STATUS_WAIT: Duration = Duration::from_secs(120);
/// Maximum stderr kept for error messages.
const STDERR_KEEP: usize = 4096;

/// A container to run commands in.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

impl ContainerRef {
    /// Names the container for messages: `pod NS/POD container C`.
    pub fn place(&self) -> String {
        format!("pod {}/{} container {}", self.namespace, self.pod, self.container)
    }
}

/// A blocking reader of bytes that an async task sends through a channel.
pub struct ChannelReader {
    receiver: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    offset: usize,
}

impl ChannelReader {
    /// Wraps the receiving end; the stream ends when every sender is dropped.
    pub fn new(receiver: mpsc::Receiver<Vec<u8>>) -> Self {
        ChannelReader { receiver, pending: Vec::new(), offset: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.pending.len() {
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// A running command whose stdout is read as a stream.
pub struct ExecStream {
    /// The command's stdout; read it from a thread outside the runtime.
    pub stdout: ChannelReader,
    /// Resolves once the command ended: `Ok` for exit status 0.
    pub outcome: tokio::task::JoinHandle<Result<(), VolumeBackupError>>,
}

fn command_text(command: &[String]) -> String {
    command.join(" ")
}

async fn start(client: &kube::Client, target: &ContainerRef, command: &[String], stdin: bool) -> Result<AttachedProcess, VolumeBackupError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let params = AttachParams::default()
        .container(target.container.clone())
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(STREAM_BUFFER)
        .max_stdout_buf_size(STREAM_BUFFER);
    debug!(pod = %target.pod, container = %target.container, command = %command_text(command), "exec");
    pods.exec(&target.pod, command.to_vec(), &params).await.map_err(|source| VolumeBackupError::Exec {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: target.container.clone(),
        command: command_text(command),
        source,
    })
}

/// Reads up to [`STDERR_KEEP`] bytes of a stream's tail.
async fn read_tail(mut reader: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 8192];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

/// Turns the status of channel 3 into the command's result.
fn check_status(target: &ContainerRef, command: &[String], status: Option<Status>, stderr: &str) -> Result<(), VolumeBackupError> {
    let failure = |reason: String| {
        let reason = if stderr.is_empty() { reason } else { format!("{reason}; stderr: {stderr}") };
        Err(VolumeBackupError::CommandFailed { place: target.place(), command: command_text(command), reason })
    };
    match status {
        Some(status) if status.status.as_deref() == Some("Success") => Ok(()),
        Some(status) => failure(status.message.unwrap_or_else(|| "the command failed without a message".to_owned())),
        None => failure("the connection closed before the exit status arrived".to_owned()),
    }
}

/// Runs `command` in the container and streams its stdout.
///
/// # Errors
/// [`VolumeBackupError::Exec`] when the exec request fails; a failed command shows in
/// [`ExecStream::outcome`].
pub async fn open_stdout(client: &kube::Client, target: &ContainerRef, command: Vec<String>) -> Result<ExecStream, VolumeBackupError> {
    let mut process = start(client, target, &command, false).await?;
    let mut stdout = process.stdout().expect("stdout requested");
    let stderr = process.stderr().expect("stderr requested");
    let status = process.take_status().expect("status taken once");
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(16);
    let target = target.clone();
    let outcome = tokio::spawn(async move {
        let stderr_task = tokio::spawn(read_tail(stderr));
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => {
                    if sender.send(chunk[..n].to_vec()).await.is_err() {
                        warn!("the reader of the exec stream stopped early");
                        break;
                    }
                }
                Err(error) => {
                    warn!(%error, "reading the exec stream failed");
                    break;
                }
            }
        }
        drop(sender);
        let status = tokio::time::timeout(STATUS_WAIT, status).await.ok().flatten();
        let stderr = stderr_task.await.unwrap_or_default();
        let _ = process.join().await;
        check_status(&target, &command, status, &stderr)
    });
    Ok(ExecStream { stdout: ChannelReader::new(receiver), outcome })
}

/// Runs `command` in the container, feeding it the chunks of `input` on stdin (none when
/// `input` is `None`), and returns its stdout.
///
/// stdin stays open until the exit status arrives; see the module documentation.
///
/// # Errors
/// [`VolumeBackupError::Exec`] when the request fails, [`VolumeBackupError::CommandFailed`]
/// when the command fails or no status arrives.
pub async fn run_with_input(client: &kube::Client, target: &ContainerRef, command: Vec<String>, input: Option<mpsc::Receiver<Vec<u8>>>) -> Result<String, VolumeBackupError> {
    let mut process = start(client, target, &command, input.is_some()).await?;
    let stdout = process.stdout().expect("stdout requested");
    let stderr = process.stderr().expect("stderr requested");
    let status = process.take_status().expect("status taken once");
    let stdout_task = tokio::spawn(async move {
        let mut stdout = stdout;
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let stderr_task = tokio::spawn(read_tail(stderr));

    let mut stdin = process.stdin();
    if let (Some(mut input), Some(writer)) = (input, stdin.as_mut()) {
        while let Some(chunk) = input.recv().await {
            if let Err(error) = writer.write_all(&chunk).await {
                warn!(%error, "writing to the command's stdin failed");
                break;
            }
        }
        let _ = writer.flush().await;
    }
    let status = tokio::time::timeout(STATUS_WAIT, status).await.ok().flatten();
    drop(stdin);
    let stdout = stdout_task.await.unwrap_or_default();
    let stderr = stderr_task.await.unwrap_or_default();
    let _ = process.join().await;
    check_status(target, &command, status, &stderr)?;
    Ok(stdout)
}
