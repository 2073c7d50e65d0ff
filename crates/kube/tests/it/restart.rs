//! Pod restarts through the eviction API: a PodDisruptionBudget that allows no disruption keeps
//! the pod, and a pod without a controller is not evicted at all.

use std::time::{Duration, Instant};

use caasctl_kube::restart::restart_pod;
use caasctl_kube::VolumeError;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;

use crate::fixtures::{client, namespace_and_class, plane, statefulset};

#[tokio::test]
async fn restart_waits_for_disruption_budget() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "restart-pdb", true).await;
    statefulset(&client, "restart-pdb", "es", &class, "1Gi").await;
    // policy/v1 PodDisruptionBudgets arrived in Kubernetes 1.21, so this 1.20 server takes v1beta1.
    let budget = serde_json::json!({
        "metadata": { "name": "es" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "es" } } }
    });
    plane.json("POST", "/apis/policy/v1beta1/namespaces/restart-pdb/poddisruptionbudgets", Some(budget));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "restart-pdb");
    // The eviction API ignores budgets for Pending pods, so the hollow node must run it first.
    let deadline = Instant::now() + Duration::from_secs(60);
    let uid = loop {
        let pod = pods.get("es-0").await.unwrap();
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            break pod.metadata.uid;
        }
        assert!(Instant::now() < deadline, "es-0 not Running after 60 s: {:?}", pod.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let started = Instant::now();
    let result = restart_pod(&client, "restart-pdb", "es-0", Instant::now() + Duration::from_secs(6)).await;

    match result {
        Err(VolumeError::Timeout { what, state, .. }) => {
            assert!(what.contains("eviction of pod restart-pdb/es-0"), "{what}");
            assert!(state.contains("PodDisruptionBudget"), "{state}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(pods.get("es-0").await.unwrap().metadata.uid, uid, "the pod was not evicted");
}

#[tokio::test]
async fn restart_rejects_unmanaged_pod() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    namespace_and_class(&client, "restart-bare", true).await;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "bare" },
        "spec": { "automountServiceAccountToken": false, "containers": [{ "name": "c", "image": "registry.example.com/busybox:1" }] }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "restart-bare");
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let result = restart_pod(&client, "restart-bare", "bare", Instant::now() + Duration::from_secs(5)).await;

    assert!(matches!(result, Err(VolumeError::PodUnmanaged { .. })), "{result:?}");
    assert!(pods.get_opt("bare").await.unwrap().is_some(), "the pod was not evicted");
}
