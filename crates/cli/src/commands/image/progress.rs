//! Progress of `image sync`: one bar per image under a shared `MultiProgress` on a terminal,
//! JSON Lines events on stderr with `-o json`, a log line every few seconds per image elsewhere,
//! and nothing with `--no-progress` or `-q`.
//!
//! An event is `{"type":"progress","data":{"image":DESTINATION,"done":BYTES,"total":BYTES}}`,
//! written at most every 2 seconds per image and once when the image finishes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caasctl_core::Progress;
use caasctl_registry::sync::ProgressFactory;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::context::Context;

/// Creates a progress receiver per image, suited to the context.
pub struct ImageBars {
    multi: Option<MultiProgress>,
    enabled: bool,
    json: bool,
}

impl ImageBars {
    /// Bars on a terminal (unless JSON output), log lines otherwise, nothing when progress is off.
    pub fn new(context: &Context) -> ImageBars {
        let bars = context.progress && context.stderr_tty && !context.json();
        let multi = bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        ImageBars { multi, enabled: context.progress, json: context.json() }
    }

    /// Removes the bars before the results are printed.
    pub fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl ProgressFactory for ImageBars {
    fn image(&self, destination: &str) -> Arc<dyn Progress> {
        match (&self.multi, self.enabled) {
            (Some(multi), _) => {
                let bar = multi.add(ProgressBar::new(0));
                let style = ProgressStyle::with_template("{msg:40!} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(destination.to_owned());
                Arc::new(ImageBar { bar })
            }
            (None, true) if self.json => Arc::new(ImageEvents { destination: destination.to_owned(), state: Mutex::new((0, None, Instant::now())) }),
            (None, true) => Arc::new(ImageLog { destination: destination.to_owned(), state: Mutex::new((0, None, Instant::now())) }),
            (None, false) => Arc::new(caasctl_core::NoProgress),
        }
    }
}

struct ImageBar {
    bar: ProgressBar,
}

impl Progress for ImageBar {
    fn start(&self, _label: &str, total: Option<u64>) {
        self.bar.set_length(total.unwrap_or(0));
        self.bar.reset_elapsed();
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

/// Bytes done, total, and time of the last line.
struct ImageLog {
    destination: String,
    state: Mutex<(u64, Option<u64>, Instant)>,
}

impl Progress for ImageLog {
    fn start(&self, _label: &str, total: Option<u64>) {
        if let Ok(mut state) = self.state.lock() {
            *state = (0, total, Instant::now());
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += bytes;
            if state.2.elapsed() >= Duration::from_secs(5) {
                state.2 = Instant::now();
                tracing::info!(target: "caasctl::progress", image = %self.destination, done = state.0, total = state.1, "progress");
            }
        }
    }

    fn finish(&self) {}
}

/// Bytes done, total, and time of the last event, written as JSON Lines on stderr.
struct ImageEvents {
    destination: String,
    state: Mutex<(u64, Option<u64>, Instant)>,
}

impl ImageEvents {
    fn emit(&self, done: u64, total: Option<u64>) {
        let event = serde_json::json!({ "type": "progress", "data": { "image": self.destination, "done": done, "total": total } });
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{event}");
    }
}

impl Progress for ImageEvents {
    fn start(&self, _label: &str, total: Option<u64>) {
        if let Ok(mut state) = self.state.lock() {
            *state = (0, total, Instant::now());
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += bytes;
            if state.2.elapsed() >= Duration::from_secs(2) {
                state.2 = Instant::now();
                self.emit(state.0, state.1);
            }
        }
    }

    fn finish(&self) {
        if let Ok(state) = self.state.lock() {
            self.emit(state.0, state.1);
        }
    }
}
