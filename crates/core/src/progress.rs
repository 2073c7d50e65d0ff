//! Progress reporting for long operations. Libraries report through [`Progress`]; only the binary
//! decides whether that becomes a terminal bar, a periodic log line or JSON events.

/// Receiver of progress for one long operation, such as streaming a snapshot.
pub trait Progress: Send + Sync {
    /// Announces the operation and its total size in bytes, when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// Reports that `bytes` more bytes were processed.
    fn advance(&self, bytes: u64);
    /// Marks the operation finished, successfully or not.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}
