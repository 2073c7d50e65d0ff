//! `caasctl snapshot rollback` as a journaled operation, with the local provider on real qcow2
//! images: the rollback shows up in `caasctl ops list | show`, and one whose rollback step failed
//! is resumed with `caasctl ops resume` without taking its safety snapshot again.
//!
//! The failure is injected by a `qemu-img` wrapper (configured as `[cloud.local] qemu_img`) that
//! rejects `snapshot -a` while a marker file exists and runs the real qemu-img otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tools_present() -> bool {
    let found = |tool: &str| Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    caasctl_testing::require(found("qemu-img") && found("qemu-io"), "qemu-img and qemu-io (Debian package qemu-utils)")
}

fn image(dir: &Path) -> PathBuf {
    let path = dir.join("vm.qcow2");
    let status = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&path).arg("16M").status().unwrap();
    assert!(status.success());
    path
}

fn qemu_io(path: &Path, command: &str) -> bool {
    let output = Command::new("qemu-io").args(["-f", "qcow2", "-c", command]).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    output.status.success() && !text.contains("failed")
}

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

struct Setup {
    dir: tempfile::TempDir,
    disk: PathBuf,
    config: PathBuf,
    marker: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let disk = image(dir.path());
        let marker = dir.path().join("fail-apply");
        let wrapper = dir.path().join("qemu-img");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ \"$1\" = snapshot ] && [ \"$2\" = -a ] && [ -e '{}' ]; then echo 'injected failure of snapshot -a' >&2; exit 1; fi\nexec qemu-img \"$@\"\n",
                marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("caasctl.toml");
        std::fs::write(&config, format!("[cloud.local]\nqemu_img = \"{}\"\n", wrapper.display())).unwrap();
        Setup { dir, disk, config, marker }
    }

    fn caasctl(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_caasctl"));
        command
            .env("CAASCTL_LANG", "en")
            .env("CAASCTL_NO_PROGRESS", "1")
            .env("CAASCTL_CONFIG", &self.config)
            .env("CAASCTL_STATE_DIR", self.dir.path().join("state"));
        command
    }

    fn snapshot(&self, args: &[&str]) -> Output {
        self.caasctl().arg("snapshot").args(args).args(["--provider", "local", "--disk"]).arg(&self.disk).output().unwrap()
    }

    fn ops(&self, args: &[&str]) -> Output {
        self.caasctl().arg("ops").args(args).output().unwrap()
    }

    fn ops_list(&self) -> Vec<serde_json::Value> {
        let output = self.ops(&["-o", "json", "list"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

#[test]
fn rollback_listed_in_ops() {
    if !tools_present() {
        return;
    }
    let setup = Setup::new();
    assert!(qemu_io(&setup.disk, "write -P 0xab 0 1M"));
    assert!(setup.snapshot(&["create", "--name", "s1"]).status.success());
    assert!(qemu_io(&setup.disk, "write -P 0xcd 0 1M"));

    let output = setup.snapshot(&["rollback", "--name", "s1", "--yes", "-o", "json"]);
    assert!(output.status.success(), "{}", text(&output));
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = outcome["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rollback-"), "{outcome}");
    assert!(qemu_io(&setup.disk, "read -P 0xab 0 1M"), "data after rollback differs from the snapshot");

    let ops = setup.ops_list();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["id"], id.as_str());
    assert_eq!(ops[0]["kind"], "snapshot-rollback");
    assert_eq!(ops[0]["status"], "succeeded");
    assert_eq!(ops[0]["steps_done"], 2);
    assert_eq!(ops[0]["steps_total"], 2);

    let show = setup.ops(&["show", &id]);
    assert!(show.status.success(), "{}", text(&show));
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("1.safety-copy"), "{shown}");
    assert!(shown.contains("2.rollback"), "{shown}");
    assert!(shown.contains("back to snapshot s1"), "{shown}");

    let again = setup.ops(&["resume", &id]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"), "{}", text(&again));
}

#[test]
fn failed_rollback_resumes() {
    if !tools_present() {
        return;
    }
    let setup = Setup::new();
    assert!(qemu_io(&setup.disk, "write -P 0xab 0 1M"));
    assert!(setup.snapshot(&["create", "--name", "s1"]).status.success());
    assert!(qemu_io(&setup.disk, "write -P 0xcd 0 1M"));

    std::fs::write(&setup.marker, "").unwrap();
    let failed = setup.snapshot(&["rollback", "--name", "s1", "--yes"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("injected failure"), "{stderr}");
    assert!(stderr.contains("caasctl ops resume rollback-"), "{stderr}");
    assert!(qemu_io(&setup.disk, "read -P 0xcd 0 1M"), "the failed rollback changed the data");

    let ops = setup.ops_list();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["status"], "failed");
    assert_eq!(ops[0]["next_step"], "2.rollback");
    let id = ops[0]["id"].as_str().unwrap().to_owned();

    std::fs::remove_file(&setup.marker).unwrap();
    let resumed = setup.ops(&["resume", &id]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("rolled back"), "{}", text(&resumed));
    assert!(qemu_io(&setup.disk, "read -P 0xab 0 1M"), "data after the resumed rollback differs from the snapshot");
    assert_eq!(setup.ops_list()[0]["status"], "succeeded");

    // The safety snapshot was taken once, by the first run.
    let listing = setup.snapshot(&["list", "-o", "json"]);
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let safety = listing["snapshots"].as_array().unwrap().iter().filter(|s| s["name"].as_str().unwrap().starts_with("caasctl-pre-rollback-")).count();
    assert_eq!(safety, 1);
}
