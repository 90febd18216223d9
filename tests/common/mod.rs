//! The integration-test harness: real Dovecot judges what dsync wrote.
//!
//! - `imap`: Dovecot's IMAP server on a location (as `nobody` when we are
//!   root), a small IMAP client (`imap_session`), POP3 UIDLs.
//! - `snapshot`: everything IMAP shows of a location (`snapshot`), and
//!   readable comparisons (`diff`, `assert_same`).
//! - `fixtures`: Maildirs as other programs leave them; a deterministic
//!   message generator; mbox files.
//! - `tree`: on-disk listings (inodes, birth times, mtimes, hashes) before
//!   and after a run; `SourceGuard` for "the source was not modified".
//! - `run`: runs the dsync binary with a config file of the test's own.
//! - `users`: the unprivileged test user (`ensure_test_user`).
//! - `sshd`: a real OpenSSH server on 127.0.0.1 for remote syncs
//!   (`require_sshd!();` skips like `require_dovecot!();`).
//!
//! A test that needs Dovecot starts with `require_dovecot!();`: without
//! dovecot-imapd it prints SKIPPING and passes, except on CI (env `CI`),
//! where it fails.
//!
//! Environment:
//! - `DSYNC_TEST_BINARY`: run another program instead of this crate's
//!   dsync (see `doveadm-dsync.sh` and `rsync-backup.sh` here, which hold
//!   the scenarios against Dovecot's own dsync and a plain rsync).
//! - `DSYNC_TEST_DOVECOT_IMAP`: Dovecot's imap binary, default
//!   `/usr/lib/dovecot/imap`; POP3 is looked for beside it (optional).
//!
//! Each test crate uses only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod fixtures;
pub mod imap;
pub mod mutf7;
pub mod pair;
pub mod run;
pub mod snapshot;
pub mod sshd;
pub mod tree;
pub mod users;
