//! The `[serve]` table of the configuration file: the schedule, the HTTP address, the etcd
//! cluster, the keep rules and the restore drill. The repository and encryption come from the
//! `[backup]` table, which `etcd backup` reads too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caasctl_etcd::retention::Policy;

/// Address of the HTTP endpoint when the configuration names none.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";

/// The `[serve]` table.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Cron expression: five fields (minute to weekday), or six with seconds first. Local time.
    pub schedule: String,
    /// Address of `/metrics` and `/healthz`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Comma-separated client URLs of the etcd cluster.
    pub endpoints: Option<String>,
    /// etcd.conf to read the endpoints and TLS files from, when `endpoints` is not given.
    pub etcd_conf: Option<PathBuf>,
    /// CA bundle that verifies the etcd servers.
    pub cacert: Option<PathBuf>,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Client private key.
    pub key: Option<PathBuf>,
    /// Configuration directories archived with each snapshot.
    #[serde(default)]
    pub config_dirs: Vec<PathBuf>,
    /// Snapshot transfer limit in MiB per second.
    pub rate_limit_mib: Option<f64>,
    /// Seconds a backup in progress may take to finish after SIGTERM before it is abandoned.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Keep rules applied after each successful backup.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Restore drill after each successful backup.
    #[serde(default)]
    pub drill: DrillConfig,
}

/// `[serve.retention]`: the keep rules of `etcd backups prune`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep the newest N backups.
    #[serde(default)]
    pub keep_last: u32,
    /// Keep the newest backup of each of the last N hours.
    #[serde(default)]
    pub keep_hourly: u32,
    /// Keep the newest backup of each of the last N days.
    #[serde(default)]
    pub keep_daily: u32,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the last N months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// Keep the newest backup of each of the last N years.
    #[serde(default)]
    pub keep_yearly: u32,
    /// Also remove backups whose last verification failed.
    #[serde(default)]
    pub include_failed: bool,
}

impl RetentionConfig {
    /// Returns the keep rules; a policy with no rule keeps everything and prune is skipped.
    pub fn policy(&self) -> Policy {
        Policy { last: self.keep_last, hourly: self.keep_hourly, daily: self.keep_daily, weekly: self.keep_weekly, monthly: self.keep_monthly, yearly: self.keep_yearly }
    }
}

/// `[serve.drill]`: the restore drill.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Run a drill after each successful backup.
    #[serde(default)]
    pub enabled: bool,
    /// etcd server binary; `etcd` on PATH when not given.
    pub etcd: Option<PathBuf>,
    /// etcdutl (3.5) or etcdctl (3.4); etcdutl, then etcdctl, on PATH when not given.
    pub etcdutl: Option<String>,
    /// age identity file for encrypted backups.
    pub identity: Option<PathBuf>,
    /// Directory for drills; `STATE_DIR/drill` when not given.
    pub scratch_dir: Option<PathBuf>,
    /// Seconds the scratch etcd may take to answer.
    #[serde(default = "default_drill_timeout")]
    pub timeout_seconds: u64,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}

fn default_grace() -> u64 {
    60
}

fn default_drill_timeout() -> u64 {
    60
}

impl ServeConfig {
    /// Reads the `[serve]` table of `path`.
    ///
    /// # Errors
    /// The file cannot be read, has no `[serve]` table, or the table is invalid.
    pub fn load(path: &Path) -> anyhow::Result<ServeConfig> {
        let mut table = crate::commands::repo_opts::read_config_file(path)?;
        let value = table.remove("serve").ok_or_else(|| ServeError::NoTable { path: path.to_owned() })?;
        Ok(crate::commands::repo_opts::config_table(path, "serve", value)?)
    }

    /// Parses the listen address.
    ///
    /// # Errors
    /// The address is not `IP:PORT`.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listen.parse().map_err(|_| ServeError::BadListen { value: self.listen.clone() })?)
    }

    /// Returns the grace period after SIGTERM.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// Parses a cron expression of five fields, or six with seconds first.
///
/// # Errors
/// The expression is invalid; the message names it.
pub fn parse_schedule(expression: &str) -> anyhow::Result<croner::Cron> {
    croner::Cron::new(expression)
        .with_seconds_optional()
        .parse()
        .map_err(|error| {
            // croner 2.2 lists the optional seconds field last in this message, but reads a
            // sixth field as the seconds before the minutes.
            let text = error.to_string();
            let reason = if text.contains("five or six fields") {
                format!("{} fields given; expected five (minute hour day-of-month month day-of-week), or six with the seconds first", expression.split_whitespace().count())
            } else {
                text
            };
            ServeError::BadSchedule { value: expression.to_owned(), reason }.into()
        })
}

/// A `[serve]` table that cannot be used.
#[derive(Debug)]
pub enum ServeError {
    /// The file has no `[serve]` table.
    NoTable {
        /// The file.
        path: PathBuf,
    },
    /// The schedule is not a cron expression.
    BadSchedule {
        /// The value given.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// The listen address is not `IP:PORT`.
    BadListen {
        /// The value given.
        value: String,
    },
}

impl caasctl_core::Localize for ServeError {
    fn message(&self) -> caasctl_core::Message {
        use caasctl_core::Message;
        match self {
            ServeError::NoTable { path } => Message::new("serve.error.no_table").arg("path", path.display()),
            ServeError::BadSchedule { value, reason } => Message::new("serve.error.schedule").arg("value", value).arg("reason", reason),
            ServeError::BadListen { value } => Message::new("serve.error.listen").arg("value", value),
        }
    }

    fn hint(&self) -> Option<caasctl_core::Message> {
        use caasctl_core::Message;
        Some(match self {
            ServeError::NoTable { .. } => Message::new("serve.hint.no_table"),
            ServeError::BadSchedule { .. } => Message::new("serve.hint.schedule"),
            ServeError::BadListen { .. } => Message::new("serve.hint.listen").arg("default", DEFAULT_LISTEN),
        })
    }
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use caasctl_core::Localize;
        f.write_str(&self.message().render(caasctl_core::Lang::En))
    }
}

impl std::error::Error for ServeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_accepts_five_and_six_fields() {
        assert!(parse_schedule("0 3 * * *").is_ok());
        assert!(parse_schedule("*/5 * * * * *").is_ok());
        assert!(parse_schedule("61 * * * *").is_err());
        assert!(parse_schedule("every day").is_err());
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caasctl.toml");
        std::fs::write(&path, "[backup]\nrepo = \"/tmp/r\"\n[serve]\nschedule = \"0 3 * * *\"\n[serve.retention]\nkeep_last = 3\n").unwrap();
        let config = ServeConfig::load(&path).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.retention.policy().last, 3);
        assert!(!config.drill.enabled);

        std::fs::write(&path, "[serve]\nschedule = \"0 3 * * *\"\nlisten_on = \"x\"\n").unwrap();
        assert!(ServeConfig::load(&path).is_err());
    }
}
