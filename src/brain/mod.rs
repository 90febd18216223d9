//! The sync engine on the leader side (the side the user started). It owns
//! every decision; the follower (`server`) only reports and applies.
//!
//! - `plan`: pure planning of tree and message changes.
//! - `backup`: one-way sync, executing a plan in either direction.
//! - `remote`: typed requests to the follower over the protocol.

pub mod backup;
pub mod delta;
pub mod fingerprints;
pub mod merge;
pub mod mirror;
pub mod names;
pub mod pairstate;
pub mod plan;
pub mod remote;
pub mod subscriptions;
pub mod transfer;

use crate::model::{MailboxName, Uid};
use std::time::{Duration, Instant};

/// A test hook: with `DSYNC_TEST_PAUSE=<file>` in the environment, a run
/// that has read both sides and planned writes `<file>` and waits (up to
/// 60 s) until it is removed, so a test can change the mail at exactly the
/// moment a real client could, between reading and writing.
fn pause_for_tests() {
    let Some(path) = std::env::var_os("DSYNC_TEST_PAUSE") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    if std::fs::write(&path, b"paused\n").is_err() {
        return;
    }
    let start = Instant::now();
    while path.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

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
