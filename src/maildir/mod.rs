//! The Maildir store, byte-compatible with Dovecot 2.3: Maildir++ or fs
//! layout, `dovecot-uidlist`, `dovecot-keywords`, `subscriptions`.
//!
//! Formats are pure functions in their own modules; the store does the I/O
//! with blocking std calls (the engine runs it under `block_in_place`).
//!
//! What the store promises, and what it asks of its caller:
//! - Every read ([`MaildirStore::list_mailboxes`], [`MaildirStore::snapshot`],
//!   [`MaildirStore::mailbox_info`]) first reconciles the folder with its
//!   dovecot-uidlist exactly as Dovecot would (new files get UIDs in
//!   Dovecot's order, vanished files lose theirs), so Dovecot and dsync
//!   always agree on UIDs. A damaged uidlist is an error, never a renumbering.
//! - Writes go through a [`MailboxUpdate`]; nothing is visible before
//!   `commit`, which is durable when it returns. The caller picks the UIDs
//!   of saved messages (at or above UIDNEXT, or below it in backup mode, in
//!   which case Dovecot's index is removed so it rebuilds from ours).
//! - Races with other programs (a delivery took the UID, a message vanished)
//!   are [`ChangedMeanwhile`] errors: retry, or finish with exit code 2.
//!   Changes a commit had to leave out are in [`MaildirStore::take_skipped`].
//! - `rename_mailbox` renames children too (IMAP RENAME semantics);
//!   `delete_mailbox` leaves children; `create_mailbox` never creates
//!   parents. Names that cannot be stored are repaired with
//!   [`MaildirStore::storable_name`] (Dovecot's dsync_alt_char rule).

pub mod dates;
pub mod filename;
pub mod fingerprint;
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
mod commit_tests;
#[cfg(test)]
mod dovecot_tests;
#[cfg(test)]
mod relabel_tests;
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
