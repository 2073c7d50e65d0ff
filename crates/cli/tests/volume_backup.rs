//! `caasctl volume backup`, `backups` and `restore` end to end: the node transport over a real
//! loopback sshd reading real files, the exec transport through the stand-in exec endpoint in
//! front of the real control plane, and hostile archives against `volume restore`.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use caasctl_testing::exec_standin::ExecStandIn;
use caasctl_testing::kube::ControlPlane;
use caasctl_testing::sshd::Sshd;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn plane() -> Option<&'static ControlPlane> {
    ControlPlane::shared(1)
}

fn caasctl(args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env("CAASCTL_LANG", "en").env_remove("KUBECONFIG").env_remove("CAASCTL_REPO").env_remove("CAASCTL_CONFIG").args(args);
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run caasctl");
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates namespace `ns` with an NFS volume and its bound claim `data`, and pods `names` on the
/// first hollow node mounting it at /elasticsearch/persistent. Returns the pods' UIDs.
fn pods_with_claim(plane: &ControlPlane, ns: &str, names: &[&str]) -> Vec<String> {
    plane.json("POST", "/api/v1/namespaces", Some(json!({ "metadata": { "name": ns } })));
    let class = format!("{ns}-class");
    plane.json("POST", "/apis/storage.k8s.io/v1/storageclasses", Some(json!({ "metadata": { "name": class }, "provisioner": "example.com/test" })));
    let volume = json!({
        "metadata": { "name": format!("{ns}-data") },
        "spec": {
            "capacity": { "storage": "1Gi" },
            "accessModes": ["ReadWriteMany"],
            "storageClassName": class,
            "persistentVolumeReclaimPolicy": "Retain",
            "nfs": { "server": "127.0.0.1", "path": "/exports/data" },
            "claimRef": { "namespace": ns, "name": "data" },
        }
    });
    plane.json("POST", "/api/v1/persistentvolumes", Some(volume));
    let claim = json!({
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteMany"], "storageClassName": class, "resources": { "requests": { "storage": "1Gi" } } }
    });
    plane.json("POST", &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"), Some(claim));
    wait_until("the claim bound", || (plane.json("GET", &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/data"), None)["status"]["phase"] == "Bound").then_some(()));
    names
        .iter()
        .map(|name| {
            let pod = json!({
                "metadata": { "name": name, "labels": { "app": "es" } },
                "spec": {
                    "nodeName": plane.nodes[0],
                    "automountServiceAccountToken": false,
                    "containers": [
                        { "name": "elasticsearch", "image": "registry.example.com/logging-elasticsearch:v3.11",
                          "volumeMounts": [{ "name": "storage", "mountPath": "/elasticsearch/persistent" }, { "name": "config", "mountPath": "/etc/elasticsearch" }] },
                        { "name": "proxy", "image": "registry.example.com/oauth-proxy:v3.11" }
                    ],
                    "volumes": [{ "name": "storage", "persistentVolumeClaim": { "claimName": "data" } }, { "name": "config", "emptyDir": {} }]
                }
            });
            plane.json("POST", &format!("/api/v1/namespaces/{ns}/pods"), Some(pod))["metadata"]["uid"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Fills `dir` with a large file, many small files in nested directories, symbolic links, a hard
/// link and an empty directory. Links that leave the directory are left to the hostile archive
/// tests, because a restore rejects them.
fn fill(dir: &Path) {
    std::fs::create_dir_all(dir.join("nodes/0/indices")).unwrap();
    let large: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("nodes/0/indices/segment.bin"), &large).unwrap();
    for i in 0..600 {
        let sub = dir.join(format!("small/{:02}", i % 12));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("doc-{i}.json")), format!("{{\"id\":{i},\"text\":\"{}\"}}", "x".repeat(i % 97))).unwrap();
    }
    std::os::unix::fs::symlink("nodes/0/indices/segment.bin", dir.join("latest")).unwrap();
    std::os::unix::fs::symlink("../00/doc-0.json", dir.join("small/01/link-to-sibling")).unwrap();
    std::fs::hard_link(dir.join("small/00/doc-0.json"), dir.join("doc-0.hardlink")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::set_permissions(dir.join("small/01/doc-1.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Describes a tree: path -> kind, size, SHA-256 or link target, and permission bits.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let description = if meta.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                format!("file {} {} {mode:o}", meta.len(), hex::encode(Sha256::digest(std::fs::read(&path).unwrap())))
            };
            out.insert(relative, description);
        }
    }
    out
}

fn only_backup(output: &Output) -> Value {
    assert!(output.status.success(), "backup failed");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 1, "{report}");
    report[0]["backup"]["manifest"].clone()
}

/// Checks that the manifest lists every regular file of `dir` with its size and SHA-256.
fn assert_manifest_matches(manifest: &Value, dir: &Path) {
    let files: BTreeMap<String, &Value> = manifest["files"].as_array().unwrap().iter().map(|f| (f["path"].as_str().unwrap().to_owned(), f)).collect();
    for (path, description) in tree(dir) {
        let entry = files.get(&path).unwrap_or_else(|| panic!("{path} missing from the manifest"));
        if let Some(rest) = description.strip_prefix("file ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            if entry["kind"] == "hardlink" {
                continue;
            }
            assert_eq!(entry["kind"], "file", "{path}");
            assert_eq!(entry["size"].as_u64().unwrap().to_string(), parts[0], "{path}");
            assert_eq!(entry["sha256"], parts[1], "{path}");
        } else if let Some(target) = description.strip_prefix("symlink ") {
            assert_eq!(entry["kind"], "symlink", "{path}");
            assert_eq!(entry["link"], target, "{path}");
        }
    }
    assert_eq!(manifest["file_count"].as_u64().unwrap(), files.values().filter(|f| f["kind"] == "file").count() as u64);
}

#[test]
fn node_transport_over_ssh_round_trip() {
    let Some(plane) = plane() else { return };
    if !caasctl_testing::require(Sshd::available(), "OpenSSH server and client") {
        return;
    }
    let sshd = Sshd::start();
    let uid = pods_with_claim(plane, "vb-node", &["es-0"]).remove(0);
    let work = tempfile::tempdir().unwrap();
    let pods_dir = work.path().join("pods");
    let volume_dir = pods_dir.join(&uid).join("volumes/kubernetes.io~nfs/vb-node-data");
    fill(&volume_dir);
    let repo = work.path().join("repo");

    let mut args: Vec<String> = ["volume", "backup", "es-0", "-n", "vb-node", "--via", "node", "-o", "json"].iter().map(|s| s.to_string()).collect();
    args.extend(["--kubeconfig".into(), plane.kubeconfig.display().to_string(), "--repo".into(), repo.display().to_string()]);
    args.extend(["--pods-dir".into(), "/nonexistent/pods".into(), "--pods-dir".into(), pods_dir.display().to_string()]);
    args.extend(["--ssh-target".into(), sshd.target(), "--ssh-port".into(), sshd.port.to_string()]);
    for option in sshd.client_options() {
        args.push(format!("--ssh-option={option}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&mut caasctl(&args));
    let manifest = only_backup(&output);

    assert_eq!(manifest["source"]["transport"], "node");
    assert_eq!(manifest["source"]["node_path"], volume_dir.display().to_string());
    assert_eq!(manifest["source"]["volume"], "vb-node-data");
    assert_manifest_matches(&manifest, &volume_dir);
    let id = manifest["id"].as_str().unwrap().to_owned();
    let stored = repo.join("volumes").join(&id).join("data.tar");
    assert_eq!(hex::encode(Sha256::digest(std::fs::read(&stored).unwrap())), manifest["archive"]["sha256"]);

    let listed = run(&mut caasctl(&["volume", "backups", "--repo", &repo.display().to_string(), "-o", "json"]));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "complete");
    let etcd_list = run(&mut caasctl(&["etcd", "backups", "list", "--repo", &repo.display().to_string(), "-o", "json"]));
    assert_eq!(serde_json::from_slice::<Value>(&etcd_list.stdout).unwrap(), json!([]), "etcd listing must skip the volumes area");

    let target = work.path().join("restored");
    let plan_only = run(&mut caasctl(&["volume", "restore", &id, "--to-dir", &target.display().to_string(), "--repo", &repo.display().to_string()]));
    assert_eq!(plan_only.status.code(), Some(2));
    assert!(!target.exists(), "a plan without --yes writes nothing");
    let restored = run(&mut caasctl(&["volume", "restore", &id, "--to-dir", &target.display().to_string(), "--repo", &repo.display().to_string(), "--yes"]));
    assert!(restored.status.success());
    assert_eq!(tree(&target), tree(&volume_dir));
    assert_eq!(std::fs::metadata(target.join("doc-0.hardlink")).unwrap().ino(), std::fs::metadata(target.join("small/00/doc-0.json")).unwrap().ino());

    std::fs::write(target.join("written-after-restore"), b"keep me").unwrap();
    let again = run(&mut caasctl(&["volume", "restore", "latest", "--to-dir", &target.display().to_string(), "--repo", &repo.display().to_string(), "--yes"]));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("moves to"), "the plan names the moved-aside directory");
    let aside: Vec<PathBuf> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.display().to_string().contains("restored.caasctl-moved-")).collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(aside[0].join("written-after-restore")).unwrap(), b"keep me");
    assert_eq!(tree(&target), tree(&volume_dir));
}

#[test]
fn node_transport_missing_dir_is_named() {
    let Some(plane) = plane() else { return };
    if !caasctl_testing::require(Sshd::available(), "OpenSSH server and client") {
        return;
    }
    let sshd = Sshd::start();
    pods_with_claim(plane, "vb-node-missing", &["es-0"]);
    let work = tempfile::tempdir().unwrap();
    let pods_dir = work.path().join("pods");
    std::fs::create_dir_all(&pods_dir).unwrap();
    let repo = work.path().join("repo");

    let mut args: Vec<String> = ["volume", "backup", "es-0", "-n", "vb-node-missing", "--via", "node"].iter().map(|s| s.to_string()).collect();
    args.extend(["--kubeconfig".into(), plane.kubeconfig.display().to_string(), "--repo".into(), repo.display().to_string()]);
    args.extend(["--pods-dir".into(), pods_dir.display().to_string(), "--ssh-target".into(), sshd.target(), "--ssh-port".into(), sshd.port.to_string()]);
    for option in sshd.client_options() {
        args.push(format!("--ssh-option={option}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&mut caasctl(&args));

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("vb-node-missing-data"), "{stderr}");
    assert!(stderr.contains("not found on node"), "{stderr}");
    assert!(stderr.contains("--pods-dir"), "the hint names the option: {stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("volumes")).unwrap().collect();
    assert!(leftovers.is_empty(), "a failed backup leaves nothing behind");
}

#[test]
fn exec_transport_through_standin() {
    let Some(plane) = plane() else { return };
    let standin = ExecStandIn::start(plane);
    pods_with_claim(plane, "vb-exec", &["es-0", "es-1"]);
    let work = tempfile::tempdir().unwrap();
    for pod in ["es-0", "es-1"] {
        let root = work.path().join(pod);
        fill(&root.join("elasticsearch/persistent"));
        std::fs::write(root.join("elasticsearch/persistent/pod-name"), pod).unwrap();
        standin.set_root("vb-exec", pod, "elasticsearch", &root);
    }
    let repo = work.path().join("repo");
    let kubeconfig = standin.kubeconfig.display().to_string();

    let output = run(&mut caasctl(&["volume", "backup", "-l", "app=es", "-n", "vb-exec", "--parallel", "2", "-o", "json", "--kubeconfig", &kubeconfig, "--repo", &repo.display().to_string()]));
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 2, "{report}");
    for (index, pod) in ["es-0", "es-1"].iter().enumerate() {
        let manifest = &report[index]["backup"]["manifest"];
        assert_eq!(report[index]["pod"], *pod);
        assert_eq!(manifest["source"]["transport"], "exec");
        assert_eq!(manifest["source"]["container"], "elasticsearch");
        assert_manifest_matches(manifest, &work.path().join(pod).join("elasticsearch/persistent"));
    }
    let tar_execs: Vec<_> = standin.execs().into_iter().filter(|e| e.command[0] == "tar").collect();
    assert_eq!(tar_execs.len(), 2);
    assert!(tar_execs.iter().all(|e| e.command == ["tar", "-c", "-f", "-", "-C", "/elasticsearch/persistent", "."] && e.exit_code == Some(0)), "{tar_execs:?}");

    // es-1's backup goes back into es-0, whose current data moves aside inside the volume.
    let id = report[1]["backup"]["manifest"]["id"].as_str().unwrap().to_owned();
    let mount = work.path().join("es-0/elasticsearch/persistent");
    let restored = run(&mut caasctl(&["volume", "restore", &id, "--to-pod", "es-0", "-n", "vb-exec", "--yes", "--kubeconfig", &kubeconfig, "--repo", &repo.display().to_string()]));
    assert!(restored.status.success());
    assert_eq!(std::fs::read_to_string(mount.join("pod-name")).unwrap(), "es-1");
    let aside: Vec<PathBuf> = std::fs::read_dir(&mount).unwrap().map(|e| e.unwrap().path()).filter(|p| p.display().to_string().contains(".caasctl-moved-")).collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read_to_string(aside[0].join("pod-name")).unwrap(), "es-0");
    let mut restored_tree = tree(&mount);
    restored_tree.retain(|path, _| !path.starts_with(".caasctl-moved-"));
    assert_eq!(restored_tree, tree(&work.path().join("es-1/elasticsearch/persistent")));
    let last = standin.execs().pop().unwrap();
    assert_eq!(last.command, ["tar", "-x", "-f", "-", "-C", "/elasticsearch/persistent"]);
    assert_eq!(last.exit_code, Some(0));
}

#[test]
fn exec_transport_reports_tar_failure() {
    let Some(plane) = plane() else { return };
    let standin = ExecStandIn::start(plane);
    pods_with_claim(plane, "vb-exec-fail", &["es-0"]);
    let work = tempfile::tempdir().unwrap();
    // The mount path does not exist under the root, so tar in the "container" exits with 2.
    standin.set_root("vb-exec-fail", "es-0", "elasticsearch", work.path());
    let repo = work.path().join("repo");

    let output = run(&mut caasctl(&["volume", "backup", "es-0", "-n", "vb-exec-fail", "--kubeconfig", &standin.kubeconfig.display().to_string(), "--repo", &repo.display().to_string()]));

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("non-zero exit code"), "{stderr}");
    assert!(stderr.contains("container elasticsearch"), "{stderr}");
    assert_eq!(std::fs::read_dir(repo.join("volumes")).unwrap().count(), 0, "a failed backup leaves nothing behind");
}

/// Appends an entry with raw header fields, so that paths the tar crate's builder refuses
/// (absolute, `..`) can be written.
fn raw_entry(builder: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

/// Writes a volume backup whose archive contains `entries` and a manifest that matches it.
fn hostile_backup(repo: &Path, id: &str, entries: &[(&str, tar::EntryType, Option<&str>)]) {
    let mut builder = tar::Builder::new(Vec::new());
    raw_entry(&mut builder, "./", tar::EntryType::Directory, None, b"");
    raw_entry(&mut builder, "./ok.txt", tar::EntryType::Regular, None, b"fine\n");
    for (path, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular { b"evil\n" } else { b"" };
        raw_entry(&mut builder, path, *kind, *link, data);
    }
    let bytes = builder.into_inner().unwrap();
    let files = caasctl_volume::archive::scan(&bytes[..]).unwrap();
    let dir = repo.join("volumes").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.tar"), &bytes).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let manifest = json!({
        "format": 1, "id": id, "kind": "volume-tar",
        "source": { "namespace": "ns", "pod": "p", "pod_uid": "u", "container": "c", "mount_path": "/d", "path": "/d", "pvc": "data", "volume": null, "node": null, "transport": "exec" },
        "archive": { "file": "data.tar", "size": bytes.len(), "sha256": sha },
        "files": files, "file_count": 1, "total_bytes": 5,
        "caasctl_version": "test", "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:00Z", "encryption": null
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

#[test]
fn restore_rejects_hostile_archives() {
    use tar::EntryType::{Link, Regular, Symlink};
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let outside_text = outside.display().to_string();
    let cases: Vec<(&str, Vec<(&str, tar::EntryType, Option<&str>)>, &str)> = vec![
        ("absolute", vec![(outside_text.as_str(), Regular, None)], "absolute path"),
        ("dotdot", vec![("./../outside/evil", Regular, None)], "'..'"),
        ("symlink-absolute", vec![("./etc", Symlink, Some("/etc"))], "absolute path /etc"),
        ("symlink-up", vec![("./up", Symlink, Some("../outside"))], "outside the target"),
        ("through-symlink", vec![("./inside", Symlink, Some(".")), ("./inside/x", Regular, None)], "passes through the symbolic link"),
        ("hardlink-up", vec![("./hard", Link, Some("../outside/evil"))], "hard link"),
        ("symlink-chain", vec![("./here", Symlink, Some(".")), ("./away", Symlink, Some("here/../../outside"))], "passes through the symbolic link here"),
    ];
    for (id, entries, expected) in &cases {
        hostile_backup(&repo, id, entries);
        let target = work.path().join(format!("target-{id}"));

        let output = run(&mut caasctl(&["volume", "restore", id, "--to-dir", &target.display().to_string(), "--repo", &repo.display().to_string(), "--yes"]));

        assert_eq!(output.status.code(), Some(1), "{id}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("outside the target, so nothing was restored"), "{id}: {stderr}");
        assert!(stderr.contains(expected), "{id}: expected {expected:?} in {stderr}");
        assert!(!target.exists(), "{id}: nothing may be written");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{id}: nothing may land outside");
    }
}

#[test]
fn restore_rejects_changed_archive() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    hostile_backup(&repo, "changed", &[]);
    let archive = repo.join("volumes/changed/data.tar");
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(5).position(|w| w == b"fine\n").unwrap();
    bytes[at] = b'F';
    std::fs::write(&archive, bytes).unwrap();
    let target = work.path().join("target");

    let output = run(&mut caasctl(&["volume", "restore", "changed", "--to-dir", &target.display().to_string(), "--repo", &repo.display().to_string(), "--yes"]));

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not match its manifest"));
    assert!(!target.exists());
}

#[test]
fn encrypted_backup_restores_with_identity() {
    use age::secrecy::ExposeSecret;
    let Some(plane) = plane() else { return };
    let standin = ExecStandIn::start(plane);
    pods_with_claim(plane, "vb-encrypted", &["es-0"]);
    let work = tempfile::tempdir().unwrap();
    let mount = work.path().join("root/elasticsearch/persistent");
    fill(&mount);
    standin.set_root("vb-encrypted", "es-0", "elasticsearch", &work.path().join("root"));
    let identity = age::x25519::Identity::generate();
    let identity_file = work.path().join("key.txt");
    std::fs::write(&identity_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    let repo = work.path().join("repo").display().to_string();
    let kubeconfig = standin.kubeconfig.display().to_string();

    let output = run(&mut caasctl(&["volume", "backup", "es-0", "-n", "vb-encrypted", "-o", "json", "--kubeconfig", &kubeconfig, "--repo", &repo, "--recipient", &identity.to_public().to_string()]));
    let manifest = only_backup(&output);
    assert_eq!(manifest["archive"]["file"], "data.tar.age");
    assert_eq!(manifest["encryption"]["scheme"], "age");
    assert_manifest_matches(&manifest, &mount);
    let id = manifest["id"].as_str().unwrap().to_owned();
    let stored = std::fs::read(work.path().join("repo/volumes").join(&id).join("data.tar.age")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&stored)), manifest["archive"]["ciphertext_sha256"]);
    assert!(!stored.windows(16).any(|w| w == b"{\"id\":0,\"text\":"), "the archive is stored encrypted");

    let target = work.path().join("restored").display().to_string();
    let without_key = run(&mut caasctl(&["volume", "restore", &id, "--to-dir", &target, "--repo", &repo, "--yes"]));
    assert_eq!(without_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("--identity"));
    let restored = run(&mut caasctl(&["volume", "restore", &id, "--to-dir", &target, "--repo", &repo, "--yes", "--identity", &identity_file.display().to_string()]));
    assert!(restored.status.success());
    assert_eq!(tree(Path::new(&target)), tree(&mount));
}
