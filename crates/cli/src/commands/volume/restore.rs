//! `caasctl volume restore`: a volume backup back into a pod or a local directory after its
//! archive was checked. The plan is printed first, and `--yes` applies it.

use std::sync::Arc;

use caasctl_etcd::blob::Identities;
use caasctl_volume::exec::ContainerRef;
use caasctl_volume::restore::{check_backup, plan_dir, plan_pod, restore_dir, restore_pod, RestorePlan, RestoreTarget};
use caasctl_volume::source::find_mount;
use caasctl_volume::store::{get, open_area};

use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text};
use crate::Exit;

use super::args::RestoreArgs;

/// JSON result of `volume restore`: `{plan, applied}`.
#[derive(Debug, serde::Serialize)]
struct RestoreReport<'a> {
    plan: &'a RestorePlan,
    applied: bool,
}

/// Runs `volume restore`.
pub async fn run(args: &RestoreArgs, context: &Context) -> anyhow::Result<Exit> {
    let (resolved, _) = args.repo.resolve()?;
    let area = open_area(&resolved.repo, &resolved.s3())?;
    let manifest = get(&area, &args.backup).await?;
    let identities = args.identity.as_deref().map(Identities::read).transpose()?.map(Arc::new);
    check_backup(&area, &manifest, identities.as_deref()).await?;

    let (plan, client) = match (&args.to_dir, &args.to_pod) {
        (Some(dir), _) => (plan_dir(&manifest, dir)?, None),
        (None, Some(pod)) => {
            let client = caasctl_kube::connect(args.kube.kubeconfig.as_deref()).await?;
            let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
            let mount = find_mount(&client, &namespace, pod, args.container.as_deref(), args.path.as_deref()).await?;
            let target = ContainerRef { namespace, pod: pod.clone(), container: mount.container.clone() };
            (plan_pod(&client, &manifest, &target, &mount.path).await?, Some(client))
        }
        (None, None) => unreachable!("clap requires --to-pod or --to-dir"),
    };
    if !context.json() {
        print_text(&render_plan(&plan, context));
    }
    if !args.yes {
        if context.json() {
            print_json(&RestoreReport { plan: &plan, applied: false });
        }
        eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("vbackup.restore.needs_yes", &[]));
        return Ok(Exit::Usage);
    }

    match &client {
        Some(client) => restore_pod(client, &area, &manifest, &plan, identities.clone()).await?,
        None => restore_dir(&area, &manifest, &plan, identities.as_deref()).await?,
    }
    if context.json() {
        print_json(&RestoreReport { plan: &plan, applied: true });
    } else {
        print_text(&format!("{}\n", context.tr("vbackup.restore.done", &[("id", &plan.id), ("files", &plan.files), ("target", &target_text(&plan.target))])));
    }
    Ok(Exit::Success)
}

fn target_text(target: &RestoreTarget) -> String {
    match target {
        RestoreTarget::Dir { path } => path.display().to_string(),
        RestoreTarget::Pod { namespace, pod, container, path } => format!("{namespace}/{pod} ({container}):{path}"),
    }
}

fn render_plan(plan: &RestorePlan, context: &Context) -> String {
    let mut lines = vec![
        context.tr("vbackup.restore.plan", &[("id", &plan.id), ("target", &target_text(&plan.target))]),
        context.tr("vbackup.restore.checked", &[("files", &plan.files), ("size", &human_bytes(plan.bytes))]),
    ];
    match (&plan.moved_to, plan.existing.as_str()) {
        (Some(aside), _) => lines.push(context.tr("vbackup.restore.move_aside", &[("path", &aside)])),
        (None, "missing") => lines.push(context.tr("vbackup.restore.create", &[])),
        _ => lines.push(context.tr("vbackup.restore.empty", &[])),
    }
    lines.join("\n") + "\n"
}
