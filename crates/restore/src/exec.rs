//! Where restore steps run: one [`Executor`] interface for commands and file operations, so that a
//! plan step reads the same whether its host is this machine or a host reached over SSH.
//!
//! File operations have default implementations written as small POSIX shell scripts, which is
//! what a remote host offers; [`LocalExecutor`] overrides them with direct system calls.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit status; -1 when the command was killed by a signal.
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// Returns true when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A command or file operation that failed on a host.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started at all.
    #[error("failed to start {program} for {host}")]
    Spawn {
        /// Host the command was meant for.
        host: String,
        /// Program that did not start (`sh` or `ssh`).
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The command ran and exited with a non-zero status.
    #[error("command failed on {host} with exit status {status}: {command}: {stderr}")]
    Failed {
        /// Host.
        host: String,
        /// The shell command.
        command: String,
        /// Exit status.
        status: i32,
        /// Last lines of its standard error.
        stderr: String,
    },

    /// A local file operation failed.
    #[error("failed to {action} {path} on {host}")]
    Io {
        /// Host.
        host: String,
        /// What was being done, such as `rename`.
        action: &'static str,
        /// Path acted on.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What exists at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathState {
    /// Nothing.
    Missing,
    /// A directory with no entries.
    EmptyDir,
    /// A directory with at least one entry.
    NonEmptyDir,
    /// Anything that is not a directory.
    File,
}

/// Quotes `value` for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Runs commands and file operations on one host.
pub trait Executor: Send + Sync {
    /// Names the host for plans, logs and errors.
    fn host(&self) -> String;

    /// Runs `script` with `sh -c` on the host, feeding `stdin` from a local file when given.
    ///
    /// # Errors
    /// [`ExecError::Spawn`] when the shell (or `ssh`) cannot be started. A non-zero exit is not
    /// an error here; see [`Executor::run_checked`].
    fn run_script(&self, script: &str, stdin: Option<&Path>) -> Result<CommandOutput, ExecError>;

    /// Runs `script` and returns its standard output.
    ///
    /// # Errors
    /// [`ExecError::Failed`] on a non-zero exit status.
    fn run_checked(&self, script: &str) -> Result<String, ExecError> {
        let output = self.run_script(script, None)?;
        if output.success() {
            Ok(output.stdout)
        } else {
            Err(failed(&self.host(), script, &output))
        }
    }

    /// Returns what exists at `path`.
    ///
    /// # Errors
    /// The check itself could not run.
    fn path_state(&self, path: &str) -> Result<PathState, ExecError> {
        let p = shell_quote(path);
        let script = format!(
            "if [ -d {p} ]; then if [ -n \"$(ls -A {p})\" ]; then echo non-empty; else echo empty; fi; elif [ -e {p} ] || [ -L {p} ]; then echo file; else echo missing; fi"
        );
        Ok(match self.run_checked(&script)?.trim() {
            "non-empty" => PathState::NonEmptyDir,
            "empty" => PathState::EmptyDir,
            "file" => PathState::File,
            _ => PathState::Missing,
        })
    }

    /// Renames `from` to `to` on the same file system.
    ///
    /// # Errors
    /// The rename failed.
    fn rename(&self, from: &str, to: &str) -> Result<(), ExecError> {
        self.run_checked(&format!("mv -T {} {}", shell_quote(from), shell_quote(to))).map(|_| ())
    }

    /// Creates a directory and its parents.
    ///
    /// # Errors
    /// The directory could not be created.
    fn create_dir_all(&self, path: &str) -> Result<(), ExecError> {
        self.run_checked(&format!("mkdir -p {}", shell_quote(path))).map(|_| ())
    }

    /// Removes a directory tree that caasctl itself created, such as a half-written restore.
    ///
    /// # Errors
    /// The removal failed.
    fn remove_dir_all(&self, path: &str) -> Result<(), ExecError> {
        self.run_checked(&format!("rm -rf -- {}", shell_quote(path))).map(|_| ())
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    /// The directory is not empty or could not be removed.
    fn remove_empty_dir(&self, path: &str) -> Result<(), ExecError> {
        self.run_checked(&format!("rmdir -- {}", shell_quote(path))).map(|_| ())
    }

    /// Removes a file when it exists.
    ///
    /// # Errors
    /// The removal failed.
    fn remove_file(&self, path: &str) -> Result<(), ExecError> {
        self.run_checked(&format!("rm -f -- {}", shell_quote(path))).map(|_| ())
    }

    /// Copies a local file to `remote` on the host through `remote.part` and a rename.
    ///
    /// # Errors
    /// The copy failed.
    fn upload(&self, local: &Path, remote: &str) -> Result<(), ExecError> {
        let part = format!("{remote}.part");
        let parent = Path::new(remote).parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".to_owned());
        let script = format!(
            "umask 077 && mkdir -p {} && cat > {} && mv -f {} {}",
            shell_quote(&parent),
            shell_quote(&part),
            shell_quote(&part),
            shell_quote(remote)
        );
        let output = self.run_script(&script, Some(local))?;
        if output.success() {
            Ok(())
        } else {
            Err(failed(&self.host(), &script, &output))
        }
    }

    /// Returns the SHA-256 of a file on the host, or `None` when it does not exist.
    ///
    /// # Errors
    /// The file exists but could not be hashed.
    fn sha256(&self, path: &str) -> Result<Option<String>, ExecError> {
        let p = shell_quote(path);
        let out = self.run_checked(&format!("if [ -f {p} ]; then sha256sum {p}; fi"))?;
        Ok(out.split_whitespace().next().map(str::to_owned))
    }

    /// Returns true when the host has a user of this name.
    ///
    /// # Errors
    /// The check could not run.
    fn user_exists(&self, user: &str) -> Result<bool, ExecError> {
        Ok(self.run_script(&format!("id -u {} >/dev/null 2>&1", shell_quote(user)), None)?.success())
    }

    /// Returns true when SELinux is enabled on the host, which is when selinuxfs is mounted (the
    /// `enforce` file exists in both enforcing and permissive mode, and labels matter in both).
    ///
    /// # Errors
    /// The check could not run.
    fn selinux_enabled(&self) -> Result<bool, ExecError> {
        Ok(self.run_script("test -e /sys/fs/selinux/enforce", None)?.success())
    }

    /// Returns the first of `names` found on the host's `PATH`.
    ///
    /// # Errors
    /// The lookup could not run.
    fn which(&self, names: &[&str]) -> Result<Option<String>, ExecError> {
        for name in names {
            let output = self.run_script(&format!("command -v {}", shell_quote(name)), None)?;
            let found = output.stdout.trim();
            if output.success() && !found.is_empty() {
                return Ok(Some(found.to_owned()));
            }
        }
        Ok(None)
    }
}

/// Builds the error for a command that exited non-zero, keeping the last lines of its stderr.
pub fn failed(host: &str, command: &str, output: &CommandOutput) -> ExecError {
    let lines: Vec<&str> = output.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    ExecError::Failed { host: host.to_owned(), command: command.to_owned(), status: output.status, stderr: tail }
}

/// Runs `command`, feeding stdin from `stdin` when given, and collects its output.
pub(crate) fn collect(host: &str, mut command: Command, stdin: Option<&Path>) -> Result<CommandOutput, ExecError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let spawn_error = |source| ExecError::Spawn { host: host.to_owned(), program: program.clone(), source };
    match stdin {
        Some(path) => {
            let file = fs::File::open(path).map_err(|source| ExecError::Io { host: host.to_owned(), action: "open", path: path.display().to_string(), source })?;
            command.stdin(Stdio::from(file));
        }
        None => {
            command.stdin(Stdio::null());
        }
    }
    let output = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output().map_err(spawn_error)?;
    Ok(CommandOutput {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// This host: commands through `sh -c`, file operations through system calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl LocalExecutor {
    fn io<'a>(action: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> ExecError + 'a {
        move |source| ExecError::Io { host: "local".to_owned(), action, path: path.to_owned(), source }
    }
}

impl Executor for LocalExecutor {
    fn host(&self) -> String {
        "local".to_owned()
    }

    fn run_script(&self, script: &str, stdin: Option<&Path>) -> Result<CommandOutput, ExecError> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        collect("local", command, stdin)
    }

    fn path_state(&self, path: &str) -> Result<PathState, ExecError> {
        match fs::symlink_metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(PathState::Missing),
            Err(error) => Err(Self::io("inspect", path)(error)),
            Ok(meta) if meta.is_dir() => {
                let mut entries = fs::read_dir(path).map_err(Self::io("read", path))?;
                Ok(if entries.next().is_some() { PathState::NonEmptyDir } else { PathState::EmptyDir })
            }
            Ok(_) => Ok(PathState::File),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), ExecError> {
        fs::rename(from, to).map_err(Self::io("rename", from))
    }

    fn create_dir_all(&self, path: &str) -> Result<(), ExecError> {
        fs::create_dir_all(path).map_err(Self::io("create", path))
    }

    fn remove_dir_all(&self, path: &str) -> Result<(), ExecError> {
        match fs::remove_dir_all(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(Self::io("remove", path)(error)),
            _ => Ok(()),
        }
    }

    fn remove_empty_dir(&self, path: &str) -> Result<(), ExecError> {
        fs::remove_dir(path).map_err(Self::io("remove", path))
    }

    fn remove_file(&self, path: &str) -> Result<(), ExecError> {
        match fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(Self::io("remove", path)(error)),
            _ => Ok(()),
        }
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), ExecError> {
        if Path::new(remote) == local {
            return Ok(());
        }
        let part = format!("{remote}.part");
        fs::copy(local, &part).map_err(Self::io("copy", remote))?;
        fs::rename(&part, remote).map_err(Self::io("rename", &part))
    }

    fn sha256(&self, path: &str) -> Result<Option<String>, ExecError> {
        let mut file = match fs::File::open(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(Self::io("open", path))?,
        };
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer).map_err(Self::io("read", path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(Some(hex::encode(hasher.finalize())))
    }

    fn selinux_enabled(&self) -> Result<bool, ExecError> {
        Ok(Path::new("/sys/fs/selinux/enforce").exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_plain_and_special() {
        assert_eq!(shell_quote("/var/lib/etcd"), "/var/lib/etcd");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn local_path_states() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let local = LocalExecutor;
        assert_eq!(local.path_state(&format!("{root}/none")).unwrap(), PathState::Missing);
        assert_eq!(local.path_state(&root).unwrap(), PathState::EmptyDir);
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert_eq!(local.path_state(&root).unwrap(), PathState::NonEmptyDir);
        assert_eq!(local.path_state(&format!("{root}/f")).unwrap(), PathState::File);
    }

    #[test]
    fn run_checked_reports_status_and_stderr() {
        let error = LocalExecutor.run_checked("echo oops >&2; exit 3").unwrap_err();
        match error {
            ExecError::Failed { status, stderr, .. } => {
                assert_eq!(status, 3);
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
}
