//! PodDisruptionBudgets that cover a pod, so that a blocked eviction can name its budget.
//!
//! Kubernetes 1.20 and OpenShift 3.11 (Kubernetes 1.11) serve budgets as `policy/v1beta1` only,
//! and `policy/v1` arrived in 1.21, so the budgets are read as dynamic objects from whichever
//! version the server has.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::Api;

use crate::error::NodeError;

fn budget_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "policy".to_owned(),
        version: version.to_owned(),
        api_version: format!("policy/{version}"),
        kind: "PodDisruptionBudget".to_owned(),
        plural: "poddisruptionbudgets".to_owned(),
    }
}

/// Returns the names of the budgets in `namespace` whose selector matches `labels`.
///
/// # Errors
/// [`NodeError::Kube`] when neither `policy/v1beta1` nor `policy/v1` can be listed.
pub async fn budgets_for(client: &kube::Client, namespace: &str, labels: &BTreeMap<String, String>) -> Result<Vec<String>, NodeError> {
    let mut last_error = None;
    for version in ["v1beta1", "v1"] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &budget_resource(version));
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let mut names: Vec<String> = list
                    .items
                    .iter()
                    .filter(|budget| budget_selector(budget).is_some_and(|selector| selects(version, &selector, labels)))
                    .filter_map(|budget| budget.metadata.name.clone())
                    .collect();
                names.sort();
                return Ok(names);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => last_error = Some(kube::Error::Api(status)),
            Err(source) => return Err(NodeError::Kube { action: format!("list PodDisruptionBudgets in {namespace}"), source }),
        }
    }
    Err(NodeError::Kube {
        action: format!("list PodDisruptionBudgets in {namespace}"),
        source: last_error.expect("the loop ran at least once"),
    })
}

fn budget_selector(budget: &DynamicObject) -> Option<LabelSelector> {
    serde_json::from_value(budget.data.get("spec")?.get("selector")?.clone()).ok()
}

/// Returns true when a budget of API `version` with `selector` covers a pod with `labels`. The
/// Kubernetes documentation on disruption budgets states that an empty selector selects no pod in
/// `policy/v1beta1` and every pod of the namespace in `policy/v1`.
fn selects(version: &str, selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty()) && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty());
    if empty {
        return version != "v1beta1";
    }
    selector_matches(selector, labels)
}

/// Returns true when `labels` satisfy `selector`; an empty selector matches any labels.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector.match_labels.iter().flatten().all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector.match_expressions.iter().flatten().all(|requirement| {
        let value = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator this code does not know matches nothing, so no budget is named wrongly.
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selector_match_labels_and_expressions() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": { "app": "web" },
            "matchExpressions": [
                { "key": "tier", "operator": "In", "values": ["front", "edge"] },
                { "key": "canary", "operator": "DoesNotExist" }
            ]
        }))
        .unwrap();
        assert!(selector_matches(&selector, &labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!selector_matches(&selector, &labels(&[("app", "web"), ("tier", "back")])));
        assert!(!selector_matches(&selector, &labels(&[("app", "web"), ("tier", "edge"), ("canary", "1")])));
        assert!(!selector_matches(&selector, &labels(&[("tier", "edge")])));
    }

    #[test]
    fn empty_selector_depends_on_version() {
        assert!(selector_matches(&LabelSelector::default(), &labels(&[("a", "b")])));
        assert!(!selects("v1beta1", &LabelSelector::default(), &labels(&[("a", "b")])));
        assert!(selects("v1", &LabelSelector::default(), &labels(&[("a", "b")])));
    }
}
