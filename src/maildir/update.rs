//! A transaction on one folder: saves, flag changes, INTERNALDATE changes,
//! expunges and header changes, made durable in one commit.
//!
//! Commit order (crash-safe, and never visible half-done to Dovecot):
//! new files are written in tmp/ and flushed; then, under
//! dovecot-uidlist.lock, dovecot-keywords is updated, files are renamed
//! into cur/ or new/, the directories are fsynced, and the new uidlist
//! replaces the old one by rename. A Dovecot index that would contradict
//! the new uidlist (a UID inserted below the old UIDNEXT, a lower UIDNEXT,
//! another UIDVALIDITY or GUID) is removed so Dovecot rebuilds it.

use super::filename::{self, size_field, valid_base_name, MaildirFileName};
use super::fsutil::{self, DotLock};
use super::keywords::{self, Keywords};
use super::scan::{self, FileLoc};
use super::store::{info_of, io_ctx, Folder, MaildirStore};
use super::uidlist::{self, valid_ext_value, Uidlist, UidlistRecord};
use super::ChangedMeanwhile;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord, Uid};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Above this many new files a commit flushes them with one syncfs(2)
/// instead of one fdatasync each.
const SYNCFS_THRESHOLD: usize = 16;

/// A message being written to tmp/.
pub struct SaveHandle {
    file: File,
    tmp: PathBuf,
    rec: MessageRecord,
    written: u64,
    vsize: u64,
    last_was_cr: bool,
}

struct PendingSave {
    tmp: PathBuf,
    rec: MessageRecord,
    vsize: Option<u64>,
}

pub struct MailboxUpdate<'a> {
    store: &'a mut MaildirStore,
    name: MailboxName,
    mail_dir: PathBuf,
    saves: Vec<PendingSave>,
    /// UIDs already used by this transaction's saves or open handles.
    save_uids: HashSet<Uid>,
    open_tmps: HashSet<PathBuf>,
    flags: BTreeMap<Uid, (Flags, Vec<String>)>,
    dates: BTreeMap<Uid, i64>,
    expunges: BTreeSet<Uid>,
    /// Messages taking a new UID: new UID → the UID they have on disk.
    relabels: BTreeMap<Uid, Uid>,
    /// The inverse of `relabels`: UID on disk → new UID.
    relabeled_from: HashMap<Uid, Uid>,
    header: Option<(MailboxGuid, u32, Uid)>,
}

/// Dovecot-style unique base names: `<secs>.M<usecs>P<pid>.<host>`, with
/// the microseconds pushed forward when two names fall in one microsecond.
fn generate_base() -> String {
    static LAST: Mutex<(u64, u32)> = Mutex::new((0, 0));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let mut t = (now.as_secs(), now.subsec_micros());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if t <= *last {
        t = *last;
        t.1 += 1;
        if t.1 == 1_000_000 {
            t = (t.0 + 1, 0);
        }
    }
    *last = t;
    filename::generate_base(t.0, t.1, std::process::id(), &hostname())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success when it fits.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn set_times(file: &File, secs: i64, path: &Path) -> Result<()> {
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: fd is open for the duration of the call; times points to two
    // valid timespecs.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| io_ctx("setting the time of", path));
    }
    Ok(())
}

/// The size with every bare LF counted as CRLF (Dovecot's "virtual size").
fn count_vsize(data: &[u8], last_was_cr: &mut bool) -> u64 {
    let mut extra = 0u64;
    let mut prev_cr = *last_was_cr;
    for &b in data {
        if b == b'\n' && !prev_cr {
            extra += 1;
        }
        prev_cr = b == b'\r';
    }
    if let Some(&l) = data.last() {
        *last_was_cr = l == b'\r';
    }
    data.len() as u64 + extra
}

/// Copies `src` to `dst` by reflink, else in-kernel copy, else read/write.
fn clone_or_copy(src: &File, dst: &File, len: u64) -> std::io::Result<u64> {
    // SAFETY: both fds are open; FICLONE takes the source fd as argument.
    if unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) } == 0 {
        return Ok(len);
    }
    let mut copied = 0u64;
    loop {
        // SAFETY: null offsets mean "use and advance the file positions".
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                std::ptr::null_mut(),
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                (1 << 30) as usize,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if copied == 0
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
                )
            {
                break;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
    }
    let mut s = src;
    let mut d = dst;
    std::io::copy(&mut s, &mut d)
}

impl<'a> MailboxUpdate<'a> {
    pub(crate) fn new(store: &'a mut MaildirStore, name: MailboxName) -> Result<Self> {
        let mail_dir = store.opts.mail_dir(&name)?;
        Ok(MailboxUpdate {
            store,
            name,
            mail_dir,
            saves: Vec::new(),
            save_uids: HashSet::new(),
            open_tmps: HashSet::new(),
            flags: BTreeMap::new(),
            dates: BTreeMap::new(),
            expunges: BTreeSet::new(),
            relabels: BTreeMap::new(),
            relabeled_from: HashMap::new(),
            header: None,
        })
    }

    fn folder(&self) -> &Folder {
        &self.store.folders[&self.name]
    }

    /// The store, for reads during the transaction (where another
    /// mailbox's message file is, for a copy).
    pub fn store(&self) -> &MaildirStore {
        self.store
    }

    fn check_new_uid(&self, uid: Uid) -> Result<()> {
        if uid == 0 || uid == u32::MAX {
            bail!("mailbox {}: UID {uid} is not a valid UID", self.name);
        }
        if self.save_uids.contains(&uid) {
            bail!(
                "mailbox {}: UID {uid} is saved twice in one transaction",
                self.name
            );
        }
        if let Some(old) = self.relabels.get(&uid) {
            bail!(
                "mailbox {}: UID {uid} is already taken by message UID {old} in this transaction",
                self.name
            );
        }
        // A UID this transaction expunges (or relabels away) may be reused
        // by it: a backup replaces a stray destination message under the
        // source's UID; a renumbering moves messages around.
        if self.folder().list.find_uid(uid).is_some()
            && !self.expunges.contains(&uid)
            && !self.relabeled_from.contains_key(&uid)
        {
            // Usually another program delivered meanwhile.
            return Err(ChangedMeanwhile(format!(
                "mailbox {}: UID {uid} is already used; a save needs an unused UID",
                self.name
            ))
            .into());
        }
        Ok(())
    }

    fn create_tmp(&mut self) -> Result<(File, PathBuf)> {
        let tmp_dir = self.mail_dir.join("tmp");
        if !tmp_dir.is_dir() {
            fs::create_dir_all(&tmp_dir).with_context(|| io_ctx("creating", &tmp_dir))?;
        }
        loop {
            let p = tmp_dir.join(generate_base());
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
            {
                Ok(f) => {
                    self.open_tmps.insert(p.clone());
                    return Ok((f, p));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| io_ctx("creating", &p)),
            }
        }
    }

    /// Starts saving a message with the record's UID, GUID, flags, date.
    pub fn save_begin(&mut self, rec: &MessageRecord) -> Result<SaveHandle> {
        self.check_new_uid(rec.uid)?;
        let (file, tmp) = self.create_tmp()?;
        self.save_uids.insert(rec.uid);
        Ok(SaveHandle {
            file,
            tmp,
            rec: rec.clone(),
            written: 0,
            vsize: 0,
            last_was_cr: false,
        })
    }

    pub fn write_chunk(&mut self, h: &mut SaveHandle, data: &[u8]) -> Result<()> {
        h.file
            .write_all(data)
            .with_context(|| io_ctx("writing", &h.tmp))?;
        h.written += data.len() as u64;
        h.vsize += count_vsize(data, &mut h.last_was_cr);
        Ok(())
    }

    /// Ends a save; the byte count must equal the record's size.
    pub fn save_finish(&mut self, h: SaveHandle) -> Result<()> {
        self.open_tmps.remove(&h.tmp);
        if h.written != h.rec.size {
            let _ = fs::remove_file(&h.tmp);
            self.save_uids.remove(&h.rec.uid);
            bail!(
                "mailbox {}: message UID {} is {} bytes, but {} were announced",
                self.name,
                h.rec.uid,
                h.written,
                h.rec.size
            );
        }
        if let Err(e) = set_times(&h.file, h.rec.internal_date, &h.tmp) {
            let _ = fs::remove_file(&h.tmp);
            self.save_uids.remove(&h.rec.uid);
            return Err(e);
        }
        self.saves.push(PendingSave {
            tmp: h.tmp,
            rec: h.rec,
            vsize: Some(h.vsize),
        });
        Ok(())
    }

    /// Abandons a save begun with `save_begin`.
    pub fn save_abort(&mut self, h: SaveHandle) {
        self.open_tmps.remove(&h.tmp);
        self.save_uids.remove(&h.rec.uid);
        let _ = fs::remove_file(&h.tmp);
    }

    /// Saves a copy of a file on this machine (reflink when the filesystem
    /// can, else an in-kernel copy).
    pub fn save_copy_of(&mut self, rec: &MessageRecord, src: &Path) -> Result<()> {
        self.check_new_uid(rec.uid)?;
        let (sf, src) = match File::open(src) {
            Ok(f) => (f, src.to_path_buf()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Named a moment ago, renamed since (its flags changed).
                let Some(now) = scan::find_renamed(src) else {
                    return Err(e).with_context(|| io_ctx("opening", src));
                };
                let f = File::open(&now).with_context(|| io_ctx("opening", &now))?;
                (f, now)
            }
            Err(e) => return Err(e).with_context(|| io_ctx("opening", src)),
        };
        let src = src.as_path();
        let len = sf.metadata().with_context(|| io_ctx("stat of", src))?.len();
        if len != rec.size {
            bail!(
                "mailbox {}: {} is {len} bytes, but the message is {} bytes",
                self.name,
                src.display(),
                rec.size
            );
        }
        let (df, tmp) = self.create_tmp()?;
        self.open_tmps.remove(&tmp);
        let res = (|| -> Result<Option<u64>> {
            let n = clone_or_copy(&sf, &df, len)
                .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
            if n != len {
                bail!("{} changed size while it was copied", src.display());
            }
            set_times(&df, rec.internal_date, &tmp)?;
            // Dovecot wrote a W= it trusts; otherwise count it.
            let src_name = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let base = MaildirFileName::parse(src_name);
            let vsize = match (base.size(), base.vsize()) {
                (Some(s), Some(w)) if s == len => Some(w),
                _ => {
                    let mut f = File::open(&tmp).with_context(|| io_ctx("opening", &tmp))?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut cr = false;
                    let mut v = 0u64;
                    loop {
                        let n = f.read(&mut buf).with_context(|| io_ctx("reading", &tmp))?;
                        if n == 0 {
                            break;
                        }
                        v += count_vsize(&buf[..n], &mut cr);
                    }
                    Some(v)
                }
            };
            Ok(vsize)
        })();
        match res {
            Ok(vsize) => {
                self.save_uids.insert(rec.uid);
                self.saves.push(PendingSave {
                    tmp,
                    rec: rec.clone(),
                    vsize,
                });
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn pending_save_mut(&mut self, uid: Uid) -> Option<&mut PendingSave> {
        self.saves.iter_mut().find(|s| s.rec.uid == uid)
    }

    /// Whether this transaction gives the mailbox a new UIDVALIDITY: then
    /// every UID may change (clients must forget them all anyway), so a
    /// relabel may go below UIDNEXT and UIDs may be swapped.
    fn renumbers(&self) -> bool {
        matches!(self.header, Some((_, uv, _)) if uv != self.folder().list.uidvalidity)
    }

    /// The message a UID names in this transaction, by the UID it has on
    /// disk: a relabeled message is named by its new UID only.
    fn on_disk_uid(&self, uid: Uid) -> Result<Uid> {
        if let Some(on_disk) = self.relabels.get(&uid) {
            return Ok(*on_disk);
        }
        if let Some(new) = self.relabeled_from.get(&uid) {
            bail!(
                "mailbox {}: message UID {uid} was relabeled to UID {new} in this \
                 transaction; use the new UID",
                self.name
            );
        }
        Ok(uid)
    }

    /// Gives an existing message a new UID without copying it: its file
    /// stays, and in dovecot-uidlist its record is replaced by one with
    /// `new_uid` (same file name, same P/O/G/… fields), appended at the
    /// end. To Dovecot and IMAP clients this is an expunge of `old_uid` and
    /// a new message `new_uid`; flags stay as they are (set them with
    /// `set_flags(new_uid, …)`).
    ///
    /// `new_uid` must be at or above the mailbox's UIDNEXT, unless
    /// [`set_header`](Self::set_header) was called first with another
    /// UIDVALIDITY (a full renumbering, where UIDs may also be swapped);
    /// either way no other message may hold it when the transaction ends.
    /// `old_uid` is the UID the message has on disk; failing that, a UID
    /// this transaction relabeled or saved a message to. Later calls
    /// (set_flags, set_internal_date, expunge) name the message by
    /// `new_uid`.
    pub fn relabel(&mut self, old_uid: Uid, new_uid: Uid) -> Result<()> {
        let name = &self.name;
        if new_uid == 0 || new_uid == u32::MAX {
            bail!("mailbox {name}: UID {new_uid} is not a valid UID");
        }
        let next = self.folder().list.next_uid();
        if new_uid < next && !self.renumbers() {
            bail!(
                "mailbox {name}: cannot relabel UID {old_uid} to UID {new_uid}: a new UID \
                 must be at least the mailbox's UIDNEXT {next} (UIDs are never reused)"
            );
        }
        if self.save_uids.contains(&new_uid) || self.relabels.contains_key(&new_uid) {
            bail!(
                "mailbox {name}: cannot relabel UID {old_uid} to UID {new_uid}: this \
                 transaction already uses UID {new_uid}"
            );
        }
        let on_disk_here = self.folder().list.find_uid(old_uid).is_some()
            && !self.expunges.contains(&old_uid)
            && !self.relabeled_from.contains_key(&old_uid);
        let on_disk = if on_disk_here {
            old_uid
        } else if let Some(orig) = self.relabels.remove(&old_uid) {
            orig
        } else if let Some(s) = self.saves.iter_mut().find(|s| s.rec.uid == old_uid) {
            // Saved in this transaction: it simply gets the other UID.
            s.rec.uid = new_uid;
            self.save_uids.remove(&old_uid);
            self.save_uids.insert(new_uid);
            return Ok(());
        } else if let Some(new) = self.relabeled_from.get(&old_uid) {
            bail!(
                "mailbox {name}: cannot relabel UID {old_uid}: it was relabeled to UID {new} \
                 in this transaction; use the new UID"
            );
        } else if self.expunges.contains(&old_uid) {
            bail!("mailbox {name}: cannot relabel UID {old_uid}: this transaction expunges it");
        } else if self.save_uids.contains(&old_uid) {
            bail!("mailbox {name}: cannot relabel UID {old_uid}: its save is not finished");
        } else {
            return Err(ChangedMeanwhile(format!(
                "mailbox {name}: no message with UID {old_uid} to relabel (expunged meanwhile?)"
            ))
            .into());
        };
        self.relabels.insert(new_uid, on_disk);
        self.relabeled_from.insert(on_disk, new_uid);
        Ok(())
    }

    /// Sets a message's flags and keywords (replacing the old ones).
    pub fn set_flags(&mut self, uid: Uid, flags: Flags, keywords: &[String]) -> Result<()> {
        let mut kw: Vec<String> = keywords.to_vec();
        kw.sort();
        kw.dedup();
        if let Some(s) = self.pending_save_mut(uid) {
            s.rec.flags = flags;
            s.rec.keywords = kw;
            return Ok(());
        }
        let on_disk = self.on_disk_uid(uid)?;
        if self.folder().list.find_uid(on_disk).is_none() {
            return Err(ChangedMeanwhile(format!(
                "mailbox {}: no message with UID {uid} (expunged meanwhile?)",
                self.name
            ))
            .into());
        }
        self.flags.insert(on_disk, (flags, kw));
        Ok(())
    }

    /// Sets a message's INTERNALDATE (the file's mtime).
    pub fn set_internal_date(&mut self, uid: Uid, secs: i64) {
        if let Some(s) = self.pending_save_mut(uid) {
            s.rec.internal_date = secs;
            return;
        }
        match self.on_disk_uid(uid) {
            Ok(on_disk) => {
                self.dates.insert(on_disk, secs);
            }
            Err(e) => tracing::warn!("{e:#}"),
        }
    }

    pub fn expunge(&mut self, uid: Uid) -> Result<()> {
        if let Some(i) = self.saves.iter().position(|s| s.rec.uid == uid) {
            let s = self.saves.remove(i);
            let _ = fs::remove_file(&s.tmp);
            self.save_uids.remove(&uid);
            return Ok(());
        }
        let on_disk = self.on_disk_uid(uid)?;
        if self.relabels.remove(&uid).is_some() {
            self.relabeled_from.remove(&on_disk);
        }
        self.flags.remove(&on_disk);
        self.dates.remove(&on_disk);
        self.expunges.insert(on_disk);
        Ok(())
    }

    /// Forces the uidlist header (backup makes the destination's numbers
    /// equal to the source's, even lower ones).
    pub fn set_header(&mut self, guid: MailboxGuid, uidvalidity: u32, uidnext: Uid) {
        self.header = Some((guid, uidvalidity, uidnext));
    }

    fn is_empty(&self) -> bool {
        self.saves.is_empty()
            && self.flags.is_empty()
            && self.dates.is_empty()
            && self.expunges.is_empty()
            && self.relabels.is_empty()
            && self.header.is_none()
    }

    fn flush_tmp_files(&self) -> Result<()> {
        if self.saves.len() > SYNCFS_THRESHOLD {
            let dir = self.mail_dir.join("tmp");
            let f = File::open(&dir).with_context(|| io_ctx("opening", &dir))?;
            // SAFETY: the fd is open for the duration of the call.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| io_ctx("syncfs on", &dir));
            }
            return Ok(());
        }
        for s in &self.saves {
            let f = File::open(&s.tmp).with_context(|| io_ctx("opening", &s.tmp))?;
            f.sync_data()
                .with_context(|| io_ctx("fdatasync of", &s.tmp))?;
        }
        Ok(())
    }

    /// Makes everything durable and visible. An update with no changes
    /// writes nothing.
    pub fn commit(mut self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        self.flush_tmp_files()?;
        let t_flush = t0.elapsed();
        let name = self.name.clone();
        let ctl = self.store.opts.control_dir(&name)?;
        fs::create_dir_all(&ctl).with_context(|| io_ctx("creating", &ctl))?;
        let uidlist_path = ctl.join(uidlist::FILE_NAME);
        let mut lock = DotLock::acquire(&uidlist_path)?;

        // The folder as it is now, under the lock: others may have
        // delivered, expunged or changed flags since we last looked. If
        // nothing moved since this run read it, that read stands.
        let stamp_now = scan::Stamp::take(&self.mail_dir, &uidlist_path);
        let cached = match self.store.folders.remove(&name) {
            Some(f)
                if self.store.commit_on_cache
                    && (f.stamp.as_ref().is_some_and(|s| s.unchanged(&stamp_now))
                        || f.commit_stamp
                            .as_ref()
                            .is_some_and(|s| s.unchanged(&stamp_now))) =>
            {
                self.store.commits_on_cache += 1;
                Some(f)
            }
            _ => None,
        };
        let on_cache = cached.is_some();
        let (old, listing, rest) = match cached {
            Some(f) => (Some(f.list), None, Some((f.locs, f.letters, f.names))),
            None => {
                let list = MaildirStore::read_uidlist(&uidlist_path)?;
                let no_records: &[UidlistRecord] = &[];
                let records = list.as_ref().map_or(no_records, |l| &l.records);
                let listing = scan::list_folder(&self.mail_dir, records)?;
                (list, Some(listing), None)
            }
        };
        let t_read = t0.elapsed();
        let existed = old.is_some();
        let mut list = match old {
            Some(l) => l,
            None => Uidlist::new(
                fsutil::next_uidvalidity(&self.store.opts.control_root()),
                MailboxGuid::generate().context("generating a mailbox GUID")?,
            ),
        };
        let (locs, mut letters, mut names) = rest.unwrap_or_default();
        let mut files = CommitFiles {
            locs,
            relisted: None,
        };
        // What the file on disk says, to leave it alone when nothing
        // changes and to append when only new messages come.
        let disk_next = list.next_uid();
        let disk_header = (list.uidvalidity, list.guid, list.header_next_uid);
        let mut rewrite = !existed || list.version != 3 || list.guid.is_none();
        if list.guid.is_none() {
            list.guid = Some(MailboxGuid::generate().context("generating a mailbox GUID")?);
        }
        list.version = 3;
        let old_next = list.next_uid();
        let old_uv = list.uidvalidity;
        let old_guid = list.guid;
        let max_saved = self
            .saves
            .iter()
            .map(|s| s.rec.uid)
            .chain(self.relabels.keys().copied())
            .max()
            .unwrap_or(0);
        // Files delivered meanwhile get UIDs above ours, never the same. A
        // cached folder was reconciled when it was read, and nothing moved
        // since.
        if let Some(listing) = listing {
            let (r, locs) =
                scan::reconcile_listing(&mut list, listing, max_saved.saturating_add(1));
            rewrite |= r.changed();
            letters = super::store::letters_of(&locs);
            files.locs = locs;
        }
        // A UID that stays on a message other than the one meant for it.
        let taken = |list: &Uidlist, uid: Uid| {
            list.find_uid(uid).is_some()
                && !self.expunges.contains(&uid)
                && !self.relabeled_from.contains_key(&uid)
        };
        for s in &self.saves {
            if taken(&list, s.rec.uid) {
                return Err(ChangedMeanwhile(format!(
                    "mailbox {name}: UID {} was taken by another program while dsync was \
                     saving; nothing was changed, run again",
                    s.rec.uid
                ))
                .into());
            }
        }
        let renumbers = matches!(self.header, Some((_, uv, _)) if uv != old_uv);
        for new in self.relabels.keys() {
            // Unlike a backup's saves, a relabel goes below UIDNEXT only in
            // a renumbering: clients may have seen UIDs up to it.
            if taken(&list, *new) || (*new < old_next && !renumbers) {
                return Err(ChangedMeanwhile(format!(
                    "mailbox {name}: UID {new} was taken by another program (UIDs up to {} \
                     are used) while dsync was giving a message that UID; nothing was \
                     changed, run again",
                    old_next - 1
                ))
                .into());
            }
        }

        // Keywords first: a file name must never carry a letter Dovecot
        // cannot resolve yet.
        let (mut kw, kw_mtime) = self.store.read_keywords(&name)?;
        let kw_before = kw.clone();
        // Letters some file carries with no name behind them stay unused.
        let orphans = letters & !kw.assigned_mask();
        // What could not be done, for the caller's exit status.
        let mut skipped: Vec<String> = Vec::new();
        let mut mask_of = |names: &[String], kw: &mut Keywords| -> u32 {
            let mut m = 0u32;
            for n in names {
                if !keywords::valid_keyword(n) {
                    skipped.push(format!("mailbox {name}: keyword {n:?} cannot be stored"));
                    continue;
                }
                match kw.get_or_add_avoiding(n, orphans) {
                    Some(i) => m |= 1 << i,
                    None => skipped.push(format!(
                        "mailbox {name}: more than 26 keywords; Maildir cannot store {n:?}"
                    )),
                }
            }
            m
        };
        let save_masks: Vec<u32> = self
            .saves
            .iter()
            .map(|s| mask_of(&s.rec.keywords, &mut kw))
            .collect();
        let flag_masks: BTreeMap<Uid, u32> = self
            .flags
            .iter()
            .map(|(uid, (_, names))| (*uid, mask_of(names, &mut kw)))
            .collect();
        if kw != kw_before {
            let min = kw_mtime.map(|t| t + Duration::from_secs(1));
            // Under Dovecot's own keywords lock too, though holding the
            // uidlist lock already keeps Dovecot from writing it.
            DotLock::acquire(&ctl.join(keywords::FILE_NAME))?
                .replace_with_mtime(&kw.to_bytes(), min)?;
        }

        let mut touched_new = false;
        let mut touched_cur = false;

        // Expunges. A file renamed meanwhile (a client changed its flags)
        // is looked up again: leaving it would bring the message back
        // under a new UID.
        let mut gone: Vec<usize> = Vec::with_capacity(self.expunges.len());
        for uid in &self.expunges {
            lock.keep_alive();
            let Some(i) = list.find_uid(*uid) else {
                continue;
            };
            for attempt in 0..3 {
                let Some(loc) = files.get(&list, i) else {
                    break;
                };
                let p = loc.path(&self.mail_dir, list.records[i].filename());
                match fs::remove_file(&p) {
                    Ok(()) => {
                        if loc.in_new {
                            touched_new = true;
                        } else {
                            touched_cur = true;
                        }
                        files.forget(&list, i);
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound && attempt < 2 => {
                        files.relist(&list, &self.mail_dir)?;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) => return Err(e).with_context(|| io_ctx("removing", &p)),
                }
            }
            gone.push(i);
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            remove_aligned(&mut list.records, &mut files.locs, &gone);
            rewrite = true;
        }

        // Flag changes: rename within cur/ (a file in new/ moves to cur/,
        // as Dovecot does once a message has flags).
        for (uid, (flags, _)) in &self.flags {
            lock.keep_alive();
            let Some(i) = list.find_uid(*uid) else {
                skipped.push(format!(
                    "mailbox {name}: message UID {uid} was expunged before its flags could be set"
                ));
                continue;
            };
            let want = flag_masks[uid];
            let mut renamed = false;
            for _ in 0..3 {
                let Some(loc) = files.get(&list, i) else {
                    break;
                };
                let base = &list.records[i].filename();
                let cur_name = loc.file_name(base);
                let old_name = MaildirFileName::parse(&cur_name);
                // Letters with no keyword behind them are someone else's.
                let unknown = old_name.keyword_mask() & !kw.assigned_mask();
                let new_name = old_name.with_flags(*flags, want | unknown).format();
                if new_name == cur_name && !loc.in_new {
                    renamed = true;
                    break;
                }
                if loc.in_new && new_name == cur_name && flags.bits() == 0 && want == 0 {
                    renamed = true;
                    break;
                }
                let from = loc.path(&self.mail_dir, base);
                let to = self.mail_dir.join("cur").join(&new_name);
                match fs::rename(&from, &to) {
                    Ok(()) => {
                        touched_cur = true;
                        touched_new |= loc.in_new;
                        let loc = FileLoc::new(&new_name, base.len(), false);
                        letters |= filename::flags_of(loc.info()).1;
                        files.locs[i] = loc;
                        renamed = true;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        // Renamed by someone else meanwhile: look again.
                        files.relist(&list, &self.mail_dir)?;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("renaming {} to {}", from.display(), to.display())
                        })
                    }
                }
            }
            if !renamed {
                skipped.push(format!(
                    "mailbox {name}: message UID {uid} vanished before its flags could be set"
                ));
            }
        }

        // INTERNALDATE changes. The folder's date cache would contradict
        // them: forget it (the next scan stats every file once).
        if !self.dates.is_empty() {
            super::dates::invalidate(&ctl);
        }
        for (uid, secs) in &self.dates {
            lock.keep_alive();
            let Some(i) = list.find_uid(*uid) else {
                skipped.push(format!(
                    "mailbox {name}: message UID {uid} was expunged before its date could be set"
                ));
                continue;
            };
            if let Some(loc) = files.get(&list, i) {
                let p = loc.path(&self.mail_dir, list.records[i].filename());
                match OpenOptions::new().write(true).open(&p) {
                    Ok(f) => set_times(&f, *secs, &p)?,
                    Err(e) if e.kind() == ErrorKind::NotFound => skipped.push(format!(
                        "mailbox {name}: message UID {uid} vanished before its date could be set"
                    )),
                    Err(e) => return Err(e).with_context(|| io_ctx("opening", &p)),
                }
            }
        }

        // Relabels: the same file under a new UID. A record moves to the
        // end, which is what Dovecot reads as "expunged, then appended".
        if !self.relabels.is_empty() {
            let mut moved: Vec<(usize, Uid)> = Vec::with_capacity(self.relabels.len());
            for (new, old) in &self.relabels {
                match list.find_uid(*old) {
                    Some(i) => moved.push((i, *new)),
                    None => skipped.push(format!(
                        "mailbox {name}: message UID {old} was expunged before it could \
                         become UID {new}"
                    )),
                }
            }
            if !moved.is_empty() {
                moved.sort_unstable();
                let before = list.records.len() - moved.len();
                let mut recs = Vec::with_capacity(moved.len());
                let mut locs = Vec::with_capacity(moved.len());
                for (i, new) in &moved {
                    let r = &mut list.records[*i];
                    let r = std::mem::replace(r, UidlistRecord::new(0, String::new()));
                    recs.push(r.with_uid(*new));
                    locs.push(files.locs[*i].clone());
                }
                let at: Vec<usize> = moved.iter().map(|(i, _)| *i).collect();
                remove_aligned(&mut list.records, &mut files.locs, &at);
                list.records.extend(recs);
                files.locs.extend(locs);
                // Files delivered meanwhile may have got UIDs above ours.
                sort_tail(&mut list.records, &mut files.locs, before);
                rewrite = true;
            }
        }

        // New messages into cur/ or new/.
        let mut inserted_low = false;
        let kept = list.records.len();
        let saves = std::mem::take(&mut self.saves);
        if !saves.is_empty() && names.is_none() {
            names = Some(name_hashes(&list));
        }
        let names_set = names.get_or_insert_with(Default::default);
        // What a later scan would stat for the new files, recorded now.
        let mut new_dates: Vec<(Uid, String, i64, u64)> = Vec::with_capacity(saves.len());
        for (s, mask) in saves.iter().zip(save_masks) {
            lock.keep_alive();
            let size = s.rec.size;
            let vsize = s.vsize;
            // A hash seen before counts as taken: a rare false alarm only
            // costs a fresh name (the GUID is then kept in G).
            let (base, g) = choose_base(&s.rec.guid, size, vsize, |b| {
                names_set.contains(&scan::name_hash(b)) || files.relisted_has(b)
            });
            if g.is_none() && base != s.rec.guid && !s.rec.guid.is_empty() {
                skipped.push(format!(
                    "mailbox {name}: message GUID {:?} cannot be kept (UID {} is now {base})",
                    s.rec.guid, s.rec.uid
                ));
            }
            let mut fname = MaildirFileName {
                stem: base.clone(),
                info: filename::Info::None,
            };
            if !(s.rec.in_new && s.rec.flags.bits() == 0 && mask == 0) {
                fname = fname.with_flags(s.rec.flags, mask);
            }
            let sub = if s.rec.in_new { "new" } else { "cur" };
            let full = fname.format();
            let dest = self.mail_dir.join(sub).join(&full);
            fs::rename(&s.tmp, &dest)
                .with_context(|| format!("renaming {} to {}", s.tmp.display(), dest.display()))?;
            if s.rec.in_new {
                touched_new = true;
            } else {
                touched_cur = true;
            }
            names_set.insert(scan::name_hash(&base));
            letters |= mask;
            files
                .locs
                .push(FileLoc::new(&full, base.len(), s.rec.in_new));
            let mut r = UidlistRecord::new(s.rec.uid, base);
            if let Some(g) = g {
                r.set(b'G', g);
            }
            if let Some(p) = &s.rec.pop3_uidl {
                if valid_ext_value(p) {
                    r.set(b'P', p.clone());
                } else {
                    tracing::warn!(
                        "mailbox {name}: POP3 UIDL {p:?} of UID {} cannot be stored",
                        s.rec.uid
                    );
                }
            }
            if let Some(o) = s.rec.pop3_order {
                r.set(b'O', o.to_string());
            }
            inserted_low |= s.rec.uid < old_next;
            new_dates.push((
                r.uid,
                r.filename().to_string(),
                s.rec.internal_date,
                s.rec.size,
            ));
            list.records.push(r);
        }
        super::dates::append(
            &ctl,
            new_dates
                .iter()
                .map(|(u, b, m, z)| (*u, b.as_str(), *m, *z)),
        );
        drop(new_dates);
        // Saves come in any order, and in a backup below UIDs already
        // here: only the part from the first out-of-order UID is sorted.
        sort_tail(&mut list.records, &mut files.locs, kept);
        let t_apply = t0.elapsed();
        if touched_new {
            fsutil::fsync_dir(&self.mail_dir.join("new"))?;
        }
        if touched_cur {
            fsutil::fsync_dir(&self.mail_dir.join("cur"))?;
        }

        // Header.
        let after_last = list.records.last().map_or(1, |r| r.uid + 1);
        match self.header {
            Some((guid, uv, next)) => {
                list.guid = Some(guid);
                list.uidvalidity = uv;
                list.header_next_uid = next.max(after_last);
            }
            None => list.header_next_uid = list.next_uid().max(old_next),
        }
        let contradicts_index = existed
            && (inserted_low
                || list.next_uid() < old_next
                || list.uidvalidity != old_uv
                || list.guid != old_guid);

        // Readers take the next UID as the larger of the header's and one
        // past the last record, so records appended after the old header
        // say the same as a rewritten file, in a fraction of the bytes.
        rewrite |= inserted_low
            || (list.uidvalidity, list.guid) != (disk_header.0, disk_header.1)
            || list.next_uid() != disk_next.max(list.records.last().map_or(1, |r| r.uid + 1));
        let written = if rewrite {
            list.write_to(lock.file_mut())
                .with_context(|| io_ctx("writing the new", &uidlist_path))?;
            let meta = lock.replace_and_stat(&[], None)?;
            fsutil::fsync_dir(&ctl)?;
            Some(meta)
        } else {
            // What the file says, appended records or not.
            list.header_next_uid = disk_header.2;
            if kept == list.records.len() {
                drop(lock);
                None
            } else {
                let mut tail = Vec::new();
                Uidlist::write_records(&list.records[kept..], &mut tail);
                Some(lock.append(&tail)?)
            }
        };
        let own_uidlist = match &written {
            Some(meta) => scan::file_id(meta),
            None => stamp_now.uidlist().cloned(),
        };
        if rewrite && !touched_cur && !touched_new {
            // Only the uidlist changed (a renumbering): Dovecot's quick
            // check looks at the directories' mtimes, so without this a
            // STATUS would still report the old numbers.
            let cur = self.mail_dir.join("cur");
            File::open(&cur)
                .and_then(|d| d.set_modified(std::time::SystemTime::now()))
                .with_context(|| io_ctx("touching", &cur))?;
        }
        if contradicts_index {
            self.store.remove_dovecot_index(&name)?;
        }
        tracing::debug!(
            "mailbox {name}: committed {:?} (flushed {t_flush:?}, {} {t_read:?}, applied {t_apply:?}, done {:?})",
            info_of(&name, &list),
            if on_cache { "on the cached folder" } else { "read" },
            t0.elapsed()
        );
        for m in &skipped {
            tracing::warn!("{m}");
        }
        self.store.skipped.extend(skipped);
        // Cached only when it is a complete picture; otherwise the next
        // read looks at the disk again.
        if files.relisted.is_some() {
            self.store.folders.remove(&name);
            return Ok(());
        }
        // A big folder is worth a short wait for a stamp the next commit
        // can trust (reading it again would cost more).
        let max_wait = if list.records.len() >= self.store.stamp_wait_from {
            Duration::from_millis(50)
        } else {
            Duration::ZERO
        };
        let commit_stamp = scan::Stamp::after_commit(&self.mail_dir, own_uidlist, max_wait);
        let mut f = Folder::new_with_letters(list, files.locs, letters, None);
        f.own_uidlist = own_uidlist;
        f.commit_stamp = Some(commit_stamp);
        f.names = names;
        self.store.folders.insert(name, f);
        Ok(())
    }
}

/// From this many messages on, a commit waits for a stamp its next commit
/// can trust (at most a few clock ticks) instead of leaving it to read the
/// folder again.
pub(crate) const STAMP_WAIT_FROM: usize = 10_000;

/// The folder's files during a commit, in step with the list's records.
struct CommitFiles {
    locs: Vec<FileLoc>,
    /// Once a file was found gone and the folder listed again: base names
    /// of records that have no file now, and files that have no record
    /// (delivered meanwhile). The folder is not cached after such a commit.
    relisted: Option<Relisted>,
}

struct Relisted {
    vanished: HashSet<String>,
    unknown: HashSet<String>,
}

impl CommitFiles {
    /// Where record `i`'s file is, unless it is known to be gone.
    fn get(&self, list: &Uidlist, i: usize) -> Option<FileLoc> {
        match &self.relisted {
            Some(r) if r.vanished.contains(list.records[i].filename()) => None,
            _ => Some(self.locs[i].clone()),
        }
    }

    /// Record `i`'s file was removed.
    fn forget(&mut self, list: &Uidlist, i: usize) {
        if let Some(r) = &mut self.relisted {
            r.vanished.insert(list.records[i].filename().to_string());
        }
    }

    /// Whether a listing after a race found a file with this base name
    /// that no record has.
    fn relisted_has(&self, base: &str) -> bool {
        self.relisted
            .as_ref()
            .is_some_and(|r| r.unknown.contains(base))
    }

    /// Lists the folder again (a file moved under us) and finds each
    /// record's file anew. Rare: costs a listing of the folder.
    fn relist(&mut self, list: &Uidlist, mail_dir: &Path) -> Result<()> {
        let listing = scan::list_folder(mail_dir, &list.records)?;
        let mut vanished = HashSet::new();
        for ((r, loc), now) in list.records.iter().zip(&mut self.locs).zip(listing.locs) {
            match now {
                Some(l) => *loc = l,
                None => {
                    vanished.insert(r.filename().to_string());
                }
            }
        }
        self.relisted = Some(Relisted {
            vanished,
            unknown: listing.unknown.into_iter().map(|(b, _)| b).collect(),
        });
        Ok(())
    }
}

/// Removes the entries at `at` (ascending indices) from both vectors in
/// one pass over the part after the first of them.
fn remove_aligned(records: &mut Vec<UidlistRecord>, locs: &mut Vec<FileLoc>, at: &[usize]) {
    let Some(&first) = at.first() else { return };
    let mut next = at.iter().peekable();
    let mut w = first;
    for r in first..records.len() {
        if next.next_if(|&&i| i == r).is_some() {
            continue;
        }
        records.swap(w, r);
        locs.swap(w, r);
        w += 1;
    }
    records.truncate(w);
    locs.truncate(w);
}

/// Sorts both vectors by UID when records were appended from index
/// `kept` on (the part before is sorted): only from where the first
/// appended UID belongs, so appending above every UID costs no more than
/// the appended records.
fn sort_tail(records: &mut Vec<UidlistRecord>, locs: &mut Vec<FileLoc>, kept: usize) {
    let Some(min_new) = records[kept..].iter().map(|r| r.uid).min() else {
        return;
    };
    let from = records[..kept].partition_point(|r| r.uid < min_new);
    if records[from..].windows(2).all(|w| w[0].uid < w[1].uid) {
        return;
    }
    let mut tail: Vec<(UidlistRecord, FileLoc)> =
        records.drain(from..).zip(locs.drain(from..)).collect();
    tail.sort_by_key(|(r, _)| r.uid);
    for (r, l) in tail {
        records.push(r);
        locs.push(l);
    }
}

fn name_hashes(list: &Uidlist) -> crate::fasthash::FastSet<u64> {
    let mut set =
        crate::fasthash::FastSet::with_capacity_and_hasher(list.records.len(), Default::default());
    set.extend(list.records.iter().map(|r| scan::name_hash(r.filename())));
    set
}

impl Drop for MailboxUpdate<'_> {
    fn drop(&mut self) {
        for s in &self.saves {
            let _ = fs::remove_file(&s.tmp);
        }
        for t in &self.open_tmps {
            let _ = fs::remove_file(t);
        }
    }
}

/// The base name for a saved message and the `G` field it needs, if any.
/// The GUID itself is the name when it is a valid one whose S=/W= (if any)
/// are true: that keeps the GUID with no uidlist field, as Dovecot's dsync
/// does. A GUID without sizes gets them appended (faster for Dovecot) and
/// is kept in `G`. Anything else gets a fresh Dovecot-style name.
fn choose_base(
    guid: &str,
    size: u64,
    vsize: Option<u64>,
    taken: impl Fn(&str) -> bool,
) -> (String, Option<String>) {
    let sizes = match vsize {
        Some(v) => format!(",S={size},W={v}"),
        None => format!(",S={size}"),
    };
    if valid_base_name(guid) {
        let s = size_field(guid, 'S');
        let w = size_field(guid, 'W');
        let has_s = guid.contains(",S=");
        let has_w = guid.contains(",W=");
        if !has_s && !has_w {
            let cand = format!("{guid}{sizes}");
            if valid_base_name(&cand) && !taken(&cand) {
                return (cand, Some(guid.to_string()));
            }
        } else if (!has_s || s == Some(size))
            && (!has_w || (w.is_some() && (vsize.is_none() || w == vsize)))
            && !taken(guid)
        {
            return (guid.to_string(), None);
        }
    }
    let g = (!guid.is_empty() && valid_ext_value(guid)).then(|| guid.to_string());
    loop {
        let cand = format!("{}{sizes}", generate_base());
        if !taken(&cand) {
            return (cand, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsize_counts_bare_lf() {
        let mut cr = false;
        assert_eq!(count_vsize(b"a\nb\r\n", &mut cr), 6);
        assert_eq!(count_vsize(b"x\r", &mut cr), 2);
        assert_eq!(count_vsize(b"\n", &mut cr), 1); // CR LF split over chunks
        assert_eq!(count_vsize(b"\n", &mut cr), 2);
    }

    #[test]
    fn base_choice() {
        let none = |_: &str| false;
        assert_eq!(
            choose_base("1.M2P3.h,S=5,W=7", 5, Some(7), none),
            ("1.M2P3.h,S=5,W=7".to_string(), None)
        );
        assert_eq!(
            choose_base("abc", 5, Some(7), none),
            ("abc,S=5,W=7".to_string(), Some("abc".to_string()))
        );
        let (b, g) = choose_base("1.M2P3.h,S=5,W=8", 5, Some(7), none);
        assert!(b.ends_with(",S=5,W=7") && b != "1.M2P3.h,S=5,W=7");
        assert_eq!(g.as_deref(), Some("1.M2P3.h,S=5,W=8"));
        let (b, g) = choose_base("has space", 5, Some(5), none);
        assert!(b.ends_with(",S=5,W=5"));
        assert_eq!(g, None);
        let (b, g) = choose_base("a:b", 5, Some(5), none);
        assert!(b.contains(".M"));
        assert_eq!(g.as_deref(), Some("a:b"));
        let (b, _) = choose_base("x,S=5,W=5", 5, Some(5), |b| b == "x,S=5,W=5");
        assert_ne!(b, "x,S=5,W=5");
    }
}
