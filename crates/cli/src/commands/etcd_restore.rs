//! `caasctl etcd restore`: restores one member on this host, or every member of a cluster file,
//! from a repository backup or a snapshot file. The snapshot is checked first; then the plan is
//! printed, and applied with a journal only after `--yes` or a terminal confirmation.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use caasctl_core::Message;
use caasctl_etcd::blob::Identities;
use caasctl_etcd::fetch::fetch_backup;
use caasctl_etcd::repo::Manifest;
use caasctl_etcd::store::Repository;
use caasctl_restore::apply::{apply, ApplyOptions, Observer, StepEvent};
use caasctl_restore::check::{check_snapshot, HashStatus, SnapshotCheck};
use caasctl_restore::cluster::{EtcdSection, DEFAULT_TOKEN};
use caasctl_restore::describe::{describe, StepView};
use caasctl_restore::journal::{state_dir, Journal};
use caasctl_restore::plan::{self, Action, ClientTls, Host, MemberTarget, Plan, SnapshotSource};
use clap::Args;

use crate::commands::repo_opts::RepoArgs;
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text};
use crate::Exit;

/// `etcd restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Backup ID in the repository (latest for the newest) or a snapshot file path.
    #[arg(id = "restore_backup", value_name = "BACKUP")]
    pub backup: String,

    #[command(flatten)]
    pub repo: RepoArgs,

    /// age identity file (AGE-SECRET-KEY-1...) that decrypts an encrypted backup before it is restored.
    #[arg(id = "restore_identity", long = "identity", value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Cluster file (caasctl.toml) listing each member's host, service, URLs and data dir.
    #[arg(id = "restore_cluster", long = "cluster", value_name = "FILE",
          conflicts_with_all = ["restore_name", "restore_initial_cluster", "restore_peer_url", "restore_data_dir", "restore_token"])]
    pub cluster: Option<PathBuf>,

    /// Member name (--name of etcd).
    #[arg(id = "restore_name", long = "name", value_name = "NAME", required_unless_present = "restore_cluster")]
    pub name: Option<String>,

    /// NAME=PEER_URL,... of the restored cluster; default this member alone.
    #[arg(id = "restore_initial_cluster", long = "initial-cluster", value_name = "NAME=URL,...")]
    pub initial_cluster: Option<String>,

    /// Cluster token of the restored cluster.
    #[arg(id = "restore_token", long = "initial-cluster-token", value_name = "TOKEN")]
    pub token: Option<String>,

    /// Peer URL of this member (--initial-advertise-peer-urls of etcd).
    #[arg(id = "restore_peer_url", long = "initial-advertise-peer-urls", value_name = "URL", required_unless_present = "restore_cluster")]
    pub peer_url: Option<String>,

    /// Data dir to write; an existing non-empty one is moved aside, never deleted.
    #[arg(id = "restore_data_dir", long = "data-dir", value_name = "DIR", required_unless_present = "restore_cluster")]
    pub data_dir: Option<PathBuf>,

    /// Accept a snapshot without, or with a mismatching, integrity hash (such as a db copied from a data dir).
    #[arg(id = "restore_skip_hash_check", long = "skip-hash-check")]
    pub skip_hash_check: bool,

    /// Path of etcdutl (3.5) or etcdctl (3.4) to restore with; default etcdutl, then etcdctl, on PATH.
    #[arg(id = "restore_engine", long = "etcdutl", value_name = "PATH")]
    pub engine: Option<String>,

    /// With --cluster: write the members' data dirs only; stop, start and check nothing.
    #[arg(id = "restore_no_start", long = "no-start", requires = "restore_cluster")]
    pub no_start: bool,

    /// Maximum members restored at the same time.
    #[arg(id = "restore_parallel", long = "parallel", value_name = "N", default_value_t = 8)]
    pub parallel: usize,

    /// Print the plan and stop.
    #[arg(id = "restore_dry_run", long = "dry-run", conflicts_with = "restore_yes")]
    pub dry_run: bool,

    /// Apply without asking.
    #[arg(id = "restore_yes", long = "yes", short = 'y')]
    pub yes: bool,
}

/// The plan as printed with `-o json`.
#[derive(serde::Serialize)]
struct PlanOutput<'a> {
    plan: &'a Plan,
    check: &'a SnapshotCheck,
    steps: Vec<StepView<'a>>,
    note: String,
    dry_run: bool,
    journal: Option<String>,
    ok: Option<bool>,
}

/// Runs the command.
pub async fn run(args: &RestoreArgs, context: &Context) -> anyhow::Result<Exit> {
    if let Some((dir, manifest)) = super::etcd_restore_v2::find_v2_backup(args) {
        return super::etcd_restore_v2::run(args, context, dir, manifest).await;
    }
    let Resolved { source, check, backup, fetched } = resolve_snapshot(args, context).await?;
    let (members, tls) = match &args.cluster {
        Some(file) => {
            let mut section = EtcdSection::parse(file)?;
            if let Some((dir, manifest)) = &backup {
                section.fill_from_etcd_confs(&caasctl_restore::conf::member_confs(dir, manifest));
            }
            section.complete(file)?;
            let tls = ClientTls { cacert: section.cacert.clone(), cert: section.cert.clone(), key: section.key.clone() };
            let mut members = MemberTarget::from_cluster(&section);
            if args.no_start {
                for member in &mut members {
                    member.service = None;
                    member.client_url = None;
                }
            }
            (members, tls)
        }
        None => {
            let member = single_member(args);
            refuse_locked_data_dir(&member.data_dir)?;
            (vec![member], ClientTls::default())
        }
    };
    let id = plan::new_op_id(caasctl_core::timefmt::now());
    let plan = tokio::task::spawn_blocking(move || plan::build(id, source, tls, &members)).await??;
    let note = engine_note(&plan, context);

    if context.json() && args.dry_run {
        let steps = plan.steps.iter().map(|s| StepView::new(s, caasctl_core::Lang::En)).collect();
        print_json(&PlanOutput { plan: &plan, check: &check, steps, note, dry_run: true, journal: None, ok: None });
        remove_fetched(fetched.as_deref());
        return Ok(Exit::Success);
    }
    if !context.json() {
        print_text(&render_plan(&plan, &check, &note, context));
    }
    if args.dry_run {
        print_text(&format!("{}\n", context.tr("restore.plan.dry_run", &[])));
        remove_fetched(fetched.as_deref());
        return Ok(Exit::Success);
    }
    if let Some(exit) = refused(args.yes, context) {
        return Ok(exit);
    }

    let state = state_dir();
    let journal = Journal::create(&state, &plan)?;
    if context.progress && !context.json() {
        eprintln!("{}", context.tr("restore.run.journal", &[("path", &journal.path().display())]));
    }
    // The snapshot was checked before the plan was printed, so the fresh run records that check
    // instead of reading the file again; a resumed run checks it anew.
    let mut done = HashSet::new();
    if let Some(step) = plan.steps.iter().find(|s| matches!(s.action, Action::VerifySnapshot { .. })) {
        journal.step_started(&step.id)?;
        journal.step_finished(&step.id, Some(format!("checked before the plan was printed: sha256 {}, hash {:?}", check.sha256, check.hash)))?;
        done.insert(step.id.clone());
    }
    let result = apply(&plan, &journal, &done, ApplyOptions { parallel: args.parallel }, observer(context)).await;
    // The fetched copy stays after a failure, because `ops resume` restores from it.
    if result.is_ok() {
        remove_fetched(fetched.as_deref());
    }
    finish(&plan, &journal, result, context, Some(&check))
}

/// Removes the local copy of a fetched backup. It is a decrypted copy of every Secret in the
/// cluster, and the backup itself stays in its repository.
fn remove_fetched(dir: Option<&Path>) {
    let Some(dir) = dir else { return };
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::info!(dir = %dir.display(), "removed the fetched copy of the backup"),
        Err(error) => tracing::warn!(dir = %dir.display(), error = %error, "failed to remove the fetched copy of the backup; remove it by hand"),
    }
}

/// Prints the outcome of a run and maps it to an exit status; shared with `ops resume`.
pub fn finish(plan: &Plan, journal: &Journal, result: Result<(), caasctl_restore::RestoreError>, context: &Context, check: Option<&SnapshotCheck>) -> anyhow::Result<Exit> {
    if context.json() {
        #[derive(serde::Serialize)]
        struct RunOutput<'a> {
            id: &'a str,
            journal: String,
            ok: bool,
            error: Option<String>,
            check: Option<&'a SnapshotCheck>,
        }
        print_json(&RunOutput {
            id: &plan.id,
            journal: journal.path().display().to_string(),
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| caasctl_restore::error_chain(e)),
            check,
        });
    }
    match result {
        Ok(()) => {
            if !context.json() {
                print_text(&format!("{}\n", context.tr("restore.run.done", &[("id", &plan.id)])));
            }
            Ok(Exit::Success)
        }
        Err(error) => Err(anyhow::Error::new(error).context(format!("operation {}", plan.id))),
    }
}

/// Builds the step-event printer: a line per event on stderr, nothing with `-q` or JSON output.
pub fn observer(context: &Context) -> Observer {
    let context = context.clone();
    Arc::new(move |event: &StepEvent| {
        if !context.progress || context.json() {
            return;
        }
        let line = match event {
            StepEvent::Skipped { step } => context.tr("restore.run.skipped", &[("step", step)]),
            StepEvent::Started { step } => context.tr("restore.run.started", &[("step", step)]),
            StepEvent::Finished { step, note, elapsed_ms } => {
                let seconds = format!("{:.1}", *elapsed_ms as f64 / 1000.0);
                let note = note.as_ref().map(|n| format!(": {n}")).unwrap_or_default();
                context.tr("restore.run.finished", &[("step", step), ("seconds", &seconds), ("note", &note)])
            }
            StepEvent::Failed { step, error } => context.tr("restore.run.failed", &[("step", step), ("error", error)]),
        };
        eprintln!("{line}");
    })
}

/// A backup directory with its manifest, for reading the archived etcd.conf files.
type Backup = Option<(PathBuf, Manifest)>;

/// The snapshot to restore, after its checks.
struct Resolved {
    source: SnapshotSource,
    check: SnapshotCheck,
    backup: Backup,
    /// Local copy of a backup fetched from S3 or decrypted, to remove after a successful run.
    fetched: Option<PathBuf>,
}

/// Finds the snapshot (a file path, or a backup of the repository) and checks it. A backup in S3
/// or an encrypted one is fetched (and decrypted) into the state directory first, and every hash
/// is checked there, before any data dir is touched.
async fn resolve_snapshot(args: &RestoreArgs, context: &Context) -> anyhow::Result<Resolved> {
    let given = Path::new(&args.backup);
    let (path, backup, fetched) = if given.is_file() || args.backup.contains('/') {
        (given.to_owned(), None, None)
    } else {
        let (resolved, _) = args.repo.resolve()?;
        let repo = resolved.open()?;
        let entry = repo.get(&args.backup).await?;
        let manifest = entry.manifest.clone().expect("complete entries have manifests");
        let encrypted = manifest.encryption.is_some();
        if matches!(repo, Repository::Local(_)) && !encrypted {
            (entry.path.join(&manifest.snapshot.file), Some((entry.path.clone(), manifest)), None)
        } else {
            let identities = args.identity.as_deref().map(Identities::read).transpose()?.map(Arc::new);
            let dest = state_dir().join("fetched").join(&manifest.id);
            let progress: Arc<dyn caasctl_core::Progress> = Arc::from(crate::progress::reporter(context));
            let copy = fetch_backup(&repo, &entry, identities, &dest, progress).await?;
            (copy.snapshot.clone(), Some((copy.dir.clone(), copy.manifest)), Some(copy.dir))
        }
    };
    let manifest = backup.as_ref().map(|(_, m)| m);
    let backup_id = manifest.map(|m| m.id.clone());
    let manifest_sha256 = manifest.map(|m| m.snapshot.sha256.clone());
    let revision = manifest.map(|m| m.revision);
    let key_count = manifest.map(|m| m.key_count);
    let path = std::path::absolute(&path).with_context(|| format!("invalid snapshot path {}", path.display()))?;
    let progress = crate::progress::reporter(context);
    let check = check_snapshot(&path, manifest_sha256.as_deref(), args.skip_hash_check, progress.as_ref())?;
    let source = SnapshotSource { path, backup_id, manifest_sha256, sha256: check.sha256.clone(), revision, key_count, skip_hash_check: args.skip_hash_check };
    Ok(Resolved { source, check, backup, fetched })
}

/// Rejects a data dir whose backend file a running etcd has locked. bbolt keeps an exclusive
/// `flock` on `member/snap/db` while etcd runs. Moving the directory from under it would split the
/// member off into a cluster of its own when it restarts.
fn refuse_locked_data_dir(data_dir: &str) -> Result<(), crate::errors::CliError> {
    use std::os::fd::AsRawFd;

    let db = Path::new(data_dir).join("member/snap/db");
    let Ok(file) = std::fs::File::open(&db) else { return Ok(()) };
    // SAFETY: flock on a descriptor this function owns; the lock ends when `file` is dropped.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0;
    if locked {
        return Err(crate::errors::CliError::DataDirInUse { path: data_dir.to_owned() });
    }
    Ok(())
}

fn single_member(args: &RestoreArgs) -> MemberTarget {
    let name = args.name.clone().unwrap_or_default();
    let peer_url = args.peer_url.clone().unwrap_or_default();
    let data_dir = args.data_dir.clone().unwrap_or_default();
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir).display().to_string();
    MemberTarget {
        initial_cluster: args.initial_cluster.clone().unwrap_or_else(|| format!("{name}={peer_url}")),
        token: args.token.clone().unwrap_or_else(|| DEFAULT_TOKEN.to_owned()),
        restore_peer_url: peer_url.clone(),
        peer_url,
        name,
        host: Host::Local,
        data_dir: data_dir.trim_end_matches('/').to_owned(),
        engine: args.engine.clone(),
        owner: None,
        service: None,
        client_url: None,
    }
}

fn engine_note(plan: &Plan, context: &Context) -> String {
    let mut engines: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::RestoreToTemp { engine, .. } => Some(engine.path.clone()),
            _ => None,
        })
        .collect();
    engines.sort();
    engines.dedup();
    context.tr("restore.plan.note_engine", &[("engines", &engines.join(", "))])
}

fn hash_label(hash: HashStatus) -> Message {
    Message::new(match hash {
        HashStatus::Verified => "restore.hash.verified",
        HashStatus::NoHashSkipped => "restore.hash.no_hash_skipped",
        HashStatus::MismatchSkipped => "restore.hash.mismatch_skipped",
    })
}

/// Renders the plan for people: a header, the engine note, and each step with its host, check
/// and undo.
pub fn render_plan(plan: &Plan, check: &SnapshotCheck, note: &str, context: &Context) -> String {
    let mut out = String::new();
    out.push_str(&context.tr("restore.plan.header", &[("id", &plan.id)]));
    out.push('\n');
    let size = human_bytes(check.size);
    let hash = hash_label(check.hash).render(context.lang);
    let path = plan.snapshot.path.display();
    out.push_str(&context.tr("restore.plan.snapshot", &[("path", &path), ("size", &size), ("sha256", &check.sha256), ("hash", &hash)]));
    out.push('\n');
    if let (Some(id), Some(revision), Some(keys)) = (&plan.snapshot.backup_id, plan.snapshot.revision, plan.snapshot.key_count) {
        out.push_str(&context.tr("restore.plan.backup", &[("id", id), ("revision", &revision), ("keys", &keys)]));
        out.push('\n');
    }
    out.push_str(note);
    out.push_str("\n\n");
    out.push_str(&render_steps(plan, context, |_| None));
    out
}

/// Renders the steps, each with an optional status word from `status`.
pub fn render_steps(plan: &Plan, context: &Context, status: impl Fn(&str) -> Option<String>) -> String {
    let what = context.tr("restore.plan.what", &[]);
    let check = context.tr("restore.plan.check", &[]);
    let undo = context.tr("restore.plan.undo", &[]);
    let mut out = String::new();
    for (index, step) in plan.steps.iter().enumerate() {
        let text = describe(step);
        let state = status(&step.id).map(|s| format!("  [{s}]")).unwrap_or_default();
        out.push_str(&format!("{:>3}. {}  @{}{state}\n", index + 1, step.id, step.host.label()));
        out.push_str(&format!("     {what}: {}\n", text.what.render(context.lang)));
        out.push_str(&format!("     {check}: {}\n", text.check.render(context.lang)));
        out.push_str(&format!("     {undo}: {}\n", text.undo.render(context.lang)));
    }
    out
}

/// Asks for approval unless `--yes` was given. Returns the exit code to stop with when the
/// operator declined or no terminal could ask.
pub(crate) fn refused(yes: bool, context: &Context) -> Option<Exit> {
    if yes {
        return None;
    }
    match confirm(context) {
        Some(true) => None,
        Some(false) => {
            eprintln!("{}", context.tr("restore.plan.aborted", &[]));
            Some(Exit::Failure)
        }
        None => {
            eprintln!("caasctl: {}{}", context.tr("cli.error.prefix", &[]), context.tr("restore.plan.needs_yes", &[]));
            Some(Exit::Usage)
        }
    }
}

/// Asks at the terminal; `None` when stdin is not a terminal.
pub(crate) fn confirm(context: &Context) -> Option<bool> {
    if !context.stdin_tty {
        return None;
    }
    eprint!("{}", context.tr("restore.plan.confirm", &[]));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    let answer = answer.trim().to_lowercase();
    Some(answer == "y" || answer == "yes" || answer == "是")
}
