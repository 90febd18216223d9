//! The mbox store: mailboxes, snapshots, messages, subscriptions, with the
//! same public API as [`crate::maildir::MaildirStore`] where mbox allows.
//!
//! Every read resolves UIDs exactly as Dovecot would, and when the file
//! lacks some (a delivery agent appended mail, or the file has no
//! `X-IMAPbase` yet) writes them into it under the mbox's write lock, as
//! Dovecot does on its first look, so both always agree on UIDs.

use super::contents::{self, Contents};
use super::guids::{self, Guids};
use super::layout;
use super::lock;
use super::options::{self, MboxOptions};
use super::reader::{CrlfReader, MessageReader, Served};
use super::update::MboxUpdate;
use crate::maildir::fingerprint::{self as mfp, Part};
use crate::maildir::fsutil::{self, DotLock};
use crate::maildir::subscriptions::Subscriptions;
use crate::maildir::ChangedMeanwhile;
use crate::model::{MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, MessageRecord, Uid};
use crate::state::{self, SyncState};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of an mbox file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

pub(crate) struct Cached {
    pub stamp: Stamp,
    pub contents: Contents,
    pub guids: Guids,
}

pub struct MboxStore {
    pub(crate) opts: MboxOptions,
    pub(crate) cache: HashMap<MailboxName, Cached>,
    pub(crate) skipped: Vec<String>,
    full_scan: bool,
}

/// Dovecot's index files of one mbox, removed when our rewrite would
/// contradict them (Dovecot rebuilds them from the file).
const INDEX_FILES: &[&str] = &[
    "dovecot.index",
    "dovecot.index.log",
    "dovecot.index.log.2",
    "dovecot.index.cache",
];
const LIST_INDEX_FILES: &[&str] = &[
    "dovecot.list.index",
    "dovecot.list.index.log",
    "dovecot.list.index.log.2",
];

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn io_ctx(what: &str, p: &Path) -> String {
    format!("{what} {}", p.display())
}

impl MboxStore {
    /// Opens the store at `opts.root`; with `create`, a missing root is
    /// created (INBOX appears on first use).
    pub fn open(opts: MboxOptions, create: bool) -> Result<MboxStore> {
        match fs::metadata(&opts.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "mail location {} is not a directory (an mbox root holds the mailbox files)",
                opts.root.display()
            ),
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                fs::create_dir_all(&opts.root)
                    .with_context(|| io_ctx("creating directory", &opts.root))?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("mail location {} does not exist", opts.root.display())
            }
            Err(e) => return Err(e).with_context(|| io_ctx("mail location", &opts.root)),
        }
        Ok(MboxStore {
            opts,
            cache: HashMap::new(),
            skipped: Vec::new(),
            full_scan: false,
        })
    }

    pub fn options(&self) -> &MboxOptions {
        &self.opts
    }

    /// Where store-wide files of ours live (store ID, states, run lock).
    pub fn control_root(&self) -> PathBuf {
        self.opts.control_root()
    }

    /// Re-read every mailbox instead of trusting the cache (`-f`).
    pub fn set_full_scan(&mut self, full: bool) {
        self.full_scan = full;
    }

    pub fn take_skipped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.skipped)
    }

    pub fn is_storable(&self, name: &MailboxName) -> bool {
        options::check_name(name).is_ok()
    }

    pub fn storable_name(&self, name: &MailboxName) -> MailboxName {
        options::fix_name(name, self.opts.alt_char)
    }

    /// Uses `c` instead of the configured `dsync_alt_char` (the leader's,
    /// when this store serves a remote run).
    pub fn set_alt_char(&mut self, c: char) -> Result<()> {
        // It must itself be storable, even at the start of a name.
        if c == '.' || c == '/' || c.is_control() {
            bail!("dsync_alt_char {c:?} cannot replace characters in mailbox names");
        }
        self.opts.alt_char = c;
        Ok(())
    }

    /// Every mailbox, INBOX first, the rest sorted: the files of the tree
    /// (directories only hold children; dot files are Dovecot's).
    pub fn folder_names(&self) -> Result<Vec<MailboxName>> {
        let mut names = Vec::new();
        let inbox_file = self.opts.mbox_path(&MailboxName::inbox())?;
        let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(self.opts.root.clone(), vec![])];
        while let Some((dir, rel)) = stack.pop() {
            if rel.len() > 64 {
                continue;
            }
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound && !rel.is_empty() => continue,
                Err(e) => return Err(e).with_context(|| io_ctx("reading directory", &dir)),
            };
            for e in rd {
                let e = e.with_context(|| io_ctx("reading directory", &dir))?;
                let os = e.file_name();
                let Some(s) = os.to_str() else {
                    tracing::warn!("{}: ignoring a name that is not UTF-8", e.path().display());
                    continue;
                };
                if s.starts_with('.')
                    || s.ends_with(".lock")
                    || s.ends_with(".dsync")
                    || s == crate::lock::LOCK_FILE
                    || e.path() == inbox_file
                {
                    continue;
                }
                let Some(part) = self.opts.decode(s) else {
                    tracing::warn!(
                        "{}: ignoring a name that is not valid modified UTF-7",
                        e.path().display()
                    );
                    continue;
                };
                let mut r = rel.clone();
                r.push(part);
                let ft = match fs::metadata(e.path()) {
                    Ok(m) => m,
                    Err(_) => continue,
                };
                if ft.is_dir() {
                    stack.push((e.path(), r));
                } else if ft.is_file() {
                    match MailboxName::from_parts(r) {
                        Some(n) if !n.is_inbox() && options::check_name(&n).is_ok() => {
                            names.push(n)
                        }
                        _ => tracing::warn!(
                            "{}: ignoring a file whose name is not a mailbox name",
                            e.path().display()
                        ),
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names.insert(0, MailboxName::inbox());
        Ok(names)
    }

    pub fn list_mailboxes(&mut self) -> Result<Vec<MailboxInfo>> {
        let mut out = Vec::new();
        for name in self.folder_names()? {
            if let Some(info) = self.unchanged_info(&name)? {
                out.push(info);
                continue;
            }
            let c = self.sync_mailbox(&name)?;
            out.push(info_of(&name, c));
        }
        Ok(out)
    }

    /// The file's stamp as the fingerprint sees it (`None` while it may
    /// still change within the clock's granularity).
    fn file_stamp(&self, name: &MailboxName) -> Result<Option<String>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(match mfp::part(&self.opts.mbox_path(name)?, now, true)? {
            Part::Stamp(s) => Some(s),
            Part::Missing | Part::Unsettled => None,
        })
    }

    /// A mailbox's numbers as recorded at its last full read, if its file
    /// has not changed since (a big mbox is then not read to list it).
    fn unchanged_info(&self, name: &MailboxName) -> Result<Option<MailboxInfo>> {
        if self.full_scan || self.cache.contains_key(name) {
            return Ok(None);
        }
        let g = self.load_guids(name)?;
        let (Some(guid), Some((stamp, next, count))) = (g.mailbox, &g.seen) else {
            return Ok(None);
        };
        if g.uidvalidity == 0 || self.file_stamp(name)?.as_deref() != Some(stamp.as_str()) {
            return Ok(None);
        }
        Ok(Some(MailboxInfo {
            name: name.clone(),
            guid,
            uidvalidity: g.uidvalidity,
            uidnext: *next,
            messages: *count,
            highest_modseq: 0,
        }))
    }

    pub fn mailbox_info(&mut self, name: &MailboxName) -> Result<MailboxInfo> {
        let c = self.sync_mailbox(name)?;
        Ok(info_of(name, c))
    }

    pub fn mailbox_exists(&self, name: &MailboxName) -> Result<bool> {
        if name.is_inbox() {
            return Ok(true);
        }
        Ok(fs::metadata(self.opts.mbox_path(name)?).is_ok_and(|m| m.is_file()))
    }

    pub(crate) fn guids_path(&self, name: &MailboxName) -> Result<PathBuf> {
        Ok(self.opts.control_dir(name)?.join(guids::FILE_NAME))
    }

    pub(crate) fn load_guids(&self, name: &MailboxName) -> Result<Guids> {
        Ok(fsutil::read_optional(&self.guids_path(name)?)?
            .map(|d| Guids::parse(&d))
            .unwrap_or_default())
    }

    /// Replaces the mailbox's side file (atomically, under its dotlock).
    pub(crate) fn save_guids(&self, name: &MailboxName, g: &Guids) -> Result<()> {
        let p = self.guids_path(name)?;
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).with_context(|| io_ctx("creating directory", dir))?;
        }
        let bytes = g.to_bytes();
        if fsutil::read_optional(&p)?.as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        DotLock::acquire(&p)?.replace(&bytes)
    }

    /// Reads a mailbox (from the cache while its file is unchanged),
    /// writing into the file what Dovecot would (UIDs, X-IMAPbase, the
    /// pseudo message of an empty mailbox) when it lacks it.
    pub(crate) fn sync_mailbox(&mut self, name: &MailboxName) -> Result<&Cached> {
        let path = self.opts.mbox_path(name)?;
        for attempt in 0..3 {
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound && name.is_inbox() => {
                    // Dovecot creates INBOX on first access; so do we.
                    self.create_file(name, None, None)?;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    bail!("mailbox {name} does not exist (no file {})", path.display())
                }
                Err(e) => return Err(e).with_context(|| io_ctx("stat of", &path)),
            };
            if meta.is_dir() {
                bail!(
                    "mailbox {name} is a directory ({}), which only holds other mailboxes",
                    path.display()
                );
            }
            let stamp = Stamp::of(&meta);
            if !self.full_scan || attempt > 0 {
                if let Some(c) = self.cache.get(name) {
                    if c.stamp == stamp {
                        return Ok(&self.cache[name]);
                    }
                }
            }
            let locked = lock::lock_read(&path)?;
            let stamp = Stamp::of(
                &locked
                    .file
                    .metadata()
                    .with_context(|| io_ctx("stat of", &path))?,
            );
            let contents = contents::read(&path, &locked.file)?;
            drop(locked);
            let mut guids = self.load_guids(name)?;
            if guids.mailbox.is_none() && !contents.needs_write && contents.uidvalidity.is_some() {
                // A file Dovecot (or we, before losing the side file) wrote:
                // only the mailbox GUID is missing, and only our file changes.
                guids.mailbox = Some(MailboxGuid::generate().context("generating a mailbox GUID")?);
                guids.uidvalidity = contents.uidvalidity.unwrap_or(0);
                self.save_guids(name, &guids)?;
            }
            if contents.needs_write || contents.uidvalidity.is_none() || guids.mailbox.is_none() {
                if attempt == 2 {
                    bail!(
                        "mailbox {name}: {} keeps changing while dsync writes its UIDs; try again",
                        path.display()
                    );
                }
                // Writes UIDs (and our side file) the way Dovecot would.
                let u = MboxUpdate::new(self, name.clone())?;
                u.commit_forced()?;
                continue;
            }
            // Remembered for listing without reading, when settled (and the
            // file is still what was read).
            if let Some(fs_stamp) = self.file_stamp(name)? {
                let now_stamp =
                    Stamp::of(&fs::metadata(&path).with_context(|| io_ctx("stat of", &path))?);
                let seen = Some((fs_stamp, contents.uidnext, contents.entries.len() as u32));
                if now_stamp == stamp
                    && guids.seen != seen
                    && contents.uidvalidity == Some(guids.uidvalidity)
                {
                    guids.seen = seen;
                    self.save_guids(name, &guids)?;
                }
            }
            self.cache.insert(
                name.clone(),
                Cached {
                    stamp,
                    contents,
                    guids,
                },
            );
            return Ok(&self.cache[name]);
        }
        bail!("mailbox {name}: could not be read consistently; try again")
    }

    /// Creates a mailbox file (or sets up an empty INBOX) with this GUID and
    /// UIDVALIDITY (fresh ones when `None`).
    fn create_file(
        &mut self,
        name: &MailboxName,
        guid: Option<MailboxGuid>,
        uidvalidity: Option<u32>,
    ) -> Result<()> {
        let path = self.opts.mbox_path(name)?;
        if let Some(parent) = path.parent() {
            if let Err(e) = fs::create_dir_all(parent) {
                // A parent that is an mbox file: mbox cannot nest there.
                let mut p = parent;
                while let Some(pp) = p.parent() {
                    if p.is_file() {
                        bail!(
                            "cannot create mailbox {name}: {} is a mailbox file, and an mbox \
                             mailbox cannot hold other mailboxes",
                            p.display()
                        );
                    }
                    p = pp;
                }
                return Err(e).with_context(|| io_ctx("creating directory", parent));
            }
        }
        let mut u = MboxUpdate::new_creating(self, name.clone())?;
        let g = match guid {
            Some(g) => g,
            None => MailboxGuid::generate().context("generating a mailbox GUID")?,
        };
        let uv = uidvalidity.unwrap_or_else(|| now_secs().max(1) as u32);
        u.set_header(g, uv, 1);
        u.commit_forced()
    }

    /// The mailbox's messages in UID order.
    pub fn snapshot(&mut self, name: &MailboxName) -> Result<MailboxSnapshot> {
        let c = self.sync_mailbox(name)?;
        let uv = c.contents.uidvalidity.unwrap_or(0);
        let messages = c
            .contents
            .entries
            .iter()
            .map(|e| {
                let md5 = e.md5_hex();
                let row = c.guids.get(uv, e.uid, &md5);
                MessageRecord {
                    uid: e.uid,
                    guid: row
                        .filter(|r| !r.guid.is_empty())
                        .map_or(md5.clone(), |r| r.guid.clone()),
                    flags: e.flags,
                    keywords: e.keywords.clone(),
                    internal_date: e.msg.from.time,
                    size: row
                        .and_then(|r| r.crlf_size)
                        .unwrap_or(e.msg.visible_size()),
                    pop3_uidl: row.and_then(|r| r.pop3_uidl.clone()),
                    pop3_order: row.and_then(|r| r.pop3_order),
                    in_new: e.recent,
                }
            })
            .collect();
        Ok(MailboxSnapshot {
            info: info_of(name, c),
            messages,
        })
    }

    /// A message as Dovecot serves it (hidden headers left out), and its
    /// size. The reader holds the file with a read lock while it lives.
    pub fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<(Served, u64)> {
        let path = self.opts.mbox_path(name)?;
        let locked = lock::lock_read(&path).map_err(|e| {
            if !path.exists() {
                anyhow::Error::from(ChangedMeanwhile(format!(
                    "mailbox {name} vanished meanwhile (no {})",
                    path.display()
                )))
            } else {
                e
            }
        })?;
        let file = locked.file;
        let stamp = Stamp::of(&file.metadata().with_context(|| io_ctx("stat of", &path))?);
        let pick = |c: &Contents, g: &Guids| {
            c.find(uid).map(|i| {
                let e = &c.entries[i];
                let crlf = c
                    .uidvalidity
                    .and_then(|uv| g.get(uv, uid, &e.md5_hex()))
                    .and_then(|r| r.crlf_size);
                (e.msg.hdr_offset, e.msg.end, crlf)
            })
        };
        let found = match self.cache.get(name) {
            Some(c) if c.stamp == stamp => pick(&c.contents, &c.guids),
            _ => pick(&contents::read(&path, &file)?, &self.load_guids(name)?),
        };
        let Some((hdr, end, crlf)) = found else {
            return Err(ChangedMeanwhile(format!(
                "message UID {uid} in mailbox {name} is gone (expunged meanwhile?)"
            ))
            .into());
        };
        let l = layout::layout(&file, &path, hdr, end, false)?;
        let r = MessageReader::new(file, hdr, end, &l.drop);
        Ok(match crlf {
            Some(size) => (Served::Crlf(CrlfReader::new(r)), size),
            None => {
                let len = r.len();
                (Served::Plain(r), len)
            }
        })
    }

    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        let p = self.opts.subscriptions_path();
        let data = fsutil::read_optional(&p)?.unwrap_or_default();
        let s = Subscriptions::parse(&data, b'/');
        for bad in &s.invalid {
            tracing::warn!("{}: ignoring invalid entry {bad:?}", p.display());
        }
        Ok(s.names)
    }

    pub fn set_subscriptions(&mut self, names: &[MailboxName]) -> Result<()> {
        let p = self.opts.subscriptions_path();
        let new = Subscriptions::to_bytes(names);
        if fsutil::read_optional(&p)?.as_deref() == Some(&new[..]) {
            return Ok(());
        }
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).with_context(|| io_ctx("creating directory", dir))?;
        }
        DotLock::acquire(&p)?.replace(&new)?;
        fsutil::fsync_dir(p.parent().unwrap_or(Path::new(".")))
    }

    /// Creates a mailbox file holding this GUID and UIDVALIDITY (as a
    /// pseudo message, the way Dovecot keeps them for an empty mbox).
    /// Parent directories are made as needed. INBOX "exists" from the
    /// start; creating it sets its numbers while it is empty.
    pub fn create_mailbox(
        &mut self,
        name: &MailboxName,
        guid: MailboxGuid,
        uidvalidity: u32,
    ) -> Result<()> {
        if uidvalidity == 0 {
            bail!("cannot create mailbox {name} with UIDVALIDITY 0");
        }
        let path = self.opts.mbox_path(name)?;
        if name.is_inbox() {
            let c = self.sync_mailbox(name)?;
            if !c.contents.entries.is_empty() {
                bail!("mailbox INBOX already exists and holds messages");
            }
            let mut u = self.update(name)?;
            u.set_header(guid, uidvalidity, 1);
            return u.commit_forced();
        }
        if fs::symlink_metadata(&path).is_ok() {
            bail!("mailbox {name} already exists ({})", path.display());
        }
        self.remove_dovecot_index(name)?;
        self.create_file(name, Some(guid), Some(uidvalidity))
    }

    /// Deletes a mailbox file and its index; child mailboxes stay.
    pub fn delete_mailbox(&mut self, name: &MailboxName) -> Result<()> {
        if name.is_inbox() {
            bail!("INBOX cannot be deleted");
        }
        let path = self.opts.mbox_path(name)?;
        if !self.mailbox_exists(name)? {
            bail!("mailbox {name} does not exist");
        }
        {
            // Under its write lock, so no delivery is half-way through.
            let w = lock::lock_write(&path, false)?;
            fs::remove_file(&path).with_context(|| io_ctx("removing", &path))?;
            drop(w);
        }
        if let Some(parent) = path.parent() {
            fsutil::fsync_dir(parent)?;
        }
        for d in [self.opts.index_dir(name)?, self.opts.control_dir(name)?] {
            match fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| io_ctx("removing", &d)),
            }
        }
        self.cache.remove(name);
        Ok(())
    }

    /// Renames a mailbox file (with its index and side file).
    pub fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        if from.is_inbox() || to.is_inbox() {
            bail!("renaming INBOX (or onto INBOX) is not supported");
        }
        let a = self.opts.mbox_path(from)?;
        let b = self.opts.mbox_path(to)?;
        if !self.mailbox_exists(from)? {
            bail!("mailbox {from} does not exist");
        }
        if fs::symlink_metadata(&b).is_ok() {
            bail!(
                "cannot rename {from} to {to}: {} already exists",
                b.display()
            );
        }
        if let Some(parent) = b.parent() {
            fs::create_dir_all(parent).with_context(|| io_ctx("creating directory", parent))?;
        }
        {
            let w = lock::lock_write(&a, false)?;
            fs::rename(&a, &b)
                .with_context(|| format!("renaming {} to {}", a.display(), b.display()))?;
            drop(w);
        }
        let mut side = vec![(self.opts.index_dir(from)?, self.opts.index_dir(to)?)];
        let c = (self.opts.control_dir(from)?, self.opts.control_dir(to)?);
        if c != side[0] {
            side.push(c);
        }
        for (x, y) in side {
            if !x.exists() {
                continue;
            }
            if let Some(parent) = y.parent() {
                fs::create_dir_all(parent).with_context(|| io_ctx("creating directory", parent))?;
            }
            let _ = fs::remove_dir_all(&y);
            fs::rename(&x, &y)
                .with_context(|| format!("renaming {} to {}", x.display(), y.display()))?;
        }
        for d in [a.parent(), b.parent()].into_iter().flatten() {
            fsutil::fsync_dir(d)?;
        }
        self.cache.remove(from);
        self.cache.remove(to);
        Ok(())
    }

    pub fn store_id(&self) -> Result<String> {
        let root = self.control_root();
        fs::create_dir_all(&root).with_context(|| io_ctx("creating directory", &root))?;
        state::store_id(&root)
    }

    pub fn load_state(&self, peer: &str) -> Result<Option<SyncState>> {
        state::load(&self.control_root(), peer)
    }

    pub fn save_state(&self, peer: &str, st: &SyncState) -> Result<()> {
        let root = self.control_root();
        fs::create_dir_all(&root).with_context(|| io_ctx("creating directory", &root))?;
        state::save(&root, peer, st)
    }

    /// Records `st`, made by `change` from the stored state (see
    /// `state::save_change`).
    pub fn save_state_change(
        &self,
        peer: &str,
        st: &SyncState,
        change: &state::journal::Change,
    ) -> Result<()> {
        let root = self.control_root();
        fs::create_dir_all(&root).with_context(|| io_ctx("creating directory", &root))?;
        state::save_change(&root, peer, st, change)
    }

    /// Starts a transaction on one mailbox; nothing is written before
    /// [`MboxUpdate::commit`].
    pub fn update(&mut self, name: &MailboxName) -> Result<MboxUpdate<'_>> {
        self.sync_mailbox(name)?;
        MboxUpdate::new(self, name.clone())
    }

    /// Removes Dovecot's index of a mailbox (and the list index caching its
    /// STATUS), so Dovecot rebuilds them from the file.
    pub(crate) fn remove_dovecot_index(&self, name: &MailboxName) -> Result<()> {
        let dir = self.opts.index_dir(name)?;
        let root = self.opts.index_root();
        let paths = INDEX_FILES
            .iter()
            .map(|f| dir.join(f))
            .chain(LIST_INDEX_FILES.iter().map(|f| root.join(f)));
        for p in paths {
            match fs::remove_file(&p) {
                Ok(()) => tracing::debug!("removed Dovecot index file {}", p.display()),
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(e).with_context(|| io_ctx("removing", &p)),
            }
        }
        Ok(())
    }

    /// The mailbox's fingerprint (its file's identity and times, and our
    /// side file's), or `None` while it may still change unseen.
    pub fn fingerprint(&self, name: &MailboxName) -> Result<Option<String>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut out = String::new();
        for (tag, path, required) in [
            ('m', self.opts.mbox_path(name)?, true),
            ('g', self.guids_path(name)?, false),
        ] {
            match mfp::part(&path, now, true)? {
                Part::Stamp(s) => out.push_str(&format!("{tag}{s};")),
                Part::Missing if !required => out.push_str(&format!("{tag}-;")),
                Part::Missing | Part::Unsettled => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    pub fn fingerprint_settles_in(&self, name: &MailboxName) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        [self.opts.mbox_path(name).ok(), self.guids_path(name).ok()]
            .into_iter()
            .flatten()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| {
                let (mtime, settle) = mfp::mtime_and_settle(&m);
                (mtime + settle).saturating_sub(now)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

pub(crate) fn info_of(name: &MailboxName, c: &Cached) -> MailboxInfo {
    MailboxInfo {
        name: name.clone(),
        guid: c.guids.mailbox.unwrap_or_default(),
        uidvalidity: c.contents.uidvalidity.unwrap_or(0),
        uidnext: c.contents.uidnext,
        messages: c.contents.entries.len() as u32,
        highest_modseq: 0,
    }
}
