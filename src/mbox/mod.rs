//! The mbox store, compatible with Dovecot 2.3's mbox: a tree of mbox
//! files (folders are files, directories hold children), `From_` lines,
//! Dovecot's metadata headers (UIDs, flags, keywords), its locking.
//!
//! Formats are pure functions in their own modules: `from_line` (the
//! separator line and INTERNALDATE), `meta` (the hidden metadata headers
//! and Dovecot's header-MD5 message GUID), `scan` (the streaming reader),
//! `md5`.

pub mod contents;
pub mod from_line;
pub mod guids;
pub mod layout;
pub mod lock;
pub mod md5;
pub mod meta;
pub mod options;
pub mod reader;
pub mod scan;
pub mod store;
pub mod update;
pub mod write;

#[cfg(test)]
mod dovecot_tests;
#[cfg(test)]
mod store_tests;

pub use options::MboxOptions;
pub use reader::{MessageReader, Served};
pub use store::MboxStore;
pub use update::{MboxSaveHandle, MboxUpdate};
