//! The program that writes a restored data dir: `etcdutl snapshot restore` (etcd 3.5) or
//! `etcdctl snapshot restore` (etcd 3.4, v3 API). caasctl checks the snapshot and moves
//! directories itself but leaves the bbolt and WAL writing to etcd's own tool, so the restored
//! member is exactly what etcd would produce.

use crate::error::RestoreError;
use crate::exec::{shell_quote, Executor};

/// Which etcd tool restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    /// `etcdutl` (3.5 and later).
    Etcdutl,
    /// `etcdctl` with `ETCDCTL_API=3` (3.4).
    Etcdctl,
}

/// A restore tool on a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    /// Path of the program on its host.
    pub path: String,
    /// Which tool it is.
    pub kind: EngineKind,
}

/// The member a restore writes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreParams {
    /// Snapshot file on the host.
    pub snapshot: String,
    /// Directory to create; it must not exist.
    pub data_dir: String,
    /// Member name (`--name`).
    pub name: String,
    /// `--initial-cluster`, `NAME=URL,...`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// `--initial-advertise-peer-urls`.
    pub peer_url: String,
    /// Passes `--skip-hash-check` to the tool.
    pub skip_hash_check: bool,
}

impl Engine {
    /// Names the tool by its file name: `etcdutl` anywhere in it means etcdutl, anything else is
    /// taken as etcdctl.
    pub fn from_path(path: &str) -> Engine {
        let file = path.rsplit('/').next().unwrap_or(path);
        let kind = if file.contains("etcdutl") { EngineKind::Etcdutl } else { EngineKind::Etcdctl };
        Engine { path: path.to_owned(), kind }
    }

    /// Finds the tool on a host: `explicit` when given, else `etcdutl`, then `etcdctl` on `PATH`.
    ///
    /// # Errors
    /// [`RestoreError::NoEngine`] when none is found, or the lookup failed.
    pub fn find(executor: &dyn Executor, explicit: Option<&str>) -> Result<Engine, RestoreError> {
        if let Some(path) = explicit {
            if !executor.run_script(&format!("test -x {}", shell_quote(path)), None)?.success() {
                return Err(RestoreError::NoEngine { host: format!("{} (at {path})", executor.host()) });
            }
            return Ok(Engine::from_path(path));
        }
        match executor.which(&["etcdutl", "etcdctl"])? {
            Some(path) => Ok(Engine::from_path(&path)),
            None => Err(RestoreError::NoEngine { host: executor.host() }),
        }
    }

    /// Returns the shell command that restores `params`.
    pub fn restore_command(&self, params: &RestoreParams) -> String {
        let mut words = Vec::new();
        if self.kind == EngineKind::Etcdctl {
            words.push("ETCDCTL_API=3".to_owned());
        }
        words.extend([self.path.clone(), "snapshot".into(), "restore".into(), params.snapshot.clone()]);
        words.extend([
            "--data-dir".into(),
            params.data_dir.clone(),
            "--name".into(),
            params.name.clone(),
            "--initial-cluster".into(),
            params.initial_cluster.clone(),
            "--initial-cluster-token".into(),
            params.token.clone(),
            "--initial-advertise-peer-urls".into(),
            params.peer_url.clone(),
        ]);
        if params.skip_hash_check {
            words.push("--skip-hash-check".into());
        }
        words
            .iter()
            .map(|w| if w.starts_with("ETCDCTL_API=") { w.clone() } else { shell_quote(w) })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RestoreParams {
        RestoreParams {
            snapshot: "/backup/snap.db".into(),
            data_dir: "/var/lib/etcd.tmp".into(),
            name: "master-0".into(),
            initial_cluster: "master-0=https://10.0.0.1:2380".into(),
            token: "etcd-cluster-1".into(),
            peer_url: "https://10.0.0.1:2380".into(),
            skip_hash_check: true,
        }
    }

    #[test]
    fn kind_from_file_name() {
        assert_eq!(Engine::from_path("/usr/local/bin/etcdutl-3.5").kind, EngineKind::Etcdutl);
        assert_eq!(Engine::from_path("/usr/bin/etcdctl").kind, EngineKind::Etcdctl);
    }

    #[test]
    fn etcdctl_command_sets_api_3() {
        let command = Engine::from_path("/usr/bin/etcdctl").restore_command(&params());
        assert!(command.starts_with("ETCDCTL_API=3 /usr/bin/etcdctl snapshot restore /backup/snap.db --data-dir /var/lib/etcd.tmp"));
        assert!(command.ends_with("--skip-hash-check"));
    }

    #[test]
    fn etcdutl_command_has_no_env() {
        let mut p = params();
        p.skip_hash_check = false;
        let command = Engine::from_path("etcdutl").restore_command(&p);
        assert!(command.starts_with("etcdutl snapshot restore"));
        assert!(!command.contains("skip-hash-check"));
    }
}
