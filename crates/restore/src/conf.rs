//! Member settings from a backup: the `etcd.conf` inside each member's configuration archive
//! (`config/NAME.tar.gz`, a tar of `/etc/etcd`), which a cluster file may leave out.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use caasctl_etcd::endpoints::parse_etcd_conf;
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

/// Returns the etcd.conf variables of every member archived in a backup, keyed by the archive's
/// member name. Unreadable archives are logged and left out, because the cluster file can still
/// name everything itself.
pub fn member_confs(backup_dir: &Path, manifest: &Manifest) -> HashMap<String, HashMap<String, String>> {
    let mut confs = HashMap::new();
    for archive in &manifest.config_archives {
        match read_etcd_conf(&backup_dir.join(&archive.file)) {
            Ok(Some(conf)) => {
                confs.insert(archive.member.clone(), conf);
            }
            Ok(None) => {}
            Err(error) => warn!(file = %archive.file, error = %error, "config archive unreadable; its etcd.conf is not used"),
        }
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
}
