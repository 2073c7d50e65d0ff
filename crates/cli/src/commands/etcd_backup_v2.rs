//! `caasctl etcd backup --api 2`: the v2 backup of one member's data dir, taken while that
//! member's etcd is stopped through the service the cluster file names, and stored in the
//! repository with a manifest.


use caasctl_restore::cluster::EtcdSection;
use caasctl_restore::v2::backup::{run_v2_backup, V2BackupRequest};
use clap::Args;

use crate::args::BackupArgs;
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text};
use crate::Exit;

/// The options `etcd backup` takes for the v2 backup.
#[derive(Debug, Args)]
pub struct V2BackupArgs {
    /// etcd API of the backup: 3 streams a v3 snapshot; 2 backs up a stopped member's data dir with etcdctl backup.
    #[arg(id = "backup_api", long = "api", value_name = "VERSION", value_parser = ["2", "3"], default_value = "3")]
    pub api: String,

    /// With --api 2: member whose data dir to back up; default the first member of the cluster file.
    #[arg(id = "backup_member", long = "member", value_name = "NAME", requires = "backup_cluster")]
    pub member: Option<String>,
}

/// Runs the v2 backup.
pub async fn run(args: &BackupArgs, context: &Context) -> anyhow::Result<Exit> {
    let file = args.cluster.as_ref().expect("clap requires --cluster with --api 2");
    let section = EtcdSection::load(file)?;
    let (resolved, _config) = args.repo.resolve()?;
    let request = V2BackupRequest { section, member: args.v2.member.clone(), repo: resolved.repo.clone(), s3: resolved.s3() };
    if context.progress && !context.json() {
        let member = args.v2.member.clone().unwrap_or_else(|| request.section.members[0].name.clone());
        eprintln!("{}", context.tr("etcd_v2.backup.stopping", &[("member", &member)]));
    }
    let outcome = run_v2_backup(&request).await?;

    if context.json() {
        print_json(&outcome.manifest);
        return Ok(Exit::Success);
    }
    let m = &outcome.manifest;
    let v2_keys = m.v2.as_ref().and_then(|d| d.v2_keys).map(|k| k.to_string()).unwrap_or_else(|| "?".to_owned());
    let stopped = format!("{:.1}", outcome.stopped_seconds);
    let lines = [
        context.tr("backup.done", &[("id", &m.id), ("path", &outcome.path.display())]),
        context.tr("etcd_v2.backup.source", &[("name", &m.source_member.name), ("seconds", &stopped)]),
        context.tr("etcd_v2.backup.size", &[("size", &human_bytes(m.snapshot.size)), ("v2_keys", &v2_keys), ("revision", &m.revision), ("keys", &m.key_count)]),
        context.tr("backup.sha256", &[("sha256", &m.snapshot.sha256)]),
    ];
    print_text(&(lines.join("\n") + "\n"));
    Ok(Exit::Success)
}
