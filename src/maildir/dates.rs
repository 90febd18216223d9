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
//! Format: an optional summary line `#folder\t<summary>`, the line
//! `#dates 2`, then one line per file, `<uid>\t<name hash, hex>\t<mtime
//! secs>\t<size>`. It is only a cache: a damaged or older file is ignored
//! (and rewritten), never an error.

use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::Path;

use crate::model::Uid;

pub const FILE_NAME: &str = "dsync-dates";

/// The first line of the file, when it carries the folder's summary.
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
    /// The folder's fingerprint and numbers when this was written, as one
    /// opaque line (see `MaildirStore::list_mailboxes`).
    header: Option<String>,
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
        let mut header = None;
        if let Some(h) = lines
            .peek()
            .and_then(|l| l.strip_prefix(HEADER_MARK.as_bytes()))
        {
            header = std::str::from_utf8(h).ok().map(str::to_string);
            lines.next();
        }
        if lines.next() != Some(FORMAT_LINE.as_bytes()) {
            // An older format: its dates are re-read once.
            return DateCache {
                header,
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
                        header,
                        changed: true,
                    }
                }
            }
        }
        DateCache {
            entries,
            header,
            changed: false,
        }
    }

    /// Reads only the summary line (cheap: the first line of the file).
    pub fn load_header(path: &Path) -> Option<String> {
        use std::io::BufRead;
        let f = fs::File::open(path).ok()?;
        let mut line = String::new();
        std::io::BufReader::new(f).read_line(&mut line).ok()?;
        line.trim_end_matches('\n')
            .strip_prefix(HEADER_MARK)
            .map(str::to_string)
    }

    pub fn set_header(&mut self, h: Option<String>) {
        if self.header != h {
            self.header = h;
            self.changed = true;
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
        if let Some(h) = &self.header {
            let _ = writeln!(out, "{HEADER_MARK}{h}");
        }
        let _ = writeln!(out, "{FORMAT_LINE}");
        for e in &self.entries {
            let _ = writeln!(out, "{}\t{:x}\t{}\t{}", e.uid, e.name, e.mtime, e.size);
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        if fs::write(&tmp, &out).is_ok() && fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
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
        c.set_header(Some("fp\tx".into()));
        c.save(&p);
        let c = DateCache::load(&p);
        assert_eq!(c.get(7, "1.M1P1.host,S=5"), Some((100, 5)));
        assert_eq!(c.get(3, "b"), Some((50, 9)));
        // Another file under a known UID is not this file.
        assert_eq!(c.get(7, "other"), None);
        assert_eq!(c.get(8, "b"), None);
        assert_eq!(DateCache::load_header(&p).as_deref(), Some("fp\tx"));
        // The name-keyed format before this one: ignored, summary kept.
        fs::write(&p, "#folder\tfp\n100\t5\t1.M1P1.host,S=5\n").unwrap();
        let c = DateCache::load(&p);
        assert_eq!(c.get(7, "1.M1P1.host,S=5"), None);
        assert_eq!(c.header.as_deref(), Some("fp"));
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
