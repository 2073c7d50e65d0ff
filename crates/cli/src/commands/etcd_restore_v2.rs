//! `caasctl etcd restore BACKUP --cluster FILE` for a v2 backup: the runbook's restore of v2
//! data, printed as a plan first and applied with a journal like the v3 restore.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use caasctl_etcd::repo::{LocalRepo, Manifest};
use caasctl_etcd::v2_backup::V2_BACKUP_KIND;
use caasctl_restore::apply::{apply, ApplyOptions};
use caasctl_restore::cluster::EtcdSection;
use caasctl_restore::exec::{Executor, LocalExecutor};
use caasctl_restore::journal::{state_dir, Journal};
use caasctl_restore::plan::{self, ClientTls, MemberTarget, Plan, SnapshotSource};
use caasctl_restore::v2::plan::{build, V2Source};
use caasctl_restore::RestoreError;

use super::etcd_restore::{finish, refused, observer, render_steps, RestoreArgs};
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text};
use crate::Exit;

/// Returns the backup directory and manifest when `args` names a v2 backup of the repository.
pub fn find_v2_backup(args: &RestoreArgs) -> Option<(PathBuf, Manifest)> {
    // NOTE: v2 backups are read from local repositories only; an S3 repository falls through to
    // the v3 restore, which reports the backup's kind.
    let (resolved, _) = args.repo.resolve().ok()?;
    let root = PathBuf::from(&resolved.repo);
    if Path::new(&args.backup).is_file() || args.backup.contains('/') || resolved.repo.starts_with("s3://") || !root.is_dir() {
        return None;
    }
    let repo = LocalRepo::open(&root).ok()?;
    repo.get(&args.backup).ok().filter(|(_, manifest)| manifest.kind == V2_BACKUP_KIND)
}

/// Runs the v2 restore of the backup in `dir`.
pub async fn run(args: &RestoreArgs, context: &Context, dir: PathBuf, manifest: Manifest) -> anyhow::Result<Exit> {
    let Some(file) = &args.cluster else {
        anyhow::bail!("{}", context.tr("etcd_v2.restore.needs_cluster", &[("id", &manifest.id)]));
    };
    if args.no_start {
        anyhow::bail!("{}", context.tr("etcd_v2.restore.no_start", &[("id", &manifest.id)]));
    }
    let archive = dir.join(&manifest.snapshot.file);
    let sha256 = LocalExecutor.sha256(&archive.display().to_string())?.unwrap_or_default();
    if sha256 != manifest.snapshot.sha256 {
        return Err(RestoreError::ManifestHashMismatch { path: archive, expected: manifest.snapshot.sha256.clone(), actual: sha256 }.into());
    }
    let section = EtcdSection::load(file)?;
    let tls = ClientTls { cacert: section.cacert.clone(), cert: section.cert.clone(), key: section.key.clone() };
    let members = MemberTarget::from_cluster(&section);
    let source = SnapshotSource {
        path: archive,
        backup_id: Some(manifest.id.clone()),
        manifest_sha256: Some(manifest.snapshot.sha256.clone()),
        sha256,
        revision: Some(manifest.revision),
        key_count: Some(manifest.key_count),
        skip_hash_check: false,
    };
    let details = manifest.v2.clone();
    let v2 = V2Source { consistent_index: details.as_ref().and_then(|d| d.consistent_index), v2_keys: details.as_ref().and_then(|d| d.v2_keys) };
    let id = plan::new_op_id(caasctl_core::timefmt::now());
    let plan = tokio::task::spawn_blocking(move || build(id, source, v2, tls, &members)).await??;

    if context.json() && args.dry_run {
        #[derive(serde::Serialize)]
        struct PlanOutput<'a> {
            plan: &'a Plan,
            steps: Vec<caasctl_restore::describe::StepView<'a>>,
            dry_run: bool,
        }
        let steps = plan.steps.iter().map(|s| caasctl_restore::describe::StepView::new(s, caasctl_core::Lang::En)).collect();
        print_json(&PlanOutput { plan: &plan, steps, dry_run: true });
        return Ok(Exit::Success);
    }
    if !context.json() {
        print_text(&render_plan(&plan, &manifest, context));
    }
    if args.dry_run {
        print_text(&format!("{}\n", context.tr("restore.plan.dry_run", &[])));
        return Ok(Exit::Success);
    }
    if let Some(exit) = refused(args.yes, context) {
        return Ok(exit);
    }

    let journal = Journal::create(&state_dir(), &plan)?;
    if context.progress && !context.json() {
        eprintln!("{}", context.tr("restore.run.journal", &[("path", &journal.path().display())]));
    }
    let result = apply(&plan, &journal, &HashSet::new(), ApplyOptions { parallel: args.parallel }, observer(context)).await;
    finish(&plan, &journal, result, context, None)
}

fn render_plan(plan: &Plan, manifest: &Manifest, context: &Context) -> String {
    let mut out = String::new();
    out.push_str(&context.tr("etcd_v2.plan.header", &[("id", &plan.id)]));
    out.push('\n');
    let size = human_bytes(manifest.snapshot.size);
    let path = plan.snapshot.path.display();
    out.push_str(&context.tr("etcd_v2.plan.archive", &[("path", &path), ("size", &size), ("sha256", &manifest.snapshot.sha256)]));
    out.push('\n');
    let v2_keys = manifest.v2.as_ref().and_then(|d| d.v2_keys).map(|k| k.to_string()).unwrap_or_else(|| "?".to_owned());
    out.push_str(&context.tr("etcd_v2.plan.backup", &[("id", &manifest.id), ("v2_keys", &v2_keys), ("revision", &manifest.revision), ("keys", &manifest.key_count)]));
    out.push_str("\n\n");
    out.push_str(&render_steps(plan, context, |_| None));
    out
}
