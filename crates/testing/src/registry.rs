//! Real container registries for tests: Debian's `docker-registry` (distribution 2.8.2) with
//! filesystem storage in a temporary directory, on a free loopback port, plain HTTP, optionally
//! with token or basic (htpasswd) authentication. The process is stopped by its PID when the
//! guard drops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// Token authentication settings, as the registry's `auth.token` section names them.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// URL of the token endpoint that clients are sent to.
    pub realm: String,
    /// Service name, the `aud` claim tokens must carry.
    pub service: String,
    /// Issuer, the `iss` claim tokens must carry.
    pub issuer: String,
    /// PEM bundle of the certificates that may sign tokens.
    pub rootcertbundle: PathBuf,
}

/// A running registry; stopped by PID on drop.
#[derive(Debug)]
pub struct Registry {
    /// Temporary directory with the config, the storage and the log.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, the registry's name in references.
    pub host: String,
    /// Log file of the process.
    pub log: PathBuf,
    process: Option<Child>,
}

impl Registry {
    /// Returns the registry binary: `$CAASCTL_DOCKER_REGISTRY`, else `/usr/bin/docker-registry`.
    pub fn binary() -> PathBuf {
        std::env::var_os("CAASCTL_DOCKER_REGISTRY").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
    }

    /// Returns true when the registry binary exists.
    pub fn available() -> bool {
        Registry::binary().exists()
    }

    /// Starts a registry without authentication and waits until it responds.
    ///
    /// # Panics
    /// When it does not respond within 20 seconds. The panic message contains its log.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// Starts a registry, with token authentication when `auth` is given.
    pub fn start_with(auth: Option<&TokenAuth>) -> Registry {
        let section = auth.map(|auth| {
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                auth.realm,
                auth.service,
                auth.issuer,
                auth.rootcertbundle.display()
            )
        });
        let dir = tempfile::Builder::new().prefix("caasctl-registry-").tempdir().unwrap();
        Registry::start_in(dir, section.unwrap_or_default())
    }

    /// Starts a registry with HTTP basic authentication for one user (`auth: htpasswd:`), or
    /// returns `None` when no bcrypt hash can be made here.
    ///
    /// The bcrypt hash comes from Debian's `/usr/bin/python3` and its `crypt` module (libxcrypt),
    /// with cost 4 so that the registry's check of every request stays fast.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Option<Registry> {
        let script = "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))";
        let output = Command::new("/usr/bin/python3").args(["-W", "ignore", "-c", script, password]).output().ok()?;
        let hash = String::from_utf8(output.stdout).ok()?.trim().to_owned();
        if !output.status.success() || !hash.starts_with("$2") {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("caasctl-registry-").tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
        let section = format!("auth:\n  htpasswd:\n    realm: caasctl-test\n    path: {}\n", htpasswd.display());
        Some(Registry::start_in(dir, section))
    }

    fn start_in(dir: tempfile::TempDir, auth_section: String) -> Registry {
        let host = format!("127.0.0.1:{}", free_port());
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {host}\n  secret: caasctl-test-secret\n",
            storage.display()
        );
        config.push_str(&auth_section);
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let mut registry = Registry { dir, host, log, process: None };
        registry.spawn(&config_path);
        registry
    }

    fn spawn(&mut self, config: &Path) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(Registry::binary())
            .arg("serve")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", Registry::binary().display()));
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.status("GET", "/v2/") {
                if status == 200 || status == 401 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        panic!("registry on {} did not respond within 20 s; log:\n{text}", self.host);
    }

    /// Sends a request without body and returns the HTTP status, `None` when nothing responds.
    pub fn status(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(&self.host).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.host).ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// Returns the PID of the registry process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Returns the URL of the registry API root, `http://127.0.0.1:PORT/v2/`.
    pub fn url(&self) -> String {
        format!("http://{}/v2/", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
