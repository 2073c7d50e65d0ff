//! `caasctl etcd members`: the member list, read from the first endpoint that responds.

use caasctl_etcd::client::MemberClient;
use caasctl_etcd::health::members;
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::EtcdError;

use crate::args::ApiArgs;
use crate::context::Context;
use crate::output::{print_json, print_text, Table};
use crate::Exit;

use super::endpoints;

/// Runs the command.
pub async fn run(args: &ApiArgs, context: &Context) -> anyhow::Result<Exit> {
    let access = endpoints::resolve(&args.endpoints)?;
    let tls = TlsMaterial::load(&access.tls).map_err(EtcdError::from)?;
    if args.api == "2" {
        return run_v2(&access.endpoints, &tls, args, context).await;
    }
    let mut last_error = None;
    for endpoint in &access.endpoints {
        let listed = match MemberClient::connect(endpoint, &tls, endpoints::timeouts(&args.endpoints)).await {
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

/// Lists the members over the v2 API, in the shape of `etcdctl member list` with `ETCDCTL_API=2`.
async fn run_v2(list: &[String], tls: &TlsMaterial, args: &ApiArgs, context: &Context) -> anyhow::Result<Exit> {
    let cluster = caasctl_etcd::v2::cluster_health(list, tls, endpoints::timeouts(&args.endpoints).request).await?;
    if context.json() {
        print_json(&cluster.members);
        return Ok(Exit::Success);
    }
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![t("members.col.id"), t("members.col.name"), t("members.col.client_urls"), t("health.col.leader")]);
    for m in &cluster.members {
        table.row(vec![m.id.clone(), m.name.clone(), m.client_url.clone().unwrap_or_default(), if m.is_leader { t("yes") } else { t("no") }]);
    }
    print_text(&table.render());
    Ok(Exit::Success)
}
