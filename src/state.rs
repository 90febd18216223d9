//! What a two-way sync remembers between runs, per pair of stores.
//!
//! Every store has a permanent random ID (`dsync-store-id` at its root).
//! For each peer store it has synced with, it keeps a state file holding
//! the common state of every mailbox after the last successful run (the
//! merge's *base*) and that run's random `sync_id`. Both sides write the
//! same `sync_id`; a base is trusted only when the two tokens match, so a
//! run that died half-way (one side saved, the other not) or a restored
//! backup of one side falls back to "no base" instead of replaying stale
//! expunges.
//!
//! Where: the state file is `dsync-state.<peer-id>` in the control root
//! (CONTROL= if set, else the mail root). Files there are never folders to
//! Dovecot: Maildir++ only treats `.name` directories as folders, and
//! LAYOUT=fs only directories.
//!
//! Format (version 1), ASCII text, one record per line, written in one
//! pass and readable in one pass:
//! ```text
//! dsync-state 1 <sync_id>
//! M <mailbox guid, 32 hex> <uidvalidity> <uidnext> <message count> <name part> …
//! <uid> <flags> <message guid> [<keyword> …]      (count lines, UIDs ascending)
//! …
//! E <mailbox count>
//! ```
//! Mailboxes are in GUID order; the name (as it was then, one field per
//! hierarchy level) lets the engine tell renames and deletions apart.
//! `flags` are the Maildir letters (`DFRST`), `-` for none. Name parts,
//! message GUIDs and keywords are escaped: every byte outside `!`..`~`,
//! and `%` itself, is `%XX`; the empty string is a lone `%`. The counts
//! and the `E` line make any truncation a detectable error. A message
//! costs its GUID plus about 10 bytes: ~64 bytes with a Dovecot Maildir
//! base name as GUID, ~45 with a 32-hex GUID. 200,000 messages load in
//! about 75 ms (release build).
//!
//! Beside it, `dsync-state.<peer-id>.log` is its journal (see
//! [`journal`]): a run that changed little appends its change there, and
//! the state is the main file plus the journal's entries that follow from
//! its token. `save` writes the main file and removes the journal;
//! `save_change` appends, or calls `save` once the journal would outgrow a
//! quarter of the main file.
//!
//! A damaged file is an error naming the file and line. Callers must treat
//! it like a missing file ("no base": nothing is expunged, messages are
//! matched by GUID), never like an empty state, which would mean "every
//! message was deleted since the last run".

use crate::brain::merge::{BaseMailbox, BaseMessage};
use crate::model::{Flags, MailboxGuid, MailboxName, Uid};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The store ID's file name, at the store root.
pub const STORE_ID_FILE: &str = "dsync-store-id";
/// State files are `<prefix><peer store id>` in the control root.
pub const STATE_PREFIX: &str = "dsync-state.";
const MAGIC: &str = "dsync-state";
const VERSION: u32 = 1;

/// The state shared with one peer store after the last successful run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The last successful run's token; the same on both sides.
    pub sync_id: String,
    /// Per mailbox GUID (the base's `guid`; see [`SyncState::insert`]):
    /// the mailbox's name then and its common state then.
    pub mailboxes: HashMap<MailboxGuid, (MailboxName, BaseMailbox)>,
}

impl SyncState {
    pub fn new(sync_id: String) -> Self {
        SyncState {
            sync_id,
            mailboxes: HashMap::new(),
        }
    }

    /// A fresh random token for a run (32 hex digits).
    pub fn generate_sync_id() -> Result<String> {
        random_hex()
    }

    pub fn insert(&mut self, name: MailboxName, base: BaseMailbox) {
        self.mailboxes.insert(base.guid, (name, base));
    }

    pub fn get(&self, guid: &MailboxGuid) -> Option<&(MailboxName, BaseMailbox)> {
        self.mailboxes.get(guid)
    }

    /// The file's bytes; fails on a state that could not be read back
    /// (bad sync_id, messages not strictly ascending or not below UIDNEXT).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the file's bytes to `out` as they are made (a large state is
    /// never held twice); checks everything before the first byte.
    pub fn write_to(&self, out: &mut impl Write) -> Result<()> {
        if !valid_token(&self.sync_id) {
            bail!(
                "sync state: sync_id {:?} must be 1 to 128 letters, digits, '-' or '_'",
                self.sync_id
            );
        }
        // Sorted, so that equal states are equal files.
        let mut keys: Vec<&MailboxGuid> = self.mailboxes.keys().collect();
        keys.sort_unstable();
        for key in &keys {
            let (_, mb) = &self.mailboxes[*key];
            if **key != mb.guid {
                bail!("sync state: mailbox {} is filed under GUID {key}", mb.guid);
            }
            check_messages(mb).map_err(|e| anyhow!("sync state: mailbox {}: {e}", mb.guid))?;
        }
        writeln!(out, "{MAGIC} {VERSION} {}", self.sync_id)?;
        let mut line = Vec::with_capacity(256);
        for key in keys {
            let (name, mb) = &self.mailboxes[key];
            line.clear();
            let _ = write!(
                line,
                "M {} {} {} {}",
                mb.guid.to_hex(),
                mb.uidvalidity,
                mb.uidnext,
                mb.messages.len()
            );
            for part in name.parts() {
                line.push(b' ');
                push_token(&mut line, part);
            }
            line.push(b'\n');
            out.write_all(&line)?;
            for m in &mb.messages {
                line.clear();
                let _ = write!(line, "{} ", m.uid);
                if m.flags.bits() == 0 {
                    line.push(b'-');
                } else {
                    line.extend_from_slice(m.flags.to_letters().as_bytes());
                }
                line.push(b' ');
                push_token(&mut line, &m.guid);
                for k in m.keywords.iter() {
                    line.push(b' ');
                    push_token(&mut line, k);
                }
                line.push(b'\n');
                out.write_all(&line)?;
            }
        }
        writeln!(out, "E {}", self.mailboxes.len())?;
        Ok(())
    }

    /// Parses a whole state file.
    pub fn parse(data: &[u8]) -> Result<SyncState, StateError> {
        Parser::new(data).parse()
    }
}

fn check_messages(mb: &BaseMailbox) -> std::result::Result<(), String> {
    let mut prev = 0;
    for m in &mb.messages {
        if m.uid <= prev {
            return Err(format!(
                "message UIDs not strictly ascending ({} after {prev})",
                m.uid
            ));
        }
        if m.uid >= mb.uidnext {
            return Err(format!(
                "message UID {} is not below UIDNEXT {}",
                m.uid, mb.uidnext
            ));
        }
        prev = m.uid;
    }
    Ok(())
}

/// A damaged state file: what is wrong and on which line (1-based; 0 for
/// the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

impl std::error::Error for StateError {}

fn valid_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_token(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.push(b'%');
        return;
    }
    for &b in s.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_token(t: &[u8]) -> Option<String> {
    if t == b"%" {
        return Some(String::new());
    }
    // The writer escapes everything else; a raw byte outside the range
    // means an edited or damaged file (CRLF line ends, say).
    if !t.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return None;
    }
    if !t.contains(&b'%') {
        // The common case: nothing escaped, and ASCII by construction.
        return Some(std::str::from_utf8(t).ok()?.to_string());
    }
    let mut v = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'%' {
            let hi = hex_val(*t.get(i + 1)?)?;
            let lo = hex_val(*t.get(i + 2)?)?;
            v.push(hi << 4 | lo);
            i += 3;
        } else {
            v.push(t[i]);
            i += 1;
        }
    }
    String::from_utf8(v).ok()
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    u32::try_from(v).ok()
}

fn parse_guid(s: &[u8]) -> Option<MailboxGuid> {
    if s.len() != 32 {
        return None;
    }
    let mut g = [0u8; 16];
    for (i, b) in g.iter_mut().enumerate() {
        *b = hex_val(s[2 * i])? << 4 | hex_val(s[2 * i + 1])?;
    }
    Some(MailboxGuid(g))
}

fn parse_flags(s: &[u8]) -> Option<Flags> {
    if s == b"-" {
        return Some(Flags::empty());
    }
    Flags::from_letters(std::str::from_utf8(s).ok()?)
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() > 60 {
        format!("{:?}…", s.chars().take(60).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

struct Parser<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Parser<'a> {
    fn new(data: &'a [u8]) -> Self {
        Parser {
            rest: data,
            line: 0,
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, StateError> {
        Err(StateError {
            line: self.line,
            msg: msg.into(),
        })
    }

    /// The next line, without its newline; a missing line or newline
    /// means the file was cut short.
    fn next_line(&mut self) -> Result<&'a [u8], StateError> {
        self.line += 1;
        if self.rest.is_empty() {
            return self.err("unexpected end of file (truncated?)");
        }
        let Some(end) = self.rest.iter().position(|b| *b == b'\n') else {
            return self.err("last line has no newline (truncated?)");
        };
        let l = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        if l.is_empty() {
            return self.err("empty line");
        }
        Ok(l)
    }

    fn fields(&self, l: &'a [u8]) -> Result<Vec<&'a [u8]>, StateError> {
        let f: Vec<&[u8]> = l.split(|b| *b == b' ').collect();
        if f.iter().any(|x| x.is_empty()) {
            return self.err(format!("empty field in {}", show(l)));
        }
        Ok(f)
    }

    fn num(&self, s: &[u8], what: &str) -> Result<u32, StateError> {
        match parse_u32(s) {
            Some(v) => Ok(v),
            None => self.err(format!("{what} {} is not a number", show(s))),
        }
    }

    fn parse(mut self) -> Result<SyncState, StateError> {
        let l = self.next_line()?;
        let h = self.fields(l)?;
        if h.first() != Some(&MAGIC.as_bytes()) {
            return self.err("not a dsync state file");
        }
        if h.len() != 3 {
            return self.err("header needs 3 fields: dsync-state <version> <sync_id>");
        }
        let version = self.num(h[1], "version")?;
        if version != VERSION {
            return self.err(format!(
                "version {version} is not supported (only {VERSION}; written by a newer dsync?)"
            ));
        }
        let sync_id = String::from_utf8_lossy(h[2]).into_owned();
        if !valid_token(&sync_id) {
            return self.err(format!("bad sync_id {}", show(h[2])));
        }
        let mut st = SyncState::new(sync_id);
        loop {
            let l = self.next_line()?;
            let f = self.fields(l)?;
            match f[0] {
                b"M" => {
                    let (name, mb) = self.mailbox(&f)?;
                    if st.mailboxes.contains_key(&mb.guid) {
                        self.line -= mb.messages.len();
                        return self.err(format!("mailbox {} appears twice", mb.guid));
                    }
                    st.insert(name, mb);
                }
                b"E" => {
                    if f.len() != 2 {
                        return self.err("end line needs 2 fields: E <mailbox count>");
                    }
                    let n = self.num(f[1], "mailbox count")?;
                    if n as usize != st.mailboxes.len() {
                        return self.err(format!(
                            "end line says {n} mailboxes, the file has {}",
                            st.mailboxes.len()
                        ));
                    }
                    if !self.rest.is_empty() {
                        self.line += 1;
                        return self.err("data after the end line");
                    }
                    return Ok(st);
                }
                _ => return self.err(format!("expected a mailbox or end line, got {}", show(l))),
            }
        }
    }

    /// One message line: `<uid> <flags> <guid> [<keyword> …]`.
    fn message(&mut self) -> Result<BaseMessage, StateError> {
        let l = self.next_line()?;
        let f = self.fields(l)?;
        if f.len() < 3 {
            return self.err(format!(
                "message line needs <uid> <flags> <guid> [keywords], got {}",
                show(l)
            ));
        }
        let uid = self.num(f[0], "UID")?;
        let Some(flags) = parse_flags(f[1]) else {
            return self.err(format!("bad flags {}", show(f[1])));
        };
        let tok = |t: &[u8], what: &str| match parse_token(t) {
            Some(s) => Ok(s),
            None => Err(format!("bad {what} {}", show(t))),
        };
        let parsed = tok(f[2], "message GUID").and_then(|guid| {
            let keywords = f[3..]
                .iter()
                .map(|k| tok(k, "keyword"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((guid, keywords))
        });
        let (guid, keywords) = match parsed {
            Ok(v) => v,
            Err(e) => return self.err(e),
        };
        Ok(BaseMessage {
            uid,
            guid,
            flags,
            keywords: keywords.into(),
        })
    }

    fn mailbox(&mut self, f: &[&[u8]]) -> Result<(MailboxName, BaseMailbox), StateError> {
        if f.len() < 6 {
            return self
                .err("mailbox line needs M <guid> <uidvalidity> <uidnext> <count> <name part>…");
        }
        let Some(guid) = parse_guid(f[1]) else {
            return self.err(format!("bad mailbox GUID {}", show(f[1])));
        };
        let uidvalidity = self.num(f[2], "UIDVALIDITY")?;
        let uidnext = self.num(f[3], "UIDNEXT")?;
        let count = self.num(f[4], "message count")? as usize;
        let name = f[5..]
            .iter()
            .map(|p| parse_token(p))
            .collect::<Option<Vec<String>>>()
            .and_then(MailboxName::from_parts);
        let Some(name) = name else {
            return self.err(format!("bad mailbox name {}", show(&f[5..].join(&b' '))));
        };
        // Never trust a count for an allocation larger than the file.
        let mut messages = Vec::with_capacity(count.min(self.rest.len() / 6));
        let mut prev: Uid = 0;
        for _ in 0..count {
            let m = self.message()?;
            if m.uid <= prev {
                return self.err(format!("UIDs not ascending ({} after {prev})", m.uid));
            }
            if m.uid >= uidnext {
                return self.err(format!("UID {} is not below UIDNEXT {uidnext}", m.uid));
            }
            prev = m.uid;
            messages.push(m);
        }
        Ok((
            name,
            BaseMailbox {
                guid,
                uidvalidity,
                uidnext,
                messages,
            },
        ))
    }
}

fn random_hex() -> Result<String> {
    Ok(MailboxGuid::generate()
        .context("reading random bytes from /dev/urandom")?
        .to_hex())
}

fn is_store_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// Writes a new temporary file beside `dir/<name>` with `fill` and
/// flushes it; returns its path. On any failure it is removed.
fn write_temp(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<PathBuf> {
    let mut fill = Some(fill);
    let mut n = 0u32;
    loop {
        let tmp = dir.join(format!("{name}.tmp.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(mut f) => {
                let fill = fill.take().expect("the file is filled once");
                let r = fill(&mut f).and_then(|_| Ok(f.sync_all()?));
                if let Err(e) = r {
                    let _ = fs::remove_file(&tmp);
                    return Err(e).with_context(|| format!("writing {}", tmp.display()));
                }
                return Ok(tmp);
            }
            // Left behind by a crashed run with our PID.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e).with_context(|| format!("creating {}", tmp.display())),
        }
    }
}

/// The store's permanent ID (32 hex digits) from `root/dsync-store-id`,
/// created on first use. Creation is atomic and race-free: the new ID is
/// written to a temporary file and hard-linked into place, so of two
/// concurrent first runs one ID wins and both return it.
pub fn store_id(root: &Path) -> Result<String> {
    let path = root.join(STORE_ID_FILE);
    let read = |path: &Path| -> Result<Option<String>> {
        match fs::read(path) {
            Ok(d) => {
                let s = String::from_utf8_lossy(&d);
                let id = s.strip_suffix('\n').unwrap_or(&s);
                if !is_store_id(id) {
                    bail!(
                        "{} is damaged (it must hold 32 lowercase hex digits, it holds {}); \
                         remove it and dsync will make a new store ID (the next sync with \
                         each peer then merges without deleting anything)",
                        path.display(),
                        show(&d)
                    );
                }
                Ok(Some(id.to_string()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let id = random_hex()?;
    let tmp = write_temp(root, STORE_ID_FILE, |f| {
        Ok(f.write_all(format!("{id}\n").as_bytes())?)
    })?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fsync_dir(root)?;
            Ok(id)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| anyhow!("{} vanished while it was created", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Where the state for `peer` lives under `control_root`.
pub fn state_path(control_root: &Path, peer: &str) -> Result<PathBuf> {
    if !is_store_id(peer) {
        bail!("peer store ID {peer:?} is not 32 lowercase hex digits");
    }
    Ok(control_root.join(format!("{STATE_PREFIX}{peer}")))
}

/// The journal beside the state file for `peer` (see [`journal`]).
pub fn journal_path(control_root: &Path, peer: &str) -> Result<PathBuf> {
    let mut p = state_path(control_root, peer)?.into_os_string();
    p.push(journal::SUFFIX);
    Ok(PathBuf::from(p))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The state shared with `peer`: `Ok(None)` when there is none (first
/// sync with it), `Err` when the file is damaged or unreadable. Either way
/// the caller has no base and must merge without expunging; an `Err` is
/// worth a warning, and the next successful run replaces the file. The
/// journal's complete entries that follow from the main file's token are
/// applied; a torn or stale tail is ignored.
pub fn load(control_root: &Path, peer: &str) -> Result<Option<SyncState>> {
    let path = state_path(control_root, peer)?;
    let Some(data) = read_optional(&path)? else {
        return Ok(None);
    };
    let damaged = "the sync state is damaged; syncing as if for the first time with this peer";
    let mut st = SyncState::parse(&data)
        .map_err(|e| anyhow!("{} {e}", path.display()))
        .context(damaged)?;
    drop(data);
    let jpath = journal_path(control_root, peer)?;
    if let Some(j) = read_optional(&jpath)? {
        journal::replay(&mut st, &j)
            .map_err(|e| anyhow!("{} {e}", jpath.display()))
            .context(damaged)?;
    }
    Ok(Some(st))
}

/// The token (`sync_id`) of the state shared with `peer`, from the file's
/// first line and the journal's entry framing only: enough to tell
/// whether the two sides hold the same state without reading the bases
/// (a run that reads no mailbox needs none). `Ok(None)` when there is no
/// state. A file damaged further on passes here; `load` finds that out.
pub fn peek_sync_id(control_root: &Path, peer: &str) -> Result<Option<String>> {
    let Some(main) = peek_main(control_root, peer)? else {
        return Ok(None);
    };
    let jpath = journal_path(control_root, peer)?;
    let j = read_optional(&jpath)?.unwrap_or_default();
    let last = journal::frames(&j, main.as_bytes())
        .last()
        .map(|f| String::from_utf8_lossy(f.new).into_owned());
    Ok(Some(last.unwrap_or(main)))
}

/// The main file's token (its first line).
fn peek_main(control_root: &Path, peer: &str) -> Result<Option<String>> {
    use std::io::Read;
    let path = state_path(control_root, peer)?;
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // The first line is the magic, the version and a token of at most 128
    // bytes.
    let mut head = vec![0u8; 256];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    let line = head[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default();
    let mut it = line.split(' ');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(MAGIC), Some(v), Some(id), None) if v == VERSION.to_string() && valid_token(id) => {
            Ok(Some(id.to_string()))
        }
        _ => bail!(
            "{} line 1: not a dsync-state {VERSION} header; syncing as if for the first time with this peer",
            path.display()
        ),
    }
}

/// Replaces the state shared with `peer`, durably: temporary file, fsync,
/// rename, fsync of the directory; then removes the journal, whose
/// entries no longer follow from the new token.
pub fn save(control_root: &Path, peer: &str, state: &SyncState) -> Result<()> {
    let path = state_path(control_root, peer)?;
    fs::create_dir_all(control_root)
        .with_context(|| format!("creating directory {}", control_root.display()))?;
    let name = format!("{STATE_PREFIX}{peer}");
    let tmp = write_temp(control_root, &name, |f| {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        state.write_to(&mut w)?;
        w.flush()?;
        Ok(())
    })?;
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()));
    }
    fsync_dir(control_root)?;
    let jpath = journal_path(control_root, peer)?;
    match fs::remove_file(&jpath) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        // Harmless: its entries start from an older token.
        Err(e) => {
            tracing::warn!("could not remove {}: {e}", jpath.display());
            Ok(())
        }
    }
}

/// Records `state`, which `change` made from the state under
/// `change.old_sync_id`: appended to the journal (and fdatasync'd) when
/// the files hold that state and the journal stays under a quarter of the
/// main file, else written whole by [`save`].
pub fn save_change(
    control_root: &Path,
    peer: &str,
    state: &SyncState,
    change: &journal::Change,
) -> Result<()> {
    save_change_within(control_root, peer, state, change, None)
}

/// [`save_change`] with the journal's size limit given (tests); `None`
/// is a quarter of the main file.
fn save_change_within(
    control_root: &Path,
    peer: &str,
    state: &SyncState,
    change: &journal::Change,
    budget: Option<usize>,
) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    if !valid_token(&state.sync_id) {
        return save(control_root, peer, state);
    }
    let path = state_path(control_root, peer)?;
    let main_len = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => return save(control_root, peer, state),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Ok(Some(main_token)) = peek_main(control_root, peer) else {
        return save(control_root, peer, state);
    };
    let jpath = journal_path(control_root, peer)?;
    let j = read_optional(&jpath)?.unwrap_or_default();
    let frames = journal::frames(&j, main_token.as_bytes());
    let (current, valid) = match frames.last() {
        Some(f) => (f.new, f.end),
        None => (main_token.as_bytes(), 0),
    };
    let budget = budget.unwrap_or((main_len / 4) as usize);
    if current != change.old_sync_id.as_bytes() || valid + journal::estimate(state, change) > budget
    {
        return save(control_root, peer, state);
    }
    let Some(entry) = journal::entry(state, change) else {
        return save(control_root, peer, state);
    };
    if valid + entry.len() > budget {
        return save(control_root, peer, state);
    }
    drop(j);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&jpath)
        .with_context(|| format!("opening {}", jpath.display()))?;
    let r = (|| -> std::io::Result<()> {
        // A torn or stale tail goes; the entries that hold stay.
        f.set_len(valid as u64)?;
        f.seek(SeekFrom::Start(valid as u64))?;
        f.write_all(&entry)?;
        f.sync_data()
    })();
    r.with_context(|| format!("appending to {}", jpath.display()))?;
    if valid == 0 {
        // The journal may be new: its name must be durable too.
        fsync_dir(control_root)?;
    }
    Ok(())
}

pub mod journal;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn peek_reads_the_token_of_the_first_line_only() {
        let d = tempfile::tempdir().unwrap();
        let peer = "0123456789abcdef0123456789abcdef";
        assert_eq!(peek_sync_id(d.path(), peer).unwrap(), None);
        let st = SyncState::new("a1b2".into());
        save(d.path(), peer, &st).unwrap();
        assert_eq!(
            peek_sync_id(d.path(), peer).unwrap().as_deref(),
            Some("a1b2")
        );
        fs::write(state_path(d.path(), peer).unwrap(), b"garbage\n").unwrap();
        assert!(peek_sync_id(d.path(), peer).is_err());
    }

    fn msg(uid: Uid, guid: &str, flags: Flags, kw: &[&str]) -> BaseMessage {
        BaseMessage {
            uid,
            guid: guid.into(),
            flags,
            keywords: kw.iter().map(|k| k.to_string()).collect::<Vec<_>>().into(),
        }
    }

    fn sample() -> SyncState {
        let mut st = SyncState::new("0123abcd".into());
        let name = MailboxName::from_parts(vec!["Ärger".into(), "a b".into()]).unwrap();
        st.insert(
            name,
            BaseMailbox {
                guid: MailboxGuid([0xab; 16]),
                uidvalidity: 1_700_000_000,
                uidnext: 10,
                messages: vec![
                    msg(1, "1.M2P3.host,S=5,W=6", Flags::SEEN, &[]),
                    msg(3, "", Flags::empty(), &["$Label1", "work"]),
                    msg(
                        9,
                        "a b%c\nä",
                        Flags::DRAFT.union(Flags::DELETED),
                        &["x y", ""],
                    ),
                ],
            },
        );
        st.insert(
            MailboxName::inbox(),
            BaseMailbox {
                guid: MailboxGuid([1; 16]),
                uidvalidity: 5,
                uidnext: 1,
                messages: vec![],
            },
        );
        st
    }

    #[test]
    fn format_is_as_documented() {
        let text = String::from_utf8(sample().to_bytes().unwrap()).unwrap();
        let want = format!(
            "dsync-state 1 0123abcd\n\
             M {} 5 1 0 INBOX\n\
             M {} 1700000000 10 3 %C3%84rger a%20b\n\
             1 S 1.M2P3.host,S=5,W=6\n\
             3 - % $Label1 work\n\
             9 DT a%20b%25c%0A%C3%A4 x%20y %\n\
             E 2\n",
            MailboxGuid([1; 16]).to_hex(),
            MailboxGuid([0xab; 16]).to_hex()
        );
        assert_eq!(text, want);
        assert_eq!(SyncState::parse(want.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn empty_state_round_trips() {
        let st = SyncState::new("x".into());
        let b = st.to_bytes().unwrap();
        assert_eq!(b, b"dsync-state 1 x\nE 0\n");
        assert_eq!(SyncState::parse(&b).unwrap(), st);
    }

    #[test]
    fn damage_is_an_error_with_a_line() {
        let good = String::from_utf8(sample().to_bytes().unwrap()).unwrap();
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 1, "end of file"),
            ("dsync-state 2 x\nE 0\n".into(), 1, "version 2"),
            ("dsync-stat 1 x\nE 0\n".into(), 1, "not a dsync state"),
            ("dsync-state 1 x/y\nE 0\n".into(), 1, "sync_id"),
            ("dsync-state 1 x\nE 1\n".into(), 2, "says 1"),
            ("dsync-state 1 x\nE 0\nM\n".into(), 3, "after the end"),
            ("dsync-state 1 x\nE 0".into(), 2, "no newline"),
            ("dsync-state 1 x\n".into(), 2, "end of file"),
            ("dsync-state 1 x\n\nE 0\n".into(), 2, "empty line"),
            (good.replace("\n3 - %", "\n3 -  %"), 5, "empty field"),
            (good.replace("\n3 - ", "\n1 - "), 5, "not ascending"),
            (good.replace("\n9 DT", "\n10 DT"), 6, "not below UIDNEXT"),
            (good.replace("\n9 DT", "\n9 DX"), 6, "bad flags"),
            (good.replace("%C3%A4", "%C3"), 6, "message GUID"),
            (good.replace("%C3%A4", "%C"), 6, "message GUID"),
            (good.replace(" x%20y", " x%2"), 6, "keyword"),
            (good.replace(" x%20y", " x\ty"), 6, "keyword"),
            (good.replace("work\n", "work\r\n"), 5, "keyword"),
            (good.replace(" 10 3 ", " 10 4 "), 7, "message line"),
            (good.replace(" 10 3 ", " 10 2 "), 6, "expected a mailbox"),
            (good.replace("1700000000", "17000000000"), 3, "UIDVALIDITY"),
            (good.replace("M abab", "M xbab"), 3, "mailbox GUID"),
            (good.replace(" 0 INBOX", " 0"), 2, "name part"),
            (good.replace(" a%20b", " a%20b %"), 3, "bad mailbox name"),
            (good.replace("\n1 S", "\n1"), 4, "message line needs"),
        ];
        for (text, line, what) in cases {
            let e = SyncState::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.msg.contains(what), "{text:?}: {e}");
        }
        let m = format!("M {} 1 2 0 x\n", MailboxGuid([1; 16]).to_hex());
        let twice = format!("dsync-state 1 x\n{m}{m}E 2\n");
        let e = SyncState::parse(twice.as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("twice"), "{e}");
    }

    #[test]
    fn unwritable_states_are_refused() {
        let mut st = sample();
        st.sync_id = "has space".into();
        assert!(st.to_bytes().is_err());
        let big = MailboxGuid([0xab; 16]);
        let mut st = sample();
        st.mailboxes.get_mut(&big).unwrap().1.messages.reverse();
        assert!(st.to_bytes().unwrap_err().to_string().contains("ascending"));
        let mut st = sample();
        st.mailboxes.get_mut(&big).unwrap().1.uidnext = 9;
        assert!(st.to_bytes().unwrap_err().to_string().contains("UIDNEXT"));
    }

    #[test]
    fn store_id_is_made_once() {
        let d = tempfile::tempdir().unwrap();
        let a = store_id(d.path()).unwrap();
        assert!(is_store_id(&a), "{a}");
        assert_eq!(store_id(d.path()).unwrap(), a);
        assert_eq!(
            fs::read_to_string(d.path().join(STORE_ID_FILE)).unwrap(),
            format!("{a}\n")
        );
        // Nothing else is left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        let e = tempfile::tempdir().unwrap();
        assert_ne!(store_id(e.path()).unwrap(), a);
        fs::write(d.path().join(STORE_ID_FILE), "nonsense\n").unwrap();
        let err = store_id(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("damaged") && err.contains(STORE_ID_FILE),
            "{err}"
        );
    }

    #[test]
    fn concurrent_first_use_agrees() {
        let d = tempfile::tempdir().unwrap();
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| store_id(d.path()).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn save_and_load() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ctl");
        let peer = store_id(d.path()).unwrap();
        assert_eq!(load(&root, &peer).unwrap(), None);
        save(&root, &peer, &sample()).unwrap();
        assert_eq!(load(&root, &peer).unwrap(), Some(sample()));
        let mut st = sample();
        st.sync_id = SyncState::generate_sync_id().unwrap();
        save(&root, &peer, &st).unwrap();
        assert_eq!(load(&root, &peer).unwrap(), Some(st));
        let names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![format!("dsync-state.{peer}")]);
        // A bad peer ID never becomes a path.
        assert!(load(&root, "../x").is_err());
        assert!(save(&root, "ABC", &sample()).is_err());
        // A truncated file is an error naming the file, not an empty base.
        let p = state_path(&root, &peer).unwrap();
        let data = fs::read(&p).unwrap();
        fs::write(&p, &data[..data.len() - 4]).unwrap();
        let e = format!("{:#}", load(&root, &peer).unwrap_err());
        assert!(
            e.contains(&p.display().to_string()) && e.contains("line"),
            "{e}"
        );
        // A failed save leaves the old file alone.
        fs::write(&p, &data).unwrap();
        let mut bad = sample();
        bad.sync_id.clear();
        assert!(save(&root, &peer, &bad).is_err());
        assert_eq!(fs::read(&p).unwrap(), data);
    }

    #[test]
    #[ignore = "timing; run with --ignored --release"]
    fn two_hundred_thousand_messages_load_fast() {
        let mut st = SyncState::new("t".into());
        let messages = (1..=200_000u32)
            .map(|uid| BaseMessage {
                uid,
                guid: format!("17{uid:08}.M{uid}P12345.mail.example.org,S=4321,W=4400"),
                flags: Flags::SEEN,
                keywords: if uid % 10 == 0 {
                    vec!["$Label1".to_string()]
                } else {
                    vec![]
                }
                .into(),
            })
            .collect();
        st.insert(
            MailboxName::inbox(),
            BaseMailbox {
                guid: MailboxGuid([2; 16]),
                uidvalidity: 1,
                uidnext: 200_001,
                messages,
            },
        );
        let d = tempfile::tempdir().unwrap();
        let peer = "0".repeat(32);
        let t = std::time::Instant::now();
        save(d.path(), &peer, &st).unwrap();
        let saved = t.elapsed();
        let size = fs::metadata(state_path(d.path(), &peer).unwrap())
            .unwrap()
            .len();
        let t = std::time::Instant::now();
        let back = load(d.path(), &peer).unwrap().unwrap();
        let loaded = t.elapsed();
        assert_eq!(back, st);
        eprintln!(
            "200000 messages: {size} bytes ({} per message), save {saved:?}, load {loaded:?}",
            size / 200_000
        );
        assert!(loaded < std::time::Duration::from_secs(1));
    }

    /// 200,000 messages, then 20 runs changing 1,000 each: each appends
    /// about 1,000 lines instead of rewriting 13 MB, and the state with
    /// its journal loads about as fast as the main file alone.
    #[test]
    #[ignore = "timing; run with --ignored --release"]
    fn a_thousand_changes_append_to_the_journal() {
        use crate::brain::delta::BaseEdit;
        let guid = MailboxGuid([2; 16]);
        let mut st = SyncState::new("t0".into());
        let messages = (1..=200_000u32)
            .map(|uid| BaseMessage {
                uid,
                guid: format!("17{uid:08}.M{uid}P12345.mail.example.org,S=4321,W=4400"),
                flags: Flags::SEEN,
                keywords: Vec::<String>::new().into(),
            })
            .collect();
        st.insert(
            MailboxName::inbox(),
            BaseMailbox {
                guid,
                uidvalidity: 1,
                uidnext: 200_001,
                messages,
            },
        );
        let d = tempfile::tempdir().unwrap();
        let peer = "0".repeat(32);
        save(d.path(), &peer, &st).unwrap();
        let main = fs::metadata(state_path(d.path(), &peer).unwrap()).unwrap();
        for run in 1..=20u32 {
            let old = st.sync_id.clone();
            st.sync_id = format!("t{run}");
            let base = &mut st.mailboxes.get_mut(&guid).unwrap().1;
            let mut edit = BaseEdit::default();
            for i in 0..1000u32 {
                let uid = 1 + (run * 7919 + i * 197) % 200_000;
                if let Ok(k) = base.messages.binary_search_by_key(&uid, |m| m.uid) {
                    base.messages[k].flags = Flags::from_bits((run % 16) as u8).unwrap();
                    edit.set.push(base.messages[k].clone());
                }
            }
            let change = journal::Change {
                old_sync_id: &old,
                mailboxes: vec![(guid, journal::BoxChange::Edit(&edit))],
                dropped: vec![],
            };
            let t = std::time::Instant::now();
            save_change(d.path(), &peer, &st, &change).unwrap();
            if run == 1 {
                eprintln!("a run of 1000 changes saved in {:?}", t.elapsed());
            }
        }
        let after = fs::metadata(state_path(d.path(), &peer).unwrap()).unwrap();
        assert_eq!(after.modified().unwrap(), main.modified().unwrap());
        let log = fs::metadata(journal_path(d.path(), &peer).unwrap())
            .unwrap()
            .len();
        let t = std::time::Instant::now();
        let back = load(d.path(), &peer).unwrap().unwrap();
        let loaded = t.elapsed();
        assert_eq!(back, st);
        eprintln!(
            "main {} bytes, journal after 20 x 1000 changes {log} bytes ({} per change), load {loaded:?}",
            main.len(),
            log / 20_000
        );
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,12}",
            ".{0,6}",
            "[0-9]{10}\\.M[0-9]{6}P[0-9]{4}\\.[a-z]{4},S=[0-9]{3},W=[0-9]{3}",
        ]
    }

    fn any_mailbox() -> impl Strategy<Value = (MailboxName, BaseMailbox)> {
        (
            prop::collection::vec(".{1,5}", 1..4),
            any::<[u8; 16]>(),
            any::<u32>(),
            prop::collection::btree_map(
                1u32..1000,
                (
                    any_string(),
                    0u8..32,
                    prop::collection::vec(any_string(), 0..3),
                ),
                0..8,
            ),
            0u32..5,
        )
            .prop_map(|(name, g, uv, msgs, extra)| {
                let uidnext = msgs.keys().last().map_or(1, |u| u + 1) + extra;
                let base = BaseMailbox {
                    guid: MailboxGuid(g),
                    uidvalidity: uv,
                    uidnext,
                    messages: msgs
                        .into_iter()
                        .map(|(uid, (guid, f, keywords))| BaseMessage {
                            uid,
                            guid,
                            flags: Flags::from_bits(f).unwrap(),
                            keywords: keywords.into(),
                        })
                        .collect(),
                };
                (MailboxName::from_parts(name).unwrap(), base)
            })
    }

    proptest! {
        #[test]
        fn round_trip(
            sync_id in "[A-Za-z0-9_-]{1,40}",
            mbs in prop::collection::vec(any_mailbox(), 0..4),
        ) {
            let mut st = SyncState::new(sync_id);
            for (name, m) in mbs {
                st.insert(name, m);
            }
            let bytes = st.to_bytes().unwrap();
            prop_assert!(bytes.is_ascii());
            let back = SyncState::parse(&bytes).unwrap();
            prop_assert_eq!(&back, &st);
            // Any cut, anywhere, is noticed.
            for cut in 0..bytes.len() {
                prop_assert!(SyncState::parse(&bytes[..cut]).is_err(), "cut at {}", cut);
            }
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = SyncState::parse(&data);
        }
    }
}
