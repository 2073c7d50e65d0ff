//! A host over SSH through the system's OpenSSH client, so that `~/.ssh/config`, jump hosts,
//! agents and known hosts work as they do for the operator's own `ssh`.
//!
//! Every command runs with `BatchMode=yes`: a password or host-key prompt would hang an
//! unattended restore, so it fails instead. With `control_master`, one connection is shared by the
//! many short commands a restore runs (`ControlMaster=auto`, `ControlPersist=60`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::exec::{collect, shell_quote, CommandOutput, ExecError, Executor};

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshTarget {
    /// Destination as `ssh` takes it: `host`, `user@host` or a `Host` alias of the ssh config.
    pub target: String,
    /// Port, when not the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Extra `ssh` arguments, such as `["-i", "/root/.ssh/id_ed25519"]` or `["-F", "FILE"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Shares one connection between commands.
    #[serde(default)]
    pub control_master: bool,
}

/// Runs commands on a host through `ssh`.
#[derive(Debug, Clone)]
pub struct SshExecutor {
    target: SshTarget,
    control_dir: PathBuf,
}

impl SshExecutor {
    /// Creates an executor for `target`; control sockets, when used, live in a private
    /// directory under the system's temporary directory.
    pub fn new(target: SshTarget) -> SshExecutor {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let control_dir = std::env::temp_dir().join(format!("caasctl-ssh-{uid}"));
        SshExecutor { target, control_dir }
    }

    /// Returns the `ssh` arguments before the remote command.
    pub fn ssh_args(&self) -> Vec<String> {
        // LogLevel=ERROR keeps notices such as "Permanently added ... to known hosts" out of the
        // remote command's stderr, which steps read.
        let mut args = vec!["-o".to_owned(), "BatchMode=yes".to_owned(), "-o".to_owned(), "LogLevel=ERROR".to_owned()];
        if self.target.control_master {
            args.extend([
                "-o".to_owned(),
                "ControlMaster=auto".to_owned(),
                "-o".to_owned(),
                format!("ControlPath={}/%C", self.control_dir.display()),
                "-o".to_owned(),
                "ControlPersist=60".to_owned(),
            ]);
        }
        if let Some(port) = self.target.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(self.target.options.iter().cloned());
        args.push("--".to_owned());
        args.push(self.target.target.clone());
        args
    }
}

impl Executor for SshExecutor {
    fn host(&self) -> String {
        match self.target.port {
            Some(port) => format!("ssh:{}:{port}", self.target.target),
            None => format!("ssh:{}", self.target.target),
        }
    }

    fn run_script(&self, script: &str, stdin: Option<&Path>) -> Result<CommandOutput, ExecError> {
        if self.target.control_master {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&self.control_dir);
        }
        let mut command = Command::new("ssh");
        // The remote side joins its arguments into one string for the login shell, so the script
        // goes as a single quoted `sh -c` argument.
        command.args(self.ssh_args()).arg(format!("sh -c {}", shell_quote(script)));
        let output = collect(&self.host(), command, stdin)?;
        if output.status == 255 {
            // ssh itself failed (connection, authentication, host key): never a remote result.
            return Err(crate::exec::failed(&self.host(), "ssh", &output));
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_carry_batch_mode_port_and_options() {
        let executor = SshExecutor::new(SshTarget {
            target: "root@10.0.0.1".into(),
            port: Some(2222),
            options: vec!["-i".into(), "/k".into()],
            control_master: false,
        });
        assert_eq!(executor.ssh_args(), ["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", "2222", "-i", "/k", "--", "root@10.0.0.1"]);
        assert_eq!(executor.host(), "ssh:root@10.0.0.1:2222");
    }
}
