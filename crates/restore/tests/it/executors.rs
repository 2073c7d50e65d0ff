//! The same file and command operations through the local executor and through OpenSSH to a
//! private sshd on loopback.

use caasctl_restore::exec::{ExecError, Executor, LocalExecutor, PathState};
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
