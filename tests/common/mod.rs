//! The integration-test harness: real Dovecot judges what dsync wrote.
//!
//! - `imap`: Dovecot's IMAP server on a location, a small IMAP client.
//! - `snapshot`: everything IMAP shows of a location, and readable diffs.
//! - `fixtures`: Maildirs as other programs leave them; a message generator.
//! - `tree`: on-disk listings (inodes, mtimes, hashes) before and after.
//! - `run`: runs the dsync binary with a config of the test's own.
//!
//! Each test crate uses only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod fixtures;
pub mod imap;
pub mod mutf7;
pub mod run;
pub mod snapshot;
pub mod tree;
