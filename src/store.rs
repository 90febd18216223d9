//! The mail store the engine works on, whatever its format.
//!
//! The engine (`brain`, `server`) speaks only to [`Store`] and
//! [`StoreUpdate`]; each format module (`maildir`, and `mbox` as it lands)
//! keeps its own types and promises (see `maildir`'s module comment: reads
//! reconcile with the format's UID records, writes are transactions that
//! are durable at commit, races are `ChangedMeanwhile`). An enum rather
//! than a trait object because the set of formats is closed and known here,
//! and transactions borrow their store.

use crate::maildir::{MailboxUpdate, MaildirStore, SaveHandle};
use crate::model::{
    Flags, MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, MessageRecord, Uid,
};
use crate::state::SyncState;
use anyhow::Result;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A message body being read, with its size in bytes as stored.
pub type MessageReader = (Box<dyn Read + Send>, u64);

pub enum Store {
    Maildir(MaildirStore),
}

/// One mailbox's write transaction: nothing is visible before `commit`.
pub enum StoreUpdate<'a> {
    Maildir(MailboxUpdate<'a>),
}

/// A message being written inside a [`StoreUpdate`].
pub enum StoreSave {
    Maildir(SaveHandle),
}

impl From<MaildirStore> for Store {
    fn from(s: MaildirStore) -> Self {
        Store::Maildir(s)
    }
}

impl Store {
    /// The store's root directory (its run lock lives there).
    pub fn root(&self) -> &Path {
        match self {
            Store::Maildir(s) => &s.options().root,
        }
    }

    /// Where dsync keeps its own files for this store (sync state,
    /// fingerprints, subscriptions record).
    pub fn control_root(&self) -> PathBuf {
        match self {
            Store::Maildir(s) => s.options().control_root(),
        }
    }

    /// Check every message on each read instead of trusting caches (`-f`).
    pub fn set_full_scan(&mut self, full: bool) {
        match self {
            Store::Maildir(s) => s.set_full_scan(full),
        }
    }

    pub fn list_mailboxes(&mut self) -> Result<Vec<MailboxInfo>> {
        match self {
            Store::Maildir(s) => s.list_mailboxes(),
        }
    }

    pub fn snapshot(&mut self, name: &MailboxName) -> Result<MailboxSnapshot> {
        match self {
            Store::Maildir(s) => s.snapshot(name),
        }
    }

    /// The message body as an IMAP client would fetch it.
    pub fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<MessageReader> {
        match self {
            Store::Maildir(s) => {
                let (f, size) = s.open_message(name, uid)?;
                Ok((Box::new(f), size))
            }
        }
    }

    /// The file holding exactly the message body, when the format keeps
    /// one per message (so a follower on the same machine can copy or
    /// reflink it); `None` when the body must be streamed.
    pub fn message_file(&self, name: &MailboxName, uid: Uid) -> Result<Option<PathBuf>> {
        match self {
            Store::Maildir(s) => s.message_path(name, uid).map(Some),
        }
    }

    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        match self {
            Store::Maildir(s) => s.subscriptions(),
        }
    }

    pub fn set_subscriptions(&mut self, names: &[MailboxName]) -> Result<()> {
        match self {
            Store::Maildir(s) => s.set_subscriptions(names),
        }
    }

    pub fn create_mailbox(
        &mut self,
        name: &MailboxName,
        guid: MailboxGuid,
        uidvalidity: u32,
    ) -> Result<()> {
        match self {
            Store::Maildir(s) => s.create_mailbox(name, guid, uidvalidity),
        }
    }

    pub fn delete_mailbox(&mut self, name: &MailboxName) -> Result<()> {
        match self {
            Store::Maildir(s) => s.delete_mailbox(name),
        }
    }

    pub fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        match self {
            Store::Maildir(s) => s.rename_mailbox(from, to),
        }
    }

    pub fn store_id(&self) -> Result<String> {
        match self {
            Store::Maildir(s) => s.store_id(),
        }
    }

    pub fn load_state(&self, peer: &str) -> Result<Option<SyncState>> {
        match self {
            Store::Maildir(s) => s.load_state(peer),
        }
    }

    pub fn save_state(&self, peer: &str, st: &SyncState) -> Result<()> {
        match self {
            Store::Maildir(s) => s.save_state(peer, st),
        }
    }

    /// The mailbox's change fingerprint (see `maildir::fingerprint`), and
    /// with `digest` only if the mailbox holds exactly that state.
    pub fn verified_fingerprint(
        &mut self,
        name: &MailboxName,
        digest: Option<&str>,
    ) -> Result<Option<String>> {
        match self {
            Store::Maildir(s) => s.verified_fingerprint(name, digest),
        }
    }

    pub fn update(&mut self, name: &MailboxName) -> Result<StoreUpdate<'_>> {
        match self {
            Store::Maildir(s) => s.update(name).map(StoreUpdate::Maildir),
        }
    }
}

impl StoreUpdate<'_> {
    pub fn save_begin(&mut self, rec: &MessageRecord) -> Result<StoreSave> {
        match self {
            StoreUpdate::Maildir(u) => u.save_begin(rec).map(StoreSave::Maildir),
        }
    }

    pub fn write_chunk(&mut self, h: &mut StoreSave, data: &[u8]) -> Result<()> {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.write_chunk(h, data),
        }
    }

    pub fn save_finish(&mut self, h: StoreSave) -> Result<()> {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.save_finish(h),
        }
    }

    pub fn save_abort(&mut self, h: StoreSave) {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.save_abort(h),
        }
    }

    /// Saves a copy of the message file at `src` (another store's file on
    /// this machine, `COPYFILE`) as `rec`.
    pub fn save_copy_of(&mut self, rec: &MessageRecord, src: &Path) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.save_copy_of(rec, src),
        }
    }

    /// Saves a copy of message `uid` of mailbox `from` of this same store
    /// as `rec` (a move or copy carried over without sending the body).
    pub fn copy_local(&mut self, rec: &MessageRecord, from: &MailboxName, uid: Uid) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => {
                let path = u.store().message_path(from, uid)?;
                u.save_copy_of(rec, &path)
            }
        }
    }

    pub fn relabel(&mut self, old_uid: Uid, new_uid: Uid) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.relabel(old_uid, new_uid),
        }
    }

    pub fn set_flags(&mut self, uid: Uid, flags: Flags, keywords: &[String]) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.set_flags(uid, flags, keywords),
        }
    }

    pub fn set_internal_date(&mut self, uid: Uid, secs: i64) {
        match self {
            StoreUpdate::Maildir(u) => u.set_internal_date(uid, secs),
        }
    }

    pub fn expunge(&mut self, uid: Uid) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.expunge(uid),
        }
    }

    pub fn set_header(&mut self, guid: MailboxGuid, uidvalidity: u32, uidnext: Uid) {
        match self {
            StoreUpdate::Maildir(u) => u.set_header(guid, uidvalidity, uidnext),
        }
    }

    pub fn commit(self) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.commit(),
        }
    }
}
