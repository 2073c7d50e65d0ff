//! `caasctl node remove` and `caasctl node migrate` on the built binary against a real control
//! plane (kube-apiserver, controller-manager, scheduler and kubemark hollow nodes), with the real
//! `ansible-playbook` running the stand-in playbooks of `tests/fixtures/openshift-ansible` over a
//! loopback sshd. The node scale-up stand-in starts a hollow node for each new host and the
//! uninstall stand-in stops it.
//!
//! No test calls exec, logs or port-forward on a pod: the API server would connect to the hollow
//! kubelets' non-loopback address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use caasctl_testing::kube::{kube_bin_dir, ControlPlane};
use caasctl_testing::ports::free_port;
use caasctl_testing::sshd::Sshd;
use serde_json::{json, Value};

fn playbook_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openshift-ansible")
}

/// Returns the shared control plane and an sshd, or `None` when a component is missing.
fn components() -> Option<(&'static ControlPlane, Sshd)> {
    let ansible = StdCommand::new("ansible-playbook").arg("--version").output().is_ok_and(|o| o.status.success());
    if !caasctl_testing::require(ansible, "ansible-playbook (Debian package ansible-core)") {
        return None;
    }
    if !caasctl_testing::require(Sshd::available(), "OpenSSH server and client (openssh-server)") {
        return None;
    }
    let plane = ControlPlane::shared(2)?;
    Some((plane, Sshd::start()))
}

/// A temporary home with an inventory whose hosts are reached over the test sshd. Hollow nodes
/// that the scale-up stand-in started are stopped by PID on drop, in case a test failed before
/// the uninstall stand-in ran.
struct Setup {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Setup {
    fn new(plane: &ControlPlane, sshd: &Sshd, extra_nodes: &[&str]) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["markers", "hollow"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let setup = Setup { dir, kubeconfig: plane.kubeconfig.clone() };
        let ssh_args = format!(
            "-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
            setup.dir.path().join("known_hosts").display()
        );
        let mut text = format!(
            "\
# OpenShift 3.11 cluster whose hosts are reached over a loopback sshd
[OSEv3:children]
masters
nodes
etcd

[OSEv3:vars]
ansible_host=127.0.0.1
ansible_port={port}
ansible_user={user}
ansible_ssh_private_key_file={key}
ansible_ssh_common_args='{ssh_args}'
ansible_python_interpreter=/usr/bin/python3
marker_dir={markers}
hollow_dir={hollow}
hollow_kubeconfig={kubeconfig}
kubemark={kubemark}

[masters]
master1.example.com

[etcd]
master1.example.com

[nodes]
master1.example.com openshift_node_group_name='node-config-master'
",
            port = sshd.port,
            user = sshd.user,
            key = sshd.client_key.display(),
            markers = setup.markers().display(),
            hollow = setup.hollow().display(),
            kubeconfig = plane.kubeconfig.display(),
            kubemark = kube_bin_dir().join("kubemark").display(),
        );
        for node in extra_nodes {
            text.push_str(&format!("{node} openshift_node_group_name='node-config-compute'\n"));
        }
        setup.write(&text);
        setup
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn markers(&self) -> PathBuf {
        self.dir.path().join("markers")
    }

    fn hollow(&self) -> PathBuf {
        self.dir.path().join("hollow")
    }

    fn write(&self, text: &str) {
        std::fs::write(self.inventory(), text).unwrap();
    }

    fn read(&self) -> String {
        std::fs::read_to_string(self.inventory()).unwrap()
    }

    fn command(&self) -> StdCommand {
        // CAASCTL_TEST_BIN runs a copy of the binary, for target directories that other
        // checkouts of the workspace build into at the same time.
        let mut command = match std::env::var_os("CAASCTL_TEST_BIN") {
            Some(path) => StdCommand::new(path),
            None => StdCommand::cargo_bin("caasctl").unwrap(),
        };
        command
            .env("HOME", self.dir.path())
            .env("CAASCTL_STATE_DIR", self.dir.path().join("state"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            // No ControlPersist master connection outlives a playbook.
            .env("ANSIBLE_SSH_ARGS", "-o ControlMaster=no")
            // The test sshd has no sftp subsystem; files go through the SSH session itself.
            .env("ANSIBLE_SSH_TRANSFER_METHOD", "piped")
            .env_remove("KUBECONFIG")
            .env_remove("CAASCTL_OUTPUT")
            .env("CAASCTL_LANG", "en")
            .current_dir(self.dir.path());
        command
    }

    /// Runs `node add HOST` with a hollow node on fresh kubelet ports.
    fn add_node(&self, host: &str) {
        let output = self
            .command()
            .args(["node", "add", "-i"])
            .arg(self.inventory())
            .arg("--playbook-dir")
            .arg(playbook_dir())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([host, "--yes", "--ready-timeout", "120"])
            .args(hollow_vars())
            .output()
            .unwrap();
        assert!(output.status.success(), "node add {host} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }

    fn remove_args(&self, node: &str) -> Vec<String> {
        vec![
            "node".into(),
            "remove".into(),
            node.into(),
            "-i".into(),
            self.inventory().display().to_string(),
            "--playbook-dir".into(),
            playbook_dir().display().to_string(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
        ]
    }
}

fn hollow_vars() -> Vec<String> {
    vec![
        "--var".into(),
        "openshift_node_group_name=node-config-compute".into(),
        "--var".into(),
        format!("kubelet_port={}", free_port()),
        "--var".into(),
        format!("kubelet_read_only_port={}", free_port()),
    ]
}

impl Drop for Setup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.hollow()) else { return };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("kubemark.pid")) else { continue };
            if let Ok(pid) = text.trim().parse::<i32>() {
                // SAFETY: signalling a PID the scale-up stand-in recorded for this test.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

fn create(plane: &ControlPlane, path: &str, body: Value) {
    plane.json("POST", path, Some(body));
}

fn pods(plane: &ControlPlane, namespace: &str) -> Vec<Value> {
    plane.json("GET", &format!("/api/v1/namespaces/{namespace}/pods"), None)["items"].as_array().cloned().unwrap_or_default()
}

fn is_running_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

/// Waits up to 90 s until `done` holds for the namespace's pods.
fn wait_pods(plane: &ControlPlane, namespace: &str, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let current = pods(plane, namespace);
        if done(&current) {
            return;
        }
        let summary: Vec<String> = current.iter().map(|p| format!("{} {} {}", p["metadata"]["name"], node_of(p), p["status"]["phase"])).collect();
        assert!(Instant::now() < deadline, "{what} not reached after 90 s: {summary:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn namespace(plane: &ControlPlane, name: &str) {
    create(plane, "/api/v1/namespaces", json!({ "metadata": { "name": name } }));
}

fn label_node(plane: &ControlPlane, node: &str, key: &str, value: &str) {
    plane.json("PATCH", &format!("/api/v1/nodes/{node}"), Some(json!({ "metadata": { "labels": { key: value } } })));
}

fn pod_template(app: &str, extra_spec: Value) -> Value {
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 0,
        "containers": [{ "name": "main", "image": "registry.example.com/app:1" }]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    json!({ "metadata": { "labels": { "app": app } }, "spec": spec })
}

fn deployment(name: &str, replicas: u32, extra_spec: Value) -> Value {
    json!({
        "metadata": { "name": name },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } }, "template": pod_template(name, extra_spec) }
    })
}

/// Reads a child's stderr on a thread, passing every line on.
fn stream_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn wait_exit(child: &mut std::process::Child, seconds: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("caasctl did not finish within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Returns the index of the first progress line that starts with `prefix`.
fn position(lines: &[String], prefix: &str) -> usize {
    lines.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", lines.join("\n")))
}

#[test]
fn remove_drains_past_budget_then_uninstalls() {
    let Some((plane, sshd)) = components() else { return };
    let node = "drain-a.example.com";
    let ns = "drain-budget";
    let setup = Setup::new(plane, &sshd, &[]);
    setup.add_node(node);
    let after_add = setup.read();
    assert!(after_add.contains(&format!("{node} openshift_node_group_name='node-config-compute'")), "{after_add}");

    // Two replicas start on the new node, which is the only one with the label. Then hollow-node-0
    // gets the label too and the third replica goes there, so the Deployment spreads over both.
    label_node(plane, node, "caasctl-test/pool", ns);
    namespace(plane, ns);
    let selector = json!({ "nodeSelector": { "caasctl-test/pool": ns } });
    create(plane, &format!("/apis/apps/v1/namespaces/{ns}/deployments"), deployment("web", 2, selector.clone()));
    wait_pods(plane, ns, "two web pods Ready on the new node", |p| p.iter().filter(|p| is_running_ready(p) && node_of(p) == node).count() == 2);
    label_node(plane, "hollow-node-0", "caasctl-test/pool", ns);
    plane.json("PATCH", &format!("/apis/apps/v1/namespaces/{ns}/deployments/web"), Some(json!({ "spec": { "replicas": 3 } })));
    wait_pods(plane, ns, "three web pods Ready", |p| p.iter().filter(|p| is_running_ready(p)).count() == 3);

    let daemonset = json!({
        "metadata": { "name": "agent" },
        "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": pod_template("agent", selector) }
    });
    create(plane, &format!("/apis/apps/v1/namespaces/{ns}/daemonsets"), daemonset);
    wait_pods(plane, ns, "the agent pod on the new node", |p| p.iter().any(|p| p["metadata"]["name"].as_str().unwrap_or("").starts_with("agent-") && node_of(p) == node));

    // policy/v1 PodDisruptionBudgets arrived in Kubernetes 1.21, so this 1.20 server takes v1beta1.
    let budget = json!({ "metadata": { "name": "web" }, "spec": { "minAvailable": 3, "selector": { "matchLabels": { "app": "web" } } } });
    create(plane, &format!("/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets"), budget);

    let hollow_pid = std::fs::read_to_string(setup.hollow().join(node).join("kubemark.pid")).expect("the scale-up stand-in recorded the PID");
    let mut child = setup.command().args(setup.remove_args(node)).args(["--yes", "--timeout", "180"]).stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let lines_in = stream_lines(&mut child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines_in.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("no blocked eviction reported; output:\n{}", lines.join("\n"))
        });
        let blocked = line.contains("blocked by PodDisruptionBudget drain-budget/web");
        lines.push(line);
        if blocked {
            break;
        }
    }
    plane.json("PATCH", &format!("/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets/web"), Some(json!({ "spec": { "minAvailable": 2 } })));
    let status = wait_exit(&mut child, 240);
    lines.extend(lines_in.try_iter());
    let text = lines.join("\n");
    assert!(status.success(), "node remove failed:\n{text}");

    // The plan named the DaemonSet pod as skipped, and it was never evicted.
    assert!(text.contains("(DaemonSet agent): DaemonSet pod"), "{text}");
    assert!(!text.contains(&format!("evicted pod {ns}/agent-")), "{text}");
    // Both pods of the new node were evicted, the first only after the budget allowed it, and the
    // node was deleted only once the replacements ran Ready elsewhere.
    assert_eq!(lines.iter().filter(|l| l.starts_with(&format!("evicted pod {ns}/web-"))).count(), 2, "{text}");
    let blocked = position(&lines, "waiting: eviction of pod drain-budget/web-");
    let evicted = position(&lines, "evicted pod drain-budget/web-");
    let replaced = position(&lines, "evicted pods of 1 controller(s) run Ready on other nodes");
    let deleted = position(&lines, &format!("deleted node {node}"));
    assert!(blocked < evicted, "{text}");
    assert!(evicted < replaced, "{text}");
    assert!(replaced < deleted, "{text}");

    let current = pods(plane, ns);
    let web: Vec<&Value> = current.iter().filter(|p| p["metadata"]["labels"]["app"] == "web").collect();
    assert_eq!(web.iter().filter(|p| is_running_ready(p) && node_of(p) == "hollow-node-0").count(), 3, "{web:#?}");
    let (status, _) = plane.get(&format!("/api/v1/nodes/{node}")).unwrap();
    assert_eq!(status, 404, "the node object is deleted");

    // The uninstall stand-in ran on an inventory naming only this host and stopped its hollow node.
    assert!(setup.markers().join(format!("{node}.uninstalled")).exists(), "{text}");
    assert!(!setup.hollow().join(node).join("kubemark.pid").exists(), "the uninstall stand-in removed the PID file");
    let state = std::fs::read_to_string(format!("/proc/{}/status", hollow_pid.trim())).unwrap_or_default();
    assert!(state.lines().find(|l| l.starts_with("State:")).is_none_or(|l| l.contains('Z')), "the hollow node still runs: {state}");
    let uninstall_dir = setup.dir.path().join("state/node-remove");
    let uninstall: Vec<PathBuf> = std::fs::read_dir(&uninstall_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(uninstall.len(), 1);
    let uninstall_text = std::fs::read_to_string(&uninstall[0]).unwrap();
    assert!(uninstall_text.contains(&format!("[OSEv3:children]\nnodes\n")), "{uninstall_text}");
    assert!(uninstall_text.ends_with(&format!("[nodes]\n{}\n", after_add.lines().find(|l| l.starts_with(node)).unwrap())), "{uninstall_text}");
    assert!(!uninstall_text.contains("master1"), "{uninstall_text}");

    let expected: String = after_add.lines().filter(|l| !l.starts_with(node)).map(|l| format!("{l}\n")).collect();
    assert_eq!(setup.read(), expected);
}

#[test]
fn remove_rejects_bare_and_empty_dir_pods() {
    let Some((plane, sshd)) = components() else { return };
    let node = "hollow-node-1";
    let ns = "drain-force";
    let setup = Setup::new(plane, &sshd, &[node]);
    let before = setup.read();
    namespace(plane, ns);
    let pinned = json!({ "nodeName": node });
    let mut bare = pod_template("bare", pinned.clone());
    bare["metadata"]["name"] = json!("bare");
    create(plane, &format!("/api/v1/namespaces/{ns}/pods"), bare);
    let scratch = json!({ "nodeName": node, "volumes": [{ "name": "scratch", "emptyDir": {} }] });
    let replica_set = json!({
        "metadata": { "name": "cache" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "cache" } }, "template": pod_template("cache", scratch) }
    });
    create(plane, &format!("/apis/apps/v1/namespaces/{ns}/replicasets"), replica_set);
    wait_pods(plane, ns, "both pods Running", |p| p.len() == 2 && p.iter().all(is_running_ready));
    let uids: Vec<Value> = pods(plane, ns).iter().map(|p| p["metadata"]["uid"].clone()).collect();

    let output = setup.command().args(setup.remove_args(node)).args(["--yes", "--unreachable"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{ns}/bare (no controller)")), "{text}");
    assert!(text.contains(&format!("{ns}/cache-")), "{text}");
    assert!(text.contains("(emptyDir scratch)"), "{text}");
    assert!(text.contains("pass --force"), "{text}");
    let node_object = plane.json("GET", &format!("/api/v1/nodes/{node}"), None);
    assert!(node_object["spec"]["unschedulable"].is_null(), "the node was not cordoned: {node_object}");
    assert_eq!(pods(plane, ns).iter().map(|p| p["metadata"]["uid"].clone()).collect::<Vec<_>>(), uids, "no pod was evicted");
    assert_eq!(setup.read(), before);

    let output = setup.command().args(setup.remove_args(node)).args(["--force", "--unreachable", "--dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&format!("evict {ns}/bare (-); --force given")), "{text}");
    assert!(text.contains("(ReplicaSet cache); --force given"), "{text}");
    assert!(text.contains("skip the uninstall playbook: --unreachable given"), "{text}");
    assert!(text.contains(&format!("remove from [nodes] line 27: {node} openshift_node_group_name='node-config-compute'")), "{text}");
    assert_eq!(setup.read(), before);
}

/// Runs `node migrate --from OLD --to NEW --yes` with the fixture playbooks and hollow nodes.
fn migrate(setup: &Setup, old: &str, new: &str) -> std::process::Output {
    setup
        .command()
        .args(["node", "migrate", "--from", old, "--to", new, "-i"])
        .arg(setup.inventory())
        .arg("--playbook-dir")
        .arg(playbook_dir())
        .arg("--kubeconfig")
        .arg(&setup.kubeconfig)
        .args(["--yes", "--timeout", "180", "--ready-timeout", "120"])
        .args(hollow_vars())
        .output()
        .unwrap()
}

#[test]
fn migrate_moves_pods_to_new_node() {
    let Some((plane, sshd)) = components() else { return };
    let (old, new) = ("migrate-old.example.com", "migrate-new.example.com");
    let ns = "migrate";
    let setup = Setup::new(plane, &sshd, &[]);
    setup.add_node(old);

    // Only the old and the new host may run the pods, and the new one does not exist yet.
    namespace(plane, ns);
    // A node field selector takes one value per term, and terms are ORed.
    let term = |name: &str| json!({ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [name] }] });
    let affinity = json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term(old), term(new)]
    } } } });
    create(plane, &format!("/apis/apps/v1/namespaces/{ns}/deployments"), deployment("app", 2, affinity));
    wait_pods(plane, ns, "two app pods Ready on the old node", |p| p.iter().filter(|p| is_running_ready(p) && node_of(p) == old).count() == 2);

    let output = migrate(&setup, old, new);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&format!("batch 1 of 1: {old}")), "{text}");

    wait_pods(plane, ns, "two app pods Ready on the new node", |p| p.iter().filter(|p| is_running_ready(p) && node_of(p) == new).count() == 2);
    let (status, _) = plane.get(&format!("/api/v1/nodes/{old}")).unwrap();
    assert_eq!(status, 404, "the old node object is deleted");
    let inventory = setup.read();
    assert!(!inventory.contains(old), "{inventory}");
    assert!(inventory.contains(&format!("[nodes]\nmaster1.example.com openshift_node_group_name='node-config-master'\n{new} ")), "{inventory}");
    assert!(setup.markers().join(format!("{old}.uninstalled")).exists());
    assert!(setup.hollow().join(new).join("kubemark.pid").exists(), "the new hollow node still runs");

    // The same command run again finds nothing left to do and changes nothing.
    let again = migrate(&setup, old, new);
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{text}");
    assert!(text.contains(&format!("{new} is already in [nodes]")), "{text}");
    assert!(text.contains(&format!("{old} is in neither the inventory nor the cluster")), "{text}");
    assert_eq!(setup.read(), inventory, "a second run leaves the inventory as it was");
}

#[test]
fn remove_unreachable_skips_uninstall() {
    let Some((plane, sshd)) = components() else { return };
    let node = "gone.example.com";
    let setup = Setup::new(plane, &sshd, &[]);
    setup.add_node(node);
    let after_add = setup.read();

    // The host goes down: its hollow node stops, so nothing confirms pod deletions any more.
    let pid_file = setup.hollow().join(node).join("kubemark.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // SAFETY: signalling the PID the scale-up stand-in recorded for this test.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::fs::remove_file(&pid_file).unwrap();

    let output = setup.command().args(["-o", "json"]).args(setup.remove_args(node)).args(["--unreachable", "--dry-run"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["unreachable"], true);
    assert_eq!(report["removal"]["plan"]["host"], node);
    assert!(report["removal"]["plan"]["playbook"].is_null(), "{report}");
    assert_eq!(report["removal"]["drain"]["node"], node);

    let output = setup.command().args(setup.remove_args(node)).args(["--unreachable", "--yes", "--timeout", "60"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    let (status, _) = plane.get(&format!("/api/v1/nodes/{node}")).unwrap();
    assert_eq!(status, 404, "the node object is deleted");
    assert!(!setup.markers().join(format!("{node}.uninstalled")).exists(), "the uninstall playbook was skipped");
    assert!(!text.contains("PLAY"), "no playbook ran: {text}");
    let expected: String = after_add.lines().filter(|l| !l.starts_with(node)).map(|l| format!("{l}\n")).collect();
    assert_eq!(setup.read(), expected);
}

/// Returns the operations `caasctl ops list -o json` prints.
fn ops_list(setup: &Setup) -> Vec<Value> {
    let output = setup.command().args(["-o", "json", "ops", "list"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    listed.as_array().expect("a JSON array").clone()
}

#[test]
fn remove_fails_at_uninstall_then_resumes() {
    let Some((plane, sshd)) = components() else { return };
    let node = "resume.example.com";
    let setup = Setup::new(plane, &sshd, &[]);
    setup.add_node(node);
    let after_add = setup.read();
    std::fs::write(setup.markers().join(format!("{node}.fail-uninstall-once")), "").unwrap();

    // The uninstall stand-in fails once, after the node object is deleted.
    let output = setup.command().args(setup.remove_args(node)).args(["--yes", "--timeout", "120"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("[4.uninstall] failed"), "{text}");
    assert!(text.contains("caasctl ops resume node-remove-"), "{text}");
    let (status, _) = plane.get(&format!("/api/v1/nodes/{node}")).unwrap();
    assert_eq!(status, 404, "the delete step ran before the uninstall");
    assert!(!setup.markers().join(format!("{node}.uninstalled")).exists(), "{text}");
    assert_eq!(setup.read(), after_add, "the inventory is edited only after the uninstall");

    let listed = ops_list(&setup);
    let removals: Vec<&Value> = listed.iter().filter(|op| op["kind"] == "node-remove").collect();
    assert_eq!(removals.len(), 1, "{listed:#?}");
    let failed = removals[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["steps_done"], 3, "{failed}");
    assert_eq!(failed["steps_total"], 5, "{failed}");
    assert_eq!(failed["next_step"], "4.uninstall", "{failed}");
    let id = failed["id"].as_str().unwrap().to_owned();

    let output = setup.command().args(["ops", "show", &id]).output().unwrap();
    let show_text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(show_text.contains("3.delete  [done]"), "{show_text}");
    assert!(show_text.contains("4.uninstall  [failed]"), "{show_text}");
    assert!(show_text.contains("5.inventory  [pending]"), "{show_text}");

    // The resume skips the finished steps, even though the node object no longer exists.
    let output = setup.command().args(["ops", "resume", &id]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    for step in ["1.cordon", "2.evict", "3.delete"] {
        assert!(text.contains(&format!("[{step}] already done")), "{text}");
    }
    assert!(text.contains("[4.uninstall] done"), "{text}");
    assert!(text.contains("[5.inventory] done"), "{text}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("removed node {node}")));
    assert!(setup.markers().join(format!("{node}.uninstalled")).exists(), "{text}");
    assert!(!setup.hollow().join(node).join("kubemark.pid").exists(), "the uninstall stand-in stopped the hollow node");
    let expected: String = after_add.lines().filter(|l| !l.starts_with(node)).map(|l| format!("{l}\n")).collect();
    assert_eq!(setup.read(), expected);

    let listed = ops_list(&setup);
    let done = listed.iter().find(|op| op["id"] == id.as_str()).expect("the operation is still listed");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps_done"], 5, "{done}");
    assert!(done["next_step"].is_null(), "{done}");
}
