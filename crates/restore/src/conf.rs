//! Member settings from a backup: the `etcd.conf` inside each member's configuration archive
//! (`config/NAME.tar.gz`, a tar of `/etc/etcd`), and the etcd flags of its static pod manifest
//! (`config/NAME.static-pod.tar.gz`), which a cluster file may leave out.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use caasctl_etcd::endpoints::{parse_etcd_conf, static_pod_etcd_flags};
use caasctl_etcd::repo::Manifest;
use flate2::read::GzDecoder;
use tracing::warn;

/// Reads `etcd.conf` from a `.tar.gz` configuration archive; `None` when it holds none.
///
/// # Errors
/// The archive cannot be read or decompressed.
pub fn read_etcd_conf(archive: &Path) -> std::io::Result<Option<HashMap<String, String>>> {
    let mut tar = tar::Archive::new(GzDecoder::new(std::fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let is_conf = entry.path()?.file_name().is_some_and(|n| n == "etcd.conf");
        if is_conf && entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(Some(parse_etcd_conf(&text)));
        }
    }
    Ok(None)
}

/// Reads the static pod manifest (the first `.yaml` or `.yml` file) from a `.tar.gz`
/// configuration archive and returns its etcd flags as the etcd.conf variables they stand for
/// (`--initial-advertise-peer-urls` as `ETCD_INITIAL_ADVERTISE_PEER_URLS`); `None` when the
/// archive contains no manifest.
///
/// # Errors
/// The archive cannot be read, or the manifest is not a pod with an etcd container.
pub fn read_static_pod_vars(archive: &Path) -> std::io::Result<Option<HashMap<String, String>>> {
    let mut tar = tar::Archive::new(GzDecoder::new(std::fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let is_yaml = entry.path()?.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            let flags = static_pod_etcd_flags(&text).map_err(std::io::Error::other)?;
            return Ok(Some(flags_as_conf_vars(&flags)));
        }
    }
    Ok(None)
}

/// Maps etcd flags to the environment variables etcd reads for them (`--data-dir` is
/// `ETCD_DATA_DIR`).
pub fn flags_as_conf_vars(flags: &HashMap<String, String>) -> HashMap<String, String> {
    flags.iter().map(|(flag, value)| (format!("ETCD_{}", flag.to_uppercase().replace('-', "_")), value.clone())).collect()
}

/// Returns the etcd.conf variables of every member archived in a backup, keyed by the archive's
/// member name. Where a member's static pod manifest was archived too, its etcd flags override
/// the matching etcd.conf variables. Unreadable archives are logged and left out, because
/// the cluster file can still name everything itself.
pub fn member_confs(backup_dir: &Path, manifest: &Manifest) -> HashMap<String, HashMap<String, String>> {
    let mut confs: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut pod_vars: Vec<(String, HashMap<String, String>)> = Vec::new();
    for archive in &manifest.config_archives {
        let path = backup_dir.join(&archive.file);
        match read_etcd_conf(&path) {
            Ok(Some(conf)) => {
                confs.entry(archive.member.clone()).or_default().extend(conf);
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                warn!(file = %archive.file, error = %error, "config archive unreadable; its etcd.conf is not used");
                continue;
            }
        }
        match read_static_pod_vars(&path) {
            Ok(Some(vars)) => pod_vars.push((archive.member.clone(), vars)),
            Ok(None) => {}
            Err(error) => warn!(file = %archive.file, error = %error, "static pod manifest in the backup unreadable; its flags are not used"),
        }
    }

    // etcd gives a flag precedence over its environment variable, so the manifest's flags win.
    // A manifest that sources etcd.conf (`sh -c "source /etc/etcd/etcd.conf && exec etcd"`)
    // passes none of these flags and changes nothing.
    for (member, vars) in pod_vars {
        confs.entry(member).or_default().extend(vars);
    }
    confs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_conf_read_from_archive() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc-etcd");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("etcd.conf"), "ETCD_NAME=master-0\nETCD_DATA_DIR=/var/lib/etcd\n").unwrap();
        std::fs::write(etc.join("ca.crt"), "not read").unwrap();
        let archive = dir.path().join("master-0.tar.gz");
        caasctl_etcd::config_archive::write_archive(&etc, &archive).unwrap();

        let conf = read_etcd_conf(&archive).unwrap().unwrap();
        assert_eq!(conf.get("ETCD_NAME").map(String::as_str), Some("master-0"));
        assert_eq!(conf.get("ETCD_DATA_DIR").map(String::as_str), Some("/var/lib/etcd"));
    }

    #[test]
    fn static_pod_flags_read_as_vars() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        std::fs::create_dir(&pods).unwrap();
        std::fs::write(
            pods.join("etcd.yaml"),
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd, --name=master-1, --data-dir, /var/lib/etcd, \"--initial-advertise-peer-urls=https://10.0.0.2:2380\"]\n",
        )
        .unwrap();
        let archive = dir.path().join("master-1.static-pod.tar.gz");
        caasctl_etcd::config_archive::write_archive(&pods, &archive).unwrap();

        let vars = read_static_pod_vars(&archive).unwrap().unwrap();
        assert_eq!(vars.get("ETCD_NAME").map(String::as_str), Some("master-1"));
        assert_eq!(vars.get("ETCD_DATA_DIR").map(String::as_str), Some("/var/lib/etcd"));
        assert_eq!(vars.get("ETCD_INITIAL_ADVERTISE_PEER_URLS").map(String::as_str), Some("https://10.0.0.2:2380"));
        assert_eq!(read_etcd_conf(&archive).unwrap(), None);
    }
}
