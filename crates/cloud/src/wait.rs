//! Polling a cloud resource until it reaches a state, with progress and an explicit timeout.
//!
//! Cloud snapshots and instance stops are asynchronous: the API accepts the request and the work
//! finishes later. Every wait here has a deadline, because a snapshot stuck at 99% must end the
//! command with an error that names what was awaited, not hang an unattended run.

use std::future::Future;
use std::time::{Duration, Instant};

use caasctl_core::Progress;
use tracing::{debug, info};

use crate::error::CloudError;
use crate::provider::CloudResult;

/// How long to wait and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Time allowed before [`CloudError::Timeout`].
    pub timeout: Duration,
    /// Pause between two polls.
    pub interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions { timeout: Duration::from_secs(1800), interval: Duration::from_secs(5) }
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollState {
    /// The state was reached.
    Done,
    /// Not yet; the percentage complete when the API reports one.
    Pending(Option<u8>),
    /// The resource entered an error state, named by the provider's status word.
    Failed(String),
}

/// Polls until `poll` returns [`PollState::Done`], reporting percent progress.
///
/// # Errors
/// [`CloudError::Timeout`] when the deadline passes, [`CloudError::WaitFailed`] when the resource
/// fails, and any error `poll` returns.
pub async fn wait_for<F, Fut>(what: &str, options: WaitOptions, progress: &dyn Progress, mut poll: F) -> CloudResult<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<PollState>>,
{
    let started = Instant::now();
    progress.start(what, Some(100));
    let mut shown: u8 = 0;
    let result = loop {
        let state = match poll().await {
            Ok(state) => state,
            Err(error) => break Err(error),
        };
        debug!(what, ?state, "polled");
        match state {
            PollState::Done => {
                progress.advance(u64::from(100 - shown));
                break Ok(());
            }
            PollState::Failed(status) => break Err(CloudError::WaitFailed { what: what.to_owned(), status }),
            PollState::Pending(percent) => {
                if let Some(percent) = percent.map(|p| p.min(100)) {
                    if percent > shown {
                        progress.advance(u64::from(percent - shown));
                        shown = percent;
                    }
                }
            }
        }
        if started.elapsed() >= options.timeout {
            break Err(CloudError::Timeout { what: what.to_owned(), seconds: options.timeout.as_secs() });
        }
        tokio::time::sleep(options.interval.min(options.timeout.saturating_sub(started.elapsed()))).await;
    };
    progress.finish();
    if result.is_ok() {
        info!(what, elapsed_ms = started.elapsed().as_millis() as u64, "wait finished");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use caasctl_core::NoProgress;

    fn fast(timeout_ms: u64) -> WaitOptions {
        WaitOptions { timeout: Duration::from_millis(timeout_ms), interval: Duration::from_millis(5) }
    }

    #[tokio::test]
    async fn wait_reaches_done() {
        let mut calls = 0;
        let result = wait_for("x", fast(1000), &NoProgress, || {
            calls += 1;
            let state = if calls < 3 { PollState::Pending(Some(calls * 30)) } else { PollState::Done };
            async move { Ok(state) }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn wait_times_out() {
        let result = wait_for("snapshot s-1 to be ready", fast(30), &NoProgress, || async { Ok(PollState::Pending(None)) }).await;
        assert!(matches!(result, Err(CloudError::Timeout { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn wait_reports_failure() {
        let result = wait_for("x", fast(1000), &NoProgress, || async { Ok(PollState::Failed("error".into())) }).await;
        assert!(matches!(result, Err(CloudError::WaitFailed { ref status, .. }) if status == "error"), "{result:?}");
    }
}
