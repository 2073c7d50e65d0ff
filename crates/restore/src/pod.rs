//! A container of a pod, reached through the host's Kubernetes CLI (`oc exec` on OpenShift 3.x,
//! `kubectl exec` elsewhere), for an etcd that runs as a static pod and whose files are only
//! visible inside its container.
//!
//! The CLI runs on this host with the operator's kubeconfig (or the file named by `kubeconfig`,
//! passed as `KUBECONFIG`, which both `oc` and `kubectl` read). Every command runs as
//! `CLI exec [-i] -n NAMESPACE POD [-c CONTAINER] -- sh -c SCRIPT`. File operations use the
//! executor interface's shell defaults, so the container needs a POSIX shell and coreutils.

use std::path::Path;
use std::process::Command;

use crate::exec::{collect, CommandOutput, ExecError, Executor};

/// CLI programs tried, in order, when the cluster file names none.
pub const DEFAULT_PROGRAMS: [&str; 2] = ["oc", "kubectl"];

/// How to reach a pod's container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodTarget {
    /// Namespace of the pod, such as `kube-system`.
    pub namespace: String,
    /// Pod name, such as `master-etcd-master-0.example.com`.
    pub pod: String,
    /// Container name; the CLI picks the pod's default container when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// CLI program: a path or a name on `PATH`; `oc`, then `kubectl` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// kubeconfig file, passed to the CLI as `KUBECONFIG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

impl PodTarget {
    /// Returns the CLI program to run: the configured one, else the first of
    /// [`DEFAULT_PROGRAMS`] found on `PATH`, else `kubectl`, whose spawn error then names it.
    pub fn program(&self) -> String {
        if let Some(program) = &self.program {
            return program.clone();
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for name in DEFAULT_PROGRAMS {
            if std::env::split_paths(&path).any(|dir| dir.join(name).is_file()) {
                return name.to_owned();
            }
        }
        "kubectl".to_owned()
    }

    /// Returns the CLI arguments that run `script` in the container; `stdin` adds `-i` so that
    /// the CLI passes its standard input on.
    pub fn exec_args(&self, script: &str, stdin: bool) -> Vec<String> {
        let mut args = vec!["exec".to_owned()];
        if stdin {
            args.push("-i".to_owned());
        }
        args.extend(["-n".to_owned(), self.namespace.clone(), self.pod.clone()]);
        if let Some(container) = &self.container {
            args.extend(["-c".to_owned(), container.clone()]);
        }
        args.extend(["--".to_owned(), "sh".to_owned(), "-c".to_owned(), script.to_owned()]);
        args
    }
}

/// Runs commands in a pod's container through `oc exec` or `kubectl exec`.
#[derive(Debug, Clone)]
pub struct PodExecutor {
    target: PodTarget,
    program: String,
}

impl PodExecutor {
    /// Creates an executor for `target`, choosing its CLI program now.
    pub fn new(target: PodTarget) -> PodExecutor {
        let program = target.program();
        PodExecutor { target, program }
    }
}

impl Executor for PodExecutor {
    fn host(&self) -> String {
        match &self.target.container {
            Some(container) => format!("pod:{}/{}/{container}", self.target.namespace, self.target.pod),
            None => format!("pod:{}/{}", self.target.namespace, self.target.pod),
        }
    }

    fn run_script(&self, script: &str, stdin: Option<&Path>) -> Result<CommandOutput, ExecError> {
        let mut command = Command::new(&self.program);
        command.args(self.target.exec_args(script, stdin.is_some()));
        if let Some(kubeconfig) = &self.target.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        // NOTE: the CLI exits with the remote command's status, but also exits 1 when it cannot
        // reach the API server or the pod, so a status of 1 may be the CLI's own failure; its
        // stderr, kept in the error, shows which.
        collect(&self.host(), command, stdin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> PodTarget {
        PodTarget {
            namespace: "kube-system".into(),
            pod: "master-etcd-master-0".into(),
            container: Some("etcd".into()),
            program: Some("/usr/bin/oc".into()),
            kubeconfig: None,
        }
    }

    #[test]
    fn exec_args_with_container_and_stdin() {
        let args = target().exec_args("cat > '/var/lib/etcd/a b'", true);
        assert_eq!(args, ["exec", "-i", "-n", "kube-system", "master-etcd-master-0", "-c", "etcd", "--", "sh", "-c", "cat > '/var/lib/etcd/a b'"]);
    }

    #[test]
    fn exec_args_without_container_or_stdin() {
        let mut target = target();
        target.container = None;
        let args = target.exec_args("true", false);
        assert_eq!(args, ["exec", "-n", "kube-system", "master-etcd-master-0", "--", "sh", "-c", "true"]);
    }

    #[test]
    fn host_label_names_pod_and_container() {
        assert_eq!(PodExecutor::new(target()).host(), "pod:kube-system/master-etcd-master-0/etcd");
    }

    #[test]
    fn configured_program_is_kept() {
        assert_eq!(target().program(), "/usr/bin/oc");
    }
}
