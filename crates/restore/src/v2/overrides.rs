//! Starting etcd once with extra flags (`--force-new-cluster`, or the flags that join a member to
//! an existing cluster) and going back to its own configuration afterwards, for each way etcd
//! runs:
//!
//! - systemd: a drop-in that replaces `ExecStart` with the unit's own line plus the flags, as the
//!   runbook writes by hand; removed with `daemon-reload` afterwards.
//! - static pod: the stopped manifest is copied aside and the flags are added to the etcd
//!   container; the copy is put back afterwards.
//! - commands: the flags are appended to the start command, so that command must pass its
//!   arguments on to etcd; nothing stays behind.

use crate::cluster::Service;
use crate::describe::stopped_path;
use crate::exec::{shell_quote, ExecError, Executor};

/// Name of the drop-in file caasctl writes.
pub const DROP_IN: &str = "caasctl-restore.conf";
/// Suffix of the copy of a static pod manifest kept while the edited one is in use.
pub const ORIGINAL_SUFFIX: &str = ".caasctl-original";

/// Returns the drop-in path of a systemd unit.
pub fn drop_in_path(unit: &str) -> String {
    let unit = if unit.contains('.') { unit.to_owned() } else { format!("{unit}.service") };
    format!("/etc/systemd/system/{unit}.d/{DROP_IN}")
}

/// Returns the last non-empty `ExecStart=` line of `systemctl cat` output with `flags` added:
/// inside a closing double quote when the line ends with one (a `/bin/bash -c "..."` line, the
/// runbook's `sed` case), else at the end.
///
/// Returns `None` when the unit has no `ExecStart`.
pub fn exec_start_with_flags(unit_text: &str, flags: &[String]) -> Option<String> {
    let line = unit_text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with("ExecStart=") && l.len() > "ExecStart=".len())?;
    let extra = flags.join(" ");
    Some(match line.strip_suffix('"') {
        Some(body) => format!("{body} {extra}\""),
        None => format!("{line} {extra}"),
    })
}

/// Renders the drop-in: an empty `ExecStart=` clears the unit's own, then the new line.
pub fn render_drop_in(exec_start: &str) -> String {
    format!("# Written by caasctl for one restore start; removed afterwards.\n[Service]\nExecStart=\n{exec_start}\n")
}

/// Adds `flags` to the etcd container of a static pod manifest.
///
/// A container whose command is `sh -c SCRIPT` gets the flags on the script line that runs etcd
/// (`exec etcd ...`, or a line starting with `etcd`). Any other container gets them appended to
/// `args`, or to `command` when it has no `args`.
///
/// # Errors
/// A message naming what is missing, such as a manifest without containers.
pub fn edit_manifest(text: &str, flags: &[String]) -> Result<String, String> {
    let mut pod: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let containers = pod
        .get_mut("spec")
        .and_then(|s| s.get_mut("containers"))
        .and_then(|c| c.as_sequence_mut())
        .ok_or("no spec.containers")?;
    let index = containers
        .iter()
        .position(|c| c.get("name").and_then(|n| n.as_str()).is_some_and(|n| n.contains("etcd")))
        .unwrap_or(0);
    let container = containers.get_mut(index).ok_or("spec.containers is empty")?;
    let flag_values = || flags.iter().map(|f| serde_yaml::Value::String(f.clone()));

    let shell_script = container
        .get_mut("command")
        .and_then(|c| c.as_sequence_mut())
        .filter(|c| c.len() == 3 && c[1].as_str() == Some("-c"))
        .and_then(|c| c.get_mut(2));
    if let Some(script) = shell_script {
        let text = script.as_str().ok_or("the shell script of the etcd container is not a string")?;
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let runs_etcd = |l: &str| {
            let l = l.trim_start();
            l.starts_with("exec etcd") || l.starts_with("etcd ") || l == "etcd" || l.starts_with("exec /usr/bin/etcd") || l.starts_with("/usr/bin/etcd")
        };
        let line = lines.iter().rposition(|l| runs_etcd(l)).ok_or("the shell script of the etcd container has no line that runs etcd")?;
        lines[line] = format!("{} {}", lines[line].trim_end(), flags.join(" "));
        *script = serde_yaml::Value::String(lines.join("\n") + if text.ends_with('\n') { "\n" } else { "" });
    } else {
        let target = if container.get("args").is_some() { "args" } else { "command" };
        let list = container.get_mut(target).and_then(|v| v.as_sequence_mut()).ok_or("the etcd container has neither args nor command")?;
        list.extend(flag_values());
    }
    serde_yaml::to_string(&pod).map_err(|e| e.to_string())
}

/// Returns the start command with `flags` for the commands kind.
pub fn start_command_with_flags(start: &str, flags: &[String]) -> String {
    let quoted: Vec<String> = flags.iter().map(|f| shell_quote(f)).collect();
    format!("{start} {}", quoted.join(" "))
}

/// Describes how the flags are added, for plans.
pub fn describe_install(service: &Service, flags: &[String]) -> String {
    match service {
        Service::Systemd { unit } => format!("drop-in {} with ExecStart plus {}", drop_in_path(unit), flags.join(" ")),
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            format!("copy {stopped} to {stopped}{ORIGINAL_SUFFIX} and add {} to the etcd container", flags.join(" "))
        }
        Service::Commands { start, .. } => start_command_with_flags(start, flags),
    }
}

/// Describes how the override is removed, for plans.
pub fn describe_remove(service: &Service) -> String {
    match service {
        Service::Systemd { unit } => format!("rm -f {} && systemctl daemon-reload", drop_in_path(unit)),
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            format!("mv {stopped}{ORIGINAL_SUFFIX} {stopped}")
        }
        Service::Commands { start, .. } => start.clone(),
    }
}

/// Installs the override (etcd must be stopped) and returns the start script to run: the
/// service's usual one, or for the commands kind the start command with the flags.
///
/// # Errors
/// The unit has no `ExecStart`, the manifest cannot be edited, or a command failed.
pub fn install(executor: &dyn Executor, service: &Service, flags: &[String]) -> Result<Option<String>, ExecError> {
    match service {
        Service::Systemd { unit } => {
            let text = executor.run_checked(&format!("systemctl cat {}", shell_quote(unit)))?;
            let line = exec_start_with_flags(&text, flags).ok_or_else(|| invalid(executor, unit, "the unit has no ExecStart line"))?;
            let path = drop_in_path(unit);
            let dir = crate::plan::parent_dir(&path);
            let script = format!(
                "mkdir -p {dir} && cat > {file}.part <<'CAASCTL_EOF'\n{body}CAASCTL_EOF\nmv -f {file}.part {file} && systemctl daemon-reload",
                dir = shell_quote(&dir),
                file = shell_quote(&path),
                body = render_drop_in(&line),
            );
            executor.run_checked(&script)?;
            Ok(None)
        }
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            let original = format!("{stopped}{ORIGINAL_SUFFIX}");
            // A copy left by an interrupted attempt is the manifest as the operator wrote it.
            let copy = format!("[ -e {o} ] || cp -p {s} {o}", o = shell_quote(&original), s = shell_quote(&stopped));
            executor.run_checked(&copy)?;
            let text = executor.run_checked(&format!("cat {}", shell_quote(&original)))?;
            let edited = edit_manifest(&text, flags).map_err(|reason| invalid(executor, &original, &reason))?;
            let script = format!("cat > {s}.part <<'CAASCTL_EOF'\n{edited}CAASCTL_EOF\nmv -f {s}.part {s}", s = shell_quote(&stopped));
            executor.run_checked(&script)?;
            Ok(None)
        }
        Service::Commands { start, .. } => Ok(Some(start_command_with_flags(start, flags))),
    }
}

/// Removes the override again; etcd must be stopped. Running it twice is harmless.
///
/// # Errors
/// A command failed.
pub fn remove(executor: &dyn Executor, service: &Service) -> Result<(), ExecError> {
    match service {
        Service::Systemd { unit } => {
            executor.run_checked(&format!("rm -f {} && systemctl daemon-reload", shell_quote(&drop_in_path(unit))))?;
        }
        Service::StaticPod { manifest, stopped_dir } => {
            let stopped = stopped_path(manifest, stopped_dir);
            let original = format!("{stopped}{ORIGINAL_SUFFIX}");
            executor.run_checked(&format!("if [ -e {o} ]; then mv -f {o} {s}; fi", o = shell_quote(&original), s = shell_quote(&stopped)))?;
        }
        Service::Commands { .. } => {}
    }
    Ok(())
}

fn invalid(executor: &dyn Executor, what: &str, reason: &str) -> ExecError {
    ExecError::Failed { host: executor.host(), command: format!("edit {what}"), status: 1, stderr: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Vec<String> {
        vec!["--force-new-cluster".to_owned()]
    }

    #[test]
    fn drop_in_keeps_quoted_exec_start() {
        let unit = "# /usr/lib/systemd/system/etcd.service\n[Service]\nEnvironmentFile=-/etc/etcd/etcd.conf\n\
                    ExecStart=/bin/bash -c \"GOMAXPROCS=$(nproc) /usr/bin/etcd --name=\\\"${ETCD_NAME}\\\"\"\n";
        let line = exec_start_with_flags(unit, &flags()).unwrap();
        assert_eq!(line, "ExecStart=/bin/bash -c \"GOMAXPROCS=$(nproc) /usr/bin/etcd --name=\\\"${ETCD_NAME}\\\" --force-new-cluster\"");
        let drop_in = render_drop_in(&line);
        assert!(drop_in.contains("[Service]\nExecStart=\nExecStart=/bin/bash"), "{drop_in}");
    }

    #[test]
    fn drop_in_uses_last_exec_start() {
        let unit = "[Service]\nExecStart=/usr/bin/etcd\n# /etc/systemd/system/etcd.service.d/x.conf\n[Service]\nExecStart=\nExecStart=/opt/etcd --a\n";
        assert_eq!(exec_start_with_flags(unit, &flags()).unwrap(), "ExecStart=/opt/etcd --a --force-new-cluster");
        assert_eq!(exec_start_with_flags("[Service]\nType=notify\n", &flags()), None);
        assert_eq!(drop_in_path("etcd"), "/etc/systemd/system/etcd.service.d/caasctl-restore.conf");
    }

    #[test]
    fn manifest_shell_script_gets_flags() {
        let manifest = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command:\n    - /bin/sh\n    - -c\n    - |\n      #!/bin/sh\n      set -o allexport\n      source /etc/etcd/etcd.conf\n      exec etcd\n";
        let edited = edit_manifest(manifest, &flags()).unwrap();
        let pod: serde_yaml::Value = serde_yaml::from_str(&edited).unwrap();
        let script = pod["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(script.ends_with("exec etcd --force-new-cluster\n"), "{script}");
        assert!(script.contains("source /etc/etcd/etcd.conf"));
    }

    #[test]
    fn manifest_args_get_flags() {
        let manifest = "spec:\n  containers:\n  - name: sidecar\n    image: x\n  - name: etcd-member\n    command: [etcd]\n    args: [--name=a]\n";
        let edited = edit_manifest(manifest, &["--initial-cluster-state=existing".to_owned()]).unwrap();
        let pod: serde_yaml::Value = serde_yaml::from_str(&edited).unwrap();
        let args: Vec<&str> = pod["spec"]["containers"][1]["args"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(args, ["--name=a", "--initial-cluster-state=existing"]);
        assert!(edit_manifest("spec: {}\n", &flags()).unwrap_err().contains("containers"));
    }

    #[test]
    fn commands_kind_appends_quoted_flags() {
        let flags = vec!["--initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380".to_owned(), "--x=a b".to_owned()];
        assert_eq!(start_command_with_flags("/opt/start-etcd", &flags), "/opt/start-etcd --initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380 '--x=a b'");
    }

    #[test]
    fn static_pod_install_and_remove_on_local_files() {
        let dir = tempfile::tempdir().unwrap();
        let stopped_dir = dir.path().join("pods-stopped");
        std::fs::create_dir(&stopped_dir).unwrap();
        let original = "spec:\n  containers:\n  - name: etcd\n    command: [etcd, --name=a]\n";
        std::fs::write(stopped_dir.join("etcd.yaml"), original).unwrap();
        let service = Service::StaticPod {
            manifest: dir.path().join("pods/etcd.yaml").display().to_string(),
            stopped_dir: Some(stopped_dir.display().to_string()),
        };
        let local = crate::exec::LocalExecutor;
        for _ in 0..2 {
            assert_eq!(install(&local, &service, &flags()).unwrap(), None);
            let edited = std::fs::read_to_string(stopped_dir.join("etcd.yaml")).unwrap();
            assert!(edited.contains("--force-new-cluster"), "{edited}");
            assert_eq!(edited.matches("--force-new-cluster").count(), 1);
        }
        remove(&local, &service).unwrap();
        remove(&local, &service).unwrap();
        assert_eq!(std::fs::read_to_string(stopped_dir.join("etcd.yaml")).unwrap(), original);
    }
}
