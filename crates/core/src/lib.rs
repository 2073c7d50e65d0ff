//! Types that every caasctl crate shares and that carry no network code: the message catalogues
//! (Simplified Chinese and English), the progress trait that long operations report through, and
//! small helpers for timestamps.
#![deny(missing_docs)]

pub mod error;
pub mod i18n;
pub mod progress;
pub mod timefmt;

pub use i18n::{Lang, Localize, Message};
pub use progress::{NoProgress, Progress};
