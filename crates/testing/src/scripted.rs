//! etcd members run by shell scripts, the way a restore tool sees a host: a start command that
//! starts etcd from whatever data dir exists (detached, PID in a file), passing its own arguments
//! on to etcd after the member's flags, and a stop command that stops it. Restore tests hand these
//! commands to caasctl as the members' service.
//!
//! Each member keeps the ports, flags and certificates of the [`EtcdCluster`] it was made from.
//! Every PID written by a start script is killed when the [`ScriptedMembers`] guard drops.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::etcd::EtcdCluster;

/// Start and stop scripts of one member.
#[derive(Debug, Clone)]
pub struct ScriptedMember {
    /// Member name.
    pub name: String,
    /// Start script path.
    pub start: PathBuf,
    /// Stop script path.
    pub stop: PathBuf,
    /// File the start script writes the etcd PID to.
    pub pid_file: PathBuf,
}

/// Scripts for every member of a cluster; kills the started processes on drop.
#[derive(Debug)]
pub struct ScriptedMembers {
    /// One entry per member, in the cluster's order.
    pub members: Vec<ScriptedMember>,
}

/// Returns the etcd flags of member `index`, the same the harness starts it with.
pub fn member_args(cluster: &EtcdCluster, index: usize) -> Vec<String> {
    cluster.member_args(&cluster.members[index], "new")
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl ScriptedMembers {
    /// Writes start and stop scripts for every member of `cluster` into `dir`.
    pub fn write(cluster: &EtcdCluster, dir: &Path) -> ScriptedMembers {
        std::fs::create_dir_all(dir).unwrap();
        let binary = cluster.options.version.etcd_binary();
        let members = (0..cluster.members.len())
            .map(|index| {
                let member = &cluster.members[index];
                let pid_file = dir.join(format!("{}.pid", member.name));
                let start = dir.join(format!("start-{}.sh", member.name));
                let stop = dir.join(format!("stop-{}.sh", member.name));
                let args: Vec<String> = member_args(cluster, index).iter().map(|a| quote(a)).collect();
                write_script(
                    &start,
                    &format!(
                        "pid_file={pid}\nif [ -f \"$pid_file\" ] && kill -0 \"$(cat \"$pid_file\")\" 2>/dev/null; then exit 0; fi\n\
                         ETCD_UNSUPPORTED_ARCH= setsid {bin} {args} \"$@\" >> {log} 2>&1 < /dev/null &\necho $! > \"$pid_file\"\n",
                        pid = quote(&pid_file.display().to_string()),
                        bin = quote(&binary.display().to_string()),
                        args = args.join(" "),
                        log = quote(&member.log.display().to_string()),
                    ),
                );
                // A killed etcd whose parent shell is gone may stay a zombie when PID 1 does not
                // reap, so a zombie counts as stopped.
                write_script(
                    &stop,
                    &format!(
                        "pid_file={pid}\n[ -f \"$pid_file\" ] || exit 0\npid=$(cat \"$pid_file\")\nkill \"$pid\" 2>/dev/null\ni=0\n\
                         while [ -d /proc/$pid ] && [ \"$(awk '{{print $3}}' /proc/$pid/stat 2>/dev/null)\" != Z ]; do\n\
                         i=$((i+1)); [ $i -eq 100 ] && kill -9 \"$pid\" 2>/dev/null; [ $i -gt 200 ] && exit 1; sleep 0.05\ndone\nrm -f \"$pid_file\"\n",
                        pid = quote(&pid_file.display().to_string()),
                    ),
                );
                ScriptedMember { name: member.name.clone(), start, stop, pid_file }
            })
            .collect();
        ScriptedMembers { members }
    }

    /// Runs the start script of every member.
    pub fn start_all(&self) {
        for member in &self.members {
            let status = Command::new(&member.start).status().expect("run start script");
            assert!(status.success(), "start script of {} failed", member.name);
        }
    }

    /// Runs the stop script of every member.
    pub fn stop_all(&self) {
        for member in &self.members {
            let _ = Command::new(&member.stop).status();
        }
    }
}

impl Drop for ScriptedMembers {
    fn drop(&mut self) {
        for member in &self.members {
            if let Some(pid) = std::fs::read_to_string(&member.pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
                // SAFETY: kill has no memory-safety preconditions; the PID came from our own script.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}
