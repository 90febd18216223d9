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
