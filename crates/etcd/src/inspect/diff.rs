//! `inspect diff`: the keys added, removed and changed between two snapshots, grouped by
//! Kubernetes resource and namespace.
//!
//! Two snapshots are compared by their latest state: a key is changed when its value differs.
//! Revisions are not compared, because a cluster restored from a backup writes the same objects at
//! new revisions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use caasctl_bbolt::Db;

use super::keyvalue::{latest_state, Record};
use super::InspectError;

/// The position of a key in the Kubernetes key layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Group {
    /// Key prefix, such as `/registry`; empty for keys outside the known prefixes.
    pub prefix: String,
    /// Storage path of the resource, such as `configmaps` or `services/specs`.
    pub resource: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
}

/// Splits a key into its group and the object name.
pub fn classify(key: &str, prefixes: &[String]) -> (Group, String) {
    let found = prefixes.iter().find_map(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        Some((prefix, key.strip_prefix(prefix)?.strip_prefix('/')?))
    });
    let Some((prefix, rest)) = found else {
        return (Group { prefix: String::new(), resource: String::new(), namespace: String::new() }, key.to_owned());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    // A resource takes two segments when the first is an API group (it has a dot) or `services`,
    // whose objects sit under `services/specs` and `services/endpoints`.
    let resource_len = if parts.len() >= 3 && (parts[0].contains('.') || parts[0] == "services") { 2 } else { 1 };
    let resource = parts[..resource_len.min(parts.len())].join("/");
    let rest = &parts[resource_len.min(parts.len())..];
    let (namespace, name) = match rest {
        [] => (String::new(), String::new()),
        [name] => (String::new(), (*name).to_owned()),
        [namespace, name @ ..] => ((*namespace).to_owned(), name.join("/")),
    };
    (Group { prefix: prefix.to_owned(), resource, namespace }, name)
}

/// The changes of one group.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GroupChanges {
    /// Keys only in the second snapshot.
    pub added: Vec<String>,
    /// Keys only in the first snapshot.
    pub removed: Vec<String>,
    /// Keys whose value differs.
    pub changed: Vec<String>,
}

/// One group and its changes, for output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupDiff {
    /// The group.
    #[serde(flatten)]
    pub group: Group,
    /// Its changes.
    #[serde(flatten)]
    pub changes: GroupChanges,
}

/// The difference between two snapshots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotDiff {
    /// Live keys in the first snapshot.
    pub keys_a: usize,
    /// Live keys in the second snapshot.
    pub keys_b: usize,
    /// Number of keys added.
    pub added: usize,
    /// Number of keys removed.
    pub removed: usize,
    /// Number of keys changed.
    pub changed: usize,
    /// Groups with at least one change, sorted.
    pub groups: Vec<GroupDiff>,
}

/// Compares the latest states of two snapshots.
///
/// # Errors
/// The errors of reading either `key` bucket.
pub fn diff(a: (&Db, &Path), b: (&Db, &Path), prefixes: &[String]) -> Result<SnapshotDiff, InspectError> {
    let _span = tracing::info_span!("etcd.inspect.diff", a = %a.1.display(), b = %b.1.display()).entered();
    let state_a = latest_state(a.0, a.1)?;
    let state_b = latest_state(b.0, b.1)?;
    Ok(compare(&state_a, &state_b, prefixes))
}

fn compare(a: &HashMap<&[u8], Record<'_>>, b: &HashMap<&[u8], Record<'_>>, prefixes: &[String]) -> SnapshotDiff {
    let mut groups: BTreeMap<Group, GroupChanges> = BTreeMap::new();
    let mut record = |key: &[u8], pick: fn(&mut GroupChanges) -> &mut Vec<String>| {
        let key = String::from_utf8_lossy(key).into_owned();
        let (group, _) = classify(&key, prefixes);
        pick(groups.entry(group).or_default()).push(key);
    };
    for (key, old) in a {
        match b.get(key) {
            None => record(key, |c| &mut c.removed),
            Some(new) if new.value != old.value => record(key, |c| &mut c.changed),
            Some(_) => {}
        }
    }
    for key in b.keys().filter(|key| !a.contains_key(*key)) {
        record(key, |c| &mut c.added);
    }
    let mut totals = (0, 0, 0);
    let groups = groups
        .into_iter()
        .map(|(group, mut changes)| {
            changes.added.sort();
            changes.removed.sort();
            changes.changed.sort();
            totals.0 += changes.added.len();
            totals.1 += changes.removed.len();
            totals.2 += changes.changed.len();
            GroupDiff { group, changes }
        })
        .collect();
    SnapshotDiff { keys_a: a.len(), keys_b: b.len(), added: totals.0, removed: totals.1, changed: totals.2, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        super::super::k8s::DEFAULT_PREFIXES.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn classify_splits_keys() {
        let (group, name) = classify("/registry/configmaps/kube-system/a", &prefixes());
        assert_eq!((group.resource.as_str(), group.namespace.as_str(), name.as_str()), ("configmaps", "kube-system", "a"));
        let (group, name) = classify("/registry/services/specs/default/api", &prefixes());
        assert_eq!((group.resource.as_str(), group.namespace.as_str(), name.as_str()), ("services/specs", "default", "api"));
        let (group, name) = classify("/registry/minions/node-1", &prefixes());
        assert_eq!((group.resource.as_str(), group.namespace.as_str(), name.as_str()), ("minions", "", "node-1"));
        let (group, name) = classify("/registry/apiextensions.k8s.io/customresourcedefinitions/foos.example.com", &prefixes());
        assert_eq!((group.resource.as_str(), group.namespace.as_str(), name.as_str()), ("apiextensions.k8s.io/customresourcedefinitions", "", "foos.example.com"));
        let (group, name) = classify("/openshift.io/routes/p/r", &prefixes());
        assert_eq!((group.prefix.as_str(), group.resource.as_str(), name.as_str()), ("/openshift.io", "routes", "r"));
        let (group, name) = classify("plain-key", &prefixes());
        assert_eq!((group.prefix.as_str(), name.as_str()), ("", "plain-key"));
    }
}
