//! End-to-end tests of the backup repository beyond one local backup: retention (`backups prune`),
//! encryption with age, and S3 repositories on a real s3s-fs server, against real etcd started by
//! the harness on loopback ports.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use caasctl_testing::etcd::{load_k8s_data, ClusterOptions};
use caasctl_testing::s3::S3Server;
use caasctl_testing::{require, EtcdCluster, EtcdVersion};
use serde_json::Value;

fn caasctl() -> Command {
    let mut command = Command::cargo_bin("caasctl").unwrap();
    command.env_remove("LANG").env_remove("LC_ALL").env("CAASCTL_NO_PROGRESS", "1").timeout(Duration::from_secs(120));
    command
}

fn start(keys: usize) -> Option<EtcdCluster> {
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return None;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, keys, 512).await;
    });
    Some(cluster)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn backup(cluster: &EtcdCluster, repo: &str, extra: &[&str]) -> Output {
    caasctl()
        .args(["-o", "json", "etcd", "backup", "--no-config", "--endpoints", &cluster.endpoints(), "--repo", repo])
        .args(cluster.tls_args())
        .args(extra)
        .output()
        .unwrap()
}

fn backup_id(output: &Output) -> String {
    assert!(output.status.success(), "backup failed: {}", text(&output.stderr));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    manifest["id"].as_str().unwrap().to_owned()
}

fn list(repo: &str, extra: &[&str]) -> Vec<Value> {
    let output = caasctl().args(["-o", "json", "etcd", "backups", "list", "--repo", repo]).args(extra).output().unwrap();
    assert!(output.status.success(), "list failed: {}", text(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

fn ids(entries: &[Value], state: &str) -> Vec<String> {
    entries.iter().filter(|e| e["state"] == state).map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

fn prune(repo: &str, args: &[&str]) -> Output {
    caasctl().args(["--lang", "en", "etcd", "backups", "prune", "--repo", repo]).args(args).output().unwrap()
}

/// Sets the modification time of `path` to `seconds` ago.
fn age(path: &Path, seconds: u64) {
    let status = std::process::Command::new("touch").arg("-d").arg(format!("@{}", now() - seconds)).arg(path).status().unwrap();
    assert!(status.success());
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn prune_keeps_by_rule_and_spares_failed_backups() {
    let Some(cluster) = start(100) else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().to_str().unwrap();
    let made: Vec<String> = (0..3).map(|_| backup_id(&backup(&cluster, repo, &[]))).collect();

    // The oldest backup is corrupted and fails verification, which is recorded.
    let snapshot = dir.path().join(&made[0]).join("snapshot.db");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[4_096] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let verify = caasctl().args(["etcd", "backups", "verify", "--repo", repo]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stdout));
    assert!(dir.path().join(&made[0]).join("verify.json").exists(), "the failure is recorded");

    // Leftovers: an old and a recent unfinished backup, and an interrupted removal.
    for name in [".incomplete-old", ".incomplete-fresh", ".deleting-gone"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
    }
    age(&dir.path().join(".incomplete-old"), 7_200);

    let dry = prune(repo, &["--keep-last", "1", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let plan = text(&dry.stdout);
    assert!(plan.contains("newest verified backup"), "{plan}");
    assert!(plan.contains("failed verification; removed only with --include-failed"), "{plan}");
    assert!(plan.contains("3 to remove, 3 to keep"), "{plan}");
    assert_eq!(ids(&list(repo, &[]), "complete").len(), 3, "a dry run removes nothing");

    let refused = prune(repo, &["--keep-last", "1"]);
    assert_eq!(refused.status.code(), Some(2), "removal off a terminal needs --yes");
    assert_eq!(ids(&list(repo, &[]), "complete").len(), 3);

    let done = prune(repo, &["--keep-last", "1", "--yes"]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let entries = list(repo, &[]);
    let mut complete = ids(&entries, "complete");
    complete.sort();
    let mut want = vec![made[0].clone(), made[2].clone()];
    want.sort();
    assert_eq!(complete, want, "the newest and the failed one stay");
    assert_eq!(ids(&entries, "incomplete"), vec!["fresh".to_owned()], "only the recent leftover stays");
    assert!(ids(&entries, "deleting").is_empty());

    let with_failed = prune(repo, &["--keep-last", "1", "--include-failed", "--yes"]);
    assert!(with_failed.status.success(), "{}", text(&with_failed.stderr));
    assert_eq!(ids(&list(repo, &[]), "complete"), vec![made[2].clone()]);
}

fn decrypt(identity: &age::x25519::Identity, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decryptor = age::Decryptor::new(ciphertext).map_err(|e| e.to_string())?;
    let mut reader = decryptor.decrypt(std::iter::once(identity as &dyn age::Identity)).map_err(|e| e.to_string())?;
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).map_err(|e| e.to_string())?;
    Ok(plain)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    text(&output.stdout).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn encrypted_backup_needs_identity() {
    use age::secrecy::ExposeSecret;
    let Some(cluster) = start(300) else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    // The key pair comes from caasctl itself: a private file, the public key on stdout.
    let identity_file = dir.path().join("key.txt");
    let keygen = caasctl().args(["--lang", "en", "etcd", "backups", "keygen", "--identity"]).arg(&identity_file).output().unwrap();
    assert!(keygen.status.success(), "keygen: {}", text(&keygen.stderr));
    let recipient = text(&keygen.stdout).trim().to_owned();
    assert!(recipient.starts_with("age1"), "public key on stdout: {recipient}");
    assert!(!text(&keygen.stderr).contains("AGE-SECRET-KEY"), "the private key is never printed");
    let key_text = std::fs::read_to_string(&identity_file).unwrap();
    assert_eq!(std::fs::metadata(&identity_file).unwrap().permissions().mode() & 0o777, 0o600);
    let secret_line = key_text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).expect("identity line");
    let identity: age::x25519::Identity = secret_line.parse().unwrap();
    assert_eq!(identity.to_public().to_string(), recipient);
    let again = caasctl().args(["--lang", "en", "etcd", "backups", "keygen", "--identity"]).arg(&identity_file).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "an existing key file is refused: {}", text(&again.stderr));
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read_to_string(&identity_file).unwrap(), key_text, "the existing key is untouched");
    let stranger = age::x25519::Identity::generate();
    let stranger_file = dir.path().join("other.txt");
    std::fs::write(&stranger_file, format!("{}\n", stranger.to_string().expose_secret())).unwrap();
    let config = dir.path().join("etc-etcd");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("etcd.conf"), "ETCD_NAME=m0\n").unwrap();

    let output = caasctl()
        .args(["-o", "json", "etcd", "backup", "--endpoints", &cluster.endpoints(), "--repo", repo, "--recipient", &recipient, "--config-dir"])
        .arg(&config)
        .args(cluster.tls_args())
        .output()
        .unwrap();
    let id = backup_id(&output);
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["encryption"]["scheme"], "age");
    assert_eq!(manifest["encryption"]["recipients"][0], recipient.as_str());
    let file = manifest["snapshot"]["file"].as_str().unwrap();
    assert_eq!(file, "snapshot.db.age");

    // The stored bytes are ciphertext: hashed as recorded, and useless without the identity.
    let stored = std::fs::read(Path::new(repo).join(&id).join(file)).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"), "an age file");
    assert_eq!(sha256_hex(&stored), manifest["snapshot"]["ciphertext_sha256"].as_str().unwrap());
    assert!(decrypt(&stranger, &stored).is_err(), "another identity cannot decrypt it");
    let plain = decrypt(&identity, &stored).unwrap();
    assert_eq!(sha256_hex(&plain), manifest["snapshot"]["sha256"].as_str().unwrap(), "the plaintext hash matches");
    assert_eq!(plain.len() as u64, manifest["snapshot"]["size"].as_u64().unwrap());

    let archive = &manifest["config_archives"][0];
    let stored_archive = std::fs::read(Path::new(repo).join(&id).join(archive["file"].as_str().unwrap())).unwrap();
    let plain_archive = decrypt(&identity, &stored_archive).unwrap();
    assert_eq!(&plain_archive[..2], &[0x1f, 0x8b], "the archive is encrypted gzip");
    assert_eq!(sha256_hex(&plain_archive), archive["sha256"].as_str().unwrap());

    let without = caasctl().args(["--lang", "en", "etcd", "backups", "verify", "--repo", repo]).output().unwrap();
    assert!(without.status.success(), "{}", text(&without.stdout));
    assert!(text(&without.stdout).contains("only the encrypted bytes were checked"), "{}", text(&without.stdout));

    let with = caasctl().args(["--lang", "en", "etcd", "backups", "verify", "--repo", repo, "--identity"]).arg(&identity_file).output().unwrap();
    assert!(with.status.success(), "{} {}", text(&with.stdout), text(&with.stderr));
    assert!(text(&with.stdout).contains("every hash matches"), "{}", text(&with.stdout));

    // A key that opens nothing is the operator's mistake: exit 2, and the record of the good
    // verification above stays, so that prune never takes the backup for a failed one.
    let record_before = std::fs::read(Path::new(repo).join(&id).join("verify.json")).unwrap();
    let wrong = caasctl().args(["--lang", "en", "etcd", "backups", "verify", "--repo", repo, "--identity"]).arg(&stranger_file).output().unwrap();
    assert_eq!(wrong.status.code(), Some(2), "a wrong identity is a usage error: {}", text(&wrong.stderr));
    assert!(text(&wrong.stderr).contains("opens backup"), "{}", text(&wrong.stderr));
    assert_eq!(std::fs::read(Path::new(repo).join(&id).join("verify.json")).unwrap(), record_before);

    let no_key = caasctl()
        .args(["--lang", "en", "etcd", "backup", "--no-config", "--encrypt", "--endpoints", &cluster.endpoints(), "--repo", repo])
        .args(cluster.tls_args())
        .output()
        .unwrap();
    assert_eq!(no_key.status.code(), Some(2), "--encrypt without a recipient is a usage error");
    assert!(text(&no_key.stderr).contains("no recipient"), "{}", text(&no_key.stderr));
}

fn s3_server() -> Option<S3Server> {
    if !require(S3Server::available(), &caasctl_testing::s3::s3s_binary().display().to_string()) {
        return None;
    }
    Some(S3Server::start(&["backups"]))
}

/// A caasctl command with S3 credentials and endpoint options for `server`.
fn s3_caasctl(server: &S3Server, secret: &str) -> Command {
    let mut command = caasctl();
    command
        .env("AWS_ACCESS_KEY_ID", caasctl_testing::s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("CAASCTL_S3_ENDPOINT", server.endpoint());
    command
}

const S3_REPO: &str = "s3://backups/etcd/main";

fn s3_backup(server: &S3Server, cluster: &EtcdCluster, extra: &[&str]) -> Output {
    s3_caasctl(server, caasctl_testing::s3::SECRET_KEY)
        .args(["--lang", "en", "-o", "json", "etcd", "backup", "--no-config", "--s3-path-style", "--endpoints", &cluster.endpoints(), "--repo", S3_REPO])
        .args(cluster.tls_args())
        .args(extra)
        .output()
        .unwrap()
}

/// Lists the repository without `--s3-path-style`: an endpoint given as an IP address is
/// addressed path-style anyway, so the same backups must appear.
fn s3_list_without_path_style(server: &S3Server) -> Vec<Value> {
    let output = s3_caasctl(server, caasctl_testing::s3::SECRET_KEY).args(["-o", "json", "etcd", "backups", "list", "--repo", S3_REPO]).output().unwrap();
    assert!(output.status.success(), "list failed: {}", text(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

fn s3_list(server: &S3Server) -> Vec<Value> {
    let output = s3_caasctl(server, caasctl_testing::s3::SECRET_KEY)
        .args(["-o", "json", "etcd", "backups", "list", "--s3-path-style", "--repo", S3_REPO])
        .output()
        .unwrap();
    assert!(output.status.success(), "list failed: {}", text(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn s3_backup_list_verify_prune() {
    use age::secrecy::ExposeSecret;
    let Some(server) = s3_server() else { return };
    let Some(cluster) = start(500) else { return };
    let dir = tempfile::tempdir().unwrap();
    let identity = age::x25519::Identity::generate();
    let identity_file = dir.path().join("key.txt");
    std::fs::write(&identity_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();

    let plain = s3_backup(&server, &cluster, &[]);
    let plain_id = backup_id(&plain);
    assert!(text(&plain.stderr).contains("unencrypted backup to the remote repository"), "{}", text(&plain.stderr));
    assert!(!text(&plain.stderr).contains(caasctl_testing::s3::SECRET_KEY), "the secret is never printed");

    let encrypted = s3_backup(&server, &cluster, &["--recipient", &identity.to_public().to_string()]);
    let encrypted_id = backup_id(&encrypted);
    assert!(!text(&encrypted.stderr).contains("unencrypted"), "{}", text(&encrypted.stderr));

    // The objects are where the manifest says, with the recorded bytes.
    let manifest: Value = serde_json::from_slice(&plain.stdout).unwrap();
    let object = server.data_dir().join("backups/etcd/main").join(&plain_id).join("snapshot.db");
    assert_eq!(std::fs::metadata(&object).unwrap().len(), manifest["snapshot"]["size"].as_u64().unwrap());
    assert_eq!(sha256_hex(&std::fs::read(&object).unwrap()), manifest["snapshot"]["sha256"].as_str().unwrap());

    let entries = s3_list(&server);
    let listed_ids = |entries: &[Value]| entries.iter().map(|e| e["id"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>();
    assert_eq!(listed_ids(&s3_list_without_path_style(&server)), listed_ids(&s3_list(&server)), "an IP endpoint lists the same bucket without --s3-path-style");
    assert_eq!(ids(&entries, "complete"), vec![plain_id.clone(), encrypted_id.clone()]);

    let verify = s3_caasctl(&server, caasctl_testing::s3::SECRET_KEY)
        .args(["--lang", "en", "etcd", "backups", "verify", "--s3-path-style", "--repo", S3_REPO, "--identity"])
        .arg(&identity_file)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{} {}", text(&verify.stdout), text(&verify.stderr));
    assert_eq!(text(&verify.stdout).matches("every hash matches").count(), 2, "{}", text(&verify.stdout));

    // An unfinished backup from two hours ago: objects without a manifest.
    let stale = server.data_dir().join("backups/etcd/main/etcd-stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("snapshot.db"), b"partial").unwrap();
    age(&stale.join("snapshot.db"), 7_200);
    assert_eq!(ids(&s3_list(&server), "incomplete"), vec!["etcd-stale".to_owned()]);

    let prune = s3_caasctl(&server, caasctl_testing::s3::SECRET_KEY)
        .args(["--lang", "en", "etcd", "backups", "prune", "--s3-path-style", "--repo", S3_REPO, "--keep-last", "1", "--yes"])
        .output()
        .unwrap();
    assert!(prune.status.success(), "{}", text(&prune.stderr));
    let entries = s3_list(&server);
    assert_eq!(ids(&entries, "complete"), vec![encrypted_id.clone()]);
    assert!(ids(&entries, "incomplete").is_empty(), "the stale leftover is removed: {entries:?}");
    assert!(!server.data_dir().join("backups/etcd/main").join(&plain_id).join("snapshot.db").exists(), "the pruned objects are gone");
}

#[test]
fn s3_wrong_secret_is_clear() {
    let Some(server) = s3_server() else { return };
    let output = s3_caasctl(&server, "not-the-secret")
        .args(["--lang", "en", "etcd", "backups", "list", "--s3-path-style", "--repo", S3_REPO])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("rejected the credentials"), "{stderr}");
    assert!(stderr.contains("AWS_SECRET_ACCESS_KEY"), "the hint names the variables: {stderr}");
    assert!(!stderr.contains("not-the-secret"), "the secret is never printed: {stderr}");
}

#[test]
fn s3_server_stopped_mid_upload() {
    let Some(mut server) = s3_server() else { return };
    let version = EtcdVersion::V35;
    if !require(version.available(), &version.etcd_binary().display().to_string()) {
        return;
    }
    let cluster = EtcdCluster::start(ClusterOptions::new(1, version, true));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = cluster.client().await;
        load_k8s_data(&mut client, 1_500, 10_240).await;
    });

    // The transfer is slowed down so that the server stops while the upload runs.
    let pid = server.pid().unwrap();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2_500));
        // SAFETY: the PID belongs to the s3s-fs child this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let started = std::time::Instant::now();
    let failed = s3_backup(&server, &cluster, &["--rate-limit", "4"]);
    stopper.join().unwrap();
    assert_eq!(failed.status.code(), Some(1), "the backup fails: {}", text(&failed.stderr));
    assert!(started.elapsed() < Duration::from_secs(90), "it fails in bounded time");
    server.stop();
    server.resume();

    let entries = s3_list(&server);
    assert!(ids(&entries, "complete").is_empty(), "nothing half-written is listed as complete: {entries:?}");

    let retried = s3_backup(&server, &cluster, &[]);
    let id = backup_id(&retried);
    let entries = s3_list(&server);
    assert_eq!(ids(&entries, "complete"), vec![id], "{entries:?}");
    let verify = s3_caasctl(&server, caasctl_testing::s3::SECRET_KEY)
        .args(["etcd", "backups", "verify", "--s3-path-style", "--repo", S3_REPO])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn missing_repository_is_reported_not_created() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("no-such-repo");
    for args in [&["etcd", "backups", "list"][..], &["etcd", "backups", "verify"], &["etcd", "backups", "prune", "--keep-last", "1", "--dry-run"]] {
        let output = caasctl().args(args).arg("--repo").arg(&missing).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "a mistyped --repo is a usage error: {args:?}: {}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("does not exist"), "{args:?}: {stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[test]
fn unknown_config_table_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caasctl.toml");
    std::fs::write(&config, "[bakup]\nrepo = \"/nowhere\"\n").unwrap();
    let output = caasctl().args(["--lang", "en", "etcd", "backup", "--endpoints", "https://127.0.0.1:1", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("the [bakup] table"), "{}", text(&output.stderr));
    assert!(!std::path::Path::new("/nowhere").exists());
}
