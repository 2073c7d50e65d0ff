//! `caasctl volume backup` and `caasctl volume backups`: pods' claim mounts into the backup
//! repository, several pods at a time, and the list of what is there.

use caasctl_core::Localize;
use caasctl_volume::backup::{backup_pod, BackupOutcome, BackupRequest, Transport};
use caasctl_volume::node::SshOptions;
use caasctl_volume::source::select_pods;
use caasctl_volume::store::{list, open_area};
use caasctl_volume::VolumeBackupError;
use futures::StreamExt;

use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

use super::args::{BackupArgs, BackupsArgs, Via};

/// One pod's result in the JSON output.
#[derive(Debug, serde::Serialize)]
struct PodResult {
    pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<BackupOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `volume backup`.
pub async fn run(args: &BackupArgs, context: &Context) -> anyhow::Result<Exit> {
    let client = caasctl_kube::connect(args.kube.kubeconfig.as_deref()).await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let (resolved, config) = args.repo.resolve()?;
    let recipients = args.encryption.recipients(&config)?;
    if resolved.repo.starts_with("s3://") && recipients.is_empty() && !context.quiet {
        eprintln!("caasctl: {}", context.tr("s3.warn.unencrypted", &[("repo", &resolved.repo)]));
    }
    let area = open_area(&resolved.repo, &resolved.s3())?;

    let mut pods = args.pods.clone();
    if let Some(selector) = &args.selector {
        for pod in select_pods(&client, &namespace, selector).await? {
            if !pods.contains(&pod) {
                pods.push(pod);
            }
        }
    }
    let transport = match args.via {
        Via::Exec => Transport::Exec,
        Via::Node => Transport::Node(SshOptions { target: args.ssh_target.clone(), port: args.ssh_port, options: args.ssh_option.clone(), pods_dirs: args.pods_dir.clone() }),
    };
    let requests: Vec<BackupRequest> = pods
        .iter()
        .map(|pod| BackupRequest {
            namespace: namespace.clone(),
            pod: pod.clone(),
            container: args.container.clone(),
            path: args.path.clone(),
            transport: transport.clone(),
            recipients: recipients.clone(),
        })
        .collect();

    let mut results: Vec<(String, Result<BackupOutcome, VolumeBackupError>)> = futures::stream::iter(requests)
        .map(|request| {
            let (client, area) = (client.clone(), area.clone());
            async move {
                progress(context, "vbackup.started", &[("pod", &request.pod)]);
                let result = backup_pod(&client, &area, &request).await;
                (request.pod, result)
            }
        })
        .buffer_unordered(usize::from(args.parallel))
        .collect()
        .await;
    results.sort_by_key(|(pod, _)| pods.iter().position(|p| p == pod));

    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let total = results.len();
    if total == 1 && failed == 1 {
        let (_, result) = results.remove(0);
        return Err(result.expect_err("one failure").into());
    }
    if context.json() {
        let report: Vec<PodResult> = results
            .into_iter()
            .map(|(pod, result)| match result {
                Ok(outcome) => PodResult { pod, backup: Some(outcome), error: None },
                Err(error) => PodResult { pod, backup: None, error: Some(error.message().render(context.lang)) },
            })
            .collect();
        print_json(&report);
    } else {
        for (pod, result) in &results {
            match result {
                Ok(outcome) => {
                    let m = &outcome.manifest;
                    let line = context.tr(
                        "vbackup.done",
                        &[("pod", pod), ("id", &m.id), ("files", &m.file_count), ("size", &human_bytes(m.total_bytes)), ("path", &outcome.location.display())],
                    );
                    print_text(&format!("{line}\n"));
                }
                Err(error) => {
                    let mut line = context.tr("vbackup.failed", &[("pod", pod), ("error", &error.message().render(context.lang))]);
                    if let Some(hint) = error.hint() {
                        line.push_str(&format!("\n  {}{}", context.tr("cli.hint.prefix", &[]), hint.render(context.lang)));
                    }
                    eprintln!("caasctl: {line}");
                }
            }
        }
    }
    Ok(match failed {
        0 => Exit::Success,
        n if n == total => Exit::Failure,
        _ => Exit::Partial,
    })
}

/// Runs `volume backups`.
pub async fn list_backups(args: &BackupsArgs, context: &Context) -> anyhow::Result<Exit> {
    let (resolved, _) = args.repo.resolve()?;
    let area = open_area(&resolved.repo, &resolved.s3())?;
    let entries = list(&area).await?;
    if context.json() {
        print_json(&entries);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("vbackup.col.id"), t("vbackup.col.state"), t("vbackup.col.time"), t("vbackup.col.source"), t("vbackup.col.files"), t("vbackup.col.size")]);
    for entry in &entries {
        match &entry.manifest {
            Some(m) => table.row(vec![
                entry.id.clone(),
                t("vbackup.complete"),
                m.finished_at.clone(),
                format!("{}/{}:{} ({})", m.source.namespace, m.source.pod, m.source.path, m.source.transport),
                m.file_count.to_string(),
                human_bytes(m.total_bytes),
            ]),
            None => table.row(vec![entry.id.clone(), t("vbackup.incomplete"), "-".into(), entry.problem.clone().unwrap_or_default(), "-".into(), "-".into()]),
        }
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

/// Writes a progress line on stderr unless progress is off.
fn progress(context: &Context, key: &'static str, args: &[(&'static str, &dyn std::fmt::Display)]) {
    if context.progress {
        eprintln!("{}", context.tr(key, args));
    }
}
