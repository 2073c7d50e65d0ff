//! `caasctl snapshot` with the local provider, run as a binary against real qcow2 images made by
//! qemu-img. Data is written with qemu-io, snapshotted, overwritten, rolled back and read back
//! with qemu-io's pattern check, which fails when any byte differs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn tools_present() -> bool {
    let found = |tool: &str| StdCommand::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    caasctl_testing::require(found("qemu-img") && found("qemu-io"), "qemu-img and qemu-io (Debian package qemu-utils)")
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = StdCommand::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&path).arg("16M").status().unwrap();
    assert!(status.success());
    path
}

fn qemu_io(path: &Path, command: &str) -> bool {
    let output = StdCommand::new("qemu-io").args(["-f", "qcow2", "-c", command]).arg(path).output().unwrap();
    // qemu-io 10.0 exits 1 on a failed pattern check; its message is checked as well, in case
    // another version reports the failure only in the output.
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    output.status.success() && !text.contains("Pattern verification failed") && !text.contains("failed")
}

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env("CAASCTL_LANG", "en").env_remove("CAASCTL_CONFIG").env("CAASCTL_NO_PROGRESS", "1");
    // Rollbacks are journaled; their journals go to a directory of this test run.
    command.env("CAASCTL_STATE_DIR", std::env::temp_dir().join(format!("caasctl-snapshot-local-{}", std::process::id())));
    command
}

fn snapshot(args: &[&str], disk: &Path) -> Command {
    let mut command = caasctl();
    command.arg("snapshot").args(args).args(["--provider", "local", "--disk"]).arg(disk);
    command
}

/// Keeps an image open for writing, as a running VM does, until dropped.
struct Holder(Child);

impl Holder {
    fn open(path: &Path) -> Holder {
        let child = StdCommand::new("qemu-io").args(["-f", "qcow2"]).arg(path).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        // Wait until the lock is visible to qemu-img.
        for _ in 0..100 {
            let info = StdCommand::new("qemu-img").arg("info").arg(path).output().unwrap();
            if !info.status.success() {
                return Holder(child);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("qemu-io never locked {}", path.display());
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rollback_restores_written_data() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    assert!(qemu_io(&disk, "write -P 0xab 0 1M"));

    snapshot(&["create", "--name", "before-upgrade"], &disk).assert().success().stdout(contains("before-upgrade"));
    assert!(qemu_io(&disk, "write -P 0xcd 0 1M"));
    assert!(!qemu_io(&disk, "read -P 0xab 0 1M"), "overwrite did not change the data");

    snapshot(&["rollback", "--name", "before-upgrade", "--yes"], &disk)
        .assert()
        .success()
        .stdout(contains("rolled back"))
        .stdout(contains("caasctl-pre-rollback-"));
    assert!(qemu_io(&disk, "read -P 0xab 0 1M"), "data after rollback differs from the snapshot");

    // The safety snapshot holds the overwritten state, so the rollback can be undone.
    let listing = snapshot(&["list", "-o", "json"], &disk).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let names: Vec<&str> = listing["snapshots"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let safety = names.iter().find(|n| n.starts_with("caasctl-pre-rollback-")).expect("safety snapshot listed").to_string();
    snapshot(&["rollback", "--name", &safety, "--yes"], &disk).assert().success();
    assert!(qemu_io(&disk, "read -P 0xcd 0 1M"), "undoing the rollback did not bring back the overwritten data");
}

#[test]
fn dry_run_changes_nothing() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    assert!(qemu_io(&disk, "write -P 0x11 0 64k"));
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    assert!(qemu_io(&disk, "write -P 0x22 0 64k"));

    let output = snapshot(&["rollback", "--name", "s1", "--dry-run", "-o", "json"], &disk).output().unwrap();
    assert!(output.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["plan"]["steps"][0]["action"], "safety-copy");
    assert_eq!(plan["plan"]["steps"][1]["action"], "rollback");
    assert!(qemu_io(&disk, "read -P 0x22 0 64k"), "dry run changed the data");

    let listing = snapshot(&["list", "-o", "json"], &disk).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 1, "dry run took a snapshot");
}

#[test]
fn rollback_without_yes_off_terminal_is_usage_error() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    snapshot(&["rollback", "--name", "s1"], &disk).write_stdin("").assert().code(2).stderr(contains("--yes"));
}

#[test]
fn locked_disk_is_refused() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    let holder = Holder::open(&disk);

    snapshot(&["create", "--name", "s2"], &disk).assert().code(1).stderr(contains("in use"));
    snapshot(&["rollback", "--name", "s1", "--yes"], &disk).assert().code(1).stderr(contains("write lock"));
    // Listing reads without the lock and reports the disk as in use.
    snapshot(&["list"], &disk).assert().success().stdout(contains("locked"));
    drop(holder);
    snapshot(&["rollback", "--name", "s1", "--yes"], &disk).assert().success();
}

#[test]
fn preconditions_name_what_failed() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "a.qcow2");
    let other = image(dir.path(), "b.qcow2");
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    snapshot(&["create", "--name", "only-on-b"], &other).assert().success();

    snapshot(&["create", "--name", "s1"], &disk).assert().code(1).stderr(contains("already has a snapshot named s1"));
    snapshot(&["rollback", "--name", "only-on-b", "--yes"], &disk).assert().code(1).stderr(contains("snapshot only-on-b not found"));
    snapshot(&["rollback", "--name", "s1", "--yes"], &dir.path().join("missing.qcow2")).assert().code(1).stderr(contains("not found"));

    let raw = dir.path().join("raw.img");
    StdCommand::new("qemu-img").args(["create", "-q", "-f", "raw"]).arg(&raw).arg("1M").status().unwrap();
    snapshot(&["create", "--name", "s1"], &raw).assert().code(1).stderr(contains("qcow2"));
}

#[test]
fn delete_removes_snapshot() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    let output = snapshot(&["delete", "--name", "s1", "--yes", "-o", "json"], &disk).output().unwrap();
    assert!(output.status.success());
    let deleted: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(deleted["deleted"]["name"], "s1");
    snapshot(&["list"], &disk).assert().success().stdout(contains("s1").not());
}

#[test]
fn numeric_name_matching_other_id_is_ambiguous() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    // qemu-img gives "s1" the ID 1, and the next snapshot is named "1".
    snapshot(&["create", "--name", "s1"], &disk).assert().success();
    snapshot(&["create", "--name", "1"], &disk).assert().success();

    let output = snapshot(&["delete", "--name", "1", "--yes"], &disk).output().unwrap();
    assert!(!output.status.success(), "a reference to two snapshots is rejected");
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than one snapshot"), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = snapshot(&["list", "-o", "json"], &disk).output().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = listed["snapshots"].as_array().expect("snapshots array").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["s1", "1"], "both snapshots are still there");
}

#[test]
fn chinese_messages() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), "vm.qcow2");
    let mut command = snapshot(&["rollback", "--name", "nope", "--yes"], &disk);
    command.env("CAASCTL_LANG", "zh-CN").assert().code(1).stderr(contains("没有快照 nope"));
}
