//! `caasctl image sync` and `caasctl image rollout` run as a binary against two real registries
//! (Debian docker-registry) started by the harness, with nodes simulated by a stand-in for `ssh`
//! that runs the command locally next to a stand-in `docker`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use caasctl_registry::client::blob::UploadStart;
use caasctl_registry::client::RequestBody;
use caasctl_registry::manifest::{sha256_digest, Manifest, DOCKER_MANIFEST};
use caasctl_registry::{Bytes, ClientOptions, Registries};
use caasctl_testing::registry::Registry;

fn registry() -> Option<Registry> {
    caasctl_testing::require(Registry::available(), &Registry::binary().display().to_string()).then(Registry::start)
}

/// Pushes a one-layer Docker image with a random layer and returns its manifest digest and
/// config digest.
fn push_image(host: &str, repository: &str, tag: &str) -> (String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let registries = Registries::new(ClientOptions { insecure: vec![host.to_owned()], ..ClientOptions::default() });
        let client = registries.client(host);
        let layer = Bytes::from(pseudo_random_bytes(300_000));
        let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, sha256_digest(&layer)));
        for blob in [&layer, &config] {
            let UploadStart::Session(location) = client.start_upload(repository, None).await.unwrap() else { panic!("no session") };
            client.finish_upload(location, repository, &sha256_digest(blob), RequestBody::Bytes(blob.clone())).await.unwrap();
        }
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&config),
            config.len(),
            sha256_digest(&layer),
            layer.len()
        );
        let manifest = Manifest::parse(repository, Bytes::from(body), Some(DOCKER_MANIFEST)).unwrap();
        client.put_manifest(repository, tag, &manifest).await.unwrap();
        (manifest.digest, sha256_digest(&config))
    })
}

/// Returns bytes from a xorshift generator seeded by the clock, so every image is new.
fn pseudo_random_bytes(size: usize) -> Vec<u8> {
    let mut state = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env("DOCKER_CONFIG", "/nonexistent").env_remove("REGISTRY_AUTH_FILE").arg("--no-progress");
    command
}

fn json(output: &[u8]) -> serde_json::Value {
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(output)))
}

#[test]
fn sync_copies_then_finds_nothing_to_do() {
    let (Some(source), Some(target)) = (registry(), registry()) else { return };
    let (digest, _) = push_image(&source.host, "99cloud/etcd", "v3.4");
    let src = format!("{}/99cloud/etcd:v3.4", source.host);

    let first = caasctl().args(["image", "sync", &src, &target.host, "--insecure", &source.host, "--insecure", &target.host, "-o", "json"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report = json(&first.stdout);
    assert_eq!(report["images"][0]["status"], "copied");
    assert_eq!(report["images"][0]["digest"], digest.as_str());
    assert_eq!(report["images"][0]["destination"], format!("{}/99cloud/etcd:v3.4", target.host));

    // With -o json and progress on, stderr carries JSON Lines progress events.
    let events = Command::cargo_bin("caasctl")
        .unwrap()
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("CAASCTL_NO_PROGRESS")
        .args(["image", "sync", &src, &format!("{}/events/etcd:v1", target.host), "--insecure", &source.host, "--insecure", &target.host, "-o", "json"])
        .output()
        .unwrap();
    assert!(events.status.success(), "{}", String::from_utf8_lossy(&events.stderr));
    let stderr = String::from_utf8_lossy(&events.stderr);
    let last = stderr.lines().filter(|l| l.contains("\"progress\"")).last().unwrap_or_else(|| panic!("no progress event: {stderr}"));
    let event: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(event["data"]["image"], format!("{}/events/etcd:v1", target.host));
    assert_eq!(event["data"]["done"], event["data"]["total"]);

    let second = caasctl().args(["image", "sync", &src, &target.host, "--insecure", &source.host, "--insecure", &target.host, "-o", "json"]).output().unwrap();
    assert!(second.status.success());
    assert_eq!(json(&second.stdout)["images"][0]["status"], "up-to-date");
}

#[test]
fn sync_list_file_dry_run_and_partial_failure() {
    let (Some(source), Some(target)) = (registry(), registry()) else { return };
    push_image(&source.host, "99cloud/router", "v3.11");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(&list, format!("# component images\n{0}/99cloud/router:v3.11 {1}/99cloud/router:v3.10\n{0}/99cloud/missing:v1 {1}  # absent\n", source.host, target.host)).unwrap();
    let insecure = ["--insecure", &source.host, "--insecure", &target.host];

    let dry = caasctl().args(["image", "sync", "--from-file"]).arg(&list).args(insecure).arg("--dry-run").output().unwrap();
    assert_eq!(dry.status.code(), Some(3), "{}", String::from_utf8_lossy(&dry.stderr));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("would copy"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");

    let run = caasctl().args(["--lang", "zh-CN", "image", "sync", "--from-file"]).arg(&list).args(insecure).output().unwrap();
    assert_eq!(run.status.code(), Some(3), "one image of two is missing, so the run is partial");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("已复制"), "{text}");
    assert!(text.contains("失败"), "{text}");
}

#[test]
fn sync_single_missing_image_fails_with_hint() {
    let Some(target) = registry() else { return };
    let output = caasctl().args(["image", "sync", &format!("{}/99cloud/none:v1", target.host), &format!("{}/copy/none:v1", target.host), "--insecure", &target.host]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn rollout_group_over_stand_in_ssh() {
    let Some(registry) = registry() else { return };
    let (digest, config) = push_image(&registry.host, "99cloud/node", "v3.11");
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("ssh");
    // The stand-in for ssh runs the command here with the node's stand-in docker first on PATH.
    write_script(&ssh, &format!("#!/bin/sh\nhost=\"$1\"\nshift\nNODE_DIR=\"{0}/$host\" PATH=\"{0}/$host/bin:{0}/tools\" exec sh -c \"$1\"\n", dir.path().display()));
    std::fs::create_dir_all(dir.path().join("tools")).unwrap();
    for tool in ["sh", "cat", "uname"] {
        let found = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(found, dir.path().join("tools").join(tool)).unwrap();
    }
    for host in ["n1", "n2"] {
        let bin = dir.path().join(host).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_script(&bin.join("docker"), &format!("#!/bin/sh\necho \"docker $*\" >> \"$NODE_DIR/calls.log\"\n[ \"$1\" = image ] && echo '{config} {}/99cloud/node@{digest}'\nexit 0\n", registry.host));
    }
    let machine = std::process::Command::new("uname").arg("-m").output().unwrap();
    if String::from_utf8_lossy(&machine.stdout).trim() != "x86_64" {
        eprintln!("skipping: the image is amd64 and this host is not");
        return;
    }
    let image = format!("{}/99cloud/node:v3.11", registry.host);
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, "[masters]\nm1\n\n[nodes]\nn1\nn2\n").unwrap();
    let output = caasctl()
        .args(["image", "rollout", &image, "--group", "nodes", "--inventory"])
        .arg(&inventory)
        .args(["--insecure", &registry.host, "--ssh-command"])
        .arg(&ssh)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output.stdout);
    assert_eq!(report["complete"], true);
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2, "only the hosts of [nodes]");
    assert_eq!(report["nodes"][1]["host"], "n2");
    assert_eq!(report["nodes"][1]["status"], "ok");
    let calls = std::fs::read_to_string(dir.path().join("n2/calls.log")).unwrap();
    assert!(calls.contains(&format!("docker pull {image}")), "{calls}");
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
