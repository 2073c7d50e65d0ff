//! Commands on a node during a rollout: architecture and runtime probe, pull, inspect, and the
//! journal of finished nodes.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::error::RegistryError;

/// Container runtime on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Docker Engine (`docker pull`, `docker image inspect`).
    Docker,
    /// A CRI runtime through `crictl` (`crictl pull`, `crictl inspecti`).
    Crictl,
    /// Docker when the node has it, else crictl.
    Auto,
}

impl Runtime {
    /// Returns the command name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Crictl => "crictl",
            Runtime::Auto => "auto",
        }
    }

    /// Parses `docker`, `crictl` or `auto`; anything else is `auto`.
    pub fn from_name(name: &str) -> Runtime {
        match name {
            "docker" => Runtime::Docker,
            "crictl" => Runtime::Crictl,
            _ => Runtime::Auto,
        }
    }
}

/// Maps `uname -m` to the architecture names of image platforms.
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv6l" | "arm" => "arm",
        "i386" | "i686" => "386",
        other => other,
    }
}

/// Runs shell commands on nodes: `PROGRAM [ARGS...] HOST COMMAND`, as `ssh` takes them.
#[derive(Debug, Clone)]
pub struct NodeShell {
    /// Program and leading arguments, such as `["ssh", "-o", "BatchMode=yes"]`.
    pub command: Vec<String>,
    /// Time allowed for one command; a pull of a large image needs minutes.
    pub timeout: Duration,
}

impl Default for NodeShell {
    fn default() -> Self {
        NodeShell { command: vec!["ssh".to_owned(), "-o".to_owned(), "BatchMode=yes".to_owned()], timeout: Duration::from_secs(900) }
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl NodeShell {
    /// Runs `command` on `host` and returns its standard output.
    ///
    /// # Errors
    /// [`RegistryError::NodeCommand`] when it cannot start, exits non-zero or times out.
    pub async fn run(&self, host: &str, command: &str) -> Result<String, RegistryError> {
        let failed = |status: i32, stderr: String| RegistryError::NodeCommand { host: host.to_owned(), command: command.to_owned(), status, stderr };
        let Some((program, args)) = self.command.split_first() else {
            return Err(failed(-1, "no shell command configured".to_owned()));
        };
        let mut child = tokio::process::Command::new(program);
        child.args(args).arg(host).arg(command).stdin(std::process::Stdio::null()).kill_on_drop(true);
        tracing::debug!(host, command, "running on node");
        let output = match tokio::time::timeout(self.timeout, child.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => return Err(failed(-1, format!("failed to start {program}: {error}"))),
            Err(_) => return Err(failed(-1, format!("timed out after {} s", self.timeout.as_secs()))),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(failed(output.status.code().unwrap_or(-1), tail.join(" | ")));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Returns the node's platform (`linux/amd64`) and its runtime, detected when `runtime` is
    /// `Auto`.
    pub async fn probe(&self, host: &str, runtime: Runtime) -> Result<(String, Runtime), RegistryError> {
        let command = "uname -s; uname -m; if command -v docker >/dev/null 2>&1; then echo docker; elif command -v crictl >/dev/null 2>&1; then echo crictl; else echo none; fi";
        let output = self.run(host, command).await?;
        let lines: Vec<&str> = output.lines().map(str::trim).collect();
        let [os, machine, found] = lines.as_slice() else {
            return Err(RegistryError::NodeOutput { host: host.to_owned(), command: command.to_owned(), reason: format!("expected 3 lines, got {output:?}") });
        };
        let platform = format!("{}/{}", os.to_ascii_lowercase(), go_arch(machine));
        let runtime = match runtime {
            Runtime::Auto if *found == "none" => {
                return Err(RegistryError::NodeOutput { host: host.to_owned(), command: command.to_owned(), reason: "neither docker nor crictl is on the PATH".to_owned() })
            }
            Runtime::Auto => Runtime::from_name(found),
            chosen => chosen,
        };
        Ok((platform, runtime))
    }

    /// Pulls `image` on `host` and returns the image ID and repository digests the node reports.
    pub async fn pull_and_inspect(&self, host: &str, runtime: Runtime, image: &str) -> Result<(String, Vec<String>), RegistryError> {
        let quoted = quote(image);
        match runtime {
            Runtime::Crictl => {
                self.run(host, &format!("crictl pull {quoted}")).await?;
                let command = format!("crictl inspecti -o json {quoted}");
                let output = self.run(host, &command).await?;
                parse_crictl_inspect(&output).ok_or_else(|| RegistryError::NodeOutput { host: host.to_owned(), command, reason: "no status.id in the JSON".to_owned() })
            }
            Runtime::Docker | Runtime::Auto => {
                self.run(host, &format!("docker pull {quoted}")).await?;
                let command = format!("docker image inspect --format '{{{{.Id}}}} {{{{join .RepoDigests \",\"}}}}' {quoted}");
                let output = self.run(host, &command).await?;
                let mut parts = output.split_whitespace();
                let id = parts.next().map(str::to_owned).ok_or_else(|| RegistryError::NodeOutput { host: host.to_owned(), command: command.clone(), reason: "empty output".to_owned() })?;
                let digests = parts.next().map(|list| list.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
                Ok((id, digests))
            }
        }
    }
}

fn parse_crictl_inspect(output: &str) -> Option<(String, Vec<String>)> {
    let value: serde_json::Value = serde_json::from_str(output).ok()?;
    let status = value.get("status")?;
    let id = status.get("id")?.as_str()?.to_owned();
    let digests = status
        .get("repoDigests")
        .and_then(|d| d.as_array())
        .map(|list| list.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Some((id, digests))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalLine {
    digest: String,
    host: String,
    status: String,
}

/// Returns the hosts the journal lists as done for `digest`; empty without a journal.
pub fn journal_done(journal: Option<&Path>, digest: &str) -> HashSet<String> {
    let Some(path) = journal else { return HashSet::new() };
    let Ok(text) = std::fs::read_to_string(path) else { return HashSet::new() };
    text.lines()
        .filter_map(|line| serde_json::from_str::<JournalLine>(line).ok())
        .filter(|entry| entry.digest == digest && entry.status == "ok")
        .map(|entry| entry.host)
        .collect()
}

/// Appends a finished node to the journal and syncs it; a failure is logged, because the
/// rollout itself succeeded on that node.
pub fn journal_record(journal: Option<&Path>, digest: &str, host: &str) {
    let Some(path) = journal else { return };
    let line = JournalLine { digest: digest.to_owned(), host: host.to_owned(), status: "ok".to_owned() };
    let result = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut file| {
        writeln!(file, "{}", serde_json::to_string(&line).unwrap_or_default())?;
        file.sync_all()
    });
    if let Err(error) = result {
        tracing::warn!(journal = %path.display(), host, %error, "failed to record the node in the rollout journal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crictl_inspect_json_parsed() {
        let json = r#"{"status":{"id":"sha256:abc","repoTags":["r/x:1"],"repoDigests":["r/x@sha256:def"]},"info":{}}"#;
        assert_eq!(parse_crictl_inspect(json), Some(("sha256:abc".into(), vec!["r/x@sha256:def".into()])));
        assert_eq!(parse_crictl_inspect("{}"), None);
    }

    #[test]
    fn machine_names_mapped() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }

    #[test]
    fn journal_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.jsonl");
        journal_record(Some(&path), "sha256:1", "node1");
        journal_record(Some(&path), "sha256:2", "node2");
        let done = journal_done(Some(&path), "sha256:1");
        assert!(done.contains("node1"));
        assert!(!done.contains("node2"));
    }
}
