//! A real OpenSSH server for tests: `sshd -D -f CONFIG` on a free loopback port, with its own
//! host key, a client key made for the test and an `authorized_keys` in a temporary directory.
//! Nothing under the user's `~/.ssh` is read or written: clients get `-F /dev/null` and a
//! known-hosts file inside the same directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// Path of the OpenSSH server.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; stopped by PID on drop.
#[derive(Debug)]
pub struct Sshd {
    /// Temporary directory with keys, config and log.
    pub dir: tempfile::TempDir,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// User name to log in as (the user running the test).
    pub user: String,
    /// Client private key.
    pub client_key: PathBuf,
    process: Option<Child>,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

impl Sshd {
    /// Returns true when `sshd`, `ssh` and `ssh-keygen` are installed.
    pub fn available() -> bool {
        Path::new(SSHD).exists() && ["ssh", "ssh-keygen"].iter().all(|b| Command::new("sh").arg("-c").arg(format!("command -v {b}")).stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false))
    }

    /// Starts sshd and waits until it accepts connections.
    ///
    /// # Panics
    /// When the server does not come up within 10 seconds; its log is printed.
    pub fn start() -> Sshd {
        let dir = tempfile::Builder::new().prefix("caasctl-sshd-").tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            // sshd refuses to start without its privilege separation directory, which Debian
            // creates only when the packaged service starts.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 100\n",
                host_key.display(),
                authorized.display(),
                dir.path().join("sshd.pid").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| if root { "root".to_owned() } else { "nobody".to_owned() });
        let sshd = Sshd { dir, port, user, client_key, process: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!("sshd did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    /// Returns the `ssh` destination, `USER@127.0.0.1`.
    pub fn target(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    /// Returns the `ssh` options that use the test's key and known-hosts file and no user
    /// configuration.
    pub fn client_options(&self) -> Vec<String> {
        vec![
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-i".to_owned(),
            self.client_key.display().to_string(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.dir.path().join("known_hosts").display()),
            "-o".to_owned(),
            "StrictHostKeyChecking=accept-new".to_owned(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(child) = self.process.take() {
            crate::etcd::stop(child);
        }
    }
}
