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
use crate::mbox::{MboxSaveHandle, MboxStore, MboxUpdate};
use crate::model::{
    Flags, MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, MessageRecord, Uid,
};
use crate::state::SyncState;
use anyhow::Result;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A message body being read, with its size in bytes as stored.
pub type MessageReader = (Box<dyn Read + Send>, u64);

pub enum Store {
    Maildir(MaildirStore),
    Mbox(MboxStore),
}

/// One mailbox's write transaction: nothing is visible before `commit`.
pub enum StoreUpdate<'a> {
    Maildir(MailboxUpdate<'a>),
    Mbox(MboxUpdate<'a>),
}

/// A message being written inside a [`StoreUpdate`].
pub enum StoreSave {
    Maildir(SaveHandle),
    Mbox(MboxSaveHandle),
}

impl From<MaildirStore> for Store {
    fn from(s: MaildirStore) -> Self {
        Store::Maildir(s)
    }
}

impl From<MboxStore> for Store {
    fn from(s: MboxStore) -> Self {
        Store::Mbox(s)
    }
}

/// Where message bodies are read from for sending: the store itself, or
/// a transaction open on it (whose own mailbox it has not changed yet).
pub trait MessageSource {
    /// The message body as an IMAP client would fetch it.
    fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<MessageReader>;
    /// The file holding exactly the message body, when the format keeps
    /// one per message (so a follower on the same machine can copy or
    /// reflink it); `None` when the body must be streamed.
    fn message_file(&self, name: &MailboxName, uid: Uid) -> Result<Option<PathBuf>>;
}

fn maildir_open(s: &MaildirStore, name: &MailboxName, uid: Uid) -> Result<MessageReader> {
    let (f, size) = s.open_message(name, uid)?;
    Ok((Box::new(f), size))
}

fn mbox_open(s: &MboxStore, name: &MailboxName, uid: Uid) -> Result<MessageReader> {
    let (r, size) = s.open_message(name, uid)?;
    Ok((Box::new(r), size))
}

impl MessageSource for Store {
    fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<MessageReader> {
        match self {
            Store::Maildir(s) => maildir_open(s, name, uid),
            Store::Mbox(s) => mbox_open(s, name, uid),
        }
    }

    fn message_file(&self, name: &MailboxName, uid: Uid) -> Result<Option<PathBuf>> {
        match self {
            Store::Maildir(s) => s.message_path(name, uid).map(Some),
            // Messages share one file: bodies are always streamed.
            Store::Mbox(_) => Ok(None),
        }
    }
}

impl MessageSource for StoreUpdate<'_> {
    fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<MessageReader> {
        match self {
            StoreUpdate::Maildir(u) => maildir_open(u.store(), name, uid),
            StoreUpdate::Mbox(u) => mbox_open(u.store(), name, uid),
        }
    }

    fn message_file(&self, name: &MailboxName, uid: Uid) -> Result<Option<PathBuf>> {
        match self {
            StoreUpdate::Maildir(u) => u.store().message_path(name, uid).map(Some),
            StoreUpdate::Mbox(_) => Ok(None),
        }
    }
}

impl Store {
    /// The store's root directory (its run lock lives there).
    pub fn root(&self) -> &Path {
        match self {
            Store::Maildir(s) => &s.options().root,
            Store::Mbox(s) => &s.options().root,
        }
    }

    /// Where dsync keeps its own files for this store (sync state,
    /// fingerprints, subscriptions record).
    pub fn control_root(&self) -> PathBuf {
        match self {
            Store::Maildir(s) => s.options().control_root(),
            Store::Mbox(s) => s.control_root(),
        }
    }

    /// Where the store's run lock lives: the root for Maildir; for mbox
    /// `<root>/.imap` (a plain file in an mbox root would be a mailbox).
    pub fn lock_dir(&self) -> PathBuf {
        match self {
            Store::Maildir(s) => s.options().root.clone(),
            Store::Mbox(s) => s.control_root(),
        }
    }

    /// Check every message on each read instead of trusting caches (`-f`).
    pub fn set_full_scan(&mut self, full: bool) {
        match self {
            Store::Maildir(s) => s.set_full_scan(full),
            Store::Mbox(s) => s.set_full_scan(full),
        }
    }

    /// The name this store gives a mailbox called `name` elsewhere: `name`
    /// itself when it can hold it, else with the characters it cannot hold
    /// replaced by the alternative character (`dsync_alt_char`).
    pub fn storable_name(&self, name: &MailboxName) -> MailboxName {
        match self {
            Store::Maildir(s) => s.storable_name(name),
            Store::Mbox(s) => s.storable_name(name),
        }
    }

    /// Replaces the configured alternative character (see
    /// [`Store::storable_name`]).
    pub fn set_alt_char(&mut self, c: char) -> Result<()> {
        match self {
            Store::Maildir(s) => s.set_alt_char(c),
            Store::Mbox(s) => s.set_alt_char(c),
        }
    }

    pub fn list_mailboxes(&mut self) -> Result<Vec<MailboxInfo>> {
        match self {
            Store::Maildir(s) => s.list_mailboxes(),
            Store::Mbox(s) => s.list_mailboxes(),
        }
    }

    pub fn snapshot(&mut self, name: &MailboxName) -> Result<MailboxSnapshot> {
        match self {
            Store::Maildir(s) => s.snapshot(name),
            Store::Mbox(s) => s.snapshot(name),
        }
    }

    /// The mailbox compared with the pair's base (`brain::delta`).
    pub fn snapshot_delta(
        &mut self,
        name: &MailboxName,
        base: &crate::brain::merge::BaseMailbox,
    ) -> Result<crate::model::MailboxDelta> {
        match self {
            Store::Maildir(s) => s.snapshot_delta(name, base),
            Store::Mbox(s) => Ok(crate::brain::delta::diff(base, s.snapshot(name)?)),
        }
    }

    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        match self {
            Store::Maildir(s) => s.subscriptions(),
            Store::Mbox(s) => s.subscriptions(),
        }
    }

    pub fn set_subscriptions(&mut self, names: &[MailboxName]) -> Result<()> {
        match self {
            Store::Maildir(s) => s.set_subscriptions(names),
            Store::Mbox(s) => s.set_subscriptions(names),
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
            Store::Mbox(s) => s.create_mailbox(name, guid, uidvalidity),
        }
    }

    pub fn delete_mailbox(&mut self, name: &MailboxName) -> Result<()> {
        match self {
            Store::Maildir(s) => s.delete_mailbox(name),
            Store::Mbox(s) => s.delete_mailbox(name),
        }
    }

    pub fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        match self {
            Store::Maildir(s) => s.rename_mailbox(from, to),
            Store::Mbox(s) => s.rename_mailbox(from, to),
        }
    }

    pub fn store_id(&self) -> Result<String> {
        match self {
            Store::Maildir(s) => s.store_id(),
            Store::Mbox(s) => s.store_id(),
        }
    }

    pub fn load_state(&self, peer: &str) -> Result<Option<SyncState>> {
        match self {
            Store::Maildir(s) => s.load_state(peer),
            Store::Mbox(s) => s.load_state(peer),
        }
    }

    pub fn save_state(&self, peer: &str, st: &SyncState) -> Result<()> {
        match self {
            Store::Maildir(s) => s.save_state(peer, st),
            Store::Mbox(s) => s.save_state(peer, st),
        }
    }

    /// Records `st`, made by `change` from the state both files hold:
    /// appended to the state's journal when that is small, else whole.
    pub fn save_state_change(
        &self,
        peer: &str,
        st: &SyncState,
        change: &crate::state::journal::Change,
    ) -> Result<()> {
        match self {
            Store::Maildir(s) => s.save_state_change(peer, st, change),
            Store::Mbox(s) => s.save_state_change(peer, st, change),
        }
    }

    /// The mailbox's change fingerprint (see `maildir::fingerprint`):
    /// equal fingerprints mean an unchanged mailbox; `None` when it cannot
    /// be trusted yet (changed a moment ago).
    pub fn fingerprint(&self, name: &MailboxName) -> Result<Option<String>> {
        match self {
            Store::Maildir(s) => s.fingerprint(name),
            Store::Mbox(s) => s.fingerprint(name),
        }
    }

    /// How long until the mailbox's fingerprint can be trusted.
    fn fingerprint_settles_in(&self, name: &MailboxName) -> Duration {
        match self {
            Store::Maildir(s) => s.fingerprint_settles_in(name),
            Store::Mbox(s) => s.fingerprint_settles_in(name),
        }
    }

    /// The fingerprint, and with `digest` only if the mailbox holds exactly
    /// that state (see `model::Digest`), checked between two equal
    /// fingerprints so no change can slip in between. With a digest it
    /// waits up to 300 ms for a mailbox just written to settle; without
    /// one it does not wait (a mailbox that changed a moment ago cannot be
    /// unchanged since the last run anyway).
    pub fn verified_fingerprint(
        &mut self,
        name: &MailboxName,
        digest: Option<&str>,
    ) -> Result<Option<String>> {
        let wait = self.fingerprint_settles_in(name);
        if (digest.is_none() && !wait.is_zero()) || wait > Duration::from_millis(300) {
            return Ok(None);
        }
        std::thread::sleep(wait);
        let Some(before) = self.fingerprint(name)? else {
            return Ok(None);
        };
        if let Some(want) = digest {
            let digest = match self {
                Store::Maildir(s) => s.digest(name)?,
                Store::Mbox(s) => crate::model::Digest::of_snapshot(&s.snapshot(name)?),
            };
            if digest != want || self.fingerprint(name)?.as_deref() != Some(before.as_str()) {
                return Ok(None);
            }
            // Without the new summary the next listing would read the
            // whole folder although its fingerprint proves it unchanged.
            if let Store::Maildir(s) = self {
                s.save_summary(name, &before)?;
            }
        }
        Ok(Some(before))
    }

    pub fn update(&mut self, name: &MailboxName) -> Result<StoreUpdate<'_>> {
        match self {
            Store::Maildir(s) => s.update(name).map(StoreUpdate::Maildir),
            Store::Mbox(s) => s.update(name).map(StoreUpdate::Mbox),
        }
    }
}

impl StoreUpdate<'_> {
    pub fn save_begin(&mut self, rec: &MessageRecord) -> Result<StoreSave> {
        match self {
            StoreUpdate::Maildir(u) => u.save_begin(rec).map(StoreSave::Maildir),
            StoreUpdate::Mbox(u) => u.save_begin(rec).map(StoreSave::Mbox),
        }
    }

    pub fn write_chunk(&mut self, h: &mut StoreSave, data: &[u8]) -> Result<()> {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.write_chunk(h, data),
            (StoreUpdate::Mbox(u), StoreSave::Mbox(h)) => u.write_chunk(h, data),
            _ => unreachable!("a save handle used with another store's transaction"),
        }
    }

    pub fn save_finish(&mut self, h: StoreSave) -> Result<()> {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.save_finish(h),
            (StoreUpdate::Mbox(u), StoreSave::Mbox(h)) => u.save_finish(h),
            _ => unreachable!("a save handle used with another store's transaction"),
        }
    }

    pub fn save_abort(&mut self, h: StoreSave) {
        match (self, h) {
            (StoreUpdate::Maildir(u), StoreSave::Maildir(h)) => u.save_abort(h),
            (StoreUpdate::Mbox(u), StoreSave::Mbox(h)) => u.save_abort(h),
            _ => {}
        }
    }

    /// Saves a copy of the message file at `src` (another store's file on
    /// this machine, `COPYFILE`) as `rec`.
    pub fn save_copy_of(&mut self, rec: &MessageRecord, src: &Path) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.save_copy_of(rec, src),
            StoreUpdate::Mbox(u) => u.save_copy_of(rec, src),
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
            StoreUpdate::Mbox(u) => u.copy_message(rec, from, uid),
        }
    }

    pub fn relabel(&mut self, old_uid: Uid, new_uid: Uid) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.relabel(old_uid, new_uid),
            StoreUpdate::Mbox(u) => u.relabel(old_uid, new_uid),
        }
    }

    pub fn set_flags(&mut self, uid: Uid, flags: Flags, keywords: &[String]) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.set_flags(uid, flags, keywords),
            StoreUpdate::Mbox(u) => u.set_flags(uid, flags, keywords),
        }
    }

    pub fn set_internal_date(&mut self, uid: Uid, secs: i64) {
        match self {
            StoreUpdate::Maildir(u) => u.set_internal_date(uid, secs),
            StoreUpdate::Mbox(u) => u.set_internal_date(uid, secs),
        }
    }

    pub fn expunge(&mut self, uid: Uid) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.expunge(uid),
            StoreUpdate::Mbox(u) => u.expunge(uid),
        }
    }

    pub fn set_header(&mut self, guid: MailboxGuid, uidvalidity: u32, uidnext: Uid) {
        match self {
            StoreUpdate::Maildir(u) => u.set_header(guid, uidvalidity, uidnext),
            StoreUpdate::Mbox(u) => u.set_header(guid, uidvalidity, uidnext),
        }
    }

    pub fn commit(self) -> Result<()> {
        match self {
            StoreUpdate::Maildir(u) => u.commit(),
            StoreUpdate::Mbox(u) => u.commit(),
        }
    }
}
