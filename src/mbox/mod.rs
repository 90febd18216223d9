//! The mbox store, compatible with Dovecot 2.3's mbox: a tree of mbox
//! files (folders are files, directories hold children), `From_` lines,
//! Dovecot's metadata headers (UIDs, flags, keywords), its locking. The
//! public API is [`MboxStore`] and [`MboxUpdate`], shaped like the Maildir
//! store's so [`crate::store::Store`] can hold either.
//!
//! Modules, one job each: `from_line` (the separator line, INTERNALDATE),
//! `meta` (Dovecot's hidden metadata headers and its header-MD5 message
//! GUID), `scan` (the streaming reader: boundaries as Dovecot draws them),
//! `contents` (Dovecot's UID rules over a scanned file), `layout` (one
//! message's header: hidden lines, end of header), `reader` (serving a
//! message), `write` (the writer), `guids` (our side file), `lock`
//! (dotlock + fcntl), `options` (paths), `store`, `update`, `md5`.
//!
//! Decisions, each checked against Dovecot 2.3.19 (see `dovecot_tests`):
//! - What a client sees of a message is what Dovecot serves: the bytes
//!   between the `From_` line and the separator LF, without the hidden
//!   headers (`Content-Length`, `Status`, `X-IMAP`, `X-IMAPbase`,
//!   `X-Keywords`, `X-Status`, `X-UID`). `>From ` lines are served as they
//!   are: Dovecot neither quotes on save nor unquotes on read, so we don't
//!   either (quoting would change the message clients see); instead every
//!   message gets `Content-Length`, which keeps `From_`-like body lines in
//!   the body for Dovecot and for us.
//! - Messages that come with CR LF line ends are stored with LF, as
//!   Dovecot's own save does (its in-place rewrite fails on CR LF headers),
//!   and given back with CR LF, byte for byte; the side file records that.
//! - Message GUID: Dovecot's mbox has none stored; it uses the hex MD5 of a
//!   few header values (`mbox_md5 = apop3d`), which `FETCH X-GUID` and
//!   `doveadm fetch guid` show. We report the same, so both agree, except
//!   for messages we saved under another GUID (from a Maildir): those keep
//!   theirs in the side file `.imap/<name>/dsync-mbox-guids`, valid while
//!   the message's UID and header MD5 match. Identical messages share
//!   Dovecot's GUID, as in Dovecot.
//! - Mailbox GUID: Dovecot keeps it only in its index (and makes a new one
//!   when the index is lost); ours lives in the side file, stable.
//! - INTERNALDATE is the `From_` line's date; we write UTC with `+0000`,
//!   which Dovecot parses exactly, whatever the reader's time zone.
//! - An empty mailbox holds its UIDVALIDITY and UIDNEXT in c-client's
//!   pseudo message (`X-IMAP`), as Dovecot writes it; otherwise the first
//!   message carries `X-IMAPbase`.
//! - Writes rewrite the whole file into the dotlock file and rename it
//!   over the mbox (crash-safe; Dovecot rewrites in place), then remove
//!   Dovecot's index of the mailbox (it would point into the old file).
//!   Reads that find messages without valid UIDs write them, as Dovecot
//!   does on first access.

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
