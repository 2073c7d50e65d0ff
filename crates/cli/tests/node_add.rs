//! `caasctl node add` and `caasctl inventory show` on the built binary, with the real
//! `ansible-playbook` and `ansible-inventory` (Debian's ansible-core) running the stand-in
//! scale-up playbooks of `tests/fixtures/openshift-ansible` on the local host. The inventory text
//! is checked byte for byte after every run.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

fn playbook_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openshift-ansible")
}

fn ansible_available(tool: &str) -> bool {
    caasctl_testing::require(
        StdCommand::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
        &format!("{tool} (Debian package ansible-core)"),
    )
}

/// A temporary home with an inventory, a marker directory and the binary set up to use them.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("markers")).unwrap();
        Setup { dir }
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn markers(&self) -> PathBuf {
        self.dir.path().join("markers")
    }

    fn write(&self, text: &str) {
        std::fs::write(self.inventory(), text).unwrap();
    }

    fn read(&self) -> String {
        std::fs::read_to_string(self.inventory()).unwrap()
    }

    fn backups(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("hosts.caasctl-"))
            .count()
    }

    fn caasctl(&self) -> Command {
        let mut command = Command::cargo_bin("caasctl").unwrap();
        command
            .env("HOME", self.dir.path())
            .env("CAASCTL_STATE_DIR", self.dir.path().join("state"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("KUBECONFIG")
            .env_remove("CAASCTL_OUTPUT")
            .env("CAASCTL_LANG", "en")
            .current_dir(self.dir.path());
        command
    }

    /// Runs `node add` with the fixture playbooks, a log in the temp dir and `--yes`.
    fn node_add(&self, extra: &[&str]) -> std::process::Output {
        let mut command = self.caasctl();
        command
            .args(["node", "add", "-i"])
            .arg(self.inventory())
            .arg("--playbook-dir")
            .arg(playbook_dir())
            .arg("--log")
            .arg(self.dir.path().join("scaleup.log"))
            .args(extra);
        command.output().unwrap()
    }
}

/// The inventory of a small 3.11 cluster whose hosts all run locally.
fn cluster(markers: &Path) -> String {
    format!(
        "\
# OpenShift 3.11 cluster; edited by caasctl in tests
[OSEv3:children]
masters
nodes
etcd

[OSEv3:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
marker_dir={}

[masters]
master1.example.com

[etcd]
master1.example.com

# compute and infra nodes
[nodes]
master1.example.com openshift_node_group_name='node-config-master'
node1.example.com openshift_node_group_name='node-config-compute'
",
        markers.display()
    )
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn node_add_runs_playbook_and_moves_hosts() {
    if !ansible_available("ansible-playbook") {
        return;
    }
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);

    let output = setup.node_add(&["node3.example.com", "--var", "openshift_node_group_name=node-config-compute", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));

    let marker = std::fs::read_to_string(setup.markers().join("node3.example.com.node")).expect("the playbook ran for node3");
    assert_eq!(marker, "node-config-compute\n");
    assert!(!setup.markers().join("node1.example.com.node").exists(), "the playbook touched an existing node");
    let expected = before
        .replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_nodes\n\n[OSEv3:vars]")
        .replace(
            "node1.example.com openshift_node_group_name='node-config-compute'\n",
            "node1.example.com openshift_node_group_name='node-config-compute'\nnode3.example.com openshift_node_group_name='node-config-compute'\n\n[new_nodes]\n",
        );
    assert_eq!(setup.read(), expected);
    assert_eq!(setup.backups(), 2, "one copy before each of the two edits");
    let log = std::fs::read_to_string(setup.dir.path().join("scaleup.log")).unwrap();
    assert!(log.contains("PLAY RECAP"), "{log}");
    assert!(stderr(&output).contains("PLAY RECAP"), "playbook output is streamed to the terminal");
    assert!(stderr(&output).contains("no kubeconfig"), "the skipped Ready check is warned about");
}

#[test]
fn node_add_master_goes_to_both_groups() {
    if !ansible_available("ansible-playbook") {
        return;
    }
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);

    let output = setup.node_add(&["master2.example.com", "--type", "master", "--var", "openshift_node_group_name=node-config-master", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(setup.markers().join("master2.example.com.master").exists());

    let expected = before
        .replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_masters\nnew_nodes\n\n[OSEv3:vars]")
        .replace("[masters]\nmaster1.example.com\n", "[masters]\nmaster1.example.com\nmaster2.example.com\n\n[new_masters]\n")
        .replace(
            "node1.example.com openshift_node_group_name='node-config-compute'\n",
            "node1.example.com openshift_node_group_name='node-config-compute'\nmaster2.example.com openshift_node_group_name='node-config-master'\n\n[new_nodes]\n",
        );
    assert_eq!(setup.read(), expected);
}

#[test]
fn node_add_etcd_host() {
    if !ansible_available("ansible-playbook") {
        return;
    }
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);

    let output = setup.node_add(&["etcd2.example.com", "--type", "etcd", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(setup.markers().join("etcd2.example.com.etcd").exists());
    let expected = before
        .replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_etcd\n\n[OSEv3:vars]")
        .replace("[etcd]\nmaster1.example.com\n", "[etcd]\nmaster1.example.com\netcd2.example.com\n\n[new_etcd]\n");
    assert_eq!(setup.read(), expected);
}

#[test]
fn node_add_reports_all_violations() {
    let setup = Setup::new();
    let before = "\
[OSEv3:children]
nodes
etcd
new_nodes

[nodes]
node1.example.com openshift_node_group_name='node-config-compute'

[new_nodes]
node2.example.com

[etcd]
etcd1.example.com
";
    setup.write(before);
    let mut command = setup.caasctl();
    let output = command
        .args(["node", "add", "-i"])
        .arg(setup.inventory())
        .args(["--playbook-dir", "/nonexistent", "node1.example.com", "node9.example.com", "--var", "bad-key=1", "--yes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    for expected in [
        "group masters is missing",
        "group new_nodes still contains hosts of an earlier scale-up (node2.example.com)",
        "host node1.example.com is already in group nodes",
        "playbook /nonexistent/playbooks/openshift-node/scaleup.yml not found",
        "invalid --var bad-key=1",
        "host node9.example.com has no openshift_node_group_name",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(setup.read(), before, "nothing may change when a rule is broken");
    assert_eq!(setup.backups(), 0);
}

#[test]
fn node_add_etcd_host_also_new_node() {
    let setup = Setup::new();
    let before = cluster(&setup.markers()) + "\n[new_nodes]\n";
    setup.write(&before.replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_nodes\n\n[OSEv3:vars]").replace("[new_nodes]\n", "[new_nodes]\nnode5.example.com\n"));
    let output = setup.node_add(&["node5.example.com", "--type", "etcd", "--yes"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("etcd host node5.example.com is also in new_nodes"), "{}", stderr(&output));
}

#[test]
fn node_add_dry_run_changes_nothing() {
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);
    let output = setup.node_add(&["node3.example.com", "--var", "openshift_node_group_name=node-config-infra", "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("add new_nodes under [OSEv3:children]"), "{text}");
    assert!(text.contains("write to [new_nodes]: node3.example.com openshift_node_group_name='node-config-infra'"), "{text}");
    assert!(text.contains("move node3.example.com from [new_nodes] to [nodes]"), "{text}");
    assert_eq!(setup.read(), before);
    assert_eq!(setup.backups(), 0);
    assert!(!setup.markers().join("node3.example.com.node").exists());
}

#[test]
fn node_add_without_yes_needs_terminal() {
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);
    let output = setup.node_add(&["node3.example.com", "--var", "openshift_node_group_name=node-config-infra"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(setup.read(), before);
}

#[test]
fn node_add_failed_playbook_resumes() {
    if !ansible_available("ansible-playbook") {
        return;
    }
    let setup = Setup::new();
    let before = cluster(&setup.markers());
    setup.write(&before);
    let output = setup.node_add(&[
        "node4.example.com",
        "--var",
        "openshift_node_group_name=node-config-compute",
        "--var",
        "fail_scaleup=true",
        "--yes",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("failed with exit status: 2"), "{}", stderr(&output));
    let expected = before.replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_nodes\n\n[OSEv3:vars]").replace(
        "node1.example.com openshift_node_group_name='node-config-compute'\n",
        "node1.example.com openshift_node_group_name='node-config-compute'\n\n[new_nodes]\nnode4.example.com openshift_node_group_name='node-config-compute' fail_scaleup='true'\n",
    );
    assert_eq!(setup.read(), expected, "the host stays in [new_nodes] for a re-run");

    // The scale-up is journaled, and ops list names the step to resume at.
    let listed = setup.caasctl().args(["-o", "json", "ops", "list"]).output().unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("stdout is JSON");
    let operation = &listed[0];
    assert_eq!(operation["kind"], "node-add", "{listed}");
    assert_eq!(operation["status"], "failed", "{listed}");
    assert_eq!(operation["steps_done"], 1, "{listed}");
    assert_eq!(operation["next_step"], "2.playbook", "{listed}");

    // The operator fixes the host and resumes: the playbook runs again on [new_nodes], and the
    // host moves into [nodes].
    let id = operation["id"].as_str().expect("operation id").to_owned();
    setup.write(&setup.read().replace(" fail_scaleup='true'", ""));
    let resumed = setup.caasctl().args(["ops", "resume", &id]).output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("2.playbook"), "the resume names its first step: {}", stderr(&resumed));
    let marker = std::fs::read_to_string(setup.markers().join("node4.example.com.node")).expect("the playbook ran again for node4");
    assert_eq!(marker, "node-config-compute\n");
    let finished = before.replace("etcd\n\n[OSEv3:vars]", "etcd\nnew_nodes\n\n[OSEv3:vars]").replace(
        "node1.example.com openshift_node_group_name='node-config-compute'\n",
        "node1.example.com openshift_node_group_name='node-config-compute'\nnode4.example.com openshift_node_group_name='node-config-compute'\n\n[new_nodes]\n",
    );
    assert_eq!(setup.read(), finished, "node4 is in [nodes] and [new_nodes] is empty");

    let listed = setup.caasctl().args(["-o", "json", "ops", "list"]).output().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("stdout is JSON");
    assert_eq!(listed[0]["status"], "succeeded", "{listed}");
    let again = setup.caasctl().args(["ops", "resume", &id]).output().unwrap();
    assert_eq!(again.status.code(), Some(1), "a finished operation is not resumed twice: {}", stderr(&again));
}

#[test]
fn inventory_show_json_equals_ansible_inventory() {
    if !ansible_available("ansible-inventory") {
        return;
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventory/tests/fixtures");
    let setup = Setup::new();
    for name in ["ose311-ha.ini", "syntax-edge.ini"] {
        let path = fixtures.join(name);
        let ansible = StdCommand::new("ansible-inventory")
            .arg("-i")
            .arg(&path)
            .arg("--list")
            .current_dir(setup.dir.path())
            .env("ANSIBLE_LOCAL_TEMP", setup.dir.path().join("ansible-tmp"))
            .output()
            .unwrap();
        assert!(ansible.status.success(), "{}", stderr(&ansible));
        let ours = setup.caasctl().args(["inventory", "show", "-o", "json", "-i"]).arg(&path).output().unwrap();
        assert!(ours.status.success(), "{}", stderr(&ours));
        assert_eq!(String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&ansible.stdout), "{name}");
    }
}

#[test]
fn inventory_show_range_error_names_line() {
    let setup = Setup::new();
    setup.write("[nodes]\nnode1\nnode[01:100]\n");
    let output = setup.caasctl().args(["inventory", "show", "-i"]).arg(setup.inventory()).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "a malformed inventory is a configuration error");
    assert!(stderr(&output).contains(":3: invalid host range in node[01:100]"), "{}", stderr(&output));
}

#[test]
fn node_add_json_dry_run_and_violations() {
    let setup = Setup::new();
    setup.write(&cluster(&setup.markers()));
    let mut command = setup.caasctl();
    let output = command
        .args(["-o", "json", "node", "add", "-i"])
        .arg(setup.inventory())
        .arg("--playbook-dir")
        .arg(playbook_dir())
        .args(["node3.example.com", "--var", "openshift_node_group_name=node-config-compute", "--dry-run"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["plan"]["hosts"], serde_json::json!(["node3.example.com"]));
    assert_eq!(report["plan"]["node_type"], "node");
    assert_eq!(report["plan"]["lines"][0]["new_group"], "new_nodes");
    assert_eq!(report["ready"], "skipped");

    let mut command = setup.caasctl();
    let output = command
        .args(["-o", "json", "--lang", "zh-CN", "node", "add", "-i"])
        .arg(setup.inventory())
        .args(["--playbook-dir", "/nonexistent", "node1.example.com"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    let rules: Vec<&str> = report["violations"].as_array().unwrap().iter().map(|v| v["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["already-in-cluster", "playbook-missing"]);
    assert!(stderr(&output).contains("主机 node1.example.com 已在组 nodes 中"), "{}", stderr(&output));
}
