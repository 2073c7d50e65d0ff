//! Listing mounts and the API server's own checks of an expansion: the storage class's
//! `allowVolumeExpansion` (admission), a shrink (validation), and a server-side dry run.

use caasctl_kube::expand::{patch_request, plan, Target};
use caasctl_kube::{list_volume_mounts, VolumeError};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;

use crate::fixtures::{bound_claim, client, namespace_and_class, plane, statefulset};

fn request_of(pvc: &PersistentVolumeClaim) -> String {
    pvc.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0.clone()
}

#[tokio::test]
async fn list_shows_statefulset_mount() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "list-mounts", true).await;
    let claim = statefulset(&client, "list-mounts", "es", &class, "1Gi").await;

    let rows = list_volume_mounts(&client, Some("list-mounts")).await.unwrap();

    assert_eq!(rows.len(), 1, "only the PVC mount is listed: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.pod, "es-0");
    assert_eq!(row.container, "elasticsearch");
    assert_eq!(row.mount_path, "/elasticsearch/persistent");
    assert_eq!(row.pvc, claim);
    assert_eq!(row.storage_class.as_deref(), Some(class.as_str()));
    assert_eq!(row.capacity.as_deref(), Some("1Gi"));
    assert_eq!(row.expandable, Some(true));
    assert_eq!(row.phase, "Bound");
    assert!(row.node.as_deref().is_some_and(|n| n.starts_with("hollow-node-")), "{row:?}");
}

#[tokio::test]
async fn class_without_expansion_is_rejected() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "fixed-class", false).await;
    bound_claim(&client, "fixed-class", "data", &class, "1Gi").await;

    let planned = plan(&client, "fixed-class", &Target::Claim("data".into()), "2Gi").await;
    assert!(matches!(planned, Err(VolumeError::ExpansionNotAllowed { .. })), "{planned:?}");

    // Without caasctl's check, the API server's PersistentVolumeClaimResize admission rejects it.
    let patched = patch_request(&client, "fixed-class", "data", "2Gi", false).await;
    match patched {
        Err(VolumeError::Rejected { code, reason, .. }) => {
            assert_eq!(code, 403);
            assert!(reason.contains("storageclass"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn shrink_is_rejected() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "shrink", true).await;
    bound_claim(&client, "shrink", "data", &class, "2Gi").await;

    for size in ["1Gi", "2048Mi"] {
        let planned = plan(&client, "shrink", &Target::Claim("data".into()), size).await;
        assert!(matches!(planned, Err(VolumeError::NotGrowing { .. })), "{size}: {planned:?}");
    }

    // Without caasctl's check, the API server's validation rejects the smaller request.
    let patched = patch_request(&client, "shrink", "data", "1Gi", false).await;
    match patched {
        Err(VolumeError::Rejected { code, reason, .. }) => {
            assert_eq!(code, 422);
            assert!(reason.contains("less than previous value"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "dry-run", true).await;
    bound_claim(&client, "dry-run", "data", &class, "1Gi").await;

    let planned = plan(&client, "dry-run", &Target::Claim("data".into()), "3Gi").await.unwrap();
    assert_eq!(planned.claims.len(), 1);
    assert_eq!(planned.claims[0].current_request, "1Gi");
    assert_eq!(planned.claims[0].storage_class, class);
    assert!(!planned.claims[0].already_requested);

    let returned = patch_request(&client, "dry-run", "data", "3Gi", true).await.unwrap();
    assert_eq!(request_of(&returned), "3Gi");
    let stored = Api::<PersistentVolumeClaim>::namespaced(client.clone(), "dry-run").get("data").await.unwrap();
    assert_eq!(request_of(&stored), "1Gi");
}

#[tokio::test]
async fn statefulset_claims_are_planned() {
    let Some(plane) = plane() else { return };
    let client = client(plane).await;
    let class = namespace_and_class(&client, "sts-plan", true).await;
    let claim = statefulset(&client, "sts-plan", "es", &class, "1Gi").await;

    let planned = plan(&client, "sts-plan", &Target::StatefulSet { name: "es".into(), template: None }, "2Gi").await.unwrap();
    assert_eq!(planned.statefulset.as_deref(), Some("es"));
    assert_eq!(planned.claims.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec![claim.as_str()]);
    assert_eq!(planned.claims[0].pods, vec!["es-0".to_owned()]);

    let missing = plan(&client, "sts-plan", &Target::StatefulSet { name: "es".into(), template: Some("logs".into()) }, "2Gi").await;
    assert!(matches!(missing, Err(VolumeError::NoClaims { .. })), "{missing:?}");
}
