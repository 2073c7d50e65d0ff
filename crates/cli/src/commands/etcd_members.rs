//! `caasctl etcd members`: the member list, read from the first endpoint that responds.

use caasctl_etcd::client::MemberClient;
use caasctl_etcd::health::members;
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::EtcdError;

use crate::args::EndpointArgs;
use crate::context::Context;
use crate::output::{print_json, print_text, Table};
use crate::Exit;

use super::endpoints;

/// Runs the command.
pub async fn run(args: &EndpointArgs, context: &Context) -> anyhow::Result<Exit> {
    let access = endpoints::resolve(args)?;
    let tls = TlsMaterial::load(&access.tls).map_err(EtcdError::from)?;
    let mut last_error = None;
    for endpoint in &access.endpoints {
        let listed = match MemberClient::connect(endpoint, &tls, endpoints::timeouts(args)).await {
            Ok(client) => members(&client).await,
            Err(error) => Err(error),
        };
        match listed {
            Ok((cluster_id, list)) => {
                if context.json() {
                    print_json(&serde_json::json!({ "cluster_id": cluster_id, "members": list }));
                } else {
                    let t = |key| context.tr(key, &[]);
                    let mut table = Table::new(vec![t("members.col.id"), t("members.col.name"), t("members.col.peer_urls"), t("members.col.client_urls"), t("members.col.learner")]);
                    for m in &list {
                        table.row(vec![m.id.clone(), m.name.clone(), m.peer_urls.join(","), m.client_urls.join(","), if m.is_learner { t("yes") } else { t("no") }]);
                    }
                    print_text(&table.render());
                }
                return Ok(Exit::Success);
            }
            Err(error) => {
                tracing::warn!(endpoint = %endpoint, error = %error, "member list failed, trying the next endpoint");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or(EtcdError::NoEndpoints).into())
}
