//! Objects the tests create: a namespace, a storage class, a pre-bound hostPath volume and its
//! claim, or a StatefulSet whose claim template binds to such a volume.

use std::time::{Duration, Instant};

use caasctl_testing::kube::ControlPlane;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::Api;

/// Returns the shared control plane, or `None` when its binaries are missing (test skipped).
pub fn plane() -> Option<&'static ControlPlane> {
    ControlPlane::shared(2)
}

/// Connects to the control plane with its kubeconfig.
pub async fn client(plane: &ControlPlane) -> kube::Client {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    caasctl_kube::connect(Some(&plane.kubeconfig)).await.expect("connect to the test API server")
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("valid test object");
    api.create(&PostParams::default(), &object).await.expect("create test object")
}

/// Creates namespace `ns` and a storage class named after it.
pub async fn namespace_and_class(client: &kube::Client, ns: &str, allow_expansion: bool) -> String {
    create(&Api::<Namespace>::all(client.clone()), serde_json::json!({ "metadata": { "name": ns } })).await;
    let class = format!("{ns}-class");
    let body = serde_json::json!({
        "metadata": { "name": class },
        "provisioner": "example.com/test",
        "allowVolumeExpansion": allow_expansion,
        "volumeBindingMode": "Immediate",
    });
    create(&Api::<StorageClass>::all(client.clone()), body).await;
    class
}

/// Creates a hostPath volume of `size` in `class`, reserved for the claim `ns/claim`.
pub async fn volume_for(client: &kube::Client, ns: &str, claim: &str, class: &str, size: &str) -> String {
    let name = format!("{ns}-{claim}");
    let body = serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": { "path": format!("/tmp/caasctl-test-volumes/{name}") },
            "claimRef": { "namespace": ns, "name": claim },
        }
    });
    create(&Api::<PersistentVolume>::all(client.clone()), body).await;
    name
}

/// Creates a claim of `size` in `class` and its volume, and waits until they are bound.
pub async fn bound_claim(client: &kube::Client, ns: &str, claim: &str, class: &str, size: &str) {
    volume_for(client, ns, claim, class, size).await;
    let body = serde_json::json!({
        "metadata": { "name": claim },
        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": { "requests": { "storage": size } } }
    });
    create(&Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns), body).await;
    wait_bound(client, ns, claim).await;
}

/// Waits up to 60 s until the claim is Bound.
pub async fn wait_bound(client: &kube::Client, ns: &str, claim: &str) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pvc = claims.get_opt(claim).await.unwrap();
        if pvc.as_ref().and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some("Bound") {
            return;
        }
        assert!(Instant::now() < deadline, "claim {ns}/{claim} not bound after 60 s: {pvc:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates a one-replica StatefulSet `name` with a claim template `data` of `size` in `class`,
/// pre-creates the volume of its claim, and waits until the claim is bound and the pod is
/// scheduled. Returns the claim name.
pub async fn statefulset(client: &kube::Client, ns: &str, name: &str, class: &str, size: &str) -> String {
    let claim = format!("data-{name}-0");
    volume_for(client, ns, &claim, class, size).await;
    let body = serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "elasticsearch",
                        "image": "registry.example.com/logging-elasticsearch:v3.11",
                        "volumeMounts": [
                            { "name": "data", "mountPath": "/elasticsearch/persistent" },
                            { "name": "config", "mountPath": "/usr/share/java/elasticsearch/config", "readOnly": true }
                        ]
                    }],
                    "volumes": [{ "name": "config", "emptyDir": {} }]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": { "requests": { "storage": size } } }
            }]
        }
    });
    create(&Api::<StatefulSet>::namespaced(client.clone(), ns), body).await;
    wait_bound(client, ns, &claim).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pod = pods.get_opt(&format!("{name}-0")).await.unwrap();
        if pod.as_ref().and_then(|p| p.spec.as_ref()?.node_name.as_ref()).is_some() {
            return claim;
        }
        assert!(Instant::now() < deadline, "pod {ns}/{name}-0 not scheduled after 60 s: {pod:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
