//! Descriptions of the v2 restore steps: the action, its success check and the manual undo.

use caasctl_core::Message;

use crate::actions::{start_script, stop_script};
use crate::describe::StepText;

use super::{overrides, V2Action};

/// Describes a v2 step.
pub fn describe(action: &V2Action) -> StepText {
    let m = Message::new;
    let nothing = || m("restore.step.nothing_to_undo");
    match action {
        V2Action::VerifyArchive { path, sha256 } => StepText {
            what: m("etcd_v2.step.verify.what").arg("path", path),
            check: m("etcd_v2.step.verify.check").arg("sha256", sha256),
            undo: nothing(),
        },
        V2Action::Unpack { archive, temp_dir } => StepText {
            what: m("etcd_v2.step.unpack.what").arg("archive", archive).arg("dir", temp_dir),
            check: m("etcd_v2.step.unpack.check").arg("dir", temp_dir),
            undo: m("restore.step.restore.undo").arg("dir", temp_dir),
        },
        V2Action::StartWithFlags { service, flags } => StepText {
            what: m("etcd_v2.step.start_flags.what").arg("flags", flags.join(" ")).arg("how", overrides::describe_install(service, flags)),
            check: m("restore.step.exit_zero"),
            undo: m("etcd_v2.step.start_flags.undo").arg("stop", stop_script(service)).arg("remove", overrides::describe_remove(service)),
        },
        V2Action::RestartPlain { service, .. } => StepText {
            what: m("etcd_v2.step.restart.what").arg("remove", overrides::describe_remove(service)).arg("start", start_script(service)),
            check: m("restore.step.stop.check"),
            undo: nothing(),
        },
        V2Action::WaitHealthy { endpoints } => StepText {
            what: m("etcd_v2.step.healthy.what").arg("endpoints", endpoints.join(",")),
            check: m("etcd_v2.step.healthy.check"),
            undo: nothing(),
        },
        V2Action::FixPeerUrl { name, peer_url, .. } => StepText {
            what: m("etcd_v2.step.peer_url.what").arg("name", name).arg("url", peer_url),
            check: m("etcd_v2.step.peer_url.check").arg("url", peer_url),
            undo: nothing(),
        },
        V2Action::AdvanceIndex { consistent_index, .. } => StepText {
            what: m("etcd_v2.step.advance.what").arg("index", consistent_index),
            check: m("etcd_v2.step.advance.check").arg("index", consistent_index),
            undo: nothing(),
        },
        V2Action::MemberAdd { name, peer_url, .. } => StepText {
            what: m("etcd_v2.step.member_add.what").arg("name", name).arg("url", peer_url),
            check: m("etcd_v2.step.member_add.check").arg("url", peer_url),
            undo: m("etcd_v2.step.member_add.undo"),
        },
        V2Action::CheckV2Keys { expected, .. } => StepText {
            what: m("etcd_v2.step.keys.what"),
            check: match expected {
                Some(count) => m("etcd_v2.step.keys.check").arg("count", count),
                None => m("etcd_v2.step.keys.check_unknown"),
            },
            undo: nothing(),
        },
    }
}
