//! Where the cluster is: endpoint URLs and TLS file paths, from flags as etcdctl takes them, from
//! an `etcd.conf` (the file openshift-ansible writes to `/etc/etcd/etcd.conf`) or from the etcd
//! container of a static pod manifest (`/etc/origin/node/pods/etcd.yaml`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::EtcdError;

/// Paths of the PEM files for TLS, named after etcdctl's v3 flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsFiles {
    /// CA bundle that verifies the servers (`--cacert`).
    pub cacert: Option<PathBuf>,
    /// Client certificate (`--cert`).
    pub cert: Option<PathBuf>,
    /// Client private key (`--key`).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Returns true when no TLS file was given.
    pub fn is_empty(&self) -> bool {
        self.cacert.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// A cluster to talk to: its client URLs and the TLS files for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClusterAccess {
    /// Client URLs, such as `https://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// TLS files shared by every endpoint.
    pub tls: TlsFiles,
}

impl ClusterAccess {
    /// Builds access from a comma-separated `--endpoints` value and TLS paths, checking each URL.
    ///
    /// # Errors
    /// [`EtcdError::InvalidEndpoint`] names the first value that is not a URL with scheme, host and
    /// port; [`EtcdError::NoEndpoints`] when the list is empty.
    pub fn from_flags(endpoints: &str, tls: TlsFiles) -> Result<ClusterAccess, EtcdError> {
        let endpoints = split_urls(endpoints)?;
        Ok(ClusterAccess { endpoints, tls })
    }

    /// Reads `ETCD_ADVERTISE_CLIENT_URLS` and the `ETCD_TRUSTED_CA_FILE`, `ETCD_CERT_FILE` and
    /// `ETCD_KEY_FILE` paths from an etcd.conf.
    ///
    /// # Errors
    /// The file cannot be read, sets no client URL, or one of its URLs is invalid.
    pub fn from_etcd_conf(path: &Path) -> Result<ClusterAccess, EtcdError> {
        let text = read(path)?;
        let vars = parse_etcd_conf(&text);
        let urls = vars
            .get("ETCD_ADVERTISE_CLIENT_URLS")
            .ok_or_else(|| EtcdError::ConfNoClientUrls { path: path.to_owned() })?;
        let endpoints = split_urls(urls)?;
        let file = |name: &str| vars.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Ok(ClusterAccess {
            endpoints,
            tls: TlsFiles {
                cacert: file("ETCD_TRUSTED_CA_FILE"),
                cert: file("ETCD_CERT_FILE"),
                key: file("ETCD_KEY_FILE"),
            },
        })
    }

    /// Reads the etcd container's `--advertise-client-urls`, `--trusted-ca-file`, `--cert-file`
    /// and `--key-file` arguments from a static pod manifest.
    ///
    /// Arguments are looked for in `command` and `args`, both as separate list items and inside
    /// shell scripts (`sh -c "exec etcd --cert-file=..."`), as `--flag=value` or `--flag value`.
    ///
    /// # Errors
    /// The file cannot be read, is not YAML, has no container named `etcd`, or that container
    /// passes no `--advertise-client-urls`.
    pub fn from_static_pod(path: &Path) -> Result<ClusterAccess, EtcdError> {
        let text = read(path)?;
        let invalid = |reason: String| EtcdError::StaticPod { path: path.to_owned(), reason };
        let flags = static_pod_etcd_flags(&text).map_err(invalid)?;
        let Some(urls) = flags.get("advertise-client-urls") else {
            // openshift-ansible 3.x runs etcd as `sh -c "source /etc/etcd/etcd.conf && exec etcd"`:
            // the settings are in the sourced file, and flags the script passes override them.
            let words = etcd_container_words(&text).map_err(invalid)?;
            let conf = sourced_file(&words).ok_or_else(|| invalid("the etcd container passes no --advertise-client-urls and sources no etcd.conf; use --etcd-conf or --endpoints".to_owned()))?;
            let mut access = ClusterAccess::from_etcd_conf(&conf)?;
            let flag_file = |name: &str| flags.get(name).map(PathBuf::from);
            access.tls.cacert = flag_file("trusted-ca-file").or(access.tls.cacert);
            access.tls.cert = flag_file("cert-file").or(access.tls.cert);
            access.tls.key = flag_file("key-file").or(access.tls.key);
            return Ok(access);
        };
        Ok(ClusterAccess {
            endpoints: split_urls(urls)?,
            tls: TlsFiles {
                cacert: flags.get("trusted-ca-file").map(PathBuf::from),
                cert: flags.get("cert-file").map(PathBuf::from),
                key: flags.get("key-file").map(PathBuf::from),
            },
        })
    }
}

/// Returns the etcd container's flags of a static pod manifest, as `name` (without `--`) to value.
///
/// Arguments are looked for in `command` and `args`, both as separate list items and inside
/// shell scripts (`sh -c "exec etcd --cert-file=..."`), as `--flag=value` or `--flag value`.
///
/// # Errors
/// The text is not YAML or has no container named `etcd` (a pod with one container is taken as
/// etcd's); the message names the problem.
pub fn static_pod_etcd_flags(text: &str) -> Result<HashMap<String, String>, String> {
    Ok(parse_flags(&etcd_container_words(text)?))
}

/// Returns the file a shell script sources (`source FILE` or `. FILE`) among the words of the
/// etcd container's command.
fn sourced_file(words: &[String]) -> Option<PathBuf> {
    words.windows(2).find(|pair| matches!(pair[0].as_str(), "source" | ".")).map(|pair| PathBuf::from(pair[1].trim_end_matches(';').trim_end_matches("&&")))
}

/// Returns the words of the etcd container's `command` and `args`, split on whitespace with
/// quotes removed, so that flags inside `sh -c` scripts are found too.
fn etcd_container_words(text: &str) -> Result<Vec<String>, String> {
    let pod: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let containers = pod
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_sequence())
        .ok_or_else(|| "no spec.containers".to_owned())?;
    let etcd = containers
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some("etcd"))
        .or_else(|| (containers.len() == 1).then(|| &containers[0]))
        .ok_or_else(|| "no container named etcd".to_owned())?;

    let mut words = Vec::new();
    for field in ["command", "args"] {
        if let Some(items) = etcd.get(field).and_then(|v| v.as_sequence()) {
            for item in items.iter().filter_map(|i| i.as_str()) {
                words.extend(item.split_whitespace().map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_owned()));
            }
        }
    }
    Ok(words)
}

fn read(path: &Path) -> Result<String, EtcdError> {
    std::fs::read_to_string(path).map_err(|source| EtcdError::ReadFile { path: path.to_owned(), source })
}

/// Parses `--name=value` and `--name value` pairs out of a word list.
fn parse_flags(words: &[String]) -> HashMap<String, String> {
    let mut flags = HashMap::new();
    let mut index = 0;
    while index < words.len() {
        if let Some(flag) = words[index].strip_prefix("--") {
            if let Some((name, value)) = flag.split_once('=') {
                flags.insert(name.to_owned(), value.trim_matches(|c| c == '"' || c == '\'').to_owned());
            } else if let Some(next) = words.get(index + 1).filter(|w| !w.starts_with("--")) {
                flags.insert(flag.to_owned(), next.clone());
                index += 1;
            }
        }
        index += 1;
    }
    flags
}

/// Parses the shell-style `KEY=VALUE` lines of an etcd.conf.
///
/// Handles comments, blank lines, an `export ` prefix, and values in single or double quotes.
/// A `#` inside quotes is part of the value; outside quotes it starts a comment.
pub fn parse_etcd_conf(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else { continue };
        vars.insert(key.trim().to_owned(), unquote(raw.trim()));
    }
    vars
}

fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    match chars.next() {
        Some(quote @ ('"' | '\'')) => {
            let rest: String = chars.collect();
            match rest.find(quote) {
                Some(end) => rest[..end].to_owned(),
                None => rest,
            }
        }
        _ => raw.split(" #").next().unwrap_or(raw).trim().to_owned(),
    }
}

/// Splits a comma-separated URL list and checks each entry.
pub fn split_urls(value: &str) -> Result<Vec<String>, EtcdError> {
    let urls: Vec<String> = value
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(EtcdError::NoEndpoints);
    }
    for url in &urls {
        check_url(url)?;
    }
    Ok(urls)
}

fn check_url(url: &str) -> Result<(), EtcdError> {
    let invalid = || EtcdError::InvalidEndpoint { value: url.to_owned() };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => return Err(invalid()),
    };
    if host.is_empty() || host.contains(' ') || port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
        return Err(invalid());
    }
    Ok(())
}

/// Returns the `host:port` part of a URL.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_conf_quotes_and_comments() {
        let text = r#"
# written by openshift-ansible
ETCD_NAME=master-0.example.com
ETCD_ADVERTISE_CLIENT_URLS="https://192.168.55.8:2379, https://10.0.0.8:2379"
ETCD_TRUSTED_CA_FILE='/etc/etcd/ca.crt'
export ETCD_CERT_FILE=/etc/etcd/server.crt # trailing comment
ETCD_KEY_FILE="/etc/etcd/a #b.key"
"#;
        let vars = parse_etcd_conf(text);
        assert_eq!(vars["ETCD_NAME"], "master-0.example.com");
        assert_eq!(vars["ETCD_TRUSTED_CA_FILE"], "/etc/etcd/ca.crt");
        assert_eq!(vars["ETCD_CERT_FILE"], "/etc/etcd/server.crt");
        assert_eq!(vars["ETCD_KEY_FILE"], "/etc/etcd/a #b.key");
        let urls = split_urls(&vars["ETCD_ADVERTISE_CLIENT_URLS"]).unwrap();
        assert_eq!(urls, vec!["https://192.168.55.8:2379", "https://10.0.0.8:2379"]);
    }

    #[test]
    fn urls_rejected_with_value() {
        for bad in ["127.0.0.1:2379", "https://:2379", "https://host", "ftp://h:1", "https://h:0", "https://h:99999"] {
            let err = split_urls(bad).unwrap_err();
            assert!(matches!(err, EtcdError::InvalidEndpoint { .. }), "{bad} gave {err}");
        }
        assert!(matches!(split_urls(" , "), Err(EtcdError::NoEndpoints)));
    }

    #[test]
    fn static_pod_args_and_shell_script() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(
            &path,
            r#"
apiVersion: v1
kind: Pod
metadata: {name: master-etcd, namespace: kube-system}
spec:
  containers:
  - name: etcd
    image: etcd:3.4
    command: ["/bin/sh", "-c"]
    args:
    - |
      exec etcd --name=m0 --advertise-client-urls=https://192.168.55.8:2379
      --trusted-ca-file /etc/etcd/ca.crt --cert-file=/etc/etcd/peer.crt --key-file="/etc/etcd/peer.key"
"#,
        )
        .unwrap();
        let access = ClusterAccess::from_static_pod(&path).unwrap();
        assert_eq!(access.endpoints, vec!["https://192.168.55.8:2379"]);
        assert_eq!(access.tls.cacert.as_deref(), Some(Path::new("/etc/etcd/ca.crt")));
        assert_eq!(access.tls.cert.as_deref(), Some(Path::new("/etc/etcd/peer.crt")));
        assert_eq!(access.tls.key.as_deref(), Some(Path::new("/etc/etcd/peer.key")));
    }

    #[test]
    fn static_pod_sourcing_etcd_conf() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etcd.conf");
        std::fs::write(&conf, "ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.1:2379\nETCD_TRUSTED_CA_FILE=/etc/etcd/ca.crt\nETCD_CERT_FILE=/etc/etcd/server.crt\nETCD_KEY_FILE=/etc/etcd/server.key\n").unwrap();
        let path = dir.path().join("etcd.yaml");
        let manifest = format!(
            "spec:\n  containers:\n  - name: etcd\n    command: [/bin/sh, -c]\n    args:\n    - |\n      #!/bin/sh\n      set -o allexport\n      source {}\n      exec etcd --cert-file=/override/client.crt\n",
            conf.display()
        );
        std::fs::write(&path, manifest).unwrap();
        let access = ClusterAccess::from_static_pod(&path).unwrap();
        assert_eq!(access.endpoints, vec!["https://10.0.0.1:2379".to_owned()]);
        assert_eq!(access.tls.cacert.as_deref(), Some(Path::new("/etc/etcd/ca.crt")));
        assert_eq!(access.tls.cert.as_deref(), Some(Path::new("/override/client.crt")), "a flag overrides the sourced file");
        assert_eq!(access.tls.key.as_deref(), Some(Path::new("/etc/etcd/server.key")));
    }

    #[test]
    fn static_pod_without_urls_names_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(&path, "spec:\n  containers:\n  - name: etcd\n    command: [etcd]\n").unwrap();
        let err = ClusterAccess::from_static_pod(&path).unwrap_err();
        assert!(err.to_string().contains("--etcd-conf"), "{err}");
    }
}
