//! Maildirs as mail clients and delivery agents leave them, written file by
//! file (no Dovecot involved), and a deterministic message generator.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::mutf7;

/// A temp dir that `nobody` (the Dovecot judge) can traverse.
pub fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("dsync-test-")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    d
}

/// A Maildir++ root (INBOX in `cur/ new/ tmp/`, folders as `.Name`).
pub struct Maildir {
    pub root: PathBuf,
}

/// Where a message file goes and how it is named.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sizes {
    /// `base:2,flags`, as many delivery agents write it.
    None,
    /// `base,S=<size>:2,flags`.
    S,
    /// `base,S=<size>,W=<crlf size>:2,flags`, as Dovecot writes it.
    SW,
}

/// One message file to write.
#[derive(Clone, Debug)]
pub struct Msg {
    pub bytes: Vec<u8>,
    /// Maildir flag letters (any order; written sorted).
    pub flags: String,
    pub keywords: Vec<String>,
    /// INTERNALDATE as seconds since the epoch (the file's mtime).
    pub mtime: i64,
    /// In `new/` (unseen by any client; no `:2,` part) instead of `cur/`.
    pub new: bool,
    pub sizes: Sizes,
    /// The unique part of the name; generated when None.
    pub base: Option<String>,
}

impl Msg {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Msg {
        Msg {
            bytes: bytes.into(),
            flags: String::new(),
            keywords: Vec::new(),
            mtime: 1_600_000_000,
            new: false,
            sizes: Sizes::SW,
            base: None,
        }
    }
    pub fn flags(mut self, f: &str) -> Msg {
        self.flags = f.to_string();
        self
    }
    pub fn keyword(mut self, k: &str) -> Msg {
        self.keywords.push(k.to_string());
        self
    }
    pub fn mtime(mut self, t: i64) -> Msg {
        self.mtime = t;
        self
    }
    pub fn in_new(mut self) -> Msg {
        self.new = true;
        self
    }
    pub fn sizes(mut self, s: Sizes) -> Msg {
        self.sizes = s;
        self
    }
    pub fn base(mut self, b: &str) -> Msg {
        self.base = Some(b.to_string());
        self
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A base name in the style delivery agents use: `<secs>.M<usecs>P<pid>Q<n>.<host>`.
pub fn unique_base(mtime: i64) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{mtime}.M{n}P{}Q{n}.fixturehost", std::process::id())
}

/// Size of `b` with every bare LF counted as CRLF (the `W=` value).
pub fn crlf_size(b: &[u8]) -> usize {
    let mut n = b.len();
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            n += 1;
        }
    }
    n
}

/// Sets a file's mtime (and atime) to `secs` since the epoch.
pub fn set_mtime(path: &Path, secs: i64) {
    let t = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .expect("set mtime");
}

/// The Maildir++ directory name of a UTF-8 folder name with `/` separators
/// ("Archive/2024" → ".Archive.2024", "Entwürfe" → ".Entw&APw-rfe"). A `.`
/// inside a part cannot be written: Maildir++ would read it as a level.
pub fn folder_dir_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return String::new();
    }
    assert!(
        !name.contains('.'),
        "{name:?}: a '.' is the Maildir++ hierarchy separator"
    );
    let parts: Vec<String> = name.split('/').map(mutf7::encode).collect();
    format!(".{}", parts.join("."))
}

impl Maildir {
    /// Creates the root with `cur/ new/ tmp/`.
    pub fn create(root: impl Into<PathBuf>) -> Maildir {
        let root = root.into();
        for d in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(d)).expect("mkdir maildir");
        }
        Maildir { root }
    }

    /// Refers to an existing root (or one that is yet to be created).
    pub fn at(root: impl Into<PathBuf>) -> Maildir {
        Maildir { root: root.into() }
    }

    /// `maildir:<root>`.
    pub fn location(&self) -> String {
        format!("maildir:{}", self.root.display())
    }

    pub fn dir_of(&self, folder: &str) -> PathBuf {
        self.root.join(folder_dir_name(folder))
    }

    /// The folder (created with `cur/ new/ tmp/` and a `maildirfolder`
    /// file if missing). Parents are not created: Maildir++ needs none.
    pub fn folder(&self, name: &str) -> Folder {
        let dir = self.dir_of(name);
        for d in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(d)).expect("mkdir folder");
        }
        if !name.eq_ignore_ascii_case("INBOX") {
            let mf = dir.join("maildirfolder");
            if !mf.exists() {
                fs::write(mf, b"").expect("maildirfolder");
            }
        }
        Folder { dir }
    }

    pub fn inbox(&self) -> Folder {
        self.folder("INBOX")
    }

    /// Writes `subscriptions` as Dovecot does (version 2): storage names,
    /// that is hierarchy parts in modified UTF-7 joined by TAB.
    pub fn subscribe(&self, names: &[&str]) {
        let mut s = String::from("V\t2\n\n");
        for n in names {
            let parts: Vec<String> = n.split('/').map(mutf7::encode).collect();
            s.push_str(&parts.join("\t"));
            s.push('\n');
        }
        fs::write(self.root.join("subscriptions"), s).expect("subscriptions");
    }
}

/// One Maildir folder's directory.
pub struct Folder {
    pub dir: PathBuf,
}

impl Folder {
    /// Writes a message file; returns its path.
    pub fn put(&self, m: &Msg) -> PathBuf {
        let base = m.base.clone().unwrap_or_else(|| unique_base(m.mtime));
        let mut name = base;
        match m.sizes {
            Sizes::None => {}
            Sizes::S => name.push_str(&format!(",S={}", m.bytes.len())),
            Sizes::SW => name.push_str(&format!(",S={},W={}", m.bytes.len(), crlf_size(&m.bytes))),
        }
        let mut letters: Vec<char> = m.flags.chars().collect();
        letters.sort_unstable();
        let mut kw: Vec<char> = m.keywords.iter().map(|k| self.keyword_letter(k)).collect();
        kw.sort_unstable();
        letters.extend(kw);
        let path = if m.new && letters.is_empty() {
            self.dir.join("new").join(&name)
        } else {
            let sub = if m.new { "new" } else { "cur" };
            let flags: String = letters.into_iter().collect();
            self.dir.join(sub).join(format!("{name}:2,{flags}"))
        };
        fs::write(&path, &m.bytes).expect("write message");
        set_mtime(&path, m.mtime);
        path
    }

    /// The letter of a keyword, adding it to `dovecot-keywords` if needed.
    pub fn keyword_letter(&self, keyword: &str) -> char {
        let path = self.dir.join("dovecot-keywords");
        let mut map: BTreeMap<usize, String> = BTreeMap::new();
        if let Ok(s) = fs::read_to_string(&path) {
            for line in s.lines() {
                if let Some((i, k)) = line.split_once(' ') {
                    if let Ok(i) = i.parse() {
                        map.insert(i, k.to_string());
                    }
                }
            }
        }
        let idx = match map.iter().find(|(_, k)| *k == keyword) {
            Some((i, _)) => *i,
            None => {
                let i = (0..26)
                    .find(|i| !map.contains_key(i))
                    .expect("at most 26 keywords");
                map.insert(i, keyword.to_string());
                let body: String = map.iter().map(|(i, k)| format!("{i} {k}\n")).collect();
                fs::write(&path, body).expect("dovecot-keywords");
                i
            }
        };
        (b'a' + idx as u8) as char
    }

    /// Message files in `cur/` and `new/`, sorted by name.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for sub in ["cur", "new"] {
            if let Ok(rd) = fs::read_dir(self.dir.join(sub)) {
                v.extend(rd.map(|e| e.unwrap().path()));
            }
        }
        v.sort();
        v
    }
}

/// Line ends of a generated message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Eol {
    Crlf,
    Lf,
}

/// A deterministic message generator (splitmix64): the same seed gives the
/// same bytes on every machine.
pub struct Gen {
    state: u64,
}

const WORDS: &[&str] = &[
    "the",
    "quarterly",
    "report",
    "meeting",
    "über",
    "budget",
    "café",
    "review",
    "draft",
    "please",
    "attached",
    "schedule",
    "invoice",
    "project",
    "deadline",
    "thanks",
    "regards",
    "update",
    "server",
    "migration",
    "mailbox",
    "backup",
    "Grüße",
    "naïve",
    "résumé",
    "lunch",
    "tomorrow",
    "question",
];

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.range(0, WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A plausible message of about `size` bytes (at least its headers):
    /// text, or for larger ones sometimes multipart with a base64 attachment.
    pub fn message(&mut self, size: usize, eol: Eol) -> Vec<u8> {
        let nl = if eol == Eol::Crlf { "\r\n" } else { "\n" };
        let id = self.next_u64();
        let date = 1_500_000_000 + self.range(0, 200_000_000) as i64;
        let mut h = String::new();
        h.push_str(&format!("Return-Path: <sender{}@example.org>{nl}", id % 97));
        h.push_str(&format!(
            "From: Sender {} <sender{}@example.org>{nl}",
            id % 97,
            id % 97
        ));
        h.push_str(&format!("To: user@example.com{nl}"));
        let n = self.range(2, 8) as usize;
        h.push_str(&format!("Subject: {} #{id:x}{nl}", self.words(n)));
        h.push_str(&format!("Date: {}{nl}", rfc2822(date)));
        h.push_str(&format!("Message-ID: <{id:016x}@example.org>{nl}"));
        h.push_str(&format!("MIME-Version: 1.0{nl}"));
        let multipart = size > 4096 && id % 3 == 0;
        let mut out = h.into_bytes();
        if !multipart {
            out.extend_from_slice(
                format!("Content-Type: text/plain; charset=utf-8{nl}{nl}").as_bytes(),
            );
            self.text_body(&mut out, size, nl);
            return out;
        }
        let boundary = format!("=_b{id:x}");
        out.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"{nl}{nl}This is a MIME message.{nl}--{boundary}{nl}Content-Type: text/plain; charset=utf-8{nl}{nl}").as_bytes(),
        );
        let text_end = out.len() + 300;
        self.text_body(&mut out, text_end, nl);
        out.extend_from_slice(
            format!("{nl}--{boundary}{nl}Content-Type: application/octet-stream; name=\"data{id:x}.bin\"{nl}Content-Transfer-Encoding: base64{nl}Content-Disposition: attachment; filename=\"data{id:x}.bin\"{nl}{nl}").as_bytes(),
        );
        // base64 grows by 4/3 plus line ends; aim for the requested size.
        let remaining = size.saturating_sub(out.len() + 64);
        let raw_len = remaining * 3 / 4 * 76 / 78;
        let mut raw = Vec::with_capacity(raw_len + 8);
        while raw.len() < raw_len {
            raw.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        raw.truncate(raw_len);
        base64_lines(&raw, nl, &mut out);
        out.extend_from_slice(format!("--{boundary}--{nl}").as_bytes());
        out
    }

    fn text_body(&mut self, out: &mut Vec<u8>, size: usize, nl: &str) {
        loop {
            let n = self.range(3, 14) as usize;
            let line = self.words(n);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(nl.as_bytes());
            if out.len() >= size {
                break;
            }
        }
    }
}

fn base64_lines(raw: &[u8], nl: &str, out: &mut Vec<u8>) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for line in raw.chunks(57) {
        for c in line.chunks(3) {
            let v = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[((v >> (18 - 6 * i)) & 63) as usize]);
                } else {
                    out.push(b'=');
                }
            }
        }
        out.extend_from_slice(nl.as_bytes());
    }
}

/// A Date: header value in UTC.
pub fn rfc2822(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A Maildir like a real user's, written by "other programs": INBOX with
/// mixed flags, keywords, files in `new/`, names with and without S=/W=,
/// CRLF and LF messages; folders Sent, Drafts (empty), "Entwürfe", a
/// nested "Archive/2024" whose parent directory does not exist; a
/// subscriptions file. `seed` varies contents; `count` is INBOX's size.
pub fn typical_maildir(root: &Path, seed: u64, count: usize) -> Maildir {
    let md = Maildir::create(root);
    let mut g = Gen::new(seed);
    let inbox = md.inbox();
    for i in 0..count {
        let size = match i % 7 {
            0 => 200,
            1..=3 => g.range(500, 4000) as usize,
            4 | 5 => g.range(4000, 40_000) as usize,
            _ => g.range(40_000, 200_000) as usize,
        };
        let eol = if i % 3 == 0 { Eol::Lf } else { Eol::Crlf };
        let mut m = Msg::new(g.message(size, eol)).mtime(1_600_000_000 + (i as i64) * 3607);
        m.sizes = match i % 4 {
            0 => Sizes::None,
            1 => Sizes::S,
            _ => Sizes::SW,
        };
        match i % 5 {
            0 => m = m.flags("S"),
            1 => m = m.flags("RS"),
            2 => m = m.flags("FS").keyword("$Label1"),
            3 => m = m.flags("ST").keyword("Work").keyword("$Label1"),
            _ => {}
        }
        if i % 6 == 5 {
            m = m.flags("").in_new();
            m.keywords.clear();
        }
        inbox.put(&m);
    }
    let sent = md.folder("Sent");
    for i in 0..3 {
        sent.put(
            &Msg::new(g.message(1500, Eol::Crlf))
                .flags("S")
                .mtime(1_610_000_000 + i),
        );
    }
    md.folder("Drafts");
    let entw = md.folder("Entwürfe");
    entw.put(
        &Msg::new(g.message(800, Eol::Lf))
            .flags("DS")
            .mtime(1_620_000_000),
    );
    let arch = md.folder("Archive/2024");
    for i in 0..4 {
        arch.put(
            &Msg::new(g.message(3000, Eol::Crlf))
                .flags("S")
                .sizes(Sizes::None)
                .mtime(1_700_000_000 + i),
        );
    }
    md.subscribe(&["INBOX", "Sent", "Drafts", "Entwürfe", "Archive/2024"]);
    md
}

/// Writes an mbox file: each message after a `From ` separator line with
/// its date (INTERNALDATE), body lines starting with "From " quoted as
/// ">From ", a blank line between messages. Messages are taken as LF text.
pub fn write_mbox(path: &Path, messages: &[(i64, Vec<u8>)]) {
    let mut out = Vec::new();
    for (secs, bytes) in messages {
        // asctime form: "Thu Jan  1 00:00:00 1970".
        let d = rfc2822(*secs); // "Thu, 1 Jan 1970 00:00:00 +0000"
        let f: Vec<&str> = d.split(' ').collect();
        out.extend_from_slice(
            format!(
                "From sender@example.org {} {} {:>2} {} {}\n",
                &f[0][..3],
                f[2],
                f[1],
                f[4],
                f[3]
            )
            .as_bytes(),
        );
        for line in bytes.split_inclusive(|&c| c == b'\n') {
            if line.starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("mkdir for mbox");
    }
    fs::write(path, out).expect("write mbox");
}

/// Has Dovecot index `location` once, as a live server would have: it
/// writes dovecot-uidlist (assigning UIDs and UIDVALIDITY), dovecot-uidvalidity
/// and its index files.
pub fn index_with_dovecot(location: &str) {
    super::snapshot::snapshot(location);
}
