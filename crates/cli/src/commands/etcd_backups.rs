//! `caasctl etcd backups list`, `verify` and `keygen`; verify records each result beside the
//! manifest, where `prune` reads it.

use caasctl_core::timefmt;
use caasctl_etcd::blob::{generate_identity, Identities};
use caasctl_etcd::repo::{VerifyRecord, VerifyReport};

use crate::args::{KeygenArgs, RepoArgs, VerifyArgs};
use crate::context::Context;
use crate::errors::CliError;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

/// Lists backups.
pub async fn list(args: &RepoArgs, context: &Context) -> anyhow::Result<Exit> {
    let repo = args.resolve()?.0.open_existing()?;
    let entries = repo.list().await?;
    if context.json() {
        print_json(&entries);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![
        t("backups.col.id"),
        t("backups.col.state"),
        t("backups.col.verified"),
        t("backups.col.encrypted"),
        t("backups.col.time"),
        t("backups.col.revision"),
        t("backups.col.keys"),
        t("backups.col.size"),
        t("backups.col.source"),
    ]);
    for entry in &entries {
        let state = if entry.state == "complete" { t("backups.complete") } else { t("backups.incomplete") };
        // The last `backups verify` result: a failed one is what an operator must see first.
        let verified = match &entry.verification {
            None => "-".to_owned(),
            Some(record) if !record.ok => t("backups.verify_failed"),
            Some(record) if record.scope == "ciphertext" => t("backups.verify_ciphertext"),
            Some(_) => t("backups.verify_ok"),
        };
        match &entry.manifest {
            Some(m) => table.row(vec![
                entry.id.clone(),
                state,
                verified,
                if m.encryption.is_some() { t("backups.yes") } else { t("backups.no") },
                m.finished_at.clone(),
                m.revision.to_string(),
                m.key_count.to_string(),
                human_bytes(m.snapshot.size),
                m.source_member.endpoint.clone(),
            ]),
            None => table.row(vec![entry.id.clone(), state, "-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into(), entry.problem.clone().unwrap_or_default()]),
        }
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

/// Verifies one backup, or every complete one.
pub async fn verify(args: &VerifyArgs, context: &Context) -> anyhow::Result<Exit> {
    let repo = args.repo.resolve()?.0.open_existing()?;
    let identities = args.identity.as_deref().map(Identities::read).transpose()?;
    let targets = match &args.id {
        Some(id) => vec![repo.get(id).await?],
        None => repo.list().await?.into_iter().filter(|e| e.state == "complete").collect(),
    };
    if targets.is_empty() {
        return Err(CliError::NoBackups { repo: repo.display() }.into());
    }

    let progress = crate::progress::reporter(context);
    let mut reports: Vec<VerifyReport> = Vec::new();
    for entry in &targets {
        let report = repo.verify(entry, identities.as_ref(), progress.as_ref()).await?;
        // A key that opens nothing tells nothing about the backup, so report it and record nothing.
        if report.wrong_identity {
            let path = args.identity.clone().unwrap_or_default();
            return Err(caasctl_etcd::blob::KeyError::WrongIdentity { path, id: report.id.clone() }.into());
        }
        let record = VerifyRecord { checked_at: timefmt::rfc3339(timefmt::now()), ok: report.ok, scope: report.scope.to_owned(), problems: report.problems.clone() };
        if let Err(error) = repo.record_verification(entry, &record).await {
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

/// Writes a new age identity file and prints its public key: on stdout, so that it can be piped
/// into a recipients file, with the advice on stderr.
pub fn keygen(args: &KeygenArgs, context: &Context) -> anyhow::Result<Exit> {
    let recipient = generate_identity(&args.identity)?;
    if context.json() {
        print_json(&serde_json::json!({ "identity": args.identity, "recipient": recipient }));
    } else {
        print_text(&format!("{recipient}\n"));
    }
    eprintln!("{}", context.tr("keygen.written", &[("path", &args.identity.display()), ("recipient", &recipient)]));
    Ok(Exit::Success)
}
