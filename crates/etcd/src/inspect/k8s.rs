//! `inspect k8s get`: Kubernetes objects read from a snapshot, ready for `kubectl apply`.
//!
//! The API server stores each object at `PREFIX/RESOURCE/NAMESPACE/NAME` (or
//! `PREFIX/RESOURCE/NAME` for cluster-scoped kinds), as protobuf in the `k8s\0` envelope or as JSON
//! (custom resources, and OpenShift 3 for many kinds). Kubernetes uses the prefix `/registry`;
//! OpenShift 3 keeps Kubernetes kinds under `/kubernetes.io` and its own under `/openshift.io`.
//! A few resources are stored under a path other than their name (Services at `services/specs`,
//! Nodes at `minions`), which [`storage_path`] maps.

use std::path::Path;

use caasctl_bbolt::Db;
use serde_json::Value as Json;

use super::k8s_proto::{self, MAGIC};
use super::keyvalue::latest_state;
use super::InspectError;

/// Key prefixes searched when none is given.
pub const DEFAULT_PREFIXES: [&str; 3] = ["/registry", "/kubernetes.io", "/openshift.io"];

/// Fields the server sets, dropped by `--clean` so that the object can be created again.
pub const SERVER_SET_METADATA: [&str; 7] = ["resourceVersion", "uid", "managedFields", "creationTimestamp", "selfLink", "generation", "deletionTimestamp"];

/// Returns the path under the prefix where the API server stores `resource`, given as kubectl
/// accepts it (plural, singular or short name). Unknown names are used as given, so custom
/// resources work as `GROUP/PLURAL`.
pub fn storage_path(resource: &str) -> String {
    let lower = resource.to_ascii_lowercase();
    let plural = match lower.as_str() {
        "cm" | "configmap" | "configmaps" => "configmaps",
        "secret" | "secrets" => "secrets",
        "svc" | "service" | "services" => "services/specs",
        "ep" | "endpoint" | "endpoints" => "services/endpoints",
        "no" | "node" | "nodes" | "minion" | "minions" => "minions",
        "rc" | "replicationcontroller" | "replicationcontrollers" | "controllers" => "controllers",
        "deploy" | "deployment" | "deployments" => "deployments",
        "rs" | "replicaset" | "replicasets" => "replicasets",
        "ds" | "daemonset" | "daemonsets" => "daemonsets",
        "sts" | "statefulset" | "statefulsets" => "statefulsets",
        "po" | "pod" | "pods" => "pods",
        "ns" | "namespace" | "namespaces" => "namespaces",
        "sa" | "serviceaccount" | "serviceaccounts" => "serviceaccounts",
        "pv" | "persistentvolume" | "persistentvolumes" => "persistentvolumes",
        "pvc" | "persistentvolumeclaim" | "persistentvolumeclaims" => "persistentvolumeclaims",
        "ing" | "ingress" | "ingresses" => "ingress",
        "cj" | "cronjob" | "cronjobs" => "cronjobs",
        "job" | "jobs" => "jobs",
        "route" | "routes" => "routes",
        "dc" | "deploymentconfig" | "deploymentconfigs" => "deploymentconfigs",
        "crd" | "customresourcedefinition" | "customresourcedefinitions" => "apiextensions.k8s.io/customresourcedefinitions",
        _ => return resource.trim_matches('/').to_owned(),
    };
    plural.to_owned()
}

/// The encoding of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `k8s\0` + `runtime.Unknown`.
    Protobuf,
    /// A JSON document.
    Json,
}

/// An object found in a snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredObject {
    /// The etcd key.
    pub key: String,
    /// Revision of the object's last modification, which the API server reports as its
    /// `resourceVersion`.
    pub mod_revision: i64,
    /// Its encoding.
    pub encoding: Encoding,
    /// The object as the API server would return it.
    pub object: Json,
    /// The parts left undecoded, when the object is incomplete.
    pub note: Option<String>,
}

/// Decodes a stored value.
///
/// # Errors
/// [`InspectError::BadObject`] for a value that is neither protobuf with the `k8s\0` envelope nor
/// a JSON object.
pub fn decode(key: &str, value: &[u8], mod_revision: i64) -> Result<StoredObject, InspectError> {
    let bad = |reason: String| InspectError::BadObject { key: key.to_owned(), reason };
    let (encoding, mut object, note) = if let Some(envelope) = value.strip_prefix(MAGIC) {
        let unknown = k8s_proto::unknown(envelope).map_err(bad)?;
        if !unknown.content_encoding.is_empty() {
            return Err(bad(format!("content encoding {:?} is not supported", unknown.content_encoding)));
        }
        let (object, note) = k8s_proto::object(&unknown).map_err(bad)?;
        (Encoding::Protobuf, object, note)
    } else if value.first() == Some(&b'{') {
        let object: Json = serde_json::from_slice(value).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        (Encoding::Json, object, None)
    } else {
        return Err(bad("the value is neither protobuf with the k8s\\0 envelope nor JSON".into()));
    };
    // The API server never stores resourceVersion; it reports the key's mod revision instead.
    if let Some(Json::Object(metadata)) = object.get_mut("metadata") {
        metadata.insert("resourceVersion".into(), Json::String(mod_revision.to_string()));
    }
    Ok(StoredObject { key: key.to_owned(), mod_revision, encoding, object, note })
}

/// Drops the fields the server sets (metadata listed in [`SERVER_SET_METADATA`], and `status`).
pub fn clean(object: &mut Json) {
    if let Json::Object(map) = object {
        map.remove("status");
        if let Some(Json::Object(metadata)) = map.get_mut("metadata") {
            for field in SERVER_SET_METADATA {
                metadata.remove(field);
            }
        }
    }
}

/// A search for objects.
#[derive(Debug, Clone)]
pub struct Query<'q> {
    /// Resource as kubectl names it.
    pub resource: &'q str,
    /// Namespace; all namespaces when `None`.
    pub namespace: Option<&'q str>,
    /// Object name; every object when `None`.
    pub name: Option<&'q str>,
    /// Key prefixes to search, such as `/registry`.
    pub prefixes: Vec<String>,
}

impl Query<'_> {
    /// Returns true when `key` stores an object the query asks for.
    pub fn matches(&self, key: &str) -> bool {
        let resource = storage_path(self.resource);
        let rest = self.prefixes.iter().find_map(|prefix| key.strip_prefix(prefix.trim_end_matches('/'))?.strip_prefix('/')?.strip_prefix(resource.as_str())?.strip_prefix('/'));
        let Some(rest) = rest else { return false };
        let parts: Vec<&str> = rest.split('/').collect();
        let (namespace, name) = match parts.as_slice() {
            [name] => (None, *name),
            [namespace, name] => (Some(*namespace), *name),
            _ => return false,
        };
        if self.namespace.is_some() && namespace != self.namespace {
            return false;
        }
        self.name.is_none_or(|wanted| wanted == name)
    }
}

/// Finds the live objects a query names, sorted by key. Values that cannot be decoded become
/// errors in the second list, so that one damaged object does not hide the others.
///
/// # Errors
/// The errors of reading the `key` bucket.
pub fn find(db: &Db, path: &Path, query: &Query<'_>) -> Result<(Vec<StoredObject>, Vec<InspectError>), InspectError> {
    let _span = tracing::info_span!("etcd.inspect.k8s_get", path = %path.display(), resource = query.resource).entered();
    let mut matching: Vec<_> = latest_state(db, path)?
        .into_iter()
        .filter_map(|(key, record)| {
            let key = std::str::from_utf8(key).ok()?;
            query.matches(key).then_some((key, record))
        })
        .collect();
    matching.sort_unstable_by_key(|(key, _)| *key);
    let mut objects = Vec::new();
    let mut failures = Vec::new();
    for (key, record) in matching {
        match decode(key, record.value, record.mod_revision) {
            Ok(object) => objects.push(object),
            Err(error) => failures.push(error),
        }
    }
    Ok((objects, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'q>(resource: &'q str, namespace: Option<&'q str>, name: Option<&'q str>) -> Query<'q> {
        Query { resource, namespace, name, prefixes: DEFAULT_PREFIXES.iter().map(|p| p.to_string()).collect() }
    }

    #[test]
    fn query_matches_namespaced_and_cluster_keys() {
        assert!(query("cm", Some("kube-system"), Some("a")).matches("/registry/configmaps/kube-system/a"));
        assert!(!query("cm", Some("default"), Some("a")).matches("/registry/configmaps/kube-system/a"));
        assert!(query("configmap", None, None).matches("/kubernetes.io/configmaps/x/y"));
        assert!(query("svc", None, Some("api")).matches("/registry/services/specs/default/api"));
        assert!(!query("services/endpoints", None, None).matches("/registry/services/specs/default/api"));
        assert!(query("node", None, Some("n1")).matches("/registry/minions/n1"));
        assert!(query("routes", Some("p"), None).matches("/openshift.io/routes/p/r"));
        assert!(!query("cm", None, None).matches("/registry/configmapsx/a/b"));
    }

    #[test]
    fn clean_drops_server_fields() {
        let mut object = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "a", "uid": "u", "resourceVersion": "5", "managedFields": []}, "status": {}});
        clean(&mut object);
        assert_eq!(object, serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "a"}}));
    }

    #[test]
    fn decode_rejects_other_values() {
        assert!(decode("/registry/x", b"plain", 1).is_err());
        let object = decode("/registry/x", br#"{"kind":"Foo","metadata":{"name":"a"}}"#, 7).unwrap();
        assert_eq!(object.object["metadata"]["resourceVersion"], "7");
        assert_eq!(object.encoding, Encoding::Json);
    }
}
