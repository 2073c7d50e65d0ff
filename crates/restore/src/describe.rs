//! What each step does, how its success is checked and how a person undoes it, as catalogue
//! messages, so a plan reads the same in a terminal (in the user's language) and in JSON.

use caasctl_core::{Lang, Message};

use crate::cluster::{Service, DEFAULT_STOPPED_DIR};
use crate::exec::shell_quote;
use crate::plan::{Action, Step};

/// The three texts of a step.
#[derive(Debug, Clone)]
pub struct StepText {
    /// What the step does.
    pub what: Message,
    /// How its success is checked.
    pub check: Message,
    /// How to undo it by hand.
    pub undo: Message,
}

/// A step rendered in English, for JSON output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepView<'a> {
    /// The step.
    #[serde(flatten)]
    pub step: &'a Step,
    /// Host label.
    pub host_label: String,
    /// What the step does.
    pub what: String,
    /// How its success is checked.
    pub check: String,
    /// How to undo it.
    pub undo: String,
}

impl<'a> StepView<'a> {
    /// Renders `step` in `lang`.
    pub fn new(step: &'a Step, lang: Lang) -> StepView<'a> {
        let text = describe(step);
        StepView { step, host_label: step.host.label(), what: text.what.render(lang), check: text.check.render(lang), undo: text.undo.render(lang) }
    }
}

fn stopped_manifest(manifest: &str, stopped_dir: &Option<String>) -> String {
    let file = manifest.rsplit('/').next().unwrap_or(manifest);
    format!("{}/{file}", stopped_dir.as_deref().unwrap_or(DEFAULT_STOPPED_DIR))
}

/// Returns the shell command that stops etcd run as `service`.
pub fn stop_command(service: &Service) -> String {
    match service {
        Service::Systemd { unit } => format!("systemctl stop {}", shell_quote(unit)),
        Service::StaticPod { manifest, stopped_dir } => {
            let dir = stopped_dir.as_deref().unwrap_or(DEFAULT_STOPPED_DIR);
            format!("mkdir -p {} && mv {} {}", shell_quote(dir), shell_quote(manifest), shell_quote(&stopped_manifest(manifest, stopped_dir)))
        }
        Service::Commands { stop, .. } => stop.clone(),
    }
}

/// Returns the shell command that starts etcd run as `service`.
pub fn start_command(service: &Service) -> String {
    match service {
        Service::Systemd { unit } => format!("systemctl start {}", shell_quote(unit)),
        Service::StaticPod { manifest, stopped_dir } => format!("mv {} {}", shell_quote(&stopped_manifest(manifest, stopped_dir)), shell_quote(manifest)),
        Service::Commands { start, .. } => start.clone(),
    }
}

/// Returns the manifest's place while etcd is stopped.
pub fn stopped_path(manifest: &str, stopped_dir: &Option<String>) -> String {
    stopped_manifest(manifest, stopped_dir)
}

/// Describes a step.
pub fn describe(step: &Step) -> StepText {
    let m = Message::new;
    match &step.action {
        Action::VerifySnapshot { path, .. } => StepText {
            what: m("restore.step.verify.what").arg("path", path),
            check: m("restore.step.verify.check"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::Upload { remote, .. } => StepText {
            what: m("restore.step.upload.what").arg("path", remote),
            check: m("restore.step.upload.check"),
            undo: m("restore.step.upload.undo").arg("path", remote),
        },
        Action::Stop { service, .. } => StepText {
            what: m("restore.step.stop.what").arg("command", stop_command(service)),
            check: m("restore.step.stop.check"),
            undo: m("restore.step.stop.undo").arg("command", start_command(service)),
        },
        Action::RestoreToTemp { engine, params } => StepText {
            what: m("restore.step.restore.what").arg("command", engine.restore_command(params)),
            check: m("restore.step.restore.check").arg("dir", &params.data_dir),
            undo: m("restore.step.restore.undo").arg("dir", &params.data_dir),
        },
        Action::MoveAside { data_dir, aside } => StepText {
            what: m("restore.step.aside.what").arg("dir", data_dir).arg("aside", aside),
            check: m("restore.step.aside.check").arg("dir", data_dir),
            undo: m("restore.step.aside.undo").arg("dir", data_dir).arg("aside", aside),
        },
        Action::Install { temp_dir, data_dir } => StepText {
            what: m("restore.step.install.what").arg("temp", temp_dir).arg("dir", data_dir),
            check: m("restore.step.install.check").arg("dir", data_dir),
            undo: m("restore.step.install.undo").arg("dir", data_dir),
        },
        Action::Chown { data_dir, owner } => StepText {
            what: m("restore.step.chown.what").arg("dir", data_dir).arg("owner", owner),
            check: m("restore.step.exit_zero"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::Restorecon { data_dir } => StepText {
            what: m("restore.step.restorecon.what").arg("dir", data_dir),
            check: m("restore.step.exit_zero"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::RemoveUpload { path } => StepText {
            what: m("restore.step.remove_upload.what").arg("path", path),
            check: m("restore.step.exit_zero"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::Start { service } => StepText {
            what: m("restore.step.start.what").arg("command", start_command(service)),
            check: m("restore.step.exit_zero"),
            undo: m("restore.step.start.undo").arg("command", stop_command(service)),
        },
        Action::WaitHealthy { endpoints } => StepText {
            what: m("restore.step.healthy.what").arg("count", endpoints.len()),
            check: m("restore.step.healthy.check"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::FixPeerUrls { .. } => StepText {
            what: m("restore.step.peer_urls.what"),
            check: m("restore.step.peer_urls.check"),
            undo: m("restore.step.peer_urls.undo"),
        },
        Action::CheckMembers { members } => StepText {
            what: m("restore.step.members.what").arg("count", members.len()),
            check: m("restore.step.members.check"),
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::CheckData { min_revision, key_count, .. } => StepText {
            what: m("restore.step.data.what"),
            check: match (min_revision, key_count) {
                (Some(revision), Some(keys)) => m("restore.step.data.check").arg("revision", revision).arg("keys", keys),
                _ => m("restore.step.data.check_unknown"),
            },
            undo: m("restore.step.nothing_to_undo"),
        },
        Action::V2 { v2 } => crate::v2::describe::describe(v2),
    }
}
