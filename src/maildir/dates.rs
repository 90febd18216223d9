//! `dsync-dates`: each message file's INTERNALDATE (its mtime) and size,
//! kept beside `dovecot-uidlist`. Message files never change after
//! delivery, so a scan needs a `stat` only for files it has not seen
//! before: a rescan of an unchanged folder is a `readdir`, as Dovecot's is
//! with its index. A file whose mtime was changed behind our back keeps
//! its old date here until a full sync (`-f`), which ignores this cache;
//! Dovecot behaves the same way with its own cache.
//!
//! Entries are keyed by UID, in UID order like the uidlist, so a snapshot
//! walks both side by side (no map of file names: 32 bytes a message in
//! memory, about 40 on disk). Each entry also carries a 64-bit hash of the
//! file's base name: an entry counts only for the file it was made for,
//! should a uidlist ever give its UID to another file.
//!
//! Format: the line `#dates 2`, then one line per file, `<uid>\t<name
//! hash, hex>\t<mtime secs>\t<size>`. A commit appends the lines of the
//! files it saved (UIDs above the last, usually); a line out of UID order
//! ends what is read. It is only a cache: a damaged or older file is
//! ignored (and rewritten), never an error. (Files written before the
//! summary moved to `dsync-summary` start with a `#folder` line, skipped.)
//!
//! `dsync-summary`, beside it: one line, the folder's fingerprint and
//! numbers when it was last read whole or proved (see
//! `MaildirStore::list_mailboxes`); a small file of its own, so recording
//! it never rewrites the dates.

use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::Path;

use crate::model::Uid;

pub const FILE_NAME: &str = "dsync-dates";
pub const SUMMARY_FILE: &str = "dsync-summary";

/// The first line of files from before `dsync-summary`.
const HEADER_MARK: &str = "#folder\t";
/// Marks this format; files without it (the name-keyed format before it)
/// are ignored.
const FORMAT_LINE: &str = "#dates 2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    uid: Uid,
    name: u64,
    mtime: i64,
    size: u64,
}

#[derive(Default)]
pub struct DateCache {
    /// Strictly ascending by UID.
    entries: Vec<Entry>,
    changed: bool,
}

fn name_hash(base: &str) -> u64 {
    let mut h = crate::fasthash::FastHasher::default();
    h.write(base.as_bytes());
    h.finish()
}

fn parse_entry(line: &[u8]) -> Option<Entry> {
    let s = std::str::from_utf8(line).ok()?;
    let mut it = s.split('\t');
    let e = Entry {
        uid: it.next()?.parse().ok()?,
        name: u64::from_str_radix(it.next()?, 16).ok()?,
        mtime: it.next()?.parse().ok()?,
        size: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(e)
}

impl DateCache {
    pub fn load(path: &Path) -> DateCache {
        let Ok(data) = fs::read(path) else {
            return DateCache::default();
        };
        let mut lines = data.split(|&b| b == b'\n').peekable();
        lines.next_if(|l| l.starts_with(HEADER_MARK.as_bytes()));
        if lines.next() != Some(FORMAT_LINE.as_bytes()) {
            // An older format: its dates are re-read once.
            return DateCache {
                changed: true,
                ..DateCache::default()
            };
        }
        let mut entries = Vec::with_capacity(data.len() / 40);
        for line in lines.filter(|l| !l.is_empty()) {
            match parse_entry(line) {
                // Out of order means damaged: keep what came before.
                Some(e) if entries.last().is_none_or(|l: &Entry| l.uid < e.uid) => entries.push(e),
                _ => {
                    return DateCache {
                        entries,
                        changed: true,
                    }
                }
            }
        }
        DateCache {
            entries,
            changed: false,
        }
    }

    /// The date and size recorded for the file `base` under `uid`.
    pub fn get(&self, uid: Uid, base: &str) -> Option<(i64, u64)> {
        let i = self.entries.binary_search_by_key(&uid, |e| e.uid).ok()?;
        let e = &self.entries[i];
        (e.name == name_hash(base)).then_some((e.mtime, e.size))
    }

    /// Records a file's date and size (replacing what `uid` had).
    pub fn insert(&mut self, uid: Uid, base: &str, mtime: i64, size: u64) {
        let e = Entry {
            uid,
            name: name_hash(base),
            mtime,
            size,
        };
        // New files come with the highest UIDs: usually a push.
        if self.entries.last().is_none_or(|l| l.uid < uid) {
            self.entries.push(e);
            self.changed = true;
            return;
        }
        match self.entries.binary_search_by_key(&uid, |e| e.uid) {
            Ok(i) if self.entries[i] == e => {}
            Ok(i) => {
                self.entries[i] = e;
                self.changed = true;
            }
            Err(i) => {
                self.entries.insert(i, e);
                self.changed = true;
            }
        }
    }

    /// Keeps only the UIDs in `live` (ascending), in one pass.
    pub fn retain_uids(&mut self, live: impl Iterator<Item = Uid>) {
        let before = self.entries.len();
        let mut live = live.peekable();
        self.entries.retain(|e| {
            while live.next_if(|u| *u < e.uid).is_some() {}
            live.peek() == Some(&e.uid)
        });
        self.changed |= self.entries.len() != before;
    }

    /// Writes the cache if it changed (temp file and rename, so a reader
    /// never sees half of it; no fsync: losing it only costs stats).
    pub fn save(&self, path: &Path) {
        if !self.changed {
            return;
        }
        let mut out = Vec::with_capacity(64 + self.entries.len() * 44);
        let _ = writeln!(out, "{FORMAT_LINE}");
        for e in &self.entries {
            write_entry(&mut out, e);
        }
        write_atomically(path, &out);
    }
}

fn write_entry(out: &mut Vec<u8>, e: &Entry) {
    let _ = writeln!(out, "{}\t{:x}\t{}\t{}", e.uid, e.name, e.mtime, e.size);
}

/// Temp file and rename, so a reader never sees half of it; no fsync:
/// losing a cache only costs stats.
fn write_atomically(path: &Path, data: &[u8]) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    if fs::write(&tmp, data).is_ok() && fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Adds the dates of newly saved files (`(uid, base, mtime, size)`) to the
/// cache of the folder with control directory `dir` without reading it:
/// one append. A file that does not exist yet is started.
pub fn append<'a>(dir: &Path, new: impl IntoIterator<Item = (Uid, &'a str, i64, u64)>) {
    let mut out = Vec::new();
    for (uid, base, mtime, size) in new {
        let e = Entry {
            uid,
            name: name_hash(base),
            mtime,
            size,
        };
        write_entry(&mut out, &e);
    }
    if out.is_empty() {
        return;
    }
    let path = dir.join(FILE_NAME);
    match fs::OpenOptions::new().append(true).open(&path) {
        // One write(2): a reader sees all of it or none (or, on a full
        // disk, a cut line, which ends what it reads).
        Ok(mut f) => {
            let _ = f.write_all(&out);
        }
        Err(_) => {
            let mut all = format!("{FORMAT_LINE}\n").into_bytes();
            all.extend_from_slice(&out);
            write_atomically(&path, &all);
        }
    }
}

/// The folder's summary line, if one was recorded.
pub fn load_summary(dir: &Path) -> Option<String> {
    let s = fs::read_to_string(dir.join(SUMMARY_FILE)).ok()?;
    let line = s.strip_suffix('\n')?;
    (!line.is_empty() && !line.contains('\n')).then(|| line.to_string())
}

/// Records the folder's summary line (`None`: forget it).
pub fn save_summary(dir: &Path, summary: Option<&str>) {
    let path = dir.join(SUMMARY_FILE);
    match summary {
        Some(line) => write_atomically(&path, format!("{line}\n").as_bytes()),
        None => {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Forgets the cache of a folder whose file dates we just changed.
pub fn invalidate(control_dir: &Path) {
    let _ = fs::remove_file(control_dir.join(FILE_NAME));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        let mut c = DateCache::load(&p);
        c.insert(7, "1.M1P1.host,S=5", 100, 5);
        c.insert(3, "b", 50, 9);
        c.save(&p);
        let c = DateCache::load(&p);
        assert_eq!(c.get(7, "1.M1P1.host,S=5"), Some((100, 5)));
        assert_eq!(c.get(3, "b"), Some((50, 9)));
        // Another file under a known UID is not this file.
        assert_eq!(c.get(7, "other"), None);
        assert_eq!(c.get(8, "b"), None);
        // The name-keyed format before this one: ignored.
        fs::write(&p, "#folder\tfp\n100\t5\t1.M1P1.host,S=5\n").unwrap();
        let c = DateCache::load(&p);
        assert_eq!(c.get(7, "1.M1P1.host,S=5"), None);
        // A summary line before the format line (files of the last format).
        fs::write(&p, "#folder\tfp\n#dates 2\n7\t0\t1\t2\n").unwrap();
        assert_eq!(DateCache::load(&p).entries.len(), 1);
        fs::write(
            &p,
            b"#dates 2\n1\tff\t2\t3\ngarbage\n\xff\xfe\n5\t1\t1\t1\n",
        )
        .unwrap();
        let c = DateCache::load(&p);
        assert_eq!(c.entries.len(), 1);
        assert!(c.changed);
    }

    #[test]
    fn appends_are_read_back_and_summaries_kept_apart() {
        let d = tempfile::tempdir().unwrap();
        append(d.path(), [(3, "a", 30, 1)]);
        append(d.path(), [(5, "b", 50, 2), (6, "c", 60, 3)]);
        let c = DateCache::load(&d.path().join(FILE_NAME));
        assert_eq!(c.get(3, "a"), Some((30, 1)));
        assert_eq!(c.get(6, "c"), Some((60, 3)));
        assert!(!c.changed);
        // An append below the last UID ends what is read (a cache miss).
        append(d.path(), [(4, "d", 40, 4), (9, "e", 90, 5)]);
        let c = DateCache::load(&d.path().join(FILE_NAME));
        assert_eq!(c.get(4, "d"), None);
        assert_eq!(c.get(9, "e"), None);
        assert_eq!(c.get(5, "b"), Some((50, 2)));
        assert!(c.changed);
        assert_eq!(load_summary(d.path()), None);
        save_summary(d.path(), Some("fp\tx"));
        assert_eq!(load_summary(d.path()).as_deref(), Some("fp\tx"));
        save_summary(d.path(), None);
        assert_eq!(load_summary(d.path()), None);
    }

    #[test]
    fn retain_keeps_the_live_uids() {
        let mut c = DateCache::default();
        for uid in [1, 2, 5, 9, 12] {
            c.insert(uid, "x", 1, 1);
        }
        c.changed = false;
        c.retain_uids([2, 3, 9, 12, 40].into_iter());
        let uids: Vec<Uid> = c.entries.iter().map(|e| e.uid).collect();
        assert_eq!(uids, vec![2, 9, 12]);
        assert!(c.changed);
        c.insert(4, "y", 1, 1);
        c.insert(4, "y", 1, 1);
        let uids: Vec<Uid> = c.entries.iter().map(|e| e.uid).collect();
        assert_eq!(uids, vec![2, 4, 9, 12]);
    }
}
