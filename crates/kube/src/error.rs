//! Errors of caasctl's Kubernetes volume work, with their catalogue messages and hints.

use std::path::PathBuf;

use caasctl_core::{Localize, Message};

/// A volume operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The kubeconfig could not be read or names no usable cluster.
    #[error("failed to load the kubeconfig {}: {reason}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(inferred)".to_owned()))]
    KubeConfig {
        /// The file given, or `None` when kube's inference was used.
        path: Option<PathBuf>,
        /// Cause, as text.
        reason: String,
    },

    /// A request to the API server failed.
    #[error("failed to {action}")]
    Api {
        /// Action that failed, such as `get PersistentVolumeClaim monitoring/data`.
        action: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },

    /// The PVC does not exist.
    #[error("PersistentVolumeClaim {namespace}/{name} not found")]
    PvcNotFound {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
    },

    /// The PVC is not bound to a volume, so it cannot be expanded.
    #[error("PersistentVolumeClaim {namespace}/{name} is {phase}, not Bound")]
    NotBound {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
        /// Current phase.
        phase: String,
    },

    /// The PVC names no StorageClass.
    #[error("PersistentVolumeClaim {namespace}/{name} has no storage class")]
    NoStorageClass {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
    },

    /// The StorageClass named by the PVC does not exist.
    #[error("StorageClass {class} not found")]
    StorageClassNotFound {
        /// Class name.
        class: String,
    },

    /// The StorageClass does not set `allowVolumeExpansion: true`.
    #[error("StorageClass {class} of PersistentVolumeClaim {namespace}/{name} does not allow volume expansion")]
    ExpansionNotAllowed {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
        /// Class name.
        class: String,
    },

    /// A size is not a valid Kubernetes quantity.
    #[error("invalid size {value:?}: {reason}")]
    InvalidSize {
        /// The value given.
        value: String,
        /// Reason the value is invalid.
        reason: String,
    },

    /// The requested size does not exceed the current request; volumes can only grow.
    #[error("PersistentVolumeClaim {namespace}/{name} requests {current}; the new size {requested} must be larger")]
    NotGrowing {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
        /// Current `spec.resources.requests.storage`.
        current: String,
        /// Size asked for.
        requested: String,
    },

    /// The API server rejected the change (admission or validation).
    #[error("the API server rejected the new size of PersistentVolumeClaim {namespace}/{name} ({code}): {reason}")]
    Rejected {
        /// Namespace.
        namespace: String,
        /// Claim name.
        name: String,
        /// HTTP status code, such as 403 (admission) or 422 (validation).
        code: u16,
        /// The API server's message.
        reason: String,
    },

    /// The StatefulSet does not exist.
    #[error("StatefulSet {namespace}/{name} not found")]
    StatefulSetNotFound {
        /// Namespace.
        namespace: String,
        /// Set name.
        name: String,
    },

    /// No PVC of the StatefulSet matched.
    #[error("StatefulSet {namespace}/{name} has no PersistentVolumeClaim{}", template.as_ref().map(|t| format!(" from claim template {t}")).unwrap_or_default())]
    NoClaims {
        /// Namespace.
        namespace: String,
        /// Set name.
        name: String,
        /// Claim template asked for, if any.
        template: Option<String>,
    },

    /// A pod must be restarted but no controller would recreate it.
    #[error("pod {namespace}/{name} has no controller that would recreate it")]
    PodUnmanaged {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },

    /// The wait for a state ran out of time.
    #[error("timed out after {seconds} s waiting for {what}; last state: {state}")]
    Timeout {
        /// Awaited condition.
        what: String,
        /// Seconds waited.
        seconds: u64,
        /// The last observed state.
        state: String,
    },
}

impl VolumeError {
    /// Returns true when the error is the user's input or the cluster's configuration, not a
    /// failure of an operation (the CLI maps it to the usage exit code).
    pub fn is_usage(&self) -> bool {
        matches!(self, VolumeError::KubeConfig { .. } | VolumeError::InvalidSize { .. } | VolumeError::NotGrowing { .. })
    }
}

impl Localize for VolumeError {
    fn message(&self) -> Message {
        match self {
            VolumeError::KubeConfig { path, reason } => Message::new("volume.error.kubeconfig")
                .arg("path", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "~/.kube/config".to_owned()))
                .arg("reason", reason),
            VolumeError::Api { action, source } => Message::new("volume.error.api").arg("action", action).arg("reason", source),
            VolumeError::PvcNotFound { namespace, name } => Message::new("volume.error.pvc_not_found").arg("namespace", namespace).arg("name", name),
            VolumeError::NotBound { namespace, name, phase } => Message::new("volume.error.not_bound").arg("namespace", namespace).arg("name", name).arg("phase", phase),
            VolumeError::NoStorageClass { namespace, name } => Message::new("volume.error.no_storage_class").arg("namespace", namespace).arg("name", name),
            VolumeError::StorageClassNotFound { class } => Message::new("volume.error.class_not_found").arg("class", class),
            VolumeError::ExpansionNotAllowed { namespace, name, class } => {
                Message::new("volume.error.expansion_not_allowed").arg("namespace", namespace).arg("name", name).arg("class", class)
            }
            VolumeError::InvalidSize { value, reason } => Message::new("volume.error.invalid_size").arg("value", value).arg("reason", reason),
            VolumeError::NotGrowing { namespace, name, current, requested } => {
                Message::new("volume.error.not_growing").arg("namespace", namespace).arg("name", name).arg("current", current).arg("requested", requested)
            }
            VolumeError::Rejected { namespace, name, code, reason } => {
                Message::new("volume.error.rejected").arg("namespace", namespace).arg("name", name).arg("code", code).arg("reason", reason)
            }
            VolumeError::StatefulSetNotFound { namespace, name } => Message::new("volume.error.statefulset_not_found").arg("namespace", namespace).arg("name", name),
            VolumeError::NoClaims { namespace, name, template } => {
                Message::new("volume.error.no_claims").arg("namespace", namespace).arg("name", name).arg("template", template.as_deref().unwrap_or("*"))
            }
            VolumeError::PodUnmanaged { namespace, name } => Message::new("volume.error.pod_unmanaged").arg("namespace", namespace).arg("name", name),
            VolumeError::Timeout { what, seconds, state } => Message::new("volume.error.timeout").arg("what", what).arg("seconds", seconds).arg("state", state),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            VolumeError::KubeConfig { .. } => Some(Message::new("volume.hint.kubeconfig")),
            VolumeError::ExpansionNotAllowed { class, .. } => Some(Message::new("volume.hint.expansion_not_allowed").arg("class", class)),
            VolumeError::NotBound { .. } => Some(Message::new("volume.hint.not_bound")),
            VolumeError::NotGrowing { .. } => Some(Message::new("volume.hint.not_growing")),
            VolumeError::PodUnmanaged { name, .. } => Some(Message::new("volume.hint.pod_unmanaged").arg("pod", name)),
            VolumeError::Timeout { .. } => Some(Message::new("volume.hint.timeout")),
            _ => None,
        }
    }
}

/// Wraps a kube error with the action that failed.
pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> VolumeError {
    let action = action.into();
    move |source| VolumeError::Api { action, source }
}
