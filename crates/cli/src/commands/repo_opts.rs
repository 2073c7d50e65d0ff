//! Repository and encryption options shared by `etcd backup` and `etcd backups ...`, and the
//! `[backup]` section of the configuration file that supplies their defaults.
//!
//! Precedence: command line, then environment, then the configuration file, then the built-in
//! default. Only the `[backup]` table of the file is read, so other sections may hold anything.

use std::path::{Path, PathBuf};

use caasctl_etcd::blob::read_recipients_file;
use caasctl_etcd::s3::S3Options;
use caasctl_etcd::store::Repository;
use clap::Args;

/// Repository used when neither the command line nor the configuration names one.
pub const DEFAULT_REPO: &str = "./caasctl-backups";

/// The repository.
#[derive(Debug, Clone, Args)]
pub struct RepoArgs {
    /// Backup repository: a directory, or s3://BUCKET/PREFIX (default ./caasctl-backups).
    #[arg(id = "repo_url", long = "repo", value_name = "DIR|URL", env = "CAASCTL_REPO")]
    pub repo: Option<String>,

    /// S3 endpoint URL, such as http://127.0.0.1:9000 for MinIO or Ceph RGW; AWS when not given.
    #[arg(long = "s3-endpoint", value_name = "URL", env = "CAASCTL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region (default from AWS_REGION, then us-east-1).
    #[arg(long = "s3-region", value_name = "REGION")]
    pub s3_region: Option<String>,

    /// Address buckets as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT; an endpoint given as an IP address or localhost is always addressed this way.
    #[arg(long = "s3-path-style")]
    pub s3_path_style: bool,

    /// Configuration file whose [backup] table gives defaults for these options.
    #[arg(id = "backup_config", long = "config", value_name = "FILE", env = "CAASCTL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Encryption of a new backup.
#[derive(Debug, Clone, Args)]
pub struct EncryptArgs {
    /// Encrypt the snapshot and archives with age to the recipients given here or in the configuration.
    #[arg(long)]
    pub encrypt: bool,

    /// age public key (age1...) to encrypt to; repeatable; implies --encrypt.
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Vec<String>,

    /// File of age public keys, one a line; implies --encrypt.
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
}

/// The `[backup]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Repository directory or URL.
    pub repo: Option<String>,
    /// Encrypt new backups.
    #[serde(default)]
    pub encrypt: bool,
    /// age public keys.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// File of age public keys.
    pub recipients_file: Option<PathBuf>,
    /// S3 endpoint URL.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Path-style S3 addressing.
    #[serde(default)]
    pub s3_path_style: bool,
}

/// Reads the `[backup]` table of `path`; an absent table gives the defaults.
///
/// # Errors
/// The file cannot be read or the table is invalid.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<BackupConfig> {
    let Some(path) = path else { return Ok(BackupConfig::default()) };
    let mut table = read_config_file(path)?;
    match table.remove("backup") {
        None => Ok(BackupConfig::default()),
        Some(value) => Ok(config_table(path, "backup", value)?),
    }
}

/// Repository location with the S3 settings it needs.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Directory or URL.
    pub repo: String,
    /// S3 endpoint.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Path-style addressing.
    pub s3_path_style: bool,
}

impl RepoArgs {
    /// Merges the options with the configuration file.
    ///
    /// # Errors
    /// The configuration file is invalid.
    pub fn resolve(&self) -> anyhow::Result<(Resolved, BackupConfig)> {
        let config = load_config(self.config.as_deref())?;
        let resolved = Resolved {
            repo: self.repo.clone().or_else(|| config.repo.clone()).unwrap_or_else(|| DEFAULT_REPO.to_owned()),
            s3_endpoint: self.s3_endpoint.clone().or_else(|| config.s3_endpoint.clone()),
            s3_region: self.s3_region.clone().or_else(|| config.s3_region.clone()),
            s3_path_style: self.s3_path_style || config.s3_path_style,
        };
        Ok((resolved, config))
    }
}

impl Resolved {
    /// Returns the S3 settings.
    pub fn s3(&self) -> S3Options {
        S3Options { endpoint: self.s3_endpoint.clone(), region: self.s3_region.clone(), path_style: self.s3_path_style }
    }

    /// Opens the repository.
    ///
    /// # Errors
    /// The URL is invalid, credentials are missing, or the directory cannot be created.
    pub fn open(&self) -> anyhow::Result<Repository> {
        Ok(Repository::open(&self.repo, &self.s3())?)
    }

    /// Opens the repository for reading; a local directory that does not exist is an error
    /// instead of being created.
    ///
    /// # Errors
    /// The URL is invalid, credentials are missing, or the directory does not exist.
    pub fn open_existing(&self) -> anyhow::Result<Repository> {
        Ok(Repository::open_existing(&self.repo, &self.s3())?)
    }
}

impl EncryptArgs {
    /// Returns the recipients of a new backup: empty for a plain backup.
    ///
    /// # Errors
    /// A recipients file cannot be read, or encryption was requested without any recipient.
    pub fn recipients(&self, config: &BackupConfig) -> anyhow::Result<Vec<String>> {
        let mut recipients = self.recipient.clone();
        if let Some(file) = &self.recipients_file {
            recipients.extend(read_recipients_file(file)?);
        }
        let wanted = self.encrypt || !recipients.is_empty() || config.encrypt;
        if wanted && recipients.is_empty() {
            recipients.extend(config.recipients.iter().cloned());
            if let Some(file) = &config.recipients_file {
                recipients.extend(read_recipients_file(file)?);
            }
        }
        if wanted && recipients.is_empty() {
            anyhow::bail!(OptionsError::NoRecipients);
        }
        Ok(recipients)
    }
}

/// Repository and encryption options that do not fit together.
#[derive(Debug)]
pub enum OptionsError {
    /// Encryption was requested but no recipient was given.
    NoRecipients,
    /// The configuration file cannot be read.
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The configuration file is not TOML, or one of its tables has wrong fields.
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// The table, such as `[backup]`, or empty for the whole file.
        table: String,
        /// The parser's explanation, with line and column.
        reason: String,
    },
}

/// Reads a caasctl.toml and returns its top-level tables.
///
/// # Errors
/// [`OptionsError::ConfigRead`] or [`OptionsError::ConfigInvalid`].
pub fn read_config_file(path: &Path) -> Result<toml::Table, OptionsError> {
    let text = std::fs::read_to_string(path).map_err(|source| OptionsError::ConfigRead { path: path.to_owned(), source })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| OptionsError::ConfigInvalid { path: path.to_owned(), table: String::new(), reason: e.to_string() })?;
    // A misspelled table such as [bakup] would otherwise be skipped, and the command would run
    // with the defaults, such as the local repository.
    if let Some(unknown) = table.keys().find(|key| !CONFIG_TABLES.contains(&key.as_str())) {
        let reason = format!("unknown table; the file may contain only the tables {}", CONFIG_TABLES.map(|t| format!("[{t}]")).join(", "));
        return Err(OptionsError::ConfigInvalid { path: path.to_owned(), table: format!("[{unknown}]"), reason });
    }
    Ok(table)
}

/// Top-level tables of caasctl.toml: backup settings, the service, cloud providers and the
/// cluster's members.
const CONFIG_TABLES: [&str; 4] = ["backup", "serve", "cloud", "etcd"];

/// Turns the table `name` of a config file into `T`.
///
/// # Errors
/// [`OptionsError::ConfigInvalid`] naming the table.
pub fn config_table<T: serde::de::DeserializeOwned>(path: &Path, name: &str, value: toml::Value) -> Result<T, OptionsError> {
    value.try_into().map_err(|e: toml::de::Error| OptionsError::ConfigInvalid { path: path.to_owned(), table: format!("[{name}]"), reason: e.to_string() })
}

impl caasctl_core::Localize for OptionsError {
    fn message(&self) -> caasctl_core::Message {
        match self {
            OptionsError::NoRecipients => caasctl_core::Message::new("crypt.error.no_recipients"),
            OptionsError::ConfigRead { path, source } => caasctl_core::Message::new("config.error.read").arg("path", path.display()).arg("reason", source),
            OptionsError::ConfigInvalid { path, table, reason } if table.is_empty() => {
                caasctl_core::Message::new("config.error.syntax").arg("path", path.display()).arg("reason", reason.trim_end())
            }
            OptionsError::ConfigInvalid { path, table, reason } => {
                caasctl_core::Message::new("config.error.table").arg("path", path.display()).arg("table", table).arg("reason", reason.trim_end())
            }
        }
    }

    fn hint(&self) -> Option<caasctl_core::Message> {
        match self {
            OptionsError::NoRecipients => Some(caasctl_core::Message::new("crypt.hint.keys")),
            OptionsError::ConfigRead { .. } => Some(caasctl_core::Message::new("config.hint.read")),
            OptionsError::ConfigInvalid { .. } => Some(caasctl_core::Message::new("config.hint.invalid")),
        }
    }
}

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use caasctl_core::Localize;
        f.write_str(&self.message().render(caasctl_core::Lang::En))
    }
}

impl std::error::Error for OptionsError {}
