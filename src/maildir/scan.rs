//! Reading a folder: list cur/ and new/, and reconcile the listing with
//! dovecot-uidlist the way Dovecot's maildir-sync does (vanished files lose
//! their records, unknown files get the next UIDs in Dovecot's order).

use super::filename::{dovecot_sort_cmp, MaildirFileName};
use super::uidlist::{Uidlist, UidlistRecord};
use crate::model::Uid;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Where a message file currently is. The base name is kept once, by
/// whoever holds this (the map key or the uidlist record); only the rest of
/// the name is stored here. 16 bytes, no allocation of its own: a folder
/// keeps one per message.
#[derive(Clone, PartialEq, Eq)]
pub struct FileLoc {
    /// Length of the inline info, or [`SHARED`]: `buf` then holds the
    /// index of an interned one.
    len: u8,
    pub in_new: bool,
    buf: [u8; INLINE],
}

/// Infos up to this long (`:2,` and 11 letters) are kept inline.
const INLINE: usize = 14;
const SHARED: u8 = u8::MAX;

/// Longer infos (many keywords, or a foreign suffix), each kept once for
/// the life of the process: a mailbox uses few distinct ones.
static LONG_INFOS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

fn intern(info: &str) -> u32 {
    let mut v = LONG_INFOS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = v.iter().position(|s| *s == info) {
        return i as u32;
    }
    v.push(Box::leak(info.to_string().into_boxed_str()));
    (v.len() - 1) as u32
}

impl std::fmt::Debug for FileLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLoc")
            .field("info", &self.info())
            .field("in_new", &self.in_new)
            .finish()
    }
}

impl FileLoc {
    pub fn new(full_name: &str, base_len: usize, in_new: bool) -> FileLoc {
        let info = &full_name[base_len..];
        let mut buf = [0u8; INLINE];
        let len = if info.len() <= INLINE {
            buf[..info.len()].copy_from_slice(info.as_bytes());
            info.len() as u8
        } else {
            buf[..4].copy_from_slice(&intern(info).to_le_bytes());
            SHARED
        };
        FileLoc { len, in_new, buf }
    }

    /// The file name after the base name (`:2,S`, often empty in new/).
    pub fn info(&self) -> &str {
        if self.len == SHARED {
            let i = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
            let v = LONG_INFOS.lock().unwrap_or_else(|e| e.into_inner());
            return v[i];
        }
        // Copied from a &str, cut at a char boundary (`len` is the whole
        // info), so this cannot fail.
        std::str::from_utf8(&self.buf[..self.len as usize]).expect("inline info is UTF-8")
    }

    pub fn file_name(&self, base: &str) -> String {
        let info = self.info();
        let mut s = String::with_capacity(base.len() + info.len());
        s.push_str(base);
        s.push_str(info);
        s
    }

    /// `<mail_dir>/cur|new/<base><info>`.
    pub fn path(&self, mail_dir: &Path, base: &str) -> std::path::PathBuf {
        mail_dir
            .join(if self.in_new { "new" } else { "cur" })
            .join(self.file_name(base))
    }
}

/// Base name → file, for one folder: the listing as a map, kept as the
/// reference [`list_folder`] is tested against.
#[cfg(test)]
pub type FileMap = crate::fasthash::FastMap<String, FileLoc>;

fn dir_mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
fn read_one(dir: &Path, in_new: bool, out: &mut FileMap) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound && in_new => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading directory {}", dir.display())),
    };
    for entry in rd {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        // The name's own allocation becomes the map key (cut to the base
        // name): one allocation a file, not two.
        let mut name = match entry.file_name().into_string() {
            Ok(name) => name,
            Err(os) => {
                tracing::warn!(
                    "{}: skipping file with a non-UTF-8 name {:?}",
                    dir.display(),
                    os
                );
                continue;
            }
        };
        if name.starts_with('.') {
            continue;
        }
        // d_type tells directories apart without a stat; DT_UNKNOWN
        // filesystems fall back to one inside file_type().
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        // The base name ends at the first ':' (MaildirFileName::base).
        let base_len = name.find(':').unwrap_or(name.len());
        let loc = FileLoc::new(&name, base_len, in_new);
        name.truncate(base_len);
        // A file seen in both (Dovecot moving new/ → cur/ meanwhile) is
        // where it ends up: cur/ is read last and wins.
        out.insert(name, loc);
    }
    Ok(())
}

#[cfg(test)]
/// Lists a folder's messages. new/ is read before cur/ so a file moving
/// from new/ to cur/ meanwhile is seen at least once; a scan during which
/// either directory changed is repeated, since a rename in progress can
/// hide a file from readdir.
///
/// `expected`: about how many files there are (the map is sized for them
/// once instead of growing through every power of two).
pub fn scan_folder(mail_dir: &Path, expected: usize) -> Result<FileMap> {
    let cur = mail_dir.join("cur");
    let new = mail_dir.join("new");
    let mut last = FileMap::default();
    for _ in 0..5 {
        let before = (dir_mtime(&cur), dir_mtime(&new));
        if before.0.is_none() {
            bail!(
                "{} is not a Maildir folder (it has no cur/ directory)",
                mail_dir.display()
            );
        }
        let size = last.len().max(expected);
        let mut files = FileMap::with_capacity_and_hasher(size, Default::default());
        read_one(&new, true, &mut files)?;
        read_one(&cur, false, &mut files)?;
        let after = (dir_mtime(&cur), dir_mtime(&new));
        last = files;
        if before == after {
            break;
        }
    }
    Ok(last)
}

/// The hash a folder's base names are indexed and compared by.
pub fn name_hash(base: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = crate::fasthash::FastBuild::default().build_hasher();
    h.write(base.as_bytes());
    h.finish()
}

/// Record indices by base name, in 4 bytes a slot (a map of names would
/// copy or point to every name): open addressing, names compared in the
/// records themselves. A name given twice finds its last record, the one
/// Dovecot keeps.
pub struct NameIndex {
    slots: Vec<u32>,
    mask: usize,
}

const EMPTY: u32 = u32::MAX;

impl NameIndex {
    pub fn new(records: &[UidlistRecord]) -> NameIndex {
        let size = (records.len() * 2).next_power_of_two().max(16);
        let mut idx = NameIndex {
            slots: vec![EMPTY; size],
            mask: size - 1,
        };
        for (i, r) in records.iter().enumerate() {
            let mut s = name_hash(r.filename()) as usize & idx.mask;
            loop {
                match idx.slots[s] {
                    EMPTY => {
                        idx.slots[s] = i as u32;
                        break;
                    }
                    j if records[j as usize].filename() == r.filename() => {
                        idx.slots[s] = i as u32;
                        break;
                    }
                    _ => s = (s + 1) & idx.mask,
                }
            }
        }
        idx
    }

    /// The (last) record with this base name.
    pub fn get(&self, records: &[UidlistRecord], base: &str) -> Option<usize> {
        let mut s = name_hash(base) as usize & self.mask;
        loop {
            match self.slots[s] {
                EMPTY => return None,
                j if records[j as usize].filename() == base => return Some(j as usize),
                _ => s = (s + 1) & self.mask,
            }
        }
    }
}

/// A folder's files as found against its uidlist records.
#[derive(Debug)]
pub struct Listing {
    /// In step with the records: where each one's file is; `None` when it
    /// has none (or an earlier duplicate record lost it to a later one).
    pub locs: Vec<Option<FileLoc>>,
    /// Files no record names: base name and place.
    pub unknown: Vec<(String, FileLoc)>,
}

impl Listing {
    /// Every record has its file and every file its record: the places,
    /// in record order. Otherwise the listing comes back.
    pub fn exact(self) -> Result<Vec<FileLoc>, Listing> {
        if !self.unknown.is_empty() || self.locs.iter().any(Option::is_none) {
            return Err(self);
        }
        Ok(self.locs.into_iter().map(|l| l.expect("checked")).collect())
    }
}

/// Calls `f(name, is_dir)` for every entry of `dir` but `.` and `..`
/// (d_type saves a stat on the filesystems that give it). `Ok(false)` when
/// `dir` does not exist. Names come from readdir's buffer: no allocation
/// per entry, which a listing of a million files notices.
pub(crate) fn for_each_entry(dir: &Path, mut f: impl FnMut(&[u8], bool)) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("directory name {} holds a NUL", dir.display()))?;
    // SAFETY: c is a valid NUL-terminated path.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    if d.is_null() {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::NotFound {
            return Ok(false);
        }
        return Err(e).with_context(|| format!("reading directory {}", dir.display()));
    }
    struct Dir(*mut libc::DIR);
    impl Drop for Dir {
        fn drop(&mut self) {
            // SAFETY: opened above, closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let d = Dir(d);
    loop {
        // errno tells the end of the directory from an error.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d.0 is an open DIR stream used by this thread only.
        let ent = unsafe { libc::readdir64(d.0) };
        if ent.is_null() {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error().unwrap_or(0) != 0 {
                return Err(e).with_context(|| format!("reading directory {}", dir.display()));
            }
            return Ok(true);
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name,
        // valid until the next readdir on this stream.
        let (name, d_type) = unsafe {
            (
                std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes(),
                (*ent).d_type,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => {
                fs::metadata(dir.join(std::ffi::OsStr::from_bytes(name))).is_ok_and(|m| m.is_dir())
            }
            _ => false,
        };
        f(name, is_dir);
    }
}

fn list_one(
    dir: &Path,
    in_new: bool,
    records: &[UidlistRecord],
    index: &NameIndex,
    out: &mut Listing,
) -> Result<()> {
    let found = for_each_entry(dir, |name, is_dir| {
        if is_dir || name.first() == Some(&b'.') {
            return;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            tracing::warn!(
                "{}: skipping file with a non-UTF-8 name {:?}",
                dir.display(),
                String::from_utf8_lossy(name)
            );
            return;
        };
        // The base name ends at the first ':' (MaildirFileName::base).
        let base_len = name.find(':').unwrap_or(name.len());
        let loc = FileLoc::new(name, base_len, in_new);
        match index.get(records, &name[..base_len]) {
            // A file seen in both (Dovecot moving new/ → cur/ meanwhile)
            // is where it ends up: cur/ is read last and wins.
            Some(i) => out.locs[i] = Some(loc),
            None => out.unknown.push((name[..base_len].to_string(), loc)),
        }
    })?;
    if !found && !in_new {
        bail!("reading directory {}: it does not exist", dir.display());
    }
    Ok(())
}

/// Lists a folder's messages against its uidlist records (see
/// [`scan_folder`] for the order and the repeats).
pub fn list_folder(mail_dir: &Path, records: &[UidlistRecord]) -> Result<Listing> {
    let cur = mail_dir.join("cur");
    let new = mail_dir.join("new");
    let index = NameIndex::new(records);
    let mut last = None;
    for _ in 0..5 {
        let before = (dir_mtime(&cur), dir_mtime(&new));
        if before.0.is_none() {
            bail!(
                "{} is not a Maildir folder (it has no cur/ directory)",
                mail_dir.display()
            );
        }
        let mut out = Listing {
            locs: vec![None; records.len()],
            unknown: Vec::new(),
        };
        list_one(&new, true, records, &index, &mut out)?;
        list_one(&cur, false, records, &index, &mut out)?;
        // A file both in new/ and cur/ unknown to the records: cur/ wins.
        if out.unknown.len() > 1 {
            let mut seen = crate::fasthash::FastSet::default();
            let mut keep: Vec<bool> = out
                .unknown
                .iter()
                .rev()
                .map(|(b, _)| seen.insert(b.as_str()))
                .collect();
            keep.reverse();
            let mut it = keep.into_iter();
            drop(seen);
            out.unknown.retain(|_| it.next().unwrap_or(true));
        }
        let after = (dir_mtime(&cur), dir_mtime(&new));
        last = Some(out);
        if before == after {
            break;
        }
    }
    Ok(last.expect("listed at least once"))
}

/// [`reconcile_into`] for a [`Listing`] made against `list`'s records.
pub fn reconcile_listing(
    list: &mut Uidlist,
    listing: Listing,
    first_free: Uid,
) -> (Reconciled, Vec<FileLoc>) {
    let before = list.records.len();
    let next = list.next_uid();
    let mut locs = Vec::with_capacity(before + listing.unknown.len());
    let mut it = listing.locs.into_iter();
    list.records.retain(|_| match it.next().flatten() {
        Some(loc) => {
            locs.push(loc);
            true
        }
        None => false,
    });
    let mut r = Reconciled {
        dropped: before - list.records.len(),
        added: 0,
    };
    // Dropping records never lowers the next UID.
    list.header_next_uid = list.header_next_uid.max(next);
    if !listing.unknown.is_empty() {
        let mut new_files = listing.unknown;
        // The order never looks past the base name, so bases suffice.
        new_files.sort_by(|a, b| dovecot_sort_cmp(&a.0, &b.0));
        let mut uid = list.next_uid().max(first_free);
        r.added = new_files.len();
        for (base, loc) in new_files {
            list.records.push(UidlistRecord::new(uid, base));
            locs.push(loc);
            uid += 1;
        }
        list.header_next_uid = uid;
    }
    (r, locs)
}

/// Where the message file `path` (in some folder's cur/ or new/) is now,
/// if it was renamed since it was named: a client changed its flags, or it
/// moved from new/ to cur/. Same base name, same folder.
pub fn find_renamed(path: &Path) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = MaildirFileName::parse(name).stem;
    let folder = path.parent()?.parent()?;
    for sub in ["cur", "new"] {
        let Ok(rd) = fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let os = e.file_name();
            let Some(n) = os.to_str() else { continue };
            if n.starts_with(stem.as_str()) && MaildirFileName::parse(n).stem == stem {
                return Some(e.path());
            }
        }
    }
    None
}

#[cfg(test)]
/// When `list` already describes exactly `files` (reconciling would
/// change nothing): where each record's file is, in record order.
/// Otherwise `files` comes back as it was. One map operation per record,
/// since every read of a folder does this.
pub fn take_locs(list: &Uidlist, mut files: FileMap) -> Result<Vec<FileLoc>, FileMap> {
    if list.records.len() != files.len() {
        return Err(files);
    }
    let mut locs = Vec::with_capacity(list.records.len());
    for (i, r) in list.records.iter().enumerate() {
        match files.remove(r.filename()) {
            Some(loc) => locs.push(loc),
            None => {
                // A file gone, or a second record for one file: put back
                // what was taken.
                for (r, loc) in list.records[..i].iter().zip(locs) {
                    files.insert(r.filename().to_string(), loc);
                }
                return Err(files);
            }
        }
    }
    Ok(locs)
}

/// What a folder looked like when it was read: if none of it changed,
/// neither did the folder (files are only ever added, removed or renamed,
/// which changes their directory's mtime; dovecot-uidlist is replaced by
/// rename or appended to, which changes its inode or size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    cur: Option<SystemTime>,
    new: Option<SystemTime>,
    uidlist: Option<FileId>,
    taken: SystemTime,
}

/// How long after a directory's mtime a change inside it is sure to move
/// the mtime again. With nanosecond timestamps the kernel stamps changes
/// from its coarse clock, which advances every tick (at most 10 ms, at
/// HZ=100; kernels with multigrain timestamps give every change its own
/// value): 25 ms is two and a half ticks. Filesystems that keep whole
/// seconds need two of them.
pub fn settle_time(mtime: SystemTime) -> Duration {
    let whole_seconds = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .is_ok_and(|d| d.subsec_nanos() == 0);
    if whole_seconds {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(25)
    }
}

/// Which version of a file this is: inode, size, mtime. Every writer of
/// dovecot-uidlist replaces it (new inode) or appends (new size).
pub type FileId = (u64, u64, SystemTime);

pub fn file_id(m: &fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

fn uidlist_id(uidlist: &Path) -> Option<FileId> {
    fs::metadata(uidlist).ok().as_ref().and_then(file_id)
}

impl Stamp {
    pub fn take(mail_dir: &Path, uidlist: &Path) -> Stamp {
        let taken = SystemTime::now();
        Stamp {
            cur: dir_mtime(&mail_dir.join("cur")),
            new: dir_mtime(&mail_dir.join("new")),
            uidlist: uidlist_id(uidlist),
            taken,
        }
    }

    /// The uidlist's version when the stamp was taken.
    pub fn uidlist(&self) -> Option<&FileId> {
        self.uidlist.as_ref()
    }

    /// The same stamp with the uidlist version we wrote ourselves.
    pub fn with_uidlist_id(mut self, id: Option<FileId>) -> Stamp {
        self.uidlist = id;
        self
    }

    /// The stamp of a folder this process just committed to, for its next
    /// commit: `uidlist` is the version that commit left (a later writer's
    /// must not pass for ours). Our own renames just moved the
    /// directories' mtimes, and a stamp taken within a clock tick of a
    /// change is never trusted, so it is taken again once they settle if
    /// that takes at most `max_wait`. A change another program made while
    /// we committed hides in this stamp: commits tolerate that (they find
    /// a moved file again, and a file without a record gets its UID at the
    /// next full read); reads confirm the folder with a listing instead.
    pub fn after_commit(mail_dir: &Path, uidlist: Option<FileId>, max_wait: Duration) -> Stamp {
        let take = || Stamp {
            taken: SystemTime::now(),
            cur: dir_mtime(&mail_dir.join("cur")),
            new: dir_mtime(&mail_dir.join("new")),
            uidlist,
        };
        let s = take();
        let wait = [s.cur, s.new]
            .into_iter()
            .flatten()
            .map(|t| {
                (t + settle_time(t) + Duration::from_millis(1))
                    .duration_since(s.taken)
                    .unwrap_or(Duration::ZERO)
            })
            .max()
            .unwrap_or(Duration::ZERO);
        if wait.is_zero() || wait > max_wait {
            return s;
        }
        std::thread::sleep(wait);
        take()
    }

    /// Whether `now` shows the same folder as `self` did. A directory
    /// changed within a clock tick of the earlier look might have changed
    /// again without a visible mtime step, so such a stamp is not trusted.
    /// The uidlist needs no such care: every writer replaces or appends.
    pub fn unchanged(&self, now: &Stamp) -> bool {
        let settled = |t: Option<SystemTime>| {
            t.is_some_and(|t| {
                self.taken
                    .duration_since(t)
                    .is_ok_and(|d| d > settle_time(t))
            })
        };
        self.cur == now.cur
            && self.new == now.new
            && self.uidlist == now.uidlist
            && self.uidlist.is_some()
            && settled(self.cur)
            && (self.new.is_none() || settled(self.new))
    }
}

/// What reconciliation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub dropped: usize,
    pub added: usize,
}

impl Reconciled {
    pub fn changed(&self) -> bool {
        self.dropped + self.added > 0
    }
}

#[cfg(test)]
/// Brings `list` in line with `files`: drops records whose file is gone
/// (and all but the last of duplicate records for one file, as Dovecot
/// does), then gives unknown files UIDs from `max(next_uid, first_free)`
/// sorted the way Dovecot sorts new files.
pub fn reconcile(list: &mut Uidlist, files: &FileMap, first_free: Uid) -> Reconciled {
    let mut r = Reconciled::default();
    let mut last_idx: crate::fasthash::FastMap<&str, usize> =
        crate::fasthash::FastMap::with_capacity_and_hasher(list.records.len(), Default::default());
    for (i, rec) in list.records.iter().enumerate() {
        last_idx.insert(rec.filename(), i);
    }
    let keep: Vec<bool> = list
        .records
        .iter()
        .enumerate()
        .map(|(i, rec)| {
            files.contains_key(rec.filename()) && last_idx.get(rec.filename()) == Some(&i)
        })
        .collect();
    let mut new_files: Vec<&String> = files
        .keys()
        .filter(|base| !last_idx.contains_key(base.as_str()))
        .collect();
    drop(last_idx);
    let before = list.records.len();
    let mut it = keep.iter();
    let next = list.next_uid();
    list.records.retain(|_| *it.next().unwrap_or(&true));
    r.dropped = before - list.records.len();
    // Dropping records never lowers the next UID.
    list.header_next_uid = list.header_next_uid.max(next);

    if !new_files.is_empty() {
        // The order never looks past the base name, so bases suffice.
        new_files.sort_by(|a, b| dovecot_sort_cmp(a, b));
        let mut uid = list.next_uid().max(first_free);
        for base in new_files {
            list.records.push(UidlistRecord::new(uid, base.clone()));
            uid += 1;
        }
        list.header_next_uid = uid;
        r.added = list.records.len() + r.dropped - before;
    }
    r
}

#[cfg(test)]
/// [`reconcile`], consuming the listing: also gives where each record's
/// file is, in record order. One map operation per record (a read of a
/// changed 200,000-message folder does this).
pub fn reconcile_into(
    list: &mut Uidlist,
    mut files: FileMap,
    first_free: Uid,
) -> (Reconciled, Vec<FileLoc>) {
    let before = list.records.len();
    let next = list.next_uid();
    let mut found: Vec<Option<FileLoc>> = list
        .records
        .iter()
        .map(|r| files.remove(r.filename()))
        .collect();
    // A record whose file an earlier record took is a duplicate; like
    // Dovecot, the last record for a file keeps it. Records without a file
    // are few (expunges), so only their names are looked for.
    let missed: crate::fasthash::FastMap<&str, usize> = found
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| (list.records[i].filename(), i))
        .collect();
    if !missed.is_empty() {
        for (i, r) in list.records.iter().enumerate() {
            if let Some(&last) = missed.get(r.filename()) {
                if last > i && found[i].is_some() {
                    found[last] = found[i].take();
                }
            }
        }
    }
    drop(missed);
    let mut locs = Vec::with_capacity(before + files.len());
    let mut it = found.into_iter();
    list.records.retain(|_| match it.next().flatten() {
        Some(loc) => {
            locs.push(loc);
            true
        }
        None => false,
    });
    let mut r = Reconciled {
        dropped: before - list.records.len(),
        added: 0,
    };
    // Dropping records never lowers the next UID.
    list.header_next_uid = list.header_next_uid.max(next);
    if !files.is_empty() {
        let mut new_files: Vec<(String, FileLoc)> = files.into_iter().collect();
        // The order never looks past the base name, so bases suffice.
        new_files.sort_by(|a, b| dovecot_sort_cmp(&a.0, &b.0));
        let mut uid = list.next_uid().max(first_free);
        r.added = new_files.len();
        for (base, loc) in new_files {
            list.records.push(UidlistRecord::new(uid, base));
            locs.push(loc);
            uid += 1;
        }
        list.header_next_uid = uid;
    }
    (r, locs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MailboxGuid;

    fn files(names: &[(&str, bool)]) -> FileMap {
        names
            .iter()
            .map(|(n, in_new)| {
                let base = MaildirFileName::parse(n).base().to_string();
                let loc = FileLoc::new(n, base.len(), *in_new);
                (base, loc)
            })
            .collect()
    }

    #[test]
    fn assigns_in_dovecot_order_and_drops_vanished() {
        let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
        l.records.push(UidlistRecord::new(3, "gone".into()));
        l.records.push(UidlistRecord::new(5, "kept".into()));
        l.header_next_uid = 6;
        let f = files(&[
            ("kept:2,S", false),
            ("20.M5P1.h:2,", false),
            ("20.M10P1.h", true),
            ("9.M999P1.h:2,S", false),
        ]);
        let r = reconcile(&mut l, &f, 1);
        assert_eq!(
            r,
            Reconciled {
                dropped: 1,
                added: 3
            }
        );
        let got: Vec<(Uid, &str)> = l.records.iter().map(|r| (r.uid, r.filename())).collect();
        assert_eq!(
            got,
            vec![
                (5, "kept"),
                (6, "9.M999P1.h"),
                (7, "20.M5P1.h"),
                (8, "20.M10P1.h")
            ]
        );
        assert_eq!(l.next_uid(), 9);
        assert!(!reconcile(&mut l, &f, 1).changed());
    }

    #[test]
    fn never_lowers_next_uid_and_respects_first_free() {
        let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
        l.records.push(UidlistRecord::new(9, "a".into()));
        let f = files(&[("b", false)]);
        reconcile(&mut l, &f, 20);
        assert_eq!(l.records[0].uid, 20);
        assert_eq!(l.next_uid(), 21);
    }

    proptest::proptest! {
        /// `reconcile_into` does what `reconcile` does, and each record
        /// gets its own file's place.
        #[test]
        fn reconcile_into_agrees_with_reconcile(
            recs in proptest::collection::vec((1u32..40, 0u8..12), 0..20),
            present in proptest::collection::vec((0u8..16, proptest::bool::ANY, proptest::bool::ANY), 0..20),
            first_free in 1u32..60,
        ) {
            let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
            let mut uids: Vec<u32> = recs.iter().map(|(u, _)| *u).collect();
            uids.sort_unstable();
            uids.dedup();
            for (u, (_, n)) in uids.iter().zip(&recs) {
                l.records.push(UidlistRecord::new(*u, format!("{n}.M1P1.h")));
            }
            let names: Vec<(String, bool)> = present
                .iter()
                .map(|(n, flagged, in_new)| {
                    let base = format!("{n}.M1P1.h");
                    (if *flagged { format!("{base}:2,S") } else { base }, *in_new)
                })
                .collect();
            let refs: Vec<(&str, bool)> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
            let f = files(&refs);
            let mut a = l.clone();
            let ra = reconcile(&mut a, &f, first_free);
            let mut b = l.clone();
            let (rb, locs) = reconcile_into(&mut b, f.clone(), first_free);
            proptest::prop_assert_eq!(ra, rb);
            proptest::prop_assert_eq!(&a.records, &b.records);
            proptest::prop_assert_eq!(a.next_uid(), b.next_uid());
            proptest::prop_assert_eq!(locs.len(), b.records.len());
            for (r, loc) in b.records.iter().zip(&locs) {
                proptest::prop_assert_eq!(Some(loc), f.get(r.filename()));
            }
        }
    }

    proptest::proptest! {
        /// Listing a folder against its records and reconciling that
        /// does what listing it into a map of names and reconciling does.
        #[test]
        fn listing_agrees_with_the_map(
            recs in proptest::collection::vec((1u32..40, 0u8..12), 0..20),
            present in proptest::collection::vec((0u8..16, 0u8..3, 0u8..3), 0..20),
            first_free in 1u32..60,
        ) {
            let d = tempfile::tempdir().unwrap();
            for s in ["cur", "new", "cur/sub.dir"] {
                fs::create_dir(d.path().join(s)).unwrap();
            }
            let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
            let mut uids: Vec<u32> = recs.iter().map(|(u, _)| *u).collect();
            uids.sort_unstable();
            uids.dedup();
            for (u, (_, n)) in uids.iter().zip(&recs) {
                l.records.push(UidlistRecord::new(*u, format!("{n}.M1P1.h")));
            }
            let infos = ["", ":2,S", ":2,FSabcdefghijklmnopq"];
            for (n, info, place) in &present {
                let sub = if *place == 0 { "new" } else { "cur" };
                let name = format!("{n}.M1P1.h{}", infos[*info as usize]);
                fs::write(d.path().join(sub).join(name), "x").unwrap();
            }
            let mut a = l.clone();
            let (ra, la) = reconcile_into(&mut a, scan_folder(d.path(), 0).unwrap(), first_free);
            let mut b = l.clone();
            let listing = list_folder(d.path(), &b.records).unwrap();
            let (rb, lb) = reconcile_listing(&mut b, listing, first_free);
            proptest::prop_assert_eq!(ra, rb);
            proptest::prop_assert_eq!(&a.records, &b.records);
            proptest::prop_assert_eq!(a.next_uid(), b.next_uid());
            // The same file may be in new/ and cur/: either place will do
            // for both, but cur/ wins in each.
            proptest::prop_assert_eq!(la, lb);
        }
    }

    #[test]
    fn name_index_finds_the_last_record_of_a_name() {
        let mut recs: Vec<UidlistRecord> = (0..1000u32)
            .map(|i| UidlistRecord::new(i + 1, format!("{i}.M1P1.h")))
            .collect();
        recs.push(UidlistRecord::new(2000, "5.M1P1.h".into()));
        let idx = NameIndex::new(&recs);
        assert_eq!(idx.get(&recs, "7.M1P1.h"), Some(7));
        assert_eq!(idx.get(&recs, "5.M1P1.h"), Some(1000));
        assert_eq!(idx.get(&recs, "1000.M1P1.h"), None);
        assert_eq!(NameIndex::new(&[]).get(&[], "x"), None);
    }

    #[test]
    fn duplicate_records_keep_the_last() {
        let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
        l.records.push(UidlistRecord::new(1, "a".into()));
        l.records.push(UidlistRecord::new(2, "a".into()));
        let r = reconcile(&mut l, &files(&[("a", false)]), 1);
        assert_eq!(r.dropped, 1);
        assert_eq!(l.records[0].uid, 2);
        assert_eq!(l.next_uid(), 3);
    }

    #[test]
    fn take_locs_needs_every_file_once() {
        let mut l = Uidlist::new(7, MailboxGuid([1; 16]));
        l.records.push(UidlistRecord::new(1, "a".into()));
        l.records.push(UidlistRecord::new(2, "b".into()));
        let locs = take_locs(&l, files(&[("a", false), ("b:2,S", false)])).unwrap();
        assert_eq!(locs[1].file_name("b"), "b:2,S");
        let back = take_locs(&l, files(&[("a", false)])).unwrap_err();
        assert_eq!(back.len(), 1);
        let back = take_locs(&l, files(&[("a", false), ("c", false)])).unwrap_err();
        assert_eq!(back.len(), 2);
        assert!(back.contains_key("a") && back.contains_key("c"));
        l.records[1] = UidlistRecord::new(2, "a".into());
        let back = take_locs(&l, files(&[("a", false), ("b", false)])).unwrap_err();
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn file_locs_are_small_and_keep_any_info() {
        assert_eq!(std::mem::size_of::<FileLoc>(), 16);
        for info in [
            "",
            ":2,",
            ":2,S",
            ":2,DFPRSTabcdefgh",
            ":2,FSabcdefghijklmnopqrstuvwxyz",
            ":1,x",
        ] {
            let full = format!("1.M2P3.h,S=4{info}");
            let loc = FileLoc::new(&full, full.len() - info.len(), true);
            assert_eq!(loc.info(), info);
            assert_eq!(loc.file_name("b"), format!("b{info}"));
            assert_eq!(loc, loc.clone());
        }
        let a = FileLoc::new("x:2,FSabcdefghijklmnop", 1, false);
        let b = FileLoc::new("y:2,FSabcdefghijklmnop", 1, false);
        assert_eq!(a, b);
        assert_ne!(a, FileLoc::new("x:2,FSabcdefghijklmno", 1, false));
    }

    #[test]
    fn scan_reads_new_and_cur() {
        let d = tempfile::tempdir().unwrap();
        for s in ["cur", "new", "tmp", "cur/sub"] {
            fs::create_dir(d.path().join(s)).unwrap();
        }
        fs::write(d.path().join("cur/a:2,S"), "x").unwrap();
        fs::write(d.path().join("new/b"), "x").unwrap();
        fs::write(d.path().join("new/a"), "x").unwrap();
        fs::write(d.path().join("cur/.hidden"), "x").unwrap();
        let m = scan_folder(d.path(), 0).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"].file_name("a"), "a:2,S");
        assert!(!m["a"].in_new);
        assert!(m["b"].in_new);
        assert!(scan_folder(&d.path().join("cur"), 0).is_err());
    }
}
