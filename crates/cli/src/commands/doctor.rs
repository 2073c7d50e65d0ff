//! `caasctl doctor`: the runbook's preconditions for etcd work as pass, warn and fail lines, each
//! failure with its fix.

use std::path::Path;

use caasctl_core::{Localize, Message};
use caasctl_etcd::health::check_all;
use caasctl_etcd::tls::{check_key_matches, parse_certificates, CertInfo, TlsMaterial};

use crate::args::DoctorArgs;
use crate::context::Context;
use crate::output::{print_json, print_text};
use crate::Exit;

use super::endpoints;

/// Days before expiry from which a certificate is reported as a warning.
const EXPIRY_WARN_DAYS: i64 = 30;
/// Share of the backend quota from which the db size fails the check.
const DB_QUOTA_LIMIT: f64 = 0.8;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The precondition holds.
    Pass,
    /// It holds, but needs attention soon.
    Warn,
    /// It does not hold.
    Fail,
}

/// One line of the doctor's report. JSON: `{check, status, message, fix}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// Stable check name, such as `tls.key-matches`.
    pub check: String,
    /// Outcome.
    pub status: Status,
    /// Finding, in the user's language.
    pub message: String,
    /// Remedy, when the check did not pass.
    pub fix: Option<String>,
}

struct Report<'a> {
    context: &'a Context,
    checks: Vec<Check>,
}

impl Report<'_> {
    fn add(&mut self, check: &str, status: Status, message: Message, fix: Option<Message>) {
        self.checks.push(Check {
            check: check.to_owned(),
            status,
            message: message.render(self.context.lang),
            fix: fix.map(|m| m.render(self.context.lang)),
        });
    }
}

/// Runs the command.
pub async fn run(args: &DoctorArgs, context: &Context) -> anyhow::Result<Exit> {
    let access = endpoints::resolve(&args.endpoints)?;
    let mut report = Report { context, checks: Vec::new() };

    let files = [("cacert", access.tls.cacert.as_deref()), ("cert", access.tls.cert.as_deref()), ("key", access.tls.key.as_deref())];
    let mut readable = true;
    for (name, path) in files {
        let Some(path) = path else { continue };
        match std::fs::read(path) {
            Ok(_) => report.add(&format!("tls.{name}.readable"), Status::Pass, Message::new("doctor.file_readable").arg("path", path.display()), None),
            Err(error) => {
                readable = false;
                report.add(
                    &format!("tls.{name}.readable"),
                    Status::Fail,
                    Message::new("doctor.file_unreadable").arg("path", path.display()).arg("reason", error),
                    Some(Message::new("tls.hint.files")),
                );
            }
        }
    }
    if readable {
        check_certificates(&mut report, access.tls.cacert.as_deref(), access.tls.cert.as_deref(), access.tls.key.as_deref());
    }

    match TlsMaterial::load(&access.tls) {
        Err(error) => report.add("etcd.reachable", Status::Fail, error.message(), error.hint()),
        Ok(tls) => {
            let health: Vec<_> = check_all(&access.endpoints, &tls, endpoints::timeouts(&args.endpoints)).await.into_iter().map(|(h, _)| h).collect();
            for h in &health {
                match &h.error_message {
                    Some((message, hint)) if h.version.is_none() => report.add("etcd.reachable", Status::Fail, message.clone(), hint.clone()),
                    _ => report.add("etcd.reachable", Status::Pass, Message::new("doctor.reachable").arg("endpoint", &h.endpoint), None),
                }
            }
            let unhealthy: Vec<&str> = health.iter().filter(|h| !h.healthy).map(|h| h.endpoint.as_str()).collect();
            if unhealthy.is_empty() {
                report.add("etcd.healthy", Status::Pass, Message::new("doctor.cluster_healthy"), None);
            } else {
                report.add("etcd.healthy", Status::Fail, Message::new("doctor.cluster_unhealthy").arg("endpoints", unhealthy.join(", ")), Some(Message::new("etcd.hint.run_health")));
            }
            let alarms: Vec<String> = health.iter().flat_map(|h| h.alarms.iter().map(move |a| format!("{}={a}", h.endpoint))).collect();
            if alarms.is_empty() {
                report.add("etcd.alarms", Status::Pass, Message::new("doctor.no_alarm"), None);
            } else {
                report.add("etcd.alarms", Status::Fail, Message::new("etcd.health.alarm").arg("alarms", alarms.join(", ")), Some(Message::new("etcd.hint.alarm")));
            }
            for h in &health {
                if let (Some(size), Some(quota)) = (h.db_size, h.quota_bytes.filter(|q| *q > 0)) {
                    let share = size as f64 / quota as f64;
                    let percent = format!("{:.0}", share * 100.0);
                    let message = Message::new("doctor.db_quota").arg("endpoint", &h.endpoint).arg("percent", &percent);
                    if share < DB_QUOTA_LIMIT {
                        report.add("etcd.db-quota", Status::Pass, message, None);
                    } else {
                        report.add("etcd.db-quota", Status::Fail, message, Some(Message::new("doctor.fix.db_quota")));
                    }
                }
            }
        }
    }

    check_api_server(&mut report, args).await;

    let worst = report.checks.iter().map(|c| c.status).max_by_key(|s| match s {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    });
    if context.json() {
        print_json(&report.checks);
    } else {
        let mut out = String::new();
        for check in &report.checks {
            let label = match check.status {
                Status::Pass => context.tr("doctor.pass", &[]),
                Status::Warn => context.tr("doctor.warn", &[]),
                Status::Fail => context.tr("doctor.fail", &[]),
            };
            out.push_str(&format!("[{label}] {}\n", check.message));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("       {}{fix}\n", context.tr("cli.hint.prefix", &[])));
            }
        }
        print_text(&out);
    }
    Ok(if worst == Some(Status::Fail) { Exit::Failure } else { Exit::Success })
}

fn check_certificates(report: &mut Report<'_>, cacert: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) {
    let cas: Vec<CertInfo> = match cacert {
        Some(path) => match std::fs::read(path).map_err(|e| e.to_string()).and_then(|pem| parse_certificates(path, &pem).map_err(|e| e.to_string())) {
            Ok(cas) => {
                for ca in &cas {
                    expiry(report, path, ca);
                }
                cas
            }
            Err(reason) => {
                report.add("tls.cacert.parse", Status::Fail, Message::new("tls.error.bad_certificate").arg("path", path.display()).arg("reason", reason), Some(Message::new("tls.hint.files")));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let (Some(cert_path), Some(key_path)) = (cert, key) else { return };
    let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read(cert_path), std::fs::read(key_path)) else { return };
    match CertInfo::from_pem(cert_path, &cert_pem) {
        Err(error) => report.add("tls.cert.parse", Status::Fail, error.message(), error.hint()),
        Ok(info) => {
            expiry(report, cert_path, &info);
            if !cas.is_empty() {
                if info.verified_by(&cas) {
                    report.add("tls.cert.ca", Status::Pass, Message::new("doctor.ca_verifies").arg("cert", cert_path.display()), None);
                } else {
                    report.add("tls.cert.ca", Status::Fail, Message::new("doctor.ca_does_not_verify").arg("cert", cert_path.display()).arg("ca", cacert.map(|p| p.display().to_string()).unwrap_or_default()), Some(Message::new("doctor.fix.ca")));
                }
            }
        }
    }
    match check_key_matches(cert_path, &cert_pem, key_path, &key_pem) {
        Ok(()) => report.add("tls.key-matches", Status::Pass, Message::new("doctor.key_matches").arg("key", key_path.display()).arg("cert", cert_path.display()), None),
        Err(error) => report.add("tls.key-matches", Status::Fail, error.message(), error.hint()),
    }
}

fn expiry(report: &mut Report<'_>, path: &Path, info: &CertInfo) {
    let days = info.days_left();
    let message = Message::new("doctor.expiry").arg("path", path.display()).arg("subject", &info.subject).arg("days", days);
    if days < 0 {
        report.add("tls.expiry", Status::Fail, message, Some(Message::new("tls.hint.expired")));
    } else if days < EXPIRY_WARN_DAYS {
        report.add("tls.expiry", Status::Warn, message, Some(Message::new("tls.hint.expired")));
    } else {
        report.add("tls.expiry", Status::Pass, message, None);
    }
}

async fn check_api_server(report: &mut Report<'_>, args: &DoctorArgs) {
    let explicit = args.kubeconfig.clone();
    let found = explicit
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(Into::into))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
        .filter(|p| p.is_file());
    let Some(path) = found else {
        if explicit.is_some() {
            report.add("kube.healthz", Status::Fail, Message::new("doctor.kubeconfig_missing"), None);
        }
        return;
    };
    match super::kube_health::healthz(&path).await {
        Ok(body) if body.trim() == "ok" => report.add("kube.healthz", Status::Pass, Message::new("doctor.apiserver_ok"), None),
        Ok(body) => report.add("kube.healthz", Status::Fail, Message::new("doctor.apiserver_unhealthy").arg("reason", body.trim()), Some(Message::new("doctor.fix.apiserver"))),
        Err(reason) => report.add("kube.healthz", Status::Fail, Message::new("doctor.apiserver_unhealthy").arg("reason", reason), Some(Message::new("doctor.fix.apiserver"))),
    }
}
