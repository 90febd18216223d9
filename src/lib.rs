//! dsync: mailbox synchronization between Dovecot-compatible mail stores.
//!
//! Crate layout, from the command line down:
//! - `cli`: argument parsing and dispatch (the `dsync` binary is a thin shim).
//! - `config`, `location`: Dovecot's configuration syntax and mail locations.
//! - `user`: the user whose mail is synced (`-u`), privilege drop.
//! - `brain`: the sync engine (the leader side decides, see `protocol-spec/`):
//!   `plan` (backup) and `merge` (mirror) are pure planners; `backup` and
//!   `mirror` execute them; `fingerprints` and `subscriptions` keep what
//!   the leader remembers of a pair; `transfer` moves bodies.
//! - `server`: the follower side, serving one store over the protocol.
//! - `protocol`: frames, items, codec, version negotiation.
//! - `transport`: the child process serving the other side (ssh, any
//!   command, or this binary's `dsync server` for a local LOCATION2).
//! - `store`: the store the engine works on, whatever its format.
//! - `maildir`: the Maildir store, byte-compatible with Dovecot.
//! - `model`: the mail model every part shares.
//! - `state`: store IDs and the per-peer sync state (the merge's base).
//! - `lock`: one run at a time per store.

pub mod brain;
pub mod cli;
pub mod config;
#[cfg(test)]
mod dovecot_imap_tests;
pub mod fasthash;
pub mod location;
pub mod lock;
pub mod maildir;
pub mod mbox;
pub mod model;
pub mod protocol;
pub mod server;
pub mod state;
pub mod store;
pub mod transport;
pub mod user;
