//! The wire protocol between the two brains (see `protocol-spec/`).
//!
//! - `frame`: bytes ⇄ frames (escaped text lines, raw data chunks).
//! - `item`: frames ⇄ typed commands and replies.
//! - `connection`: a framed, timed connection over any byte stream.

pub mod connection;
pub mod frame;
pub mod item;

pub use connection::{connect, Receiver, Sender};
pub use frame::{Frame, FrameCodec, CHUNK_SIZE};
pub use item::{Command, ErrorKind, Reply};

/// Protocol versions this build speaks. The leader offers the range, the
/// follower picks the highest both speak or refuses naming both ranges.
pub const MIN_VERSION: u32 = 1;
pub const MAX_VERSION: u32 = 1;

/// Feature: the follower accepts `COPYFILE` (the peer's files are on the
/// same machine and readable, so bodies need not cross the wire).
pub const FEATURE_LOCAL_COPY: &str = "local-copy";

/// Feature (leader): a full sync (`-f`) was asked for; the follower must
/// not trust cached per-message data.
pub const FEATURE_FULL_SCAN: &str = "full-scan";

/// Feature (follower): answers `STORABLE` with the name its store would
/// give a mailbox (so the leader can match names the store alters).
pub const FEATURE_STORABLE: &str = "storable";

/// Feature (leader), `alt-char=<c>`: the follower replaces characters its
/// store cannot hold in mailbox names with `c` (the leader's
/// `dsync_alt_char`, as Dovecot's dsync sends its own to the other side).
pub const FEATURE_ALT_CHAR: &str = "alt-char=";

/// Feature (follower): answers `DELTA` with only what changed since the
/// pair's base, and takes `BASE-EDIT` in a state update.
pub const FEATURE_DELTA: &str = "delta";

/// Feature (follower): its store commits in time proportional to the
/// transaction (Maildir appends; an mbox is rewritten whole), so the
/// leader may split a large copy into several transactions.
pub const FEATURE_COMMIT_BATCHES: &str = "commit-batches";
