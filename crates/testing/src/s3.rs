//! A real S3-compatible server for tests: s3s-fs (`cargo install s3s-fs@0.14.1 --features
//! binary`, put into the tools directory by `scripts/install-deps.sh`), on a free loopback port,
//! storing objects under a temporary directory. s3s-fs checks SigV4 signatures, so a wrong secret
//! is rejected with 403 as a real store would reject it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::{stop, tools_dir};
use crate::ports::free_port;

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "caasctl-test-access";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "caasctl-test-secret-key-0123456789";

/// Returns the path of the s3s-fs binary: `CAASCTL_S3S_FS`, else the tools directory.
pub fn s3s_binary() -> PathBuf {
    std::env::var_os("CAASCTL_S3S_FS").map(PathBuf::from).unwrap_or_else(|| tools_dir().join("s3s-fs"))
}

/// A running s3s-fs, stopped by PID when dropped.
pub struct S3Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Port on 127.0.0.1.
    pub port: u16,
}

impl S3Server {
    /// Returns true when the server binary is installed.
    pub fn available() -> bool {
        s3s_binary().exists()
    }

    /// Starts a server with one empty bucket per name in `buckets`.
    ///
    /// # Panics
    /// When the server does not accept connections within ten seconds.
    pub fn start(buckets: &[&str]) -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir");
        for bucket in buckets {
            std::fs::create_dir_all(dir.path().join("data").join(bucket)).expect("bucket dir");
        }
        let mut server = S3Server { child: None, dir, port: free_port() };
        server.resume();
        server
    }

    /// Returns the endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns the directory holding the bucket directories.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Returns the server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server; [`S3Server::resume`] starts it again on the same port and data.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    ///
    /// # Panics
    /// When it does not accept connections within ten seconds.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("s3s-fs.log")).expect("log file");
        let child = Command::new(s3s_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
