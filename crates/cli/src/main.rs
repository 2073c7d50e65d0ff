//! caasctl: the day-2 maintenance runbook of a Kubernetes / OpenShift 3.x platform as safe,
//! verified commands.
//!
//! `main` only parses the command line, sets up logging and maps the outcome to an exit code. Each
//! subcommand lives in its own module under `commands/`.

mod args;
mod commands;
mod context;
mod errors;
mod help;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::Cli;
use crate::context::Context;

/// Exit status of a run; the table is printed by `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded and was verified.
    Success = 0,
    /// The operation failed.
    Failure = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Some items failed, the rest finished.
    Partial = 3,
    /// Interrupted by a signal.
    Interrupted = 130,
}

fn main() -> ExitCode {
    // Both ring and aws-lc-rs are linked through dependencies, so rustls needs the provider named;
    // ring is what the etcd and Kubernetes clients were built against.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lang = help::lang_from_argv();
    let command = help::localize(Cli::command(), lang);
    let matches = match command.try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            let code = if error.use_stderr() { Exit::Usage } else { Exit::Success };
            if let Some(line) = help::explain_parse_error(&error, lang) {
                eprintln!("caasctl: {line}");
            }
            let _ = error.print();
            return ExitCode::from(code as u8);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(Exit::Usage as u8);
        }
    };

    let context = Context::new(&cli.global, lang);
    // The service logs JSON lines at info level for log collectors; it handles its own signals.
    let service = matches!(cli.command, args::Command::Serve(_));
    context::init_tracing(&cli.global, service);

    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("caasctl: {error}");
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    let outcome = runtime.block_on(async {
        if service {
            return commands::run(cli.command, &context).await;
        }
        tokio::select! {
            result = commands::run(cli.command, &context) => result,
            _ = tokio::signal::ctrl_c() => {
                let cut_short = caasctl_restore::journal::unfinished_operations();
                if cut_short.is_empty() {
                    eprintln!("caasctl: {}", context.tr("cli.interrupted", &[]));
                }
                for id in &cut_short {
                    eprintln!("caasctl: {}", context.tr("cli.interrupted_operation", &[("id", id)]));
                }
                Ok(Exit::Interrupted)
            }
        }
    });
    match outcome {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            errors::print(&error, &context);
            ExitCode::from(errors::exit_code(&error) as u8)
        }
    }
}
