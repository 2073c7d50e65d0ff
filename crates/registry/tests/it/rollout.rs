//! Node-by-node rollout against a real registry, with nodes simulated on this host: a stand-in
//! for `ssh` runs the command locally with the node's own `bin` directory first on the PATH,
//! where stand-ins for `docker`, `crictl` and `uname` record what they were asked and answer
//! from files the test writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caasctl_registry::rollout::{self, NodeShell, NodeStatus, RolloutOptions, Runtime};
use caasctl_registry::{Reference, RegistryError};

use crate::support::{self, Format};

const FAKE_SSH: &str = "#!/bin/sh\nhost=\"$1\"\nshift\nNODE_DIR=\"$NODES/$host\" PATH=\"$NODES/$host/bin:$NODES/tools\" exec sh -c \"$1\"\n";
const FAKE_RUNTIME: &str = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$NODE_DIR/calls.log\"\ncase \"$1\" in\n  pull) [ -e \"$NODE_DIR/fail-pull\" ] && { echo 'pull failed: connection refused' >&2; exit 1; }; exit 0 ;;\n  image|inspecti) cat \"$NODE_DIR/inspect.out\" ;;\nesac\n";
const FAKE_UNAME: &str = "#!/bin/sh\ncase \"$1\" in -m) cat \"$NODE_DIR/machine\" ;; *) echo Linux ;; esac\n";

struct Nodes {
    dir: tempfile::TempDir,
}

impl Nodes {
    fn new() -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        write_script(&dir.path().join("ssh"), FAKE_SSH);
        // Nodes see only their own stand-ins and these tools, never a runtime of this machine.
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        for tool in ["sh", "cat", "basename"] {
            let found = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
            std::os::unix::fs::symlink(found, tools.join(tool)).unwrap();
        }
        Nodes { dir }
    }

    fn add(&self, host: &str, runtime: &str, machine: &str, inspect: &str) {
        let bin = self.dir.path().join(host).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_script(&bin.join(runtime), FAKE_RUNTIME);
        write_script(&bin.join("uname"), FAKE_UNAME);
        std::fs::write(self.dir.path().join(host).join("machine"), format!("{machine}\n")).unwrap();
        self.set_inspect(host, inspect);
    }

    fn set_inspect(&self, host: &str, inspect: &str) {
        std::fs::write(self.dir.path().join(host).join("inspect.out"), inspect).unwrap();
    }

    fn calls(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(host).join("calls.log")).unwrap_or_default()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn options(&self, hosts: &[&str], runtime: Runtime) -> RolloutOptions {
        // The stand-in reads $NODES; setting it for the whole test process is safe because each
        // test spawns the stand-in with the environment it sets here.
        let ssh = format!("NODES={} {}", self.dir.path().display(), self.dir.path().join("ssh").display());
        RolloutOptions {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            runtime,
            shell: NodeShell { command: vec!["sh".into(), "-c".into(), format!("{ssh} \"$0\" \"$1\"")], timeout: Duration::from_secs(30) },
            journal: None,
        }
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn docker_inspect(image_id: &str, repo_digest: &str) -> String {
    format!("{image_id} {repo_digest}\n")
}

#[tokio::test]
async fn rollout_checks_every_node() {
    let Some(registry) = support::registry() else { return };
    let registries = support::registries(&[&registry.host]);
    let image = support::push_image(&registries, &registry.host, "99cloud/node", Some("v3.11"), Format::Docker, "amd64", &[support::random_blob(4096)]).await;
    let config = image.blobs()[0].digest.clone();
    let reference = Reference::parse(&format!("{}/99cloud/node:v3.11", registry.host)).unwrap();

    let nodes = Nodes::new();
    for host in ["node1", "node2", "node3"] {
        nodes.add(host, "docker", "x86_64", &docker_inspect(&config, &format!("{}/99cloud/node@{}", registry.host, image.digest)));
    }
    let report = rollout::rollout(registries.clone(), &reference, &nodes.options(&["node1", "node2", "node3"], Runtime::Auto)).await.unwrap();
    assert!(report.complete, "{report:#?}");
    assert_eq!(report.registry.digest, image.digest);
    for node in &report.nodes {
        assert_eq!(node.status, NodeStatus::Ok);
        assert_eq!(node.runtime.as_deref(), Some("docker"));
        assert_eq!(node.platform.as_deref(), Some("linux/amd64"));
        let calls = nodes.calls(&node.host);
        assert!(calls.contains(&format!("docker pull {reference}")), "{calls}");
        assert!(calls.contains("docker image inspect"), "{calls}");
    }
}

#[tokio::test]
async fn rollout_stops_at_first_mismatch() {
    let Some(registry) = support::registry() else { return };
    let registries = support::registries(&[&registry.host]);
    let image = support::push_image(&registries, &registry.host, "99cloud/node", Some("v3.11"), Format::Docker, "amd64", &[support::random_blob(4096)]).await;
    let config = image.blobs()[0].digest.clone();
    let reference = Reference::parse(&format!("{}/99cloud/node:v3.11", registry.host)).unwrap();
    let stale = format!("sha256:{}", "e".repeat(64));

    let nodes = Nodes::new();
    nodes.add("node1", "docker", "x86_64", &docker_inspect(&config, ""));
    nodes.add("node2", "docker", "x86_64", &docker_inspect(&stale, &format!("{}/99cloud/node@{stale}", registry.host)));
    nodes.add("node3", "docker", "x86_64", &docker_inspect(&config, ""));
    let report = rollout::rollout(registries.clone(), &reference, &nodes.options(&["node1", "node2", "node3"], Runtime::Docker)).await.unwrap();
    assert!(!report.complete);
    let statuses: Vec<NodeStatus> = report.nodes.iter().map(|n| n.status).collect();
    assert_eq!(statuses, vec![NodeStatus::Ok, NodeStatus::Mismatch, NodeStatus::NotStarted]);
    assert_eq!(report.nodes[1].image_id.as_deref(), Some(stale.as_str()));
    assert!(nodes.calls("node3").is_empty(), "node3 must not be touched");
}

#[tokio::test]
async fn rollout_refuses_missing_platform() {
    let Some(registry) = support::registry() else { return };
    let registries = support::registries(&[&registry.host]);
    let image = support::push_image(&registries, &registry.host, "99cloud/node", Some("v1"), Format::Oci, "amd64", &[support::random_blob(4096)]).await;
    let reference = Reference::parse(&format!("{}/99cloud/node:v1", registry.host)).unwrap();
    let nodes = Nodes::new();
    nodes.add("x86", "docker", "x86_64", &docker_inspect(&image.blobs()[0].digest, ""));
    nodes.add("arm", "docker", "aarch64", "");
    let error = rollout::rollout(registries.clone(), &reference, &nodes.options(&["x86", "arm"], Runtime::Auto)).await.unwrap_err();
    assert!(matches!(&error, RegistryError::MissingPlatform { platform, .. } if platform == "linux/arm64"), "{error}");
    assert!(nodes.calls("x86").is_empty(), "no node may pull before every platform is checked");
}

#[tokio::test]
async fn rollout_crictl_index_resumed_from_journal() {
    let Some(registry) = support::registry() else { return };
    let registries = support::registries(&[&registry.host]);
    let base = support::random_blob(4096);
    let index = support::push_multi_arch(&registries, &registry.host, "99cloud/pod", "v3.11", Format::Oci, &base, 4096).await;
    let reference = Reference::parse(&format!("{}/99cloud/pod:v3.11", registry.host)).unwrap();
    let inspect = format!(r#"{{"status":{{"id":"sha256:{}","repoDigests":["{}/99cloud/pod@{}"]}}}}"#, "1".repeat(64), registry.host, index.digest);

    let nodes = Nodes::new();
    nodes.add("node1", "crictl", "x86_64", &inspect);
    nodes.add("node2", "crictl", "aarch64", &inspect);
    std::fs::write(nodes.path("node2/fail-pull"), "").unwrap();
    let mut options = nodes.options(&["node1", "node2"], Runtime::Auto);
    options.journal = Some(nodes.path("rollout.jsonl"));

    let first = rollout::rollout(registries.clone(), &reference, &options).await.unwrap();
    assert_eq!(first.nodes[0].status, NodeStatus::Ok, "{first:#?}");
    assert_eq!(first.nodes[1].status, NodeStatus::Failed);
    assert!(first.nodes[1].error.as_deref().unwrap_or("").contains("connection refused"), "{first:#?}");
    assert_eq!(first.nodes[1].platform.as_deref(), Some("linux/arm64"));

    std::fs::remove_file(nodes.path("node2/fail-pull")).unwrap();
    let second = rollout::rollout(registries.clone(), &reference, &options).await.unwrap();
    assert!(second.complete, "{second:#?}");
    assert_eq!(second.nodes[0].status, NodeStatus::AlreadyDone);
    assert_eq!(second.nodes[1].status, NodeStatus::Ok);
    assert_eq!(nodes.calls("node1").matches("crictl pull").count(), 1, "node1 must not be pulled again");
}

#[tokio::test]
async fn rollout_through_real_sshd() {
    use caasctl_testing::sshd::Sshd;
    let Some(registry) = support::registry() else { return };
    if !caasctl_testing::require(Sshd::available(), "sshd, ssh and ssh-keygen") {
        return;
    }
    let sshd = Sshd::start();
    let registries = support::registries(&[&registry.host]);
    let image = support::push_image(&registries, &registry.host, "99cloud/node", Some("v3.11"), Format::Docker, "amd64", &[support::random_blob(4096)]).await;
    let config = image.blobs()[0].digest.clone();
    let reference = Reference::parse(&format!("{}/99cloud/node:v3.11", registry.host)).unwrap();

    let nodes = Nodes::new();
    for host in ["node1", "node2"] {
        nodes.add(host, "docker", "x86_64", &docker_inspect(&config, ""));
    }
    // Every node is the same loopback sshd, so this wrapper prefixes the node's environment to
    // the remote command; the command itself travels through the real ssh client and sshd.
    let mut ssh = format!("exec ssh -p {} -o BatchMode=yes -o LogLevel=ERROR", sshd.port);
    for option in sshd.client_options() {
        ssh.push_str(&format!(" '{option}'"));
    }
    let wrapper = nodes.path("ssh-via-sshd");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\nnode=\"$1\"\nshift\n{ssh} {target} \"NODE_DIR={nodes}/$node; PATH={nodes}/$node/bin:{nodes}/tools; export NODE_DIR PATH; $1\"\n",
            target = sshd.target(),
            nodes = nodes.path("").display()
        ),
    );
    let mut options = nodes.options(&["node1", "node2"], Runtime::Auto);
    options.shell.command = vec![wrapper.display().to_string()];
    let report = rollout::rollout(registries.clone(), &reference, &options).await.unwrap();
    assert!(report.complete, "{report:#?}");
    for host in ["node1", "node2"] {
        let calls = nodes.calls(host);
        assert!(calls.contains(&format!("docker pull {reference}")), "{calls}");
    }
}
