//! `caasctl etcd health`: every endpoint's health as a table or JSON. Exits 0 when all are
//! healthy, 3 when some are not, 1 when none is.

use caasctl_etcd::health::{check_all, EndpointHealth};
use caasctl_etcd::tls::TlsMaterial;

use crate::args::EndpointArgs;
use crate::context::Context;
use crate::output::{human_bytes, print_json, print_text, Table};
use crate::Exit;

use super::endpoints;

/// Runs the command.
pub async fn run(args: &EndpointArgs, context: &Context) -> anyhow::Result<Exit> {
    let access = endpoints::resolve(args)?;
    let tls = TlsMaterial::load(&access.tls).map_err(caasctl_etcd::EtcdError::from)?;
    let report: Vec<EndpointHealth> = check_all(&access.endpoints, &tls, endpoints::timeouts(args)).await.into_iter().map(|(h, _)| h).collect();

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
