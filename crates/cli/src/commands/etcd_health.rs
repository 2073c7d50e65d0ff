//! `caasctl etcd health`: every endpoint's health as a table or JSON. Exits 0 when all are
//! healthy, 3 when some are not, 1 when none is. With `--api 2` it reports what
//! `etcdctl cluster-health` reports over the v2 API.

use caasctl_etcd::health::{check_all, EndpointHealth};
use caasctl_etcd::tls::TlsMaterial;
use caasctl_etcd::v2::{cluster_health, V2Cluster};

use crate::args::ApiArgs;
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

use super::endpoints;

/// Runs the command.
pub async fn run(args: &ApiArgs, context: &Context) -> anyhow::Result<Exit> {
    let access = endpoints::resolve(&args.endpoints)?;
    let tls = TlsMaterial::load(&access.tls).map_err(caasctl_etcd::EtcdError::from)?;
    let timeouts = endpoints::timeouts(&args.endpoints);
    if args.api == "2" {
        let cluster = cluster_health(&access.endpoints, &tls, timeouts.request).await?;
        if context.json() {
            print_json(&cluster);
        } else {
            print_text(&render_v2(&cluster, context));
        }
        let unhealthy = cluster.members.iter().filter(|m| !m.healthy).count();
        return Ok(match unhealthy {
            0 => Exit::Success,
            n if n == cluster.members.len() => Exit::Failure,
            _ => Exit::Partial,
        });
    }

    let report: Vec<EndpointHealth> = check_all(&access.endpoints, &tls, timeouts).await.into_iter().map(|(h, _)| h).collect();
    if context.json() {
        print_json(&report);
    } else {
        print_text(&render(&report, context));
    }
    Ok(exit_for(&report))
}

/// Returns the exit status for a health report.
pub fn exit_for(report: &[EndpointHealth]) -> Exit {
    let unhealthy = report.iter().filter(|h| !h.healthy).count();
    match unhealthy {
        0 => Exit::Success,
        n if n == report.len() => Exit::Failure,
        _ => Exit::Partial,
    }
}

/// Renders the v2 report in the shape of `etcdctl cluster-health`: one line per member, then the
/// cluster's verdict.
fn render_v2(cluster: &V2Cluster, context: &Context) -> String {
    let mut out = String::new();
    for member in &cluster.members {
        let line = if member.healthy {
            context.tr("health.v2.member_healthy", &[("id", &member.id), ("url", &member.client_url.clone().unwrap_or_default())])
        } else {
            let reason = member.error_message.as_ref().map(|m| m.render(context.lang)).or_else(|| member.error.clone()).unwrap_or_default();
            context.tr("health.v2.member_unhealthy", &[("id", &member.id), ("reason", &reason)])
        };
        out.push_str(&line);
        out.push('\n');
    }
    let verdict = if cluster.healthy { "health.v2.cluster_healthy" } else { "health.v2.cluster_unhealthy" };
    out.push_str(&context.tr(verdict, &[]));
    out.push('\n');
    out
}

/// Renders the report as a table followed by one line per unhealthy endpoint with its reason.
pub fn render(report: &[EndpointHealth], context: &Context) -> String {
    let t = |key| context.tr(key, &[]);
    let mut table = Table::new(vec![
        t("health.col.endpoint"),
        t("health.col.health"),
        t("health.col.took"),
        t("health.col.version"),
        t("health.col.db_size"),
        t("health.col.member_id"),
        t("health.col.leader"),
        t("health.col.raft_term"),
        t("health.col.raft_index"),
        t("health.col.alarms"),
    ]);
    let dash = || "-".to_owned();
    for h in report {
        let db = match (h.db_size, h.quota_bytes) {
            (Some(size), Some(quota)) if quota > 0 => format!("{} / {} ({:.0}%)", human_bytes(size as u64), human_bytes(quota), size as f64 * 100.0 / quota as f64),
            (Some(size), _) => human_bytes(size as u64),
            _ => dash(),
        };
        table.row(vec![
            h.endpoint.clone(),
            if h.healthy { t("health.healthy") } else { t("health.unhealthy") },
            h.took_ms.map(|ms| format!("{ms:.1}ms")).unwrap_or_else(dash),
            h.version.clone().unwrap_or_else(dash),
            db,
            h.member_id.clone().unwrap_or_else(dash),
            match (&h.leader, h.is_leader) {
                (Some(_), true) => t("health.is_leader"),
                (Some(leader), false) => leader.clone(),
                (None, _) => dash(),
            },
            h.raft_term.map(|v| v.to_string()).unwrap_or_else(dash),
            h.raft_index.map(|v| v.to_string()).unwrap_or_else(dash),
            if h.alarms.is_empty() { dash() } else { h.alarms.join(",") },
        ]);
    }
    let mut out = table.render();
    for h in report.iter().filter(|h| !h.healthy) {
        if let Some((message, hint)) = &h.error_message {
            out.push_str(&format!("{}: {}\n", h.endpoint, message.render(context.lang)));
            if let Some(hint) = hint {
                out.push_str(&format!("  {}{}\n", context.tr("cli.hint.prefix", &[]), hint.render(context.lang)));
            }
        }
    }
    out
}
