//! `caasctl serve`: scheduled backups as a long-running service. On each time of the cron
//! schedule it takes a backup, applies the keep rules and, when configured, runs a restore drill
//! of the new backup. `/metrics` (Prometheus text format) and `/healthz` are served over HTTP,
//! and logs go to stderr as JSON lines.
//!
//! SIGTERM or SIGINT stops the schedule. A backup in progress may finish within
//! `shutdown_grace_seconds`; after that it is abandoned, and what it wrote is removed. Its manifest
//! is never written, so it is never listed as complete.

mod config;
mod cycle;
mod metrics;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use caasctl_etcd::backup::BackupRequest;
use caasctl_etcd::blob::Identities;
use caasctl_etcd::snapshot::StreamOptions;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::config::{parse_schedule, ServeConfig};
use self::cycle::{unix_now, Service};
use self::metrics::Metrics;
use crate::args::EndpointArgs;
use crate::commands::repo_opts::{load_config, EncryptArgs, DEFAULT_REPO};
use crate::context::Context;
use crate::Exit;

pub use self::config::ServeError;

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file with the [serve] table (schedule, etcd, keep rules, drill) and the [backup] table (repository, encryption).
    #[arg(id = "serve_config", long = "config", value_name = "FILE", env = "CAASCTL_CONFIG", default_value = "caasctl.toml")]
    pub config: PathBuf,
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(args: &ServeArgs, _context: &Context) -> anyhow::Result<Exit> {
    let config = ServeConfig::load(&args.config)?;
    let schedule = parse_schedule(&config.schedule)?;
    let listen = config.listen_addr()?;
    let backup = load_config(Some(&args.config))?;
    let recipients = EncryptArgs { encrypt: false, recipient: Vec::new(), recipients_file: None }.recipients(&backup)?;
    let repo = backup.repo.clone().unwrap_or_else(|| DEFAULT_REPO.to_owned());
    let s3 = caasctl_etcd::s3::S3Options { endpoint: backup.s3_endpoint.clone(), region: backup.s3_region.clone(), path_style: backup.s3_path_style };
    let endpoints = EndpointArgs {
        endpoints: config.endpoints.clone(),
        cacert: config.cacert.clone(),
        cert: config.cert.clone(),
        key: config.key.clone(),
        etcd_conf: config.etcd_conf.clone(),
        static_pod_manifest: None,
        dial_timeout: 5,
        command_timeout: 10,
    };
    let access = super::endpoints::resolve(&endpoints)?;
    let request = BackupRequest {
        access,
        repo: repo.clone(),
        s3,
        config: config
            .config_dirs
            .iter()
            .enumerate()
            .map(|(index, dir)| {
                let host = super::etcd_backup::local_hostname();
                let member = if index == 0 { host } else { format!("{host}-{index}") };
                caasctl_etcd::backup::ConfigSource { member, dir: dir.clone() }
            })
            .collect(),
        timeouts: super::endpoints::timeouts(&endpoints),
        stream: StreamOptions { rate_limit: config.rate_limit_mib.map(|mib| (mib * 1024.0 * 1024.0) as u64) },
        recipients,
    };
    if repo.starts_with("s3://") && request.recipients.is_empty() {
        warn!(repo = %repo, "backups go to a remote repository unencrypted; set encrypt and recipients in [backup]");
    }
    let identities = config.drill.identity.as_deref().map(Identities::read).transpose()?.map(Arc::new);
    let scratch = config.drill.scratch_dir.clone().unwrap_or_else(|| caasctl_restore::journal::state_dir().join("drill"));

    let metrics = Arc::new(Metrics::default());
    // A restarted service reports the newest backup already in the repository, so an alert on the
    // age of the last success neither fires after every restart nor stays silent until a backup.
    match newest_backup_unix(&request).await {
        Ok(Some(unix)) => metrics.seed_last_success(unix),
        Ok(None) => info!(repo = %repo, "the repository contains no complete backup yet"),
        Err(error) => warn!(repo = %repo, error = %format!("{error:#}"), "failed to read the newest backup of the repository"),
    }
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("failed to listen on {listen}; set another address with listen = \"IP:PORT\" in [serve]"))?;
    if !listen.ip().is_loopback() {
        warn!(listen = %listen, "metrics are served on a non-loopback address");
    }
    let router = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics.clone());
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned())));
    info!(listen = %listen, schedule = %config.schedule, repo = %repo, drill = config.drill.enabled, "serve started");

    let service = Service { request, config, metrics: metrics.clone(), shutdown: shutdown.clone(), identities, scratch };
    let mut run = 0u64;
    while !shutdown.is_cancelled() {
        let now = chrono::Local::now();
        let next = match schedule.find_next_occurrence(&now, false) {
            Ok(next) => next,
            Err(error) => {
                warn!(schedule = %service.config.schedule, error = %error, "the schedule has no next time; stopping");
                break;
            }
        };
        metrics.next_run(next.timestamp() as f64 + f64::from(next.timestamp_subsec_millis()) / 1000.0);
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => break,
        }
        run += 1;
        service.run_once(run).await;
    }

    shutdown.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(error = %error, "the HTTP server stopped with an error"),
        Err(error) => warn!(error = %error, "the HTTP server task failed"),
    }
    info!(runs = run, stopped_at = unix_now(), "serve stopped");
    Ok(Exit::Success)
}

async fn metrics_handler(axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>) -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutdown requested");
        shutdown.cancel();
    });
    Ok(())
}

/// Returns when the newest complete backup of the repository finished, as Unix seconds. A backup
/// whose last verification failed does not count as a success.
async fn newest_backup_unix(request: &BackupRequest) -> anyhow::Result<Option<f64>> {
    let repository = match caasctl_etcd::store::Repository::open_existing(&request.repo, &request.s3) {
        Ok(repository) => repository,
        // A local repository is created by the first backup.
        Err(error) if error.is_usage() => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let entries = repository.list().await?;
    let newest = entries
        .iter()
        .filter(|entry| entry.state == "complete" && !entry.failed_verification())
        .filter_map(|entry| entry.manifest.as_ref())
        .filter_map(|manifest| chrono::DateTime::parse_from_rfc3339(&manifest.finished_at).ok())
        .max();
    Ok(newest.map(|time| time.timestamp() as f64 + f64::from(time.timestamp_subsec_millis()) / 1000.0))
}
