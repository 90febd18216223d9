//! The sync engine on the leader side (the side the user started). It owns
//! every decision; the follower (`server`) only reports and applies.
//!
//! - `plan`: pure planning of tree and message changes.
//! - `backup`: one-way sync, executing a plan in either direction.
//! - `remote`: typed requests to the follower over the protocol.

pub mod backup;
pub mod fingerprints;
pub mod merge;
pub mod mirror;
pub mod names;
pub mod plan;
pub mod remote;
pub mod subscriptions;
pub mod transfer;

use crate::model::{MailboxName, Uid};

/// What a run did, and what it could not do (which makes the exit code 2).
#[derive(Debug, Default)]
pub struct Report {
    pub copied: u64,
    pub expunged: u64,
    pub updated: u64,
    /// Changes that could not be made because the mail changed during the
    /// run; running again picks them up.
    pub incomplete: Vec<String>,
}

impl Report {
    fn vanished(&mut self, mailbox: &MailboxName, uid: Uid, why: &anyhow::Error) {
        tracing::warn!("{mailbox}: message UID {uid} disappeared during the sync: {why:#}");
        self.incomplete.push(format!(
            "{mailbox}: message UID {uid} disappeared during the sync"
        ));
    }
}
