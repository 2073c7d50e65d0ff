//! `caasctl etcd inspect SNAPSHOT status|keys|get|k8s get|diff`: reading a snapshot or backup
//! offline, without etcd, to check it or to recover single keys and Kubernetes objects from it.

#[path = "etcd_inspect_args.rs"]
pub(crate) mod args;

use std::io::Write;
use std::path::{Path, PathBuf};

use caasctl_etcd::inspect::{self, diff, k8s, keys, status, InspectError};
use std::sync::Arc;

use caasctl_etcd::blob::Identities;
use caasctl_etcd::fetch::fetch_backup;
use caasctl_etcd::repo::RepoError;
use caasctl_etcd::s3::S3Options;
use caasctl_etcd::store::Repository;
use serde_json::{json, Value as Json};

use self::args::{DiffArgs, GetArgs, InspectArgs, InspectCommand, K8sCommand, K8sGetArgs, KeysArgs};
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

/// Runs the command.
pub async fn run(args: &InspectArgs, context: &Context) -> anyhow::Result<Exit> {
    let first = resolve(&args.snapshot, args, context).await?;
    let path = first.path.clone();
    match &args.command {
        InspectCommand::Status => run_status(&path, context),
        InspectCommand::Keys(keys_args) => run_keys(&path, keys_args, context),
        InspectCommand::Get(get_args) => run_get(&path, get_args, context),
        InspectCommand::K8s(K8sCommand::Get(get_args)) => run_k8s_get(&path, get_args, context),
        InspectCommand::Diff(diff_args) => {
            let other = resolve(&diff_args.other, args, context).await?;
            run_diff(&path, &other.path, diff_args, context)
        }
    }
}

/// A snapshot file to read, with the temporary directory of a fetched copy.
struct Snapshot {
    path: PathBuf,
    /// Directory of a backup fetched from S3 or decrypted; removed when the command ends.
    fetched: Option<PathBuf>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(dir) = self.fetched.take() {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %error, "failed to remove the fetched copy of the backup; remove it by hand");
            }
        }
    }
}

/// Finds the snapshot file a command-line value names: a file, a backup directory, an etcd data
/// directory, or a backup ID (or `latest`) in the repository. A backup in S3 or an encrypted one
/// is fetched (and decrypted) into a private temporary directory and checked first.
async fn resolve(value: &str, args: &InspectArgs, context: &Context) -> anyhow::Result<Snapshot> {
    let path = Path::new(value);
    if path.is_file() {
        return Ok(Snapshot { path: path.to_owned(), fetched: None });
    }
    if path.is_dir() {
        for inside in [caasctl_etcd::repo::SNAPSHOT, "member/snap/db", "snap/db"] {
            if path.join(inside).is_file() {
                return Ok(Snapshot { path: path.join(inside), fetched: None });
            }
        }
    }

    // A value with a slash is a path: a missing file is named as such, not looked up as an ID.
    if value.contains('/') {
        let source = std::io::Error::from_raw_os_error(libc::ENOENT);
        return Err(caasctl_etcd::EtcdError::ReadFile { path: path.to_owned(), source }.into());
    }
    let remote = args.repo.starts_with("s3://");
    // Opening a local repository creates it, so a missing one is reported before that.
    if !remote && !Path::new(&args.repo).is_dir() {
        return Err(RepoError::NotFound { id: value.to_owned(), repo: PathBuf::from(&args.repo) }.into());
    }
    let s3 = S3Options { endpoint: args.s3_endpoint.clone(), region: args.s3_region.clone(), path_style: args.s3_path_style };
    let repo = Repository::open(&args.repo, &s3)?;
    let entry = repo.get(value).await?;
    let manifest = entry.manifest.clone().expect("complete entries have manifests");
    if !remote && manifest.encryption.is_none() {
        let path = entry.path.join(&manifest.snapshot.file);
        // Reading a damaged backup is allowed, because salvaging a few keys may be the point,
        // but a warning names the hash mismatch.
        match caasctl_etcd::snapshot::hash_file(&path, &caasctl_core::NoProgress) {
            Ok(digest) if digest.file_sha256 == manifest.snapshot.sha256 => {}
            Ok(digest) => eprintln!("caasctl: {}", context.tr("inspect.warn.hash_mismatch", &[("id", &manifest.id), ("expected", &manifest.snapshot.sha256), ("actual", &digest.file_sha256)])),
            Err(error) => return Err(caasctl_etcd::EtcdError::ReadFile { path, source: error }.into()),
        }
        return Ok(Snapshot { path, fetched: None });
    }

    let identities = args.identity.as_deref().map(Identities::read).transpose()?.map(Arc::new);
    let dir = std::env::temp_dir().join(format!("caasctl-inspect-{}-{}", std::process::id(), manifest.id));
    let progress: Arc<dyn caasctl_core::Progress> = Arc::new(caasctl_core::NoProgress);
    let fetched = fetch_backup(&repo, &entry, identities, &dir, progress).await;
    match fetched {
        Ok(copy) => Ok(Snapshot { path: copy.snapshot, fetched: Some(dir) }),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(error.into())
        }
    }
}

fn prefixes(given: &[String]) -> Vec<String> {
    if given.is_empty() {
        k8s::DEFAULT_PREFIXES.iter().map(|p| p.to_string()).collect()
    } else {
        given.iter().map(|p| format!("/{}", p.trim_matches('/'))).collect()
    }
}

fn run_status(path: &Path, context: &Context) -> anyhow::Result<Exit> {
    let mut db = inspect::open(path)?;
    // The hash reads every page once, so none needs to stay resident after it is hashed.
    db.release_visited_pages(true);
    let result = status::status(&db, path)?;
    if context.json() {
        print_json(&result);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("inspect.col.hash"), t("inspect.col.revision"), t("inspect.col.total_keys"), t("inspect.col.total_size")]);
    table.row(vec![format!("{:08x}", result.hash), result.revision.to_string(), result.total_key.to_string(), human_bytes(result.total_size)]);
    let none = || "-".to_owned();
    let mut text = table.render();
    text.push_str(&format!(
        "{}\n",
        context.tr(
            "inspect.status.details",
            &[
                ("compacted", &result.compact_revision.map_or_else(none, |r| r.to_string())),
                ("index", &result.consistent_index.map_or_else(none, |i| i.to_string())),
                ("revisions", &result.revisions),
            ],
        )
    ));
    print_text(&text);
    Ok(Exit::Success)
}

fn run_keys(path: &Path, args: &KeysArgs, context: &Context) -> anyhow::Result<Exit> {
    let db = inspect::open(path)?;
    let found = keys::list(&db, path, args.prefix.as_deref().unwrap_or("").as_bytes())?;
    if context.json() {
        print_json(&found);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("inspect.col.key"), t("inspect.col.mod_revision"), t("inspect.col.version"), t("inspect.col.size")]);
    for info in &found {
        table.row(vec![info.key.clone(), info.mod_revision.to_string(), info.version.to_string(), human_bytes(info.value_size as u64)]);
    }
    print_text(&table.render());
    Ok(Exit::Success)
}

fn change_json(key: &str, change: &keys::KeyRevision) -> Json {
    json!({
        "key": key,
        "revision": change.revision,
        "deleted": change.deleted,
        "createRevision": change.create_revision,
        "version": change.version,
        "lease": change.lease,
        "value": String::from_utf8_lossy(&change.value),
        "valueBase64": inspect::k8s_proto::base64(&change.value),
    })
}

fn run_get(path: &Path, args: &GetArgs, context: &Context) -> anyhow::Result<Exit> {
    let db = inspect::open(path)?;
    let changes = keys::history(&db, path, args.key.as_bytes())?;
    if changes.is_empty() {
        return Err(InspectError::KeyNotFound { key: args.key.clone() }.into());
    }
    if args.all_revisions {
        if context.json() {
            print_json(&changes.iter().map(|c| change_json(&args.key, c)).collect::<Vec<_>>());
            return Ok(Exit::Success);
        }
        let t = |key| context.tr(key, &[]);
        let mut table = Table::new(vec![t("inspect.col.revision"), t("inspect.col.change"), t("inspect.col.version"), t("inspect.col.size")]);
        for change in &changes {
            let kind = if change.deleted { t("inspect.change.delete") } else { t("inspect.change.put") };
            table.row(vec![change.revision.main.to_string(), kind, change.version.to_string(), human_bytes(change.value.len() as u64)]);
        }
        print_text(&table.render());
        return Ok(Exit::Success);
    }

    let change = match args.rev {
        Some(at) => {
            if let Some(compacted) = status::compacted_revision(&db, path)? {
                if at < compacted {
                    return Err(InspectError::RevisionCompacted { requested: at, compacted }.into());
                }
            }
            keys::at_revision(&changes, at).ok_or_else(|| InspectError::KeyNotFound { key: args.key.clone() })?
        }
        None => changes.last().ok_or_else(|| InspectError::KeyNotFound { key: args.key.clone() })?,
    };
    if change.deleted {
        return Err(InspectError::KeyDeleted { key: args.key.clone(), revision: change.revision.main }.into());
    }
    if context.json() {
        print_json(&change_json(&args.key, change));
    } else {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&change.value);
        let _ = stdout.write_all(b"\n");
        let _ = stdout.flush();
    }
    Ok(Exit::Success)
}

fn run_k8s_get(path: &Path, args: &K8sGetArgs, context: &Context) -> anyhow::Result<Exit> {
    let db = inspect::open(path)?;
    let query = k8s::Query { resource: &args.resource, namespace: args.namespace.as_deref(), name: args.name.as_deref(), prefixes: prefixes(&args.prefix) };
    let (objects, failures) = k8s::find(&db, path, &query)?;
    for failure in &failures {
        eprintln!("caasctl: {}", context.tr("inspect.k8s.skipped", &[("reason", &caasctl_core::Localize::message(failure).render(context.lang))]));
    }
    if objects.is_empty() {
        if let Some(failure) = failures.into_iter().next() {
            return Err(failure.into());
        }
        let any = || "*".to_owned();
        return Err(InspectError::NoObjects {
            resource: args.resource.clone(),
            namespace: args.namespace.clone().unwrap_or_else(any),
            name: args.name.clone().unwrap_or_else(any),
        }
        .into());
    }
    let mut items = Vec::with_capacity(objects.len());
    for stored in objects {
        if let Some(note) = &stored.note {
            eprintln!("caasctl: {}", context.tr("inspect.k8s.note", &[("key", &stored.key), ("note", note)]));
        }
        let mut object = stored.object;
        if args.clean {
            k8s::clean(&mut object);
        }
        items.push(object);
    }
    let document = if items.len() == 1 { items.remove(0) } else { json!({"apiVersion": "v1", "kind": "List", "items": items}) };
    if context.json() {
        print_json(&document);
    } else {
        print_text(&serde_yaml::to_string(&document)?);
    }
    Ok(if failures.is_empty() { Exit::Success } else { Exit::Partial })
}

fn run_diff(a: &Path, b: &Path, args: &DiffArgs, context: &Context) -> anyhow::Result<Exit> {
    let db_a = inspect::open(a)?;
    let db_b = inspect::open(b)?;
    let result = diff::diff((&db_a, a), (&db_b, b), &prefixes(&args.prefix))?;

    if context.json() {
        print_json(&result);
        return Ok(Exit::Success);
    }
    let mut text = format!(
        "{}\n",
        context.tr(
            "inspect.diff.summary",
            &[("added", &result.added), ("removed", &result.removed), ("changed", &result.changed), ("keys_a", &result.keys_a), ("keys_b", &result.keys_b)],
        )
    );

    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("inspect.col.resource"), t("inspect.col.namespace"), t("inspect.col.added"), t("inspect.col.removed"), t("inspect.col.changed")]);
    let dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    for group in &result.groups {
        let resource = if group.group.prefix.is_empty() { t("inspect.diff.other_keys") } else { format!("{}/{}", group.group.prefix, group.group.resource) };
        table.row(vec![
            resource,
            dash(&group.group.namespace),
            group.changes.added.len().to_string(),
            group.changes.removed.len().to_string(),
            group.changes.changed.len().to_string(),
        ]);
    }

    if !result.groups.is_empty() {
        text.push('\n');
        text.push_str(&table.render());
        text.push('\n');
        for group in &result.groups {
            let marked = [("+", &group.changes.added), ("-", &group.changes.removed), ("~", &group.changes.changed)];
            for (mark, list) in marked {
                for key in list.iter() {
                    text.push_str(&format!("{mark} {key}\n"));
                }
            }
        }
    }
    print_text(&text);
    Ok(Exit::Success)
}
