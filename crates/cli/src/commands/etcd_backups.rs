//! `caasctl etcd backups list` and `verify`; verify records each result beside the manifest, where
//! `prune` reads it.

use caasctl_core::timefmt;
use caasctl_etcd::blob::Identities;
use caasctl_etcd::repo::{LocalRepo, VerifyRecord, VerifyReport};
use caasctl_etcd::verify::verify_stored;

use crate::args::{RepoArgs, VerifyArgs};
use crate::context::Context;
use crate::errors::CliError;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

/// Lists backups.
pub fn list(args: &RepoArgs, context: &Context) -> anyhow::Result<Exit> {
    let repo = LocalRepo::open(&args.resolve()?.0.local_dir()?)?;
    let entries = repo.list()?;
    if context.json() {
        print_json(&entries);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("backups.col.id"), t("backups.col.state"), t("backups.col.time"), t("backups.col.revision"), t("backups.col.keys"), t("backups.col.size"), t("backups.col.source")]);
    for entry in &entries {
        let state = if entry.state == "complete" { t("backups.complete") } else { t("backups.incomplete") };
        match &entry.manifest {
            Some(m) => table.row(vec![
                entry.id.clone(),
                state,
                m.finished_at.clone(),
                m.revision.to_string(),
                m.key_count.to_string(),
                human_bytes(m.snapshot.size),
                m.source_member.endpoint.clone(),
            ]),
            None => table.row(vec![entry.id.clone(), state, "-".into(), "-".into(), "-".into(), "-".into(), entry.problem.clone().unwrap_or_default()]),
        }
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

/// Verifies one backup, or every complete one.
pub fn verify(args: &VerifyArgs, context: &Context) -> anyhow::Result<Exit> {
    let dir = args.repo.resolve()?.0.local_dir()?;
    let repo = LocalRepo::open(&dir)?;
    let identities = args.identity.as_deref().map(Identities::read).transpose()?;
    let targets = match &args.id {
        Some(id) => vec![repo.get(id)?],
        None => repo
            .list()?
            .into_iter()
            .filter_map(|e| e.manifest.map(|m| (e.path, m)))
            .collect(),
    };
    if targets.is_empty() {
        return Err(CliError::NoBackups { repo: dir.display().to_string() }.into());
    }

    let progress = crate::progress::reporter(context);
    let mut reports: Vec<VerifyReport> = Vec::new();
    for (path, manifest) in &targets {
        let open = |file: &str| -> std::io::Result<Box<dyn std::io::Read + Send>> { Ok(Box::new(std::fs::File::open(path.join(file))?)) };
        let report = verify_stored(&open, manifest, identities.as_ref(), progress.as_ref());
        let record = VerifyRecord { checked_at: timefmt::rfc3339(timefmt::now()), ok: report.ok, scope: report.scope.to_owned(), problems: report.problems.clone() };
        if let Err(error) = repo.record_verification(path, &record) {
            tracing::warn!(id = %report.id, error = %error, "failed to record the verification result");
        }
        reports.push(report);
    }
    if context.json() {
        print_json(&reports);
    } else {
        for report in &reports {
            if report.ok && report.scope == "ciphertext" {
                print_text(&format!("{}\n", context.tr("verify.ok_ciphertext", &[("id", &report.id), ("size", &human_bytes(report.bytes))])));
            } else if report.ok {
                print_text(&format!("{}\n", context.tr("verify.ok", &[("id", &report.id), ("size", &human_bytes(report.bytes))])));
            } else {
                print_text(&format!("{}\n", context.tr("verify.failed", &[("id", &report.id)])));
                for message in &report.messages {
                    print_text(&format!("  {}\n", message.render(context.lang)));
                }
            }
        }
    }
    let failed: Vec<String> = reports.iter().filter(|r| !r.ok).map(|r| r.id.clone()).collect();
    if failed.is_empty() {
        Ok(Exit::Success)
    } else {
        Err(CliError::VerifyFailed { ids: failed }.into())
    }
}
