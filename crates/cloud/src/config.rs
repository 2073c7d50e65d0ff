//! The `[cloud]` section of caasctl.toml: cloud accounts, with credentials by reference.
//!
//! A secret is never written into the file itself. It is named by reference, either as an
//! environment variable (`{ env = "OS_PASSWORD" }`) or as a file (`{ file = "/etc/caasctl/ak" }`),
//! and read only when a provider is built. [`Secret`] hides its value from `Debug` output, so a
//! logged configuration never shows it. Other sections of caasctl.toml belong to other commands
//! and are not read here.
//!
//! ```toml
//! [cloud]
//! cluster = "prod"
//!
//! [cloud.openstack]
//! auth_url = "https://keystone.example.com:5000/v3"
//! region = "RegionOne"
//! username = "caas-ops"
//! user_domain_name = "Default"
//! project_name = "caas"
//! project_domain_name = "Default"
//! password = { env = "OS_PASSWORD" }
//!
//! [cloud.hosts."master1.example.com"]
//! disks = ["d-bp1abc"]
//! instance = "i-bp1xyz"
//! role = "master"
//!
//! [cloud.aliyun]
//! region_id = "cn-hangzhou"
//! access_key_id = { env = "ALIBABA_CLOUD_ACCESS_KEY_ID" }
//! access_key_secret = { file = "/etc/caasctl/aliyun-secret" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::CloudError;

/// The `[cloud]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// Cluster name written into snapshot tags (`caasctl:cluster`).
    pub cluster: Option<String>,
    /// `[cloud.hosts."HOST"]`: the disks and instance of each inventory host, for `--hosts`.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostMapping>,
    /// Disks of a host that `[cloud.hosts]` does not list, named after the host: templates in
    /// which `{host}` is the inventory name and `{short}` its part before the first dot, such as
    /// `"/var/lib/libvirt/images/{short}.qcow2"` for VMs whose instance name is the host name.
    #[serde(default)]
    pub host_disks: Vec<String>,
    /// `[cloud.local]`.
    pub local: Option<LocalConfig>,
    /// `[cloud.openstack]`.
    pub openstack: Option<OpenstackConfig>,
    /// `[cloud.aliyun]`.
    pub aliyun: Option<AliyunConfig>,
}

/// The VM behind one inventory host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMapping {
    /// Disks to snapshot: qcow2 paths, Cinder volume IDs or ECS disk IDs.
    pub disks: Vec<String>,
    /// Instance (server) ID.
    pub instance: Option<String>,
    /// Role written into snapshot tags, such as `master`, `etcd` or `node`.
    pub role: Option<String>,
}

/// Settings of the local qcow2 provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The qemu-img binary; `qemu-img` on `PATH` by default.
    pub qemu_img: Option<PathBuf>,
}

/// An OpenStack account: Keystone v3 with a password or an application credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenstackConfig {
    /// Keystone v3 URL, such as `https://keystone:5000/v3`.
    pub auth_url: String,
    /// Region of the endpoints to use from the catalog; the first one found when unset.
    pub region: Option<String>,
    /// Endpoint interface in the catalog: `public` (default), `internal` or `admin`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// User name, for password authentication.
    pub username: Option<String>,
    /// User's domain name; `Default` when unset.
    pub user_domain_name: Option<String>,
    /// Password reference.
    pub password: Option<SecretRef>,
    /// Project (tenant) name to scope the token to.
    pub project_name: Option<String>,
    /// Project ID, instead of its name.
    pub project_id: Option<String>,
    /// Project's domain name; `Default` when unset.
    pub project_domain_name: Option<String>,
    /// Application credential ID, instead of a user and password.
    pub application_credential_id: Option<String>,
    /// Application credential secret reference.
    pub application_credential_secret: Option<SecretRef>,
    /// Seconds allowed for one HTTP request; 30 by default.
    pub request_timeout_seconds: Option<u64>,
}

fn default_interface() -> String {
    "public".to_owned()
}

/// An Alibaba Cloud account for the ECS API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunConfig {
    /// Region ID, such as `cn-hangzhou`.
    pub region_id: String,
    /// API endpoint; `https://ecs.<region_id>.aliyuncs.com` when unset.
    pub endpoint: Option<String>,
    /// AccessKey ID reference.
    pub access_key_id: SecretRef,
    /// AccessKey secret reference.
    pub access_key_secret: SecretRef,
    /// Seconds allowed for one HTTP request; 30 by default.
    pub request_timeout_seconds: Option<u64>,
}

/// A reference to the place a secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    /// An environment variable.
    Env {
        /// Variable name.
        env: String,
    },
    /// A file whose content, without the trailing newline, is the secret.
    File {
        /// File path.
        file: PathBuf,
    },
}

impl SecretRef {
    /// Returns `env:NAME` or `file:PATH`, which is safe to show.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env { env } => format!("env:{env}"),
            SecretRef::File { file } => format!("file:{}", file.display()),
        }
    }

    /// Reads the secret.
    ///
    /// # Errors
    /// [`CloudError::Credential`] when the variable is unset or empty, or the file unreadable or empty.
    pub fn resolve(&self) -> Result<Secret, CloudError> {
        let fail = |reason: String| CloudError::Credential { reference: self.describe(), reason };
        let value = match self {
            SecretRef::Env { env } => std::env::var(env).map_err(|_| fail("the variable is not set".to_owned()))?,
            SecretRef::File { file } => std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?.trim_end_matches(['\r', '\n']).to_owned(),
        };
        if value.is_empty() {
            return Err(fail("the value is empty".to_owned()));
        }
        Ok(Secret(value))
    }
}

/// A secret value; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value, for tests and for values read elsewhere.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Returns the value, for signing or sending.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Reads the `[cloud]` section of a caasctl.toml; an absent section is an empty configuration.
///
/// # Errors
/// [`CloudError::Config`] when the file cannot be read or the section is invalid.
pub fn load(path: &Path) -> Result<CloudConfig, CloudError> {
    let fail = |reason: String| CloudError::Config { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    parse(&text).map_err(fail)
}

/// Parses the `[cloud]` section out of a whole caasctl.toml text.
///
/// # Errors
/// The parser's message when the TOML or the section is invalid.
pub fn parse(text: &str) -> Result<CloudConfig, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    match table.remove("cloud") {
        Some(section) => section.try_into().map_err(|e: toml::de::Error| e.to_string()),
        None => Ok(CloudConfig::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_section_parses() {
        let text = r#"
            [repository]
            path = "/backups"

            [cloud]
            cluster = "prod"

            [cloud.hosts."master1.example.com"]
            disks = ["d-1", "d-2"]
            instance = "i-1"
            role = "master"

            [cloud.openstack]
            auth_url = "http://127.0.0.1:5000/v3"
            username = "ops"
            password = { env = "CAASCTL_TEST_OS_PASSWORD" }
            project_name = "caas"

            [cloud.aliyun]
            region_id = "cn-hangzhou"
            access_key_id = { env = "AK" }
            access_key_secret = { file = "/etc/caasctl/ak" }
        "#;
        let config = parse(text).unwrap();
        assert_eq!(config.cluster.as_deref(), Some("prod"));
        assert_eq!(config.hosts["master1.example.com"].disks, ["d-1", "d-2"]);
        let openstack = config.openstack.unwrap();
        assert_eq!(openstack.interface, "public");
        assert_eq!(openstack.password, Some(SecretRef::Env { env: "CAASCTL_TEST_OS_PASSWORD".into() }));
        let aliyun = config.aliyun.unwrap();
        assert_eq!(aliyun.access_key_secret.describe(), "file:/etc/caasctl/ak");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error = parse("[cloud.aliyun]\nregion_id = \"x\"\naccess_key_id = { env = \"A\" }\naccess_key_secret = { env = \"B\" }\nsecret = \"inline\"\n").unwrap_err();
        assert!(error.contains("secret"), "{error}");
    }

    #[test]
    fn secret_debug_is_hidden() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn secret_from_file_and_missing_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(SecretRef::File { file: path }.resolve().unwrap().expose(), "s3cret");
        let missing = SecretRef::Env { env: "CAASCTL_TEST_UNSET_VARIABLE".into() }.resolve().unwrap_err();
        assert!(matches!(missing, CloudError::Credential { ref reference, .. } if reference == "env:CAASCTL_TEST_UNSET_VARIABLE"));
    }
}
