//! The same file and command operations through the local executor, through OpenSSH to a
//! private sshd on loopback, and through the pod executor with a stand-in CLI.

use caasctl_restore::exec::{ExecError, Executor, LocalExecutor, PathState};
use caasctl_restore::pod::{PodExecutor, PodTarget};
use caasctl_restore::ssh::{SshExecutor, SshTarget};
use caasctl_testing::sshd::Sshd;

fn exercise(executor: &dyn Executor) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();

    let output = executor.run_script("echo out; echo err >&2; exit 4", None).unwrap();
    assert_eq!(output.status, 4);
    assert_eq!(output.stdout.trim(), "out");
    assert_eq!(output.stderr.trim(), "err");
    assert!(matches!(executor.run_checked("exit 3"), Err(ExecError::Failed { status: 3, .. })));

    let data = format!("{root}/data dir");
    assert_eq!(executor.path_state(&data).unwrap(), PathState::Missing);
    executor.create_dir_all(&data).unwrap();
    assert_eq!(executor.path_state(&data).unwrap(), PathState::EmptyDir);

    let local = dir.path().join("source.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&local, &bytes).unwrap();
    let remote = format!("{data}/copy.bin");
    executor.upload(&local, &remote).unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), bytes);
    assert_eq!(executor.path_state(&data).unwrap(), PathState::NonEmptyDir);
    assert_eq!(executor.path_state(&remote).unwrap(), PathState::File);
    let expected = LocalExecutor.sha256(&local.display().to_string()).unwrap();
    assert_eq!(executor.sha256(&remote).unwrap(), expected);
    assert_eq!(executor.sha256(&format!("{root}/none")).unwrap(), None);

    let moved = format!("{root}/moved");
    executor.rename(&data, &moved).unwrap();
    assert_eq!(executor.path_state(&data).unwrap(), PathState::Missing);
    executor.remove_file(&format!("{moved}/copy.bin")).unwrap();
    executor.remove_empty_dir(&moved).unwrap();
    assert_eq!(executor.path_state(&moved).unwrap(), PathState::Missing);

    assert!(executor.user_exists("root").unwrap());
    assert!(!executor.user_exists("caasctl-no-such-user").unwrap());
    assert_eq!(executor.which(&["caasctl-no-such-tool", "sh"]).unwrap().as_deref().map(|p| p.ends_with("/sh")), Some(true));
    assert_eq!(executor.which(&["caasctl-no-such-tool"]).unwrap(), None);
}

#[test]
fn local_executor_operations() {
    exercise(&LocalExecutor);
}

#[test]
fn ssh_executor_operations() {
    if !caasctl_testing::require(Sshd::available(), "sshd and ssh") {
        return;
    }
    let sshd = Sshd::start();
    for control_master in [false, true] {
        let executor = SshExecutor::new(SshTarget { target: sshd.target(), port: Some(sshd.port), options: sshd.client_options(), control_master });
        exercise(&executor);
    }
}

#[test]
fn ssh_failure_is_an_error() {
    if !caasctl_testing::require(Sshd::available(), "sshd and ssh") {
        return;
    }
    let sshd = Sshd::start();
    let mut options = sshd.client_options();
    options[3] = "/nonexistent-key".to_owned();
    let executor = SshExecutor::new(SshTarget { target: sshd.target(), port: Some(sshd.port), options, control_master: false });
    match executor.run_script("true", None) {
        Err(ExecError::Failed { status: 255, .. }) => {}
        other => panic!("expected an ssh failure, got {other:?}"),
    }
}

/// Builds the pod executor with `tests/fixtures/fake-kubectl` as its CLI. No kubelet here can serve
/// `exec` (and hollow nodes must not be asked to), so the stand-in records the arguments the
/// executor renders and runs the command after `--` on this host. What this proves is the
/// argument list and the stdin, output and status handling, not a real `kubectl exec`.
///
/// Each test gets a wrapper that sets the stand-in's log, so that tests running in parallel do
/// not share one environment variable.
fn fake_pod_executor(log: &std::path::Path) -> PodExecutor {
    use std::os::unix::fs::PermissionsExt;

    let wrapper = log.with_extension("sh");
    let stand_in = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake-kubectl");
    std::fs::write(&wrapper, format!("#!/bin/sh\nFAKE_KUBECTL_LOG='{}' exec '{stand_in}' \"$@\"\n", log.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    PodExecutor::new(PodTarget {
        namespace: "kube-system".to_owned(),
        pod: "master-etcd-m0".to_owned(),
        container: Some("etcd".to_owned()),
        program: Some(wrapper.display().to_string()),
        kubeconfig: None,
    })
}

/// Returns the argument lists the stand-in recorded, one per call.
fn recorded_calls(log: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap();
    text.split("\u{1f}\n")
        .filter(|call| !call.is_empty())
        .map(|call| call.split('\u{1f}').map(str::to_owned).collect())
        .collect()
}

#[test]
fn pod_executor_operations() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kubectl.log");
    let executor = fake_pod_executor(&log);
    exercise(&executor);

    let calls = recorded_calls(&log);
    assert!(!calls.is_empty());
    for call in &calls {
        let dashes = call.iter().position(|a| a == "--").expect("every call has --");
        let with_stdin = call[1] == "-i";
        let head: Vec<&str> = call[..dashes].iter().map(String::as_str).collect();
        let expected: &[&str] = if with_stdin {
            &["exec", "-i", "-n", "kube-system", "master-etcd-m0", "-c", "etcd"]
        } else {
            &["exec", "-n", "kube-system", "master-etcd-m0", "-c", "etcd"]
        };
        assert_eq!(head, expected, "{call:?}");
        assert_eq!(&call[dashes + 1..dashes + 3], ["sh", "-c"], "{call:?}");
        assert_eq!(call.len(), dashes + 4, "the script is one argument: {call:?}");
    }
    let uploads = calls.iter().filter(|c| c[1] == "-i").count();
    assert_eq!(uploads, 1, "only the upload passes stdin");
}

#[test]
fn pod_executor_archives_member_config() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kubectl.log");
    let etc = dir.path().join("etc-etcd");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("etcd.conf"), "ETCD_NAME=m0\nETCD_DATA_DIR=/var/lib/etcd\n").unwrap();
    let spec: caasctl_restore::cluster::MemberSpec = toml::from_str(&format!(
        "name = 'm0'\nexecutor = 'pod'\nnamespace = 'kube-system'\npod = 'master-etcd-m0'\nconfig_dir = '{}'\nservice = {{ kind = 'systemd', unit = 'etcd' }}\n",
        etc.display()
    ))
    .unwrap();
    let archives = caasctl_restore::member_config::fetch_member(&spec, &fake_pod_executor(&log)).unwrap();
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].source, format!("pod:kube-system/master-etcd-m0/etcd:{}", etc.display()));
    let archive = dir.path().join("m0.tar.gz");
    std::fs::write(&archive, &archives[0].bytes).unwrap();
    let conf = caasctl_restore::conf::read_etcd_conf(&archive).unwrap().unwrap();
    assert_eq!(conf.get("ETCD_NAME").map(String::as_str), Some("m0"));
}
