//! The Maildir store: folders, snapshots, messages, subscriptions.
//!
//! Every read reconciles a folder's files with its dovecot-uidlist exactly
//! as Dovecot would (so Dovecot and dsync always agree on UIDs), and every
//! write goes through dovecot-uidlist.lock the way Dovecot's own writers do.

use super::dates;
use super::filename::{flags_of, fs_dir_to_name, maildirpp_dir_to_name, size_field, Layout};
use super::fsutil::{self, DotLock};
use super::keywords::{self, Keywords};
use super::options::MaildirOptions;
use super::scan;
use super::subscriptions::{self, Subscriptions};
use super::uidlist::{self, Uidlist};
use super::ChangedMeanwhile;
use crate::model::{
    MailboxDelta, MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, MessageRecord, Uid,
};
use crate::state::{self, SyncState};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use super::update::{MailboxUpdate, SaveHandle};

/// A folder as last read: its reconciled uidlist and where its files are.
#[derive(Clone, Debug)]
pub(crate) struct Folder {
    pub list: Uidlist,
    /// `locs[i]` is where `list.records[i]`'s file is (the base name is
    /// the record's, not stored twice).
    pub locs: Vec<scan::FileLoc>,
    /// Every keyword letter some file carries (after expunges possibly a
    /// few more): a new keyword avoids letters no name stands for.
    pub letters: u32,
    /// Taken before the read; `None` after our own writes.
    pub stamp: Option<scan::Stamp>,
    /// Taken right after our own commit (see [`scan::Stamp::after_commit`]):
    /// the next commit, which finds again any file that moved, may trust
    /// it; reads confirm the folder with a listing first.
    pub commit_stamp: Option<scan::Stamp>,
    /// After our own commit: the uidlist it left, which is `list` exactly,
    /// so a later read that finds this version on disk need not parse it.
    pub own_uidlist: Option<scan::FileId>,
    /// Hashes of every record's base name (and maybe of a few names gone
    /// since), built by the first commit that saves: a new file's name is
    /// checked against them without a map of a million names.
    pub names: Option<crate::fasthash::FastSet<u64>>,
}

/// The keyword letters the files in `locs` carry.
pub(crate) fn letters_of(locs: &[scan::FileLoc]) -> u32 {
    locs.iter()
        .map(|loc| flags_of(loc.info()).1)
        .fold(0u32, |m, k| m | k)
}

impl Folder {
    pub fn new(list: Uidlist, locs: Vec<scan::FileLoc>, stamp: Option<scan::Stamp>) -> Folder {
        let letters = letters_of(&locs);
        Folder::new_with_letters(list, locs, letters, stamp)
    }

    /// With the keyword letters already known (see [`Folder::letters`]).
    pub fn new_with_letters(
        list: Uidlist,
        locs: Vec<scan::FileLoc>,
        letters: u32,
        stamp: Option<scan::Stamp>,
    ) -> Folder {
        Folder {
            letters,
            list,
            locs,
            stamp,
            commit_stamp: None,
            own_uidlist: None,
            names: None,
        }
    }
}

pub struct MaildirStore {
    pub(crate) opts: MaildirOptions,
    pub(crate) folders: HashMap<MailboxName, Folder>,
    /// Changes commits had to leave out (see [`MaildirStore::take_skipped`]).
    pub(crate) skipped: Vec<String>,
    /// Stat every message instead of trusting `dsync-dates` (`-f`).
    pub(crate) full_scan: bool,
    /// From this many messages on, a commit waits for a stamp the next
    /// commit can trust (tests lower it).
    pub(crate) stamp_wait_from: usize,
    /// Whether a commit may work on the cached folder (tests compare with
    /// commits that read the folder again).
    pub(crate) commit_on_cache: bool,
    /// Commits that worked on the cached folder, for the debug log and
    /// tests.
    pub(crate) commits_on_cache: u64,
}

/// Dovecot's per-folder index files: removed when our uidlist would
/// contradict them, so Dovecot rebuilds them from the uidlist.
const INDEX_FILES: &[&str] = &[
    "dovecot.index",
    "dovecot.index.log",
    "dovecot.index.log.2",
    "dovecot.index.cache",
];
/// The mailbox list index caches UIDVALIDITY/UIDNEXT/GUID for STATUS.
const LIST_INDEX_FILES: &[&str] = &[
    "dovecot.list.index",
    "dovecot.list.index.log",
    "dovecot.list.index.log.2",
];

pub(crate) fn io_ctx(what: &str, p: &Path) -> String {
    format!("{what} {}", p.display())
}

fn is_dir(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

fn mkdir_p(p: &Path) -> Result<()> {
    fs::create_dir_all(p).with_context(|| io_ctx("creating directory", p))
}

/// An alternative character must itself be storable in every layout.
fn check_alt_char(c: char) -> Result<()> {
    if c == '.' || c == '/' || c.is_control() {
        bail!("dsync_alt_char {c:?} cannot replace characters in mailbox names");
    }
    Ok(())
}

impl MaildirStore {
    /// Opens the store at `opts.root`. With `create`, a missing root is
    /// created (with INBOX); without it, the root must exist.
    pub fn open(opts: MaildirOptions, create: bool) -> Result<Self> {
        check_alt_char(opts.alt_char)?;
        match fs::metadata(&opts.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "mail location {} is not a directory (a Maildir root must be one)",
                opts.root.display()
            ),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !create {
                    bail!("mail location {} does not exist", opts.root.display());
                }
                mkdir_p(&opts.root)?;
            }
            Err(e) => {
                return Err(e).with_context(|| io_ctx("mail location", &opts.root));
            }
        }
        let store = MaildirStore {
            opts,
            folders: HashMap::new(),
            skipped: Vec::new(),
            full_scan: false,
            stamp_wait_from: super::update::STAMP_WAIT_FROM,
            commit_on_cache: true,
            commits_on_cache: 0,
        };
        if create {
            store.ensure_inbox_dirs()?;
        }
        Ok(store)
    }

    /// Stat every message file on each scan instead of trusting the dates
    /// recorded in `dsync-dates` (a full sync, `-f`).
    pub fn set_full_scan(&mut self, full: bool) {
        self.full_scan = full;
    }

    pub fn options(&self) -> &MaildirOptions {
        &self.opts
    }

    /// Changes that commits left out since the last call: a message
    /// expunged or renamed by another program before its flags or date
    /// could be set, a keyword Maildir cannot store. Non-empty means "synced
    /// without errors, but running again may find more to do" (exit 2).
    pub fn take_skipped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.skipped)
    }

    /// Whether this store can hold a mailbox with this name as it is.
    pub fn is_storable(&self, name: &MailboxName) -> bool {
        super::filename::check_name(name, self.opts.layout).is_ok()
    }

    /// The name under which this store would keep a mailbox called `name`
    /// on the other side: `name` itself when storable, else Dovecot's dsync
    /// repair with `alt_char` (see [`super::filename::fix_name`]).
    pub fn storable_name(&self, name: &MailboxName) -> MailboxName {
        super::filename::fix_name(name, self.opts.layout, self.opts.alt_char)
    }

    /// Uses `c` instead of the configured `dsync_alt_char` (the leader's,
    /// when this store serves a remote run).
    pub fn set_alt_char(&mut self, c: char) -> Result<()> {
        check_alt_char(c)?;
        self.opts.alt_char = c;
        Ok(())
    }

    /// Dovecot creates INBOX on first access; so do we.
    fn ensure_inbox_dirs(&self) -> Result<()> {
        let dir = self.opts.mail_dir(&MailboxName::inbox())?;
        for sub in ["tmp", "new", "cur"] {
            let p = dir.join(sub);
            if !is_dir(&p) {
                mkdir_p(&p)?;
            }
        }
        Ok(())
    }

    /// Every folder's name, INBOX first, the rest sorted.
    pub fn folder_names(&self) -> Result<Vec<MailboxName>> {
        let mut names = Vec::new();
        match self.opts.layout {
            Layout::MaildirPlusPlus => {
                let rd = fs::read_dir(&self.opts.root)
                    .with_context(|| io_ctx("reading directory", &self.opts.root))?;
                for e in rd {
                    let e = e.with_context(|| io_ctx("reading directory", &self.opts.root))?;
                    let os = e.file_name();
                    let Some(s) = os.to_str() else { continue };
                    if !s.starts_with('.') {
                        continue;
                    }
                    match maildirpp_dir_to_name(s) {
                        Some(n) if is_dir(&e.path().join("cur")) => names.push(n),
                        Some(_) => {}
                        None => {
                            if s != "." && s != ".." && !s.starts_with("..") && is_dir(&e.path()) {
                                tracing::warn!(
                                    "{}: ignoring directory {s:?}: not a valid Maildir++ folder name",
                                    self.opts.root.display()
                                );
                            }
                        }
                    }
                }
            }
            Layout::Fs => {
                let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(self.opts.root.clone(), vec![])];
                while let Some((dir, rel)) = stack.pop() {
                    if rel.len() > 64 {
                        continue;
                    }
                    let rd =
                        fs::read_dir(&dir).with_context(|| io_ctx("reading directory", &dir))?;
                    for e in rd {
                        let e = e.with_context(|| io_ctx("reading directory", &dir))?;
                        let os = e.file_name();
                        let Some(s) = os.to_str() else { continue };
                        if s.starts_with('.') || matches!(s, "cur" | "new" | "tmp") {
                            continue;
                        }
                        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            continue;
                        }
                        let mut r = rel.clone();
                        r.push(s.to_string());
                        let parts: Vec<&str> = r.iter().map(String::as_str).collect();
                        match fs_dir_to_name(&parts) {
                            Some(n) => {
                                if is_dir(&e.path().join("cur")) {
                                    names.push(n);
                                }
                                stack.push((e.path(), r));
                            }
                            None => tracing::warn!(
                                "{}: ignoring directory: not a valid folder name",
                                e.path().display()
                            ),
                        }
                    }
                }
            }
        }
        names.retain(|n| !n.is_inbox());
        names.sort();
        names.dedup();
        names.insert(0, MailboxName::inbox());
        Ok(names)
    }

    /// Every folder with its GUID, UIDVALIDITY, UIDNEXT and message count.
    /// Folders Dovecot never indexed get their dovecot-uidlist here.
    pub fn list_mailboxes(&mut self) -> Result<Vec<MailboxInfo>> {
        let mut out = Vec::new();
        for name in self.folder_names()? {
            // A folder unchanged since a full read recorded its numbers
            // (fingerprint equal) is not read again: listing a store where
            // nothing happened costs a few stats per folder.
            if let Some(info) = self.unchanged_info(&name) {
                out.push(info);
                continue;
            }
            let f = self.sync_folder(&name)?;
            out.push(info_of(&name, &f.list));
        }
        Ok(out)
    }

    /// The folder's numbers from its summary (`dsync-summary`), if its
    /// fingerprint still equals the one recorded with them.
    fn unchanged_info(&self, name: &MailboxName) -> Option<MailboxInfo> {
        if self.full_scan || self.folders.contains_key(name) {
            return None;
        }
        let header = dates::load_summary(&self.opts.control_dir(name).ok()?)?;
        let now = self.fingerprint(name).ok()??;
        let (fp, rest) = header.split_once('\t')?;
        if fp != now {
            tracing::debug!("{name}: changed since its summary ({fp} -> {now})");
            return None;
        }
        let mut it = rest.split('\t');
        let guid = MailboxGuid::from_hex(it.next()?)?;
        let uidvalidity = it.next()?.parse().ok()?;
        let uidnext = it.next()?.parse().ok()?;
        let messages = it.next()?.parse().ok()?;
        Some(MailboxInfo {
            name: name.clone(),
            guid,
            uidvalidity,
            uidnext,
            messages,
            highest_modseq: 0,
        })
    }

    /// One folder's numbers without listing its messages (reconciles the
    /// folder like every read does).
    pub fn mailbox_info(&mut self, name: &MailboxName) -> Result<MailboxInfo> {
        let f = self.sync_folder(name)?;
        Ok(info_of(name, &f.list))
    }

    pub fn mailbox_exists(&self, name: &MailboxName) -> Result<bool> {
        if name.is_inbox() {
            return Ok(true);
        }
        Ok(is_dir(&self.opts.mail_dir(name)?.join("cur")))
    }

    fn uidlist_path(&self, name: &MailboxName) -> Result<PathBuf> {
        Ok(self.opts.control_dir(name)?.join(uidlist::FILE_NAME))
    }

    pub(crate) fn read_uidlist(path: &Path) -> Result<Option<Uidlist>> {
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| io_ctx("reading", path)),
        };
        let size = file.metadata().map_or(0, |m| m.len() as usize);
        // Large reads, one line at a time out of them: the file is never
        // in memory whole.
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        let parsed = Uidlist::read_from(&mut r, size).with_context(|| io_ctx("reading", path))?;
        parsed
            .map(Some)
            .map_err(|e| anyhow!("{}: {e}", path.display()))
            .context(
                "the folder's UID list is damaged; dsync will not guess UIDs \
                 (repair or remove the file; removing it makes every client re-download the folder)",
            )
    }

    pub(crate) fn read_keywords(
        &self,
        name: &MailboxName,
    ) -> Result<(Keywords, Option<std::time::SystemTime>)> {
        let p = self.opts.control_dir(name)?.join(keywords::FILE_NAME);
        let mtime = fs::metadata(&p).and_then(|m| m.modified()).ok();
        Ok((
            Keywords::parse(&fsutil::read_optional(&p)?.unwrap_or_default()),
            mtime,
        ))
    }

    /// Reads a folder, reconciling files and uidlist; writes the uidlist
    /// (under its lock) only when it changes.
    pub(crate) fn sync_folder(&mut self, name: &MailboxName) -> Result<&Folder> {
        let mail_dir = self.opts.mail_dir(name)?;
        if name.is_inbox() {
            self.ensure_inbox_dirs()?;
        } else if !is_dir(&mail_dir.join("cur")) {
            bail!(
                "mailbox {name} does not exist (no {})",
                mail_dir.join("cur").display()
            );
        }
        let path = self.uidlist_path(name)?;
        let stamp = scan::Stamp::take(&mail_dir, &path);
        if let Some(cached) = self.folders.get(name) {
            if cached.stamp.as_ref().is_some_and(|s| s.unchanged(&stamp)) {
                return Ok(&self.folders[name]);
            }
        }
        // After our own commit, one listing that finds exactly the cached
        // files confirms the cache: no parse, no map of names.
        if self.confirm_own_commit(name)? {
            tracing::debug!("{name}: on disk as our commit left it");
            return Ok(&self.folders[name]);
        }
        tracing::debug!("reading folder {name}");
        // The uidlist our own commit left is the cached list: no parse.
        let existing = match self.folders.remove(name) {
            Some(f) if f.own_uidlist.is_some_and(|id| stamp.uidlist() == Some(&id)) => Some(f.list),
            _ => Self::read_uidlist(&path)?,
        };
        let no_records: &[uidlist::UidlistRecord] = &[];
        let mut listing = scan::list_folder(
            &mail_dir,
            existing.as_ref().map_or(no_records, |l| &l.records),
        )?;
        if existing
            .as_ref()
            .is_some_and(|l| l.version == 3 && l.guid.is_some())
        {
            match listing.exact() {
                Ok(locs) => {
                    let list = existing.expect("checked above");
                    let folder = Folder::new(list, locs, Some(stamp));
                    self.folders.insert(name.clone(), folder);
                    return Ok(&self.folders[name]);
                }
                Err(back) => listing = back,
            }
        }
        let mut locked_stamp: Option<scan::Stamp>;
        let (list, locs) = {
            let ctl = self.opts.control_dir(name)?;
            mkdir_p(&ctl)?;
            let mut lock = DotLock::acquire(&path)?;
            // Someone may have changed the folder before we got the lock;
            // if nothing moved since the first look, that read stands.
            let now = scan::Stamp::take(&mail_dir, &path);
            let fresh = if stamp.unchanged(&now) {
                locked_stamp = Some(stamp.clone());
                existing
            } else {
                locked_stamp = Some(now);
                tracing::debug!("reading folder {name} again under its lock");
                let fresh = Self::read_uidlist(&path)?;
                listing = scan::list_folder(
                    &mail_dir,
                    fresh.as_ref().map_or(no_records, |l| &l.records),
                )?;
                fresh
            };
            let created = fresh.is_none();
            let mut list = match fresh {
                Some(l) => l,
                None => Uidlist::new(
                    fsutil::next_uidvalidity(&self.opts.control_root()),
                    MailboxGuid::generate().context("generating a mailbox GUID")?,
                ),
            };
            let complete = list.version == 3 && list.guid.is_some();
            if list.guid.is_none() {
                list.guid = Some(MailboxGuid::generate().context("generating a mailbox GUID")?);
            }
            list.version = 3;
            let header_next = list.header_next_uid;
            let (r, locs) = scan::reconcile_listing(&mut list, listing, 1);
            // The uidlist as written here (stat'ed before the lock goes, so
            // no later writer's version is taken for ours).
            let written = if created || !complete || r.dropped > 0 {
                list.write_to(lock.file_mut())
                    .with_context(|| io_ctx("writing the new", &path))?;
                let meta = lock.replace_and_stat(&[], None)?;
                fsutil::fsync_dir(&ctl)?;
                scan::file_id(&meta)
            } else if r.added > 0 {
                // Only new files: their records are appended, as Dovecot
                // does (readers take the next UID past the last record), in
                // one write instead of rewriting the whole file.
                let mut tail = Vec::new();
                Uidlist::write_records(&list.records[list.records.len() - r.added..], &mut tail);
                let meta = lock.append(&tail)?;
                list.header_next_uid = header_next;
                scan::file_id(&meta)
            } else {
                // Unchanged and still locked: the uidlist read is current.
                let id = locked_stamp.as_ref().and_then(|s| s.uidlist().cloned());
                drop(lock);
                id
            };
            locked_stamp = locked_stamp.map(|s| s.with_uidlist_id(written));
            if created {
                // Any Dovecot index left behind describes a uidlist that is
                // gone; let Dovecot rebuild it from ours.
                self.remove_dovecot_index(name)?;
            }
            (list, locs)
        };
        // After our own rewrite the folder is what we read under the lock;
        // the new uidlist is ours, so the stamp taken there still holds.
        let stamp = Some(locked_stamp.unwrap_or(stamp));
        let folder = Folder::new(list, locs, stamp);
        self.folders.insert(name.clone(), folder);
        Ok(&self.folders[name])
    }

    /// Removes Dovecot's index for a folder (and the list index that caches
    /// its STATUS numbers); Dovecot rebuilds both from the uidlist.
    pub(crate) fn remove_dovecot_index(&self, name: &MailboxName) -> Result<()> {
        let mut paths = Vec::new();
        if let Some(dir) = self.opts.index_dir(name)? {
            paths.extend(INDEX_FILES.iter().map(|f| dir.join(f)));
        }
        if let Some(root) = self.opts.index_root() {
            paths.extend(LIST_INDEX_FILES.iter().map(|f| root.join(f)));
        }
        for p in paths {
            match fs::remove_file(&p) {
                Ok(()) => tracing::debug!("removed Dovecot index file {}", p.display()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| io_ctx("removing", &p)),
            }
        }
        Ok(())
    }

    /// The folder's messages in UID order with everything a client sees.
    pub fn snapshot(&mut self, name: &MailboxName) -> Result<MailboxSnapshot> {
        // A file renamed (flags changed) between the scan and its stat is
        // found again by rescanning.
        let mut last_err = None;
        for _ in 0..5 {
            match self.try_snapshot(name)? {
                Ok(s) => return Ok(s),
                Err(missing) => last_err = Some(missing),
            }
        }
        Err(ChangedMeanwhile(format!(
            "mailbox {name} keeps changing while it is read (last: {} vanished); try again",
            last_err.unwrap_or_default()
        ))
        .into())
    }

    /// The folder compared with `base` (see `brain::delta`): only the
    /// messages that differ from it are built into records and stat'ed;
    /// the rest cost a comparison of flags from the file name.
    pub fn snapshot_delta(
        &mut self,
        name: &MailboxName,
        base: &crate::brain::merge::BaseMailbox,
    ) -> Result<MailboxDelta> {
        let mut last_err = None;
        for _ in 0..5 {
            match self.try_snapshot_delta(name, base)? {
                Ok(d) => return Ok(d),
                Err(missing) => last_err = Some(missing),
            }
        }
        Err(ChangedMeanwhile(format!(
            "mailbox {name} keeps changing while it is read (last: {} vanished); try again",
            last_err.unwrap_or_default()
        ))
        .into())
    }

    fn try_snapshot_delta(
        &mut self,
        name: &MailboxName,
        base: &crate::brain::merge::BaseMailbox,
    ) -> Result<std::result::Result<MailboxDelta, String>> {
        let kw = self.folder_keywords(name)?;
        let mail_dir = self.opts.mail_dir(name)?;
        let folder = &self.folders[name];
        let mut gone = Vec::new();
        let mut changed_at = Vec::new();
        let mut old = base.messages.iter().peekable();
        for (i, (rec, loc)) in folder.list.records.iter().zip(&folder.locs).enumerate() {
            while let Some(o) = old.next_if(|o| o.uid < rec.uid) {
                gone.push(o.uid);
            }
            let same = old.next_if(|o| o.uid == rec.uid).is_some_and(|o| {
                let (flags, mask) = flags_of(loc.info());
                // Most messages carry no keywords: no names to build.
                let keywords_same = if mask == 0 {
                    o.keywords.is_empty()
                } else {
                    kw.names_of_mask(mask).0 == o.keywords
                };
                keywords_same && o.flags == flags && o.guid == rec.guid()
            });
            if !same {
                changed_at.push(i);
            }
        }
        gone.extend(old.map(|o| o.uid));
        let mut changed = Vec::with_capacity(changed_at.len());
        for i in changed_at {
            let (rec, loc) = (&folder.list.records[i], &folder.locs[i]);
            let path = loc.path(&mail_dir, rec.filename());
            let m = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Ok(Err(path.display().to_string()));
                }
                Err(e) => return Err(e).with_context(|| io_ctx("stat of", &path)),
            };
            changed.push(record_of(rec, loc, &kw, m.mtime(), m.len()));
        }
        Ok(Ok(MailboxDelta {
            info: info_of(name, &folder.list),
            changed,
            gone,
        }))
    }

    /// The folder read (or its cached read) and its keyword names, every
    /// letter its files use named: a letter no name stands for (a file
    /// moved in from another folder) is named and recorded the way Dovecot
    /// does, so both sides see the same keyword.
    fn folder_keywords(&mut self, name: &MailboxName) -> Result<Keywords> {
        let (mut kw, kw_mtime) = self.read_keywords(name)?;
        let orphans = {
            let folder = self.sync_folder(name)?;
            folder
                .locs
                .iter()
                .map(|loc| flags_of(loc.info()).1)
                .fold(0u32, |m, k| m | k)
                & !kw.assigned_mask()
        };
        if orphans != 0 && kw.name_orphans(orphans) {
            let path = self.opts.control_dir(name)?.join(keywords::FILE_NAME);
            let min = kw_mtime.map(|t| t + std::time::Duration::from_secs(1));
            fsutil::DotLock::acquire(&path)?.replace_with_mtime(&kw.to_bytes(), min)?;
        }
        Ok(kw)
    }

    fn try_snapshot(
        &mut self,
        name: &MailboxName,
    ) -> Result<std::result::Result<MailboxSnapshot, String>> {
        // Taken before the folder is read: any change after it alters it.
        let fp_before = self.fingerprint(name).ok().flatten();
        let kw = self.folder_keywords(name)?;
        let mail_dir = self.opts.mail_dir(name)?;
        let dates_path = self.opts.control_dir(name)?.join(dates::FILE_NAME);
        let mut dates = if self.full_scan {
            dates::DateCache::default()
        } else {
            dates::DateCache::load(&dates_path)
        };
        // Read above: the cached folder is what the fingerprint covers.
        let folder = &self.folders[name];
        let records = &folder.list.records;
        // One stat per message not seen before (INTERNALDATE is the mtime),
        // spread over a few threads: on a cold cache they wait on the disk,
        // not the CPU.
        let threads = if records.len() < 4096 {
            1
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
        };
        let chunk = records.len().div_ceil(threads).max(1);
        type Stat = std::result::Result<(i64, u64), (PathBuf, std::io::Error)>;
        let locs = &folder.locs;
        let cached = &dates;
        let stat_chunk = |range: std::ops::Range<usize>| -> Vec<Stat> {
            range
                .map(|i| {
                    if let Some(v) = cached.get(records[i].uid, records[i].filename()) {
                        return Ok(v);
                    }
                    let path = locs[i].path(&mail_dir, records[i].filename());
                    match fs::metadata(&path) {
                        Ok(m) => Ok((m.mtime(), m.len())),
                        Err(e) => Err((path, e)),
                    }
                })
                .collect()
        };
        let stats: Vec<Stat> = if threads == 1 {
            stat_chunk(0..records.len())
        } else {
            std::thread::scope(|sc| {
                let handles: Vec<_> = (0..records.len())
                    .step_by(chunk)
                    .map(|start| {
                        let end = (start + chunk).min(records.len());
                        sc.spawn(move || stat_chunk(start..end))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("stat thread panicked"))
                    .collect()
            })
        };
        let mut messages = Vec::with_capacity(records.len());
        for ((rec, loc), st) in records.iter().zip(locs).zip(stats) {
            let (mtime, len) = match st {
                Ok(v) => {
                    dates.insert(rec.uid, rec.filename(), v.0, v.1);
                    v
                }
                Err((path, e)) if e.kind() == ErrorKind::NotFound => {
                    return Ok(Err(path.display().to_string()));
                }
                Err((path, e)) => return Err(e).with_context(|| io_ctx("stat of", &path)),
            };
            messages.push(record_of(rec, loc, &kw, mtime, len));
        }
        dates.retain_uids(folder.list.records.iter().map(|r| r.uid));
        let snap = MailboxSnapshot {
            info: info_of(name, &folder.list),
            messages,
        };
        dates.save(&dates_path);
        let summary = fp_before.map(|fp| summary_line(&fp, &snap.info));
        dates::save_summary(&self.opts.control_dir(name)?, summary.as_deref());
        Ok(Ok(snap))
    }

    /// Records that the folder, with fingerprint `fp`, holds what it was
    /// just read to hold (its digest proved it): the next listing of an
    /// unchanged folder then needs no read (see `unchanged_info`).
    pub fn save_summary(&mut self, name: &MailboxName, fp: &str) -> Result<()> {
        let info = self.mailbox_info(name)?;
        let summary = summary_line(fp, &info);
        dates::save_summary(&self.opts.control_dir(name)?, Some(&summary));
        Ok(())
    }

    /// What [`crate::model::Digest::of_snapshot`] gives for this folder's
    /// snapshot, without the dates and sizes a snapshot stats for: after a
    /// commit, proving the new state costs a directory listing.
    pub fn digest(&mut self, name: &MailboxName) -> Result<String> {
        let (kw, _) = self.read_keywords(name)?;
        let folder = self.sync_folder(name)?;
        let info = info_of(name, &folder.list);
        let mut d = crate::model::Digest::new(&info.guid, info.uidvalidity, info.uidnext);
        for (rec, loc) in folder.list.records.iter().zip(&folder.locs) {
            let (flags, mask) = flags_of(loc.info());
            let (keywords, _) = kw.names_of_mask(mask);
            d.message(rec.uid, rec.guid(), flags, &keywords);
        }
        Ok(d.finish())
    }

    /// After our own commit the cached folder is what we wrote; if one
    /// listing of cur/ and new/ finds exactly its files (same names, same
    /// places) and the uidlist we left, the cache is current again and the
    /// folder need not be read into a new map. True when it is.
    fn confirm_own_commit(&mut self, name: &MailboxName) -> Result<bool> {
        let mail_dir = self.opts.mail_dir(name)?;
        let path = self.uidlist_path(name)?;
        let Some(folder) = self.folders.get(name) else {
            return Ok(false);
        };
        let Some(own) = folder.own_uidlist else {
            return Ok(false);
        };
        // Taken first: whatever changes after it changes the stamp.
        let stamp = scan::Stamp::take(&mail_dir, &path);
        if stamp.uidlist() != Some(&own) {
            return Ok(false);
        }
        let records = &folder.list.records;
        let index = scan::NameIndex::new(records);
        let mut seen = vec![false; records.len()];
        let mut found = 0usize;
        let mut same = true;
        for (sub, in_new) in [("new", true), ("cur", false)] {
            let dir = mail_dir.join(sub);
            let exists = scan::for_each_entry(&dir, |file, is_dir| {
                if !same || is_dir || file.first() == Some(&b'.') {
                    return;
                }
                let Ok(file) = std::str::from_utf8(file) else {
                    same = false;
                    return;
                };
                let base_len = file.find(':').unwrap_or(file.len());
                let Some(i) = index.get(records, &file[..base_len]) else {
                    same = false;
                    return;
                };
                let loc = &folder.locs[i];
                if seen[i] || loc.in_new != in_new || loc.info() != &file[base_len..] {
                    same = false;
                    return;
                }
                seen[i] = true;
                found += 1;
            })?;
            if !same || (!exists && !in_new) {
                return Ok(false);
            }
        }
        if found != records.len() || !stamp.unchanged(&scan::Stamp::take(&mail_dir, &path)) {
            return Ok(false);
        }
        drop(index);
        if let Some(f) = self.folders.get_mut(name) {
            f.stamp = Some(stamp);
        }
        Ok(true)
    }

    /// Where a message's file is now; rescans the folder if the file moved
    /// (its flags changed) since the folder was read.
    pub fn message_path(&self, name: &MailboxName, uid: Uid) -> Result<PathBuf> {
        let mail_dir = self.opts.mail_dir(name)?;
        let (base, cached) = match self.folders.get(name) {
            Some(f) => match f.list.find_uid(uid) {
                Some(i) => (
                    f.list.records[i].filename().to_string(),
                    f.locs.get(i).cloned(),
                ),
                None => bail!("mailbox {name} has no message with UID {uid}"),
            },
            None => {
                let list = Self::read_uidlist(&self.uidlist_path(name)?)?
                    .ok_or_else(|| anyhow!("mailbox {name} has no {}", uidlist::FILE_NAME))?;
                match list.find_uid(uid) {
                    Some(i) => (list.records[i].filename().to_string(), None),
                    None => bail!("mailbox {name} has no message with UID {uid}"),
                }
            }
        };
        let path_of = |loc: &scan::FileLoc| loc.path(&mail_dir, &base);
        if let Some(loc) = cached {
            let p = path_of(&loc);
            if p.exists() {
                return Ok(p);
            }
        }
        let probe = [uidlist::UidlistRecord::new(uid, base.clone())];
        if let Some(loc) = &scan::list_folder(&mail_dir, &probe)?.locs[0] {
            return Ok(path_of(loc));
        }
        Err(ChangedMeanwhile(format!(
            "message UID {uid} in mailbox {name} vanished: no file {base}* in {} \
             (expunged or moved by another program meanwhile)",
            mail_dir.display()
        ))
        .into())
    }

    /// The message's file, opened, and its size.
    pub fn open_message(&self, name: &MailboxName, uid: Uid) -> Result<(fs::File, u64)> {
        for _ in 0..3 {
            let p = self.message_path(name, uid)?;
            match fs::File::open(&p) {
                Ok(f) => {
                    let len = f.metadata().with_context(|| io_ctx("stat of", &p))?.len();
                    return Ok((f, len));
                }
                // Renamed between the lookup and the open: look again.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| io_ctx("opening", &p)),
            }
        }
        Err(ChangedMeanwhile(format!(
            "message UID {uid} in mailbox {name} keeps moving while it is opened; try again"
        ))
        .into())
    }

    pub fn subscriptions(&self) -> Result<Vec<MailboxName>> {
        let p = self.opts.control_root().join(subscriptions::FILE_NAME);
        let data = fsutil::read_optional(&p)?.unwrap_or_default();
        let sep = match self.opts.layout {
            Layout::MaildirPlusPlus => b'.',
            Layout::Fs => b'/',
        };
        let s = Subscriptions::parse(&data, sep);
        for bad in &s.invalid {
            tracing::warn!("{}: ignoring invalid entry {bad:?}", p.display());
        }
        Ok(s.names)
    }

    /// Replaces the subscriptions (atomically, under Dovecot's dotlock);
    /// writes nothing when they are already exactly these.
    pub fn set_subscriptions(&mut self, names: &[MailboxName]) -> Result<()> {
        let root = self.opts.control_root();
        let p = root.join(subscriptions::FILE_NAME);
        let new = Subscriptions::to_bytes(names);
        if fsutil::read_optional(&p)?.as_deref() == Some(&new[..]) {
            return Ok(());
        }
        mkdir_p(&root)?;
        let lock = DotLock::acquire(&p)?;
        lock.replace(&new)?;
        fsutil::fsync_dir(&root)
    }

    /// Creates a folder (cur/ new/ tmp/, maildirfolder, dovecot-uidlist
    /// with this GUID and UIDVALIDITY). Parent folders are not created.
    /// INBOX "exists" from the start; creating it sets its header if it is
    /// still empty.
    pub fn create_mailbox(
        &mut self,
        name: &MailboxName,
        guid: MailboxGuid,
        uidvalidity: u32,
    ) -> Result<()> {
        if uidvalidity == 0 {
            bail!("cannot create mailbox {name} with UIDVALIDITY 0");
        }
        let ctl = self.opts.control_dir(name)?;
        let uidlist_path = ctl.join(uidlist::FILE_NAME);
        if name.is_inbox() {
            self.ensure_inbox_dirs()?;
            let f = self.sync_folder(name)?;
            if !f.list.records.is_empty() {
                bail!("mailbox INBOX already exists and holds messages");
            }
            let mut l = f.list.clone();
            l.guid = Some(guid);
            l.uidvalidity = uidvalidity;
            let lock = DotLock::acquire(&uidlist_path)?;
            lock.replace(&l.to_bytes())?;
            fsutil::fsync_dir(&ctl)?;
            self.remove_dovecot_index(name)?;
            self.folders.remove(name);
            return Ok(());
        }
        let dir = self.opts.mail_dir(name)?;
        if dir.join("cur").exists() {
            bail!("mailbox {name} already exists ({})", dir.display());
        }
        if self.opts.layout == Layout::MaildirPlusPlus && !is_dir(&self.opts.root) {
            bail!("mail root {} does not exist", self.opts.root.display());
        }
        mkdir_p(&dir)?;
        mkdir_p(&dir.join("tmp"))?;
        mkdir_p(&dir.join("new"))?;
        if self.opts.layout == Layout::MaildirPlusPlus {
            let mf = dir.join("maildirfolder");
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&mf)
                .with_context(|| io_ctx("creating", &mf))?;
        }
        mkdir_p(&ctl)?;
        let list = Uidlist::new(uidvalidity, guid);
        DotLock::acquire(&uidlist_path)?.replace(&list.to_bytes())?;
        // An index left from an earlier folder of this name would describe
        // other messages.
        if let Some(idx) = self.opts.index_dir(name)? {
            if INDEX_FILES.iter().any(|f| idx.join(f).exists()) {
                self.remove_dovecot_index(name)?;
            }
        }
        // cur/ last: the folder becomes visible only when it is complete.
        mkdir_p(&dir.join("cur"))?;
        fsutil::fsync_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            fsutil::fsync_dir(parent)?;
        }
        self.folders.remove(name);
        Ok(())
    }

    /// Deletes a folder and its messages. Child folders stay (Maildir++
    /// keeps them as separate directories; with the fs layout the parent
    /// directory stays while it still has children).
    pub fn delete_mailbox(&mut self, name: &MailboxName) -> Result<()> {
        if name.is_inbox() {
            bail!("INBOX cannot be deleted");
        }
        let dir = self.opts.mail_dir(name)?;
        if !is_dir(&dir.join("cur")) {
            bail!("mailbox {name} does not exist");
        }
        let extra_dirs: Vec<PathBuf> = [
            Some(self.opts.control_dir(name)?),
            self.opts.index_dir(name)?,
        ]
        .into_iter()
        .flatten()
        .filter(|d| *d != dir)
        .collect();
        match self.opts.layout {
            Layout::MaildirPlusPlus => {
                // Out of sight first (a `..` name is never a folder), then
                // removed: an interrupted delete leaves no half folder.
                let trash = self.opts.root.join(format!(
                    "..dsync-deleted.{}.{}",
                    std::process::id(),
                    dir.file_name().and_then(|s| s.to_str()).unwrap_or("x")
                ));
                fs::rename(&dir, &trash).with_context(|| io_ctx("renaming", &dir))?;
                fsutil::fsync_dir(&self.opts.root)?;
                fs::remove_dir_all(&trash).with_context(|| io_ctx("removing", &trash))?;
                for d in extra_dirs {
                    remove_folder_files(&d)?;
                }
            }
            Layout::Fs => {
                // cur/ first so the folder stops being one at once.
                for d in std::iter::once(dir.clone()).chain(extra_dirs) {
                    remove_folder_files(&d)?;
                }
            }
        }
        self.folders.remove(name);
        Ok(())
    }

    /// Renames a folder and, as IMAP RENAME does, its children.
    pub fn rename_mailbox(&mut self, from: &MailboxName, to: &MailboxName) -> Result<()> {
        if from.is_inbox() || to.is_inbox() {
            bail!("renaming INBOX (or onto INBOX) is not supported");
        }
        if !self.mailbox_exists(from)? {
            bail!("mailbox {from} does not exist");
        }
        if self.mailbox_exists(to)? {
            bail!("cannot rename {from} to {to}: {to} already exists");
        }
        let is_child = |n: &MailboxName| {
            n.parts().len() > from.parts().len() && n.parts()[..from.parts().len()] == *from.parts()
        };
        if is_child(to) {
            bail!("cannot rename {from} to its own child {to}");
        }
        let mut moves = vec![(from.clone(), to.clone())];
        if self.opts.layout == Layout::MaildirPlusPlus {
            for n in self.folder_names()? {
                if is_child(&n) {
                    let mut parts = to.parts().to_vec();
                    parts.extend_from_slice(&n.parts()[from.parts().len()..]);
                    let new = MailboxName::from_parts(parts).expect("non-empty parts");
                    if self.mailbox_exists(&new)? {
                        bail!("cannot rename {n} to {new}: {new} already exists");
                    }
                    moves.push((n, new));
                }
            }
        }
        // Validate every target name before touching anything.
        for (_, new) in &moves {
            self.opts.mail_dir(new)?;
        }
        for (old, new) in &moves {
            let mut pairs = vec![(self.opts.mail_dir(old)?, self.opts.mail_dir(new)?)];
            if self.opts.control.is_some() {
                pairs.push((self.opts.control_dir(old)?, self.opts.control_dir(new)?));
            }
            if let (Some(a), Some(b)) = (self.opts.index_dir(old)?, self.opts.index_dir(new)?) {
                if !pairs.iter().any(|(x, _)| *x == a) {
                    pairs.push((a, b));
                }
            }
            for (a, b) in pairs {
                if !a.exists() {
                    continue;
                }
                if let Some(parent) = b.parent() {
                    mkdir_p(parent)?;
                }
                fs::rename(&a, &b)
                    .with_context(|| format!("renaming {} to {}", a.display(), b.display()))?;
                if let Some(parent) = b.parent() {
                    fsutil::fsync_dir(parent)?;
                }
            }
            self.folders.remove(old);
            self.folders.remove(new);
        }
        Ok(())
    }

    /// This store's permanent random ID (32 hex digits), made on first
    /// use; see [`crate::state`].
    pub fn store_id(&self) -> Result<String> {
        state::store_id(&self.opts.root)
    }

    /// The sync state shared with the store whose ID is `peer`, from the
    /// control root. `Ok(None)`: never synced with it. `Err`: damaged;
    /// the caller must then sync without a base (never with an empty one).
    pub fn load_state(&self, peer: &str) -> Result<Option<SyncState>> {
        state::load(&self.opts.control_root(), peer)
    }

    /// Durably replaces the sync state shared with `peer`.
    pub fn save_state(&self, peer: &str, st: &SyncState) -> Result<()> {
        state::save(&self.opts.control_root(), peer, st)
    }

    /// Records `st`, made by `change` from the stored state (see
    /// `state::save_change`).
    pub fn save_state_change(
        &self,
        peer: &str,
        st: &SyncState,
        change: &state::journal::Change,
    ) -> Result<()> {
        state::save_change(&self.opts.control_root(), peer, st, change)
    }

    /// Starts a transaction on one folder; nothing reaches the disk outside
    /// tmp/ before [`MailboxUpdate::commit`].
    pub fn update(&mut self, name: &MailboxName) -> Result<MailboxUpdate<'_>> {
        // A folder read earlier in this run serves as it is: the commit
        // reads it again under the lock, and planned changes that no longer
        // fit are skipped there (exit 2), never misapplied.
        if !self.folders.contains_key(name) {
            self.sync_folder(name)?;
        }
        MailboxUpdate::new(self, name.clone())
    }
}

/// Removes a folder's own files from `dir` (cur/ new/ tmp/, Dovecot's files)
/// and the directory itself when nothing else (child folders) is left.
fn remove_folder_files(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for sub in ["cur", "new", "tmp"] {
        let p = dir.join(sub);
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| io_ctx("removing", &p))?;
        }
    }
    let rd = fs::read_dir(dir).with_context(|| io_ctx("reading directory", dir))?;
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if (n.starts_with("dovecot")
            || n == "maildirfolder"
            || n == dates::FILE_NAME
            || n == dates::SUMMARY_FILE)
            && !e.file_type().map(|t| t.is_dir()).unwrap_or(false)
        {
            let _ = fs::remove_file(e.path());
        }
    }
    // Fails (and is meant to) while child folders remain.
    let _ = fs::remove_dir(dir);
    Ok(())
}

/// The summary line `dsync-summary` keeps: fingerprint and numbers.
fn summary_line(fp: &str, i: &MailboxInfo) -> String {
    format!(
        "{fp}\t{}\t{}\t{}\t{}",
        i.guid.to_hex(),
        i.uidvalidity,
        i.uidnext,
        i.messages
    )
}

/// A message as a client sees it, from its uidlist record, its file and
/// that file's mtime and length.
fn record_of(
    rec: &uidlist::UidlistRecord,
    loc: &scan::FileLoc,
    kw: &Keywords,
    mtime: i64,
    len: u64,
) -> MessageRecord {
    let (flags, mask) = flags_of(loc.info());
    let (keywords, _) = kw.names_of_mask(mask);
    MessageRecord {
        uid: rec.uid,
        guid: rec.guid().to_string(),
        flags,
        keywords,
        internal_date: mtime,
        size: size_field(rec.filename(), 'S').unwrap_or(len),
        pop3_uidl: rec.get(b'P').map(str::to_string),
        pop3_order: rec.get(b'O').and_then(|o| o.parse().ok()),
        in_new: loc.in_new,
    }
}

pub(crate) fn info_of(name: &MailboxName, list: &Uidlist) -> MailboxInfo {
    MailboxInfo {
        name: name.clone(),
        guid: list.guid.unwrap_or_default(),
        uidvalidity: list.uidvalidity,
        uidnext: list.next_uid(),
        messages: list.records.len() as u32,
        highest_modseq: 0,
    }
}
