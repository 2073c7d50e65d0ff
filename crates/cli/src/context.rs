//! What every command receives: the chosen language and output format, and how to report progress.

use std::io::IsTerminal;

use caasctl_core::Lang;
use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, OutputFormat};

/// Settings a command runs with.
#[derive(Debug, Clone)]
pub struct Context {
    /// Language of messages.
    pub lang: Lang,
    /// Result format on stdout.
    pub output: OutputFormat,
    /// Whether progress may be shown at all.
    pub progress: bool,
    /// Whether stderr is a terminal, so bars can be drawn.
    pub stderr_tty: bool,
    /// Whether stdin is a terminal, so the user can be asked.
    pub stdin_tty: bool,
    /// `-q`: only errors on stderr, no warnings.
    pub quiet: bool,
}

impl Context {
    /// Builds the context from the global options and the language picked before parsing.
    pub fn new(global: &GlobalArgs, lang: Lang) -> Context {
        let lang = global.lang.as_deref().and_then(Lang::from_locale).unwrap_or(lang);
        Context {
            lang,
            output: global.output,
            progress: !global.no_progress && !global.quiet,
            stderr_tty: std::io::stderr().is_terminal(),
            stdin_tty: std::io::stdin().is_terminal(),
            quiet: global.quiet,
        }
    }

    /// Renders a catalogue message in the context's language.
    pub fn tr(&self, key: &'static str, args: &[(&'static str, &dyn std::fmt::Display)]) -> String {
        caasctl_core::i18n::tr(self.lang, key, args)
    }

    /// Returns true when results go out as JSON.
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// Sends `tracing` events to stderr. `RUST_LOG` overrides the level chosen by `-v` and `-q`;
/// dependencies log at `warn` unless `RUST_LOG` names them.
/// With `service`, logs are JSON lines and the default level is `info`.
pub fn init_tracing(global: &GlobalArgs, service: bool) {
    let own = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) if service => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,caasctl={own},caasctl_etcd={own},caasctl_core={own},caasctl_restore={own}")));
    // Colour codes only on a terminal, so that logs redirected to a file stay plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    if global.output == OutputFormat::Json || service {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}
