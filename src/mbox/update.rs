//! A transaction on one mbox: saves, flag and date changes, expunges,
//! relabels and header changes, made durable in one commit.
//!
//! Saved messages are spooled to an unlinked file beside the mailbox's
//! index until the commit. The commit is crash-safe: under the mbox's
//! dotlock and fcntl write lock it re-reads the file (others may have
//! delivered meanwhile), writes the whole new mbox into the dotlock file,
//! flushes it and renames it over the mbox, so a crash leaves either the
//! old or the new file, never a mix. (Dovecot rewrites in place, which is
//! faster but not crash-safe.) Then it records our GUID side file and
//! removes Dovecot's index of the mailbox, which would point into the old
//! file.

use super::contents::{self, Contents};
use super::from_line;
use super::guids::{self, Row};
use super::layout::{self, Layout};
use super::lock;
use super::meta::{self, ImapBase};
use super::store::{now_secs, MboxStore};
use super::write::{self, Out};
use crate::maildir::fsutil;
use crate::maildir::ChangedMeanwhile;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord, Uid};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A message being spooled.
pub struct MboxSaveHandle {
    rec: MessageRecord,
    start: u64,
    written: u64,
    /// Line feeds, and those after a CR.
    lfs: u64,
    crlfs: u64,
    last_cr: bool,
}

struct PendingSave {
    rec: MessageRecord,
    start: u64,
    end: u64,
    /// Every line ends in CR LF: stored with LF, given back with CR LF.
    crlf: bool,
}

struct Spool {
    file: File,
    /// Where it was created (it is unlinked at once; for messages only).
    path: PathBuf,
    len: u64,
}

pub struct MboxUpdate<'a> {
    store: &'a mut MboxStore,
    name: MailboxName,
    path: PathBuf,
    /// The commit may create the mbox file.
    create: bool,
    spool: Option<Spool>,
    active: Option<Uid>,
    saves: Vec<PendingSave>,
    save_uids: HashSet<Uid>,
    flags: BTreeMap<Uid, (Flags, Vec<String>)>,
    dates: BTreeMap<Uid, i64>,
    expunges: BTreeSet<Uid>,
    relabels: BTreeMap<Uid, Uid>,
    relabeled_from: HashMap<Uid, Uid>,
    header: Option<(MailboxGuid, u32, Uid)>,
}

/// One message of the new file.
struct Final {
    uid: Uid,
    flags: Flags,
    keywords: Vec<String>,
    recent: bool,
    /// A new date: the From_ line is written anew.
    date: Option<i64>,
    src: Src,
    row: Option<Row>,
}

enum Src {
    /// Index into the old contents' entries.
    Old(usize),
    /// Index into the saves.
    New(usize),
}

impl<'a> MboxUpdate<'a> {
    pub(crate) fn new(store: &'a mut MboxStore, name: MailboxName) -> Result<Self> {
        let path = store.opts.mbox_path(&name)?;
        Ok(MboxUpdate {
            store,
            name,
            path,
            create: false,
            spool: None,
            active: None,
            saves: Vec::new(),
            save_uids: HashSet::new(),
            flags: BTreeMap::new(),
            dates: BTreeMap::new(),
            expunges: BTreeSet::new(),
            relabels: BTreeMap::new(),
            relabeled_from: HashMap::new(),
            header: None,
        })
    }

    pub(crate) fn new_creating(store: &'a mut MboxStore, name: MailboxName) -> Result<Self> {
        let mut u = Self::new(store, name)?;
        u.create = true;
        Ok(u)
    }

    /// The store, for reads during the transaction.
    pub fn store(&self) -> &MboxStore {
        self.store
    }

    fn known(&self) -> Option<&Contents> {
        self.store.cache.get(&self.name).map(|c| &c.contents)
    }

    fn exists_on_disk(&self, uid: Uid) -> bool {
        self.known().is_some_and(|c| c.find(uid).is_some())
    }

    fn uidnext(&self) -> Uid {
        self.known().map_or(1, |c| c.uidnext)
    }

    fn check_new_uid(&self, uid: Uid) -> Result<()> {
        let name = &self.name;
        if uid == 0 || uid == u32::MAX {
            bail!("mailbox {name}: UID {uid} is not a valid UID");
        }
        if self.save_uids.contains(&uid) {
            bail!("mailbox {name}: UID {uid} is saved twice in one transaction");
        }
        if let Some(old) = self.relabels.get(&uid) {
            bail!("mailbox {name}: UID {uid} is already taken by message UID {old} in this transaction");
        }
        if self.exists_on_disk(uid)
            && !self.expunges.contains(&uid)
            && !self.relabeled_from.contains_key(&uid)
        {
            return Err(ChangedMeanwhile(format!(
                "mailbox {name}: UID {uid} is already used; a save needs an unused UID"
            ))
            .into());
        }
        Ok(())
    }

    fn spool(&mut self) -> Result<&mut Spool> {
        if self.spool.is_none() {
            let dir = self.store.opts.control_dir(&self.name)?;
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut n = 0u32;
            let (file, path) = loop {
                let p = dir.join(format!("dsync-spool.{}.{n}", std::process::id()));
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&p)
                {
                    Ok(f) => break (f, p),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                    Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
                }
            };
            // Gone from the directory at once: nothing to clean up after a crash.
            let _ = fs::remove_file(&path);
            self.spool = Some(Spool { file, path, len: 0 });
        }
        Ok(self.spool.as_mut().expect("just made"))
    }

    /// Starts saving a message with the record's UID, flags, date; its
    /// GUID and POP3 UIDL are kept in our side file.
    pub fn save_begin(&mut self, rec: &MessageRecord) -> Result<MboxSaveHandle> {
        if let Some(other) = self.active {
            bail!(
                "mailbox {}: UID {} is saved while the save of UID {other} is not finished",
                self.name,
                rec.uid
            );
        }
        self.check_new_uid(rec.uid)?;
        let start = self.spool()?.len;
        self.save_uids.insert(rec.uid);
        self.active = Some(rec.uid);
        Ok(MboxSaveHandle {
            rec: rec.clone(),
            start,
            written: 0,
            lfs: 0,
            crlfs: 0,
            last_cr: false,
        })
    }

    pub fn write_chunk(&mut self, h: &mut MboxSaveHandle, data: &[u8]) -> Result<()> {
        let sp = self.spool()?;
        sp.file
            .write_all(data)
            .with_context(|| format!("writing the spool file {}", sp.path.display()))?;
        sp.len += data.len() as u64;
        h.written += data.len() as u64;
        for &c in data {
            if c == b'\n' {
                h.lfs += 1;
                if h.last_cr {
                    h.crlfs += 1;
                }
            }
            h.last_cr = c == b'\r';
        }
        Ok(())
    }

    /// Ends a save; the byte count must equal the record's size.
    pub fn save_finish(&mut self, h: MboxSaveHandle) -> Result<()> {
        self.active = None;
        if h.written != h.rec.size {
            self.save_uids.remove(&h.rec.uid);
            self.truncate_spool(h.start)?;
            bail!(
                "mailbox {}: message UID {} is {} bytes, but {} were announced",
                self.name,
                h.rec.uid,
                h.written,
                h.rec.size
            );
        }
        self.saves.push(PendingSave {
            start: h.start,
            end: h.start + h.written,
            crlf: h.lfs > 0 && h.lfs == h.crlfs,
            rec: h.rec,
        });
        Ok(())
    }

    fn truncate_spool(&mut self, to: u64) -> Result<()> {
        if let Some(sp) = &mut self.spool {
            sp.file
                .set_len(to)
                .with_context(|| format!("truncating {}", sp.path.display()))?;
            use std::io::Seek;
            sp.file.seek(std::io::SeekFrom::Start(to))?;
            sp.len = to;
        }
        Ok(())
    }

    pub fn save_abort(&mut self, h: MboxSaveHandle) {
        self.active = None;
        self.save_uids.remove(&h.rec.uid);
        let _ = self.truncate_spool(h.start);
    }

    /// Saves a message read from `r` (any source: a Maildir file, another
    /// mbox's [`super::reader::MessageReader`]). The byte count must equal
    /// the record's size.
    pub fn save_from_reader(&mut self, rec: &MessageRecord, r: &mut dyn Read) -> Result<()> {
        let mut h = self.save_begin(rec)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.save_abort(h);
                    return Err(e).context("reading the message to copy");
                }
            };
            if let Err(e) = self.write_chunk(&mut h, &buf[..n]) {
                self.save_abort(h);
                return Err(e);
            }
        }
        self.save_finish(h)
    }

    /// Saves a copy of a message file on this machine (a Maildir file).
    pub fn save_copy_of(&mut self, rec: &MessageRecord, src: &Path) -> Result<()> {
        let mut f = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        self.save_from_reader(rec, &mut f)
    }

    /// Saves a copy of message `uid` of mailbox `from` of this store.
    pub fn copy_message(
        &mut self,
        rec: &MessageRecord,
        from: &MailboxName,
        uid: Uid,
    ) -> Result<()> {
        let (mut r, _) = self.store.open_message(from, uid)?;
        self.save_from_reader(rec, &mut r)
    }

    fn renumbers(&self) -> bool {
        let uv = self.known().and_then(|c| c.uidvalidity);
        matches!(self.header, Some((_, h, _)) if Some(h) != uv)
    }

    fn on_disk_uid(&self, uid: Uid) -> Result<Uid> {
        if let Some(on_disk) = self.relabels.get(&uid) {
            return Ok(*on_disk);
        }
        if let Some(new) = self.relabeled_from.get(&uid) {
            bail!(
                "mailbox {}: message UID {uid} was relabeled to UID {new} in this transaction; \
                 use the new UID",
                self.name
            );
        }
        Ok(uid)
    }

    /// Gives an existing message a new UID (see
    /// [`crate::maildir::MailboxUpdate::relabel`]; same rules).
    pub fn relabel(&mut self, old_uid: Uid, new_uid: Uid) -> Result<()> {
        let name = self.name.clone();
        if new_uid == 0 || new_uid == u32::MAX {
            bail!("mailbox {name}: UID {new_uid} is not a valid UID");
        }
        let next = self.uidnext();
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
        let here = self.exists_on_disk(old_uid)
            && !self.expunges.contains(&old_uid)
            && !self.relabeled_from.contains_key(&old_uid);
        let on_disk = if here {
            old_uid
        } else if let Some(orig) = self.relabels.remove(&old_uid) {
            orig
        } else if let Some(s) = self.saves.iter_mut().find(|s| s.rec.uid == old_uid) {
            s.rec.uid = new_uid;
            self.save_uids.remove(&old_uid);
            self.save_uids.insert(new_uid);
            return Ok(());
        } else if self.expunges.contains(&old_uid) {
            bail!("mailbox {name}: cannot relabel UID {old_uid}: this transaction expunges it");
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

    fn pending_save_mut(&mut self, uid: Uid) -> Option<&mut PendingSave> {
        self.saves.iter_mut().find(|s| s.rec.uid == uid)
    }

    pub fn set_flags(&mut self, uid: Uid, flags: Flags, keywords: &[String]) -> Result<()> {
        let mut kw = keywords.to_vec();
        kw.sort();
        kw.dedup();
        if let Some(s) = self.pending_save_mut(uid) {
            s.rec.flags = flags;
            s.rec.keywords = kw;
            return Ok(());
        }
        let on_disk = self.on_disk_uid(uid)?;
        if !self.exists_on_disk(on_disk) {
            return Err(ChangedMeanwhile(format!(
                "mailbox {}: no message with UID {uid} (expunged meanwhile?)",
                self.name
            ))
            .into());
        }
        self.flags.insert(on_disk, (flags, kw));
        Ok(())
    }

    /// Sets a message's INTERNALDATE (its From_ line's date).
    pub fn set_internal_date(&mut self, uid: Uid, secs: i64) {
        if let Some(s) = self.pending_save_mut(uid) {
            s.rec.internal_date = secs;
            return;
        }
        match self.on_disk_uid(uid) {
            Ok(d) => {
                self.dates.insert(d, secs);
            }
            Err(e) => tracing::warn!("{e:#}"),
        }
    }

    pub fn expunge(&mut self, uid: Uid) -> Result<()> {
        if let Some(i) = self.saves.iter().position(|s| s.rec.uid == uid) {
            self.saves.remove(i);
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

    /// Forces the mailbox's GUID, UIDVALIDITY and UIDNEXT.
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

    /// Makes everything durable and visible. An update with no changes
    /// writes nothing.
    pub fn commit(self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        self.commit_forced()
    }

    /// Rewrites the mbox even without changes (to write UIDs into it).
    pub(crate) fn commit_forced(self) -> Result<()> {
        let name = self.name.clone();
        let path = self.path.clone();
        let mut wl = lock::lock_write(&path, self.create || name.is_inbox())?;
        let old_meta = wl
            .file
            .metadata()
            .with_context(|| format!("stat of {}", path.display()))?;
        let old = contents::read(&path, &wl.file)?;
        let mut guids = self.store.load_guids(&name)?;
        let old_uv = old.uidvalidity;
        let old_next = old.uidnext;
        let mut skipped: Vec<String> = Vec::new();

        // The messages of the new file, by UID.
        let mut out: Vec<Final> = Vec::with_capacity(old.entries.len() + self.saves.len());
        let mut seen_flags = HashSet::new();
        let mut seen_dates = HashSet::new();
        let mut seen_relabels = HashSet::new();
        for (i, e) in old.entries.iter().enumerate() {
            if self.expunges.contains(&e.uid) {
                continue;
            }
            let uid = match self.relabeled_from.get(&e.uid) {
                Some(new) => {
                    seen_relabels.insert(e.uid);
                    *new
                }
                None => e.uid,
            };
            let (flags, keywords) = match self.flags.get(&e.uid) {
                Some((f, k)) => {
                    seen_flags.insert(e.uid);
                    (*f, k.clone())
                }
                None => (e.flags, e.keywords.clone()),
            };
            let date = self.dates.get(&e.uid).copied();
            if date.is_some() {
                seen_dates.insert(e.uid);
            }
            let row = old_uv
                .and_then(|uv| guids.get(uv, e.uid, &e.md5_hex()))
                .cloned();
            out.push(Final {
                uid,
                flags,
                keywords,
                recent: e.recent,
                date,
                src: Src::Old(i),
                row,
            });
        }
        for uid in self.flags.keys().filter(|u| !seen_flags.contains(*u)) {
            skipped.push(format!(
                "mailbox {name}: message UID {uid} was expunged before its flags could be set"
            ));
        }
        for uid in self.dates.keys().filter(|u| !seen_dates.contains(*u)) {
            skipped.push(format!(
                "mailbox {name}: message UID {uid} was expunged before its date could be set"
            ));
        }
        for (new, old_uid) in &self.relabels {
            if !seen_relabels.contains(old_uid) {
                skipped.push(format!(
                    "mailbox {name}: message UID {old_uid} was expunged before it could become \
                     UID {new}"
                ));
            }
        }
        let renumbers = matches!(self.header, Some((_, uv, _)) if Some(uv) != old_uv);
        let taken: HashSet<Uid> = out.iter().map(|f| f.uid).collect();
        for s in &self.saves {
            if taken.contains(&s.rec.uid) {
                return Err(ChangedMeanwhile(format!(
                    "mailbox {name}: UID {} was taken by another program while dsync was \
                     saving; nothing was changed, run again",
                    s.rec.uid
                ))
                .into());
            }
        }
        for new in self.relabels.keys() {
            if !renumbers && *new < old_next {
                return Err(ChangedMeanwhile(format!(
                    "mailbox {name}: UID {new} is below UIDNEXT {old_next} now; nothing was \
                     changed, run again"
                ))
                .into());
            }
        }
        let spool_file = self.spool.as_ref().map(|s| (&s.file, s.path.clone()));
        let mut save_layouts: Vec<Layout> = Vec::with_capacity(self.saves.len());
        for (i, s) in self.saves.iter().enumerate() {
            let (f, p) = spool_file.as_ref().expect("saves were spooled");
            let l = layout::layout(f, p, s.start, s.end, true)?;
            let md5 = super::md5::to_hex(&l.md5);
            let keep_guid = !s.rec.guid.is_empty() && s.rec.guid != md5;
            if keep_guid && !guids::storable(&s.rec.guid) {
                skipped.push(format!(
                    "mailbox {name}: message GUID {:?} cannot be kept (UID {} gets {md5})",
                    s.rec.guid, s.rec.uid
                ));
            }
            let uidl = s.rec.pop3_uidl.clone().filter(|u| guids::storable(u));
            let row = ((keep_guid && guids::storable(&s.rec.guid))
                || uidl.is_some()
                || s.rec.pop3_order.is_some()
                || s.crlf)
                .then(|| Row {
                    md5,
                    guid: if keep_guid && guids::storable(&s.rec.guid) {
                        s.rec.guid.clone()
                    } else {
                        String::new()
                    },
                    pop3_uidl: uidl,
                    pop3_order: s.rec.pop3_order,
                    // Known once written.
                    crlf_size: None,
                });
            save_layouts.push(l);
            out.push(Final {
                uid: s.rec.uid,
                flags: s.rec.flags,
                keywords: s.rec.keywords.clone(),
                recent: s.rec.in_new,
                date: Some(s.rec.internal_date),
                src: Src::New(i),
                row,
            });
        }
        out.sort_by_key(|f| f.uid);
        if let Some(w) = out.windows(2).find(|w| w[0].uid == w[1].uid) {
            bail!("mailbox {name}: two messages would have UID {}", w[0].uid);
        }

        // Keywords: those already listed keep their places.
        let mut keywords = old.keywords.clone();
        let mut listed: HashSet<String> = keywords.iter().cloned().collect();
        for f in &mut out {
            f.keywords.retain(|k| {
                let ok = meta::valid_keyword(k);
                if !ok {
                    skipped.push(format!("mailbox {name}: keyword {k:?} cannot be stored"));
                }
                ok
            });
            for k in &f.keywords {
                if listed.insert(k.clone()) {
                    keywords.push(k.clone());
                }
            }
        }

        let max_uid = out.last().map_or(0, |f| f.uid);
        let (mailbox_guid, uidvalidity, uidnext) = match self.header {
            Some((g, uv, next)) => (g, uv, next.max(max_uid + 1)),
            None => (
                match guids.mailbox {
                    Some(g) => g,
                    None => MailboxGuid::generate().context("generating a mailbox GUID")?,
                },
                old_uv
                    .or((guids.uidvalidity != 0).then_some(guids.uidvalidity))
                    .unwrap_or_else(|| now_secs().max(1) as u32),
                old_next.max(max_uid + 1),
            ),
        };
        let base = ImapBase {
            uidvalidity,
            last_uid: uidnext - 1,
            keywords,
        };

        // The new file, written into the dotlock file.
        {
            let out_file = wl.dot.file_mut();
            let mut o = Out::new(BufWriter::with_capacity(256 * 1024, &*out_file));
            let pseudo = old.pseudo.is_some() || out.is_empty();
            if pseudo {
                write::pseudo(&mut o, &base, now_secs())?;
            }
            for (i, f) in out.iter_mut().enumerate() {
                let m = write::Meta {
                    base: (i == 0 && !pseudo).then_some(&base),
                    uid: f.uid,
                    flags: f.flags,
                    recent: f.recent,
                    keywords: &f.keywords,
                };
                match f.src {
                    Src::Old(j) => {
                        let e = &old.entries[j];
                        let l =
                            layout::layout(&wl.file, &path, e.msg.hdr_offset, e.msg.end, false)?;
                        let from = match f.date {
                            Some(t) => {
                                from_line::format(&from_line::clean_sender(&e.msg.from.sender), t)
                            }
                            None => super::scan::read_range_of(
                                &wl.file,
                                &path,
                                e.msg.from_offset,
                                e.msg.hdr_offset,
                            )?,
                        };
                        let src = write::Source {
                            file: &wl.file,
                            path: &path,
                            hdr: e.msg.hdr_offset,
                            end: e.msg.end,
                            layout: &l,
                            strip_cr: false,
                        };
                        write::message(&mut o, &from, &src, &m)?;
                    }
                    Src::New(j) => {
                        let s = &self.saves[j];
                        let (sf, sp) = spool_file.as_ref().expect("saves were spooled");
                        let from = from_line::format(b"MAILER-DAEMON", s.rec.internal_date);
                        let src = write::Source {
                            file: sf,
                            path: sp,
                            hdr: s.start,
                            end: s.end,
                            layout: &save_layouts[j],
                            strip_cr: s.crlf,
                        };
                        let w = write::message(&mut o, &from, &src, &m)?;
                        if s.crlf {
                            if let Some(r) = &mut f.row {
                                r.crlf_size = Some(w.visible + w.lfs);
                            }
                        }
                    }
                }
            }
            o.w.flush().context("writing the new mbox")?;
        }
        let new_file = wl.dot.file_mut();
        // Dovecot notices a changed mbox by its mtime (seconds) and size:
        // the new file must not look like the old one.
        let old_mtime = old_meta.mtime();
        if now_secs() <= old_mtime {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs((old_mtime + 1) as u64);
            new_file
                .set_modified(t)
                .with_context(|| format!("setting the time of {}", path.display()))?;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // SAFETY: the fd is open; uid/gid are the old file's.
            unsafe {
                libc::fchown(new_file.as_raw_fd(), old_meta.uid(), old_meta.gid());
            }
        }
        let lock::WriteLocked {
            file: old_file,
            dot,
        } = wl;
        dot.replace(&[])
            .with_context(|| format!("replacing {}", path.display()))?;
        drop(old_file);
        if let Some(dir) = path.parent() {
            fsutil::fsync_dir(dir)?;
        }

        // Our side file: rows of surviving and new messages. The md5 of a
        // kept message is unchanged by the rewrite (it reads only
        // headers we copy as they are).
        guids.mailbox = Some(mailbox_guid);
        guids.uidvalidity = uidvalidity;
        guids.seen = None;
        guids.rows = out
            .iter()
            .filter_map(|f| f.row.clone().map(|r| (f.uid, r)))
            .collect();
        self.store.save_guids(&name, &guids)?;

        // Dovecot's index remembers where each message was; after a
        // rewrite it would seek to stale offsets (and log the mbox as
        // "corrupted") before noticing; tried and seen with 2.3.19. Without
        // it, Dovecot reads the file afresh. The price: flag changes a
        // Dovecot session still holds only in its index (mbox_lazy_writes,
        // written when it closes the mailbox) are lost; servers whose
        // mboxes dsync writes while clients are connected should set
        // `mbox_lazy_writes = no`.
        self.store.remove_dovecot_index(&name)?;
        for m in &skipped {
            tracing::warn!("{m}");
        }
        self.store.skipped.extend(skipped);
        self.store.cache.remove(&name);
        tracing::debug!(
            "mailbox {name}: committed {} messages, UIDVALIDITY {uidvalidity}, UIDNEXT {uidnext}",
            out.len()
        );
        Ok(())
    }
}
