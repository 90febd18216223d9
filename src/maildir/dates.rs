//! `dsync-dates`: each message file's INTERNALDATE (its mtime) and size,
//! by base name, kept beside `dovecot-uidlist`. Message files never change
//! after delivery, so a scan needs a `stat` only for files it has not seen
//! before: a rescan of an unchanged folder is a `readdir`, as Dovecot's is
//! with its index. A file whose mtime was changed behind our back keeps
//! its old date here until a full sync (`-f`), which ignores this cache;
//! Dovecot behaves the same way with its own cache.
//!
//! Format: one line per file, `<mtime secs>\t<size>\t<base name>`. It is
//! only a cache: a damaged file is ignored (and rewritten), never an error.

use std::fs;
use std::io::Write;
use std::path::Path;

pub const FILE_NAME: &str = "dsync-dates";

#[derive(Default)]
pub struct DateCache {
    map: crate::fasthash::FastMap<String, (i64, u64)>,
    /// The folder's fingerprint and numbers when this was written, as one
    /// opaque line (see `MaildirStore::list_mailboxes`).
    header: Option<String>,
    changed: bool,
}

/// The first line of the file, when it carries the folder's summary.
const HEADER_MARK: &str = "#folder\t";

impl DateCache {
    pub fn load(path: &Path) -> DateCache {
        let Ok(data) = fs::read(path) else {
            return DateCache::default();
        };
        let mut map = crate::fasthash::FastMap::default();
        let mut header = None;
        for line in data.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            if let Some(h) = line.strip_prefix(HEADER_MARK) {
                header = Some(h.to_string());
                continue;
            }
            let mut it = line.splitn(3, '\t');
            let (Some(t), Some(s), Some(base)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if let (Ok(t), Ok(s)) = (t.parse(), s.parse()) {
                map.insert(base.to_string(), (t, s));
            }
        }
        DateCache {
            map,
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

    pub fn get(&self, base: &str) -> Option<(i64, u64)> {
        self.map.get(base).copied()
    }

    pub fn insert(&mut self, base: &str, mtime: i64, size: u64) {
        if base.contains(['\n', '\t']) {
            return;
        }
        if self.map.insert(base.to_string(), (mtime, size)) != Some((mtime, size)) {
            self.changed = true;
        }
    }

    /// Keeps only the files still present.
    pub fn retain(&mut self, live: &dyn Fn(&str) -> bool) {
        let before = self.map.len();
        self.map.retain(|b, _| live(b));
        self.changed |= self.map.len() != before;
    }

    /// Writes the cache if it changed (temp file and rename, so a reader
    /// never sees half of it; no fsync: losing it only costs stats).
    pub fn save(&self, path: &Path) {
        if !self.changed {
            return;
        }
        let mut out = Vec::with_capacity(self.map.len() * 64);
        if let Some(h) = &self.header {
            let _ = writeln!(out, "{HEADER_MARK}{h}");
        }
        for (base, (t, s)) in &self.map {
            let _ = writeln!(out, "{t}\t{s}\t{base}");
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
        c.insert("1.M1P1.host,S=5", 100, 5);
        c.insert("bad\tname", 1, 1);
        c.save(&p);
        let c = DateCache::load(&p);
        assert_eq!(c.get("1.M1P1.host,S=5"), Some((100, 5)));
        assert_eq!(c.get("bad\tname"), None);
        fs::write(&p, b"garbage\n\xff\xfe\n12\tx\tbase\n").unwrap();
        let c = DateCache::load(&p);
        assert_eq!(c.get("base"), None);
    }
}
