//! The Maildir store, byte-compatible with Dovecot 2.3: Maildir++ or fs
//! layout, `dovecot-uidlist`, `dovecot-keywords`, `subscriptions`.
//!
//! Formats are pure functions in their own modules; the store does the I/O
//! with blocking std calls (the engine runs it under `block_in_place`).

pub mod filename;
pub mod fsutil;
pub mod keywords;
pub mod mutf7;
pub mod options;
pub mod scan;
pub mod store;
pub mod subscriptions;
pub mod uidlist;
pub mod update;

#[cfg(test)]
mod dovecot_tests;
#[cfg(test)]
mod store_tests;

pub use filename::Layout;
pub use options::{IndexDir, MaildirOptions};
pub use store::MaildirStore;
pub use update::{MailboxUpdate, SaveHandle};

/// The mailbox changed under us (another program delivered, expunged or
/// renamed files meanwhile) so the operation could not be done now; running
/// again fixes it. Callers find it with `err.downcast_ref::<ChangedMeanwhile>()`
/// (the engine's exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedMeanwhile(pub String);

impl std::fmt::Display for ChangedMeanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChangedMeanwhile {}
