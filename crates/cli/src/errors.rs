//! Errors at the binary's edge: the CLI's own error kinds, and printing any error chain once, in
//! the user's language, with a hint for what to do next.

use caasctl_core::{Lang, Localize, Message};
use caasctl_etcd::backup::BackupError;
use caasctl_etcd::repo::RepoError;
use caasctl_etcd::tls::TlsError;
use caasctl_etcd::EtcdError;

use crate::context::Context;
use crate::Exit;

/// Errors the CLI itself raises.
#[derive(Debug)]
pub enum CliError {
    /// No endpoint source was given and none could be found.
    NoEndpointSource,
    /// One or more backups failed verification.
    VerifyFailed {
        /// IDs of the failed backups.
        ids: Vec<String>,
    },
    /// The repository holds no complete backup.
    NoBackups {
        /// Repository path.
        repo: String,
    },
    /// A running etcd holds the lock of the data dir a restore would move aside.
    DataDirInUse {
        /// The data dir.
        path: String,
    },
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message().render(Lang::En))
    }
}

impl std::error::Error for CliError {}

impl Localize for CliError {
    fn message(&self) -> Message {
        match self {
            CliError::NoEndpointSource => Message::new("cli.error.no_endpoint_source"),
            CliError::VerifyFailed { ids } => Message::new("cli.error.verify_failed").arg("ids", ids.join(", ")),
            CliError::NoBackups { repo } => Message::new("cli.error.no_backups").arg("repo", repo),
            CliError::DataDirInUse { path } => Message::new("cli.error.data_dir_in_use").arg("path", path),
        }
    }

    fn hint(&self) -> Option<Message> {
        match self {
            CliError::NoEndpointSource => Some(Message::new("etcd.hint.endpoints")),
            CliError::VerifyFailed { .. } => Some(Message::new("cli.hint.verify_failed")),
            CliError::NoBackups { .. } => Some(Message::new("cli.hint.no_backups")),
            CliError::DataDirInUse { .. } => Some(Message::new("cli.hint.data_dir_in_use")),
        }
    }
}

fn localized(error: &(dyn std::error::Error + 'static)) -> Option<(Message, Option<Message>)> {
    macro_rules! try_type {
        ($($ty:ty),*) => {
            $(if let Some(inner) = error.downcast_ref::<$ty>() {
                return Some((inner.message(), inner.hint()));
            })*
        };
    }
    try_type!(CliError, caasctl_etcd::inspect::InspectError, BackupError, EtcdError, TlsError, RepoError, caasctl_restore::RestoreError, caasctl_restore::member_config::MemberConfigError, caasctl_registry::RegistryError, caasctl_cloud::CloudError, crate::commands::snapshot::SnapshotCliError, caasctl_nodes::NodeError, caasctl_inventory::InventoryError, caasctl_etcd::blob::KeyError, crate::commands::repo_opts::OptionsError, caasctl_etcd::store::StoreError, caasctl_etcd::fetch::FetchError, caasctl_restore::drill::DrillError, crate::commands::serve::ServeError, caasctl_volume::VolumeBackupError, caasctl_kube::VolumeError);
    None
}

/// Prints the error on stderr after the program name: the first error of the chain that has a
/// catalogue message is shown in the user's language, with the chain's other causes after it.
pub fn print(error: &anyhow::Error, context: &Context) {
    let prefix = context.tr("cli.error.prefix", &[]);
    let mut shown: Option<(Message, Option<Message>)> = None;
    let mut lines = Vec::new();
    for cause in error.chain() {
        if shown.is_none() {
            if let Some(found) = localized(cause) {
                shown = Some(found);
                continue;
            }
        }
        let text = cause.to_string();
        if !lines.contains(&text) {
            lines.push(text);
        }
    }
    match shown {
        Some((message, hint)) => {
            eprintln!("caasctl: {prefix}{}", message.render(context.lang));
            // Each cause usually repeats the text of the causes under it, so a line already
            // contained in the message or in a printed line adds nothing.
            let mut printed = vec![message.render(Lang::En)];
            for line in lines {
                if !printed.iter().any(|shown| shown.contains(line.as_str())) {
                    eprintln!("  {line}");
                    printed.push(line);
                }
            }
            if let Some(hint) = hint {
                eprintln!("  {}{}", context.tr("cli.hint.prefix", &[]), hint.render(context.lang));
            }
        }
        None => eprintln!("caasctl: {prefix}{}", lines.join(": ")),
    }
}

/// Picks the exit code for an error: [`Exit::Usage`] when any cause is a mistake in the command
/// line or the configuration it names, [`Exit::Failure`] otherwise.
pub fn exit_code(error: &anyhow::Error) -> Exit {
    if error.chain().any(is_usage) {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

/// Returns true for a cause that is the operator's input: a bad flag value, a file named on the
/// command line that is missing or invalid, a certificate or key that cannot be used, or missing
/// credentials. Variants that wrap another error transparently are looked into, because
/// `source()` of such a variant skips the wrapped error itself.
fn is_usage(cause: &(dyn std::error::Error + 'static)) -> bool {
    use caasctl_etcd::store::StoreError;
    use caasctl_restore::RestoreError;

    if let Some(error) = cause.downcast_ref::<BackupError>() {
        return match error {
            BackupError::Etcd(inner) => is_usage(inner),
            BackupError::Repo(inner) => is_usage(inner),
            BackupError::Store(inner) => is_usage(inner),
            BackupError::Key(inner) => is_usage(inner),
            BackupError::Config { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        };
    }
    if let Some(error) = cause.downcast_ref::<RestoreError>() {
        return match error {
            RestoreError::Repo(inner) => is_usage(inner),
            RestoreError::Etcd(inner) => is_usage(inner),
            RestoreError::ClusterFile { .. } | RestoreError::BadMember { .. } => true,
            _ => false,
        };
    }
    if let Some(error) = cause.downcast_ref::<EtcdError>() {
        return matches!(
            error,
            EtcdError::InvalidEndpoint { .. } | EtcdError::NoEndpoints | EtcdError::Tls(_) | EtcdError::ReadFile { .. } | EtcdError::StaticPod { .. } | EtcdError::ConfNoClientUrls { .. }
        );
    }
    if let Some(error) = cause.downcast_ref::<StoreError>() {
        return error.is_usage();
    }
    if let Some(error) = cause.downcast_ref::<RepoError>() {
        return error.is_usage();
    }
    if let Some(error) = cause.downcast_ref::<caasctl_inventory::InventoryError>() {
        return error.is_usage();
    }
    if let Some(error) = cause.downcast_ref::<caasctl_cloud::CloudError>() {
        return matches!(error, caasctl_cloud::CloudError::Config { .. } | caasctl_cloud::CloudError::Credential { .. });
    }
    if let Some(error) = cause.downcast_ref::<caasctl_etcd::fetch::FetchError>() {
        return matches!(error, caasctl_etcd::fetch::FetchError::NeedsIdentity { .. });
    }
    if let Some(error) = cause.downcast_ref::<caasctl_kube::VolumeError>() {
        return error.is_usage();
    }
    if let Some(error) = cause.downcast_ref::<caasctl_volume::VolumeBackupError>() {
        return error.is_usage();
    }
    matches!(cause.downcast_ref::<CliError>(), Some(CliError::NoEndpointSource))
        || cause.downcast_ref::<TlsError>().is_some()
        || cause.downcast_ref::<crate::commands::snapshot::SnapshotCliError>().is_some()
        || cause.downcast_ref::<crate::commands::repo_opts::OptionsError>().is_some()
        || cause.downcast_ref::<caasctl_etcd::blob::KeyError>().is_some()
        || cause.downcast_ref::<crate::commands::serve::ServeError>().is_some()
}
