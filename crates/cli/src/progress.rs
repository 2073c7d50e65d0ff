//! Progress in the binary: a bar on a terminal, a log line every few seconds elsewhere, and
//! nothing with `--no-progress` or `-q`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use caasctl_core::Progress;
use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Context;

/// Creates the progress reporter suited to the context.
pub fn reporter(context: &Context) -> Box<dyn Progress> {
    if !context.progress {
        Box::new(caasctl_core::NoProgress)
    } else if context.stderr_tty && !context.json() {
        Box::new(BarProgress { bar: Mutex::new(None) })
    } else {
        Box::new(LogProgress { state: Mutex::new(LogState::default()) })
    }
}

struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for BarProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_owned());
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(bytes);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}

#[derive(Default)]
struct LogState {
    label: String,
    total: Option<u64>,
    done: u64,
    last: Option<Instant>,
}

struct LogProgress {
    state: Mutex<LogState>,
}

impl Progress for LogProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        if let Ok(mut state) = self.state.lock() {
            *state = LogState { label: label.to_owned(), total, done: 0, last: Some(Instant::now()) };
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.done += bytes;
            if state.last.map(|t| t.elapsed() >= Duration::from_secs(5)).unwrap_or(true) {
                state.last = Some(Instant::now());
                tracing::info!(target: "caasctl::progress", label = %state.label, done = state.done, total = state.total, "progress");
            }
        }
    }

    fn finish(&self) {}
}

/// Prints the progress line of a journaled step, unless progress is off or the output is JSON.
pub(crate) fn step_line(context: &crate::context::Context, key: &'static str, step: &str, finished: Option<(std::time::Duration, Option<String>)>) {
    if !context.progress || context.json() {
        return;
    }
    let line = match finished {
        Some((elapsed, note)) => {
            let seconds = format!("{:.1}", elapsed.as_secs_f64());
            let note = note.map(|n| format!(": {n}")).unwrap_or_default();
            context.tr(key, &[("step", &step), ("seconds", &seconds), ("note", &note)])
        }
        None => context.tr(key, &[("step", &step)]),
    };
    eprintln!("{line}");
}

/// Runs the steps of a journaled procedure in order. A step in `done` was finished by an earlier
/// run and is skipped. Every other step is journaled before and after it runs, with the note that
/// `run` returns for it. The first failure is journaled and ends the operation as failed. Its
/// error comes back with `resume_hint`, which names `caasctl ops resume`, as context.
///
/// # Errors
/// The first step that fails, or a journal write that fails.
pub async fn run_journaled_steps<S>(
    journal: &caasctl_restore::journal::Journal,
    operation: &str,
    done: &std::collections::HashSet<String>,
    steps: impl IntoIterator<Item = (String, S)>,
    context: &Context,
    resume_hint: &str,
    mut run: impl AsyncFnMut(S) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<()> {
    for (id, step) in steps {
        if done.contains(&id) {
            step_line(context, "restore.run.skipped", &id, None);
            continue;
        }

        journal.step_started(&id)?;
        step_line(context, "restore.run.started", &id, None);
        let started = Instant::now();
        match run(step).await {
            Ok(note) => {
                journal.step_finished(&id, note.clone())?;
                tracing::info!(step = %id, elapsed_ms = started.elapsed().as_millis() as u64, "step finished");
                step_line(context, "restore.run.finished", &id, Some((started.elapsed(), note)));
            }
            Err(error) => {
                let text = format!("{error:#}");
                journal.step_failed(&id, &text)?;
                journal.finish(false)?;
                if context.progress && !context.json() {
                    eprintln!("{}", context.tr("restore.run.failed", &[("step", &id), ("error", &text)]));
                }
                return Err(error.context(format!("operation {operation}: {resume_hint}")));
            }
        }
    }

    journal.finish(true)?;
    Ok(())
}
