//! Real Dovecot as the judge: starts `/usr/lib/dovecot/imap` preauthenticated
//! on stdin/stdout for one mail location and talks IMAP to it.
//!
//! Dovecot refuses to run as root, and tests run as root in CI, so the
//! server runs as `nobody` with the location's tree chowned to it for the
//! session; the original owners are put back when the session ends (files
//! Dovecot created go to the owner of the location's root).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mutf7;
#[allow(unused_imports)]
pub use super::snapshot::{assert_same, diff, snapshot, MailSnapshot, MailboxState, MessageState};

/// Dovecot's IMAP server; env `DSYNC_TEST_DOVECOT_IMAP` overrides the path.
pub fn imap_binary() -> String {
    std::env::var("DSYNC_TEST_DOVECOT_IMAP").unwrap_or_else(|_| "/usr/lib/dovecot/imap".into())
}

/// Dovecot's POP3 server (optional): its path beside the IMAP server's.
pub fn pop3_binary() -> String {
    let imap = imap_binary();
    match imap.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/pop3"),
        None => "pop3".into(),
    }
}

/// A session that takes longer than this is considered hung and killed.
const SESSION_DEADLINE: Duration = Duration::from_secs(600);

/// True when Dovecot's IMAP server is installed. When it is not, prints a
/// loud SKIPPING line and returns false so the caller can return early; on
/// CI (env `CI` set) it panics instead, because CI must run these tests.
pub fn dovecot_available(context: &str) -> bool {
    let imap = imap_binary();
    if Path::new(&imap).exists() {
        return true;
    }
    // libtest names the thread after the test.
    let test = std::thread::current().name().unwrap_or(context).to_string();
    let why = format!("{imap} is missing; `apt-get install dovecot-imapd`");
    if std::env::var_os("CI").is_some() {
        panic!("{test}: dovecot-imapd is required on CI: {why}");
    }
    // Straight to the process's stderr: eprintln! would be captured and
    // shown only for failing tests, and a skip must not go unnoticed.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPING {test}: dovecot-imapd not installed ({why})"
    );
    false
}

/// Returns from the calling test when Dovecot is not installed (see
/// [`dovecot_available`]).
#[macro_export]
macro_rules! require_dovecot {
    () => {
        if !$crate::common::imap::dovecot_available(module_path!()) {
            return;
        }
    };
}

/// The filesystem paths a mail location string names (its root and any
/// `INBOX=`, `INDEX=`, `CONTROL=` directories), which the server must own.
pub fn location_paths(location: &str) -> Vec<PathBuf> {
    let rest = location.split_once(':').map(|(_, r)| r).unwrap_or(location);
    let mut parts = rest.split(':');
    let mut paths = vec![PathBuf::from(parts.next().unwrap_or(""))];
    for p in parts {
        if let Some((key, value)) = p.split_once('=') {
            if matches!(key, "INBOX" | "INDEX" | "CONTROL" | "VOLATILEDIR") {
                paths.push(PathBuf::from(value));
            }
        }
    }
    paths.retain(|p| p.is_absolute());
    paths
}

/// Who the server runs as: `nobody` when we are root, ourselves otherwise.
fn server_identity() -> (u32, u32, String) {
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        let user = std::env::var("USER").unwrap_or_else(|_| format!("uid{euid}"));
        return (euid, unsafe { libc::getegid() }, user);
    }
    let name = std::ffi::CString::new("nobody").unwrap();
    // SAFETY: getpwnam returns a pointer into static storage or null; the
    // fields are copied out at once and tests do not call it concurrently
    // with anything that cares.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        (65534, 65534, "nobody".into())
    } else {
        unsafe { ((*pw).pw_uid, (*pw).pw_gid, "nobody".into()) }
    }
}

/// Hands a set of trees to the server's user and gives them back on drop.
struct Ownership {
    saved: HashMap<PathBuf, (u32, u32)>,
    roots: Vec<(PathBuf, (u32, u32))>,
    active: bool,
}

impl Ownership {
    fn take(paths: &[PathBuf], uid: u32, gid: u32) -> Result<Ownership> {
        let mut o = Ownership {
            saved: HashMap::new(),
            roots: Vec::new(),
            active: unsafe { libc::geteuid() } == 0,
        };
        if !o.active {
            return Ok(o);
        }
        for root in paths {
            let Ok(meta) = std::fs::symlink_metadata(root) else {
                continue;
            };
            o.roots.push((root.clone(), (meta.uid(), meta.gid())));
            make_ancestors_traversable(root)?;
            walk(root, &mut |p, m| {
                o.saved.insert(p.to_path_buf(), (m.uid(), m.gid()));
                std::os::unix::fs::lchown(p, Some(uid), Some(gid))
                    .with_context(|| format!("chown {} to the Dovecot user", p.display()))
            })?;
        }
        Ok(o)
    }

    fn restore(&mut self) {
        if !self.active {
            return;
        }
        self.active = false;
        for (root, owner) in &self.roots {
            let _ = walk(root, &mut |p, _| {
                let (u, g) = self.saved.get(p).copied().unwrap_or(*owner);
                let _ = std::os::unix::fs::lchown(p, Some(u), Some(g));
                Ok(())
            });
        }
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Calls `f` for `root` and everything below it (symlinks not followed).
pub fn walk(root: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata) -> Result<()>) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(root).with_context(|| format!("stat {}", root.display()))?;
    f(root, &meta)?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(root)
            .with_context(|| format!("readdir {}", root.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            walk(&e.path(), f)?;
        }
    }
    Ok(())
}

/// `nobody` must be able to reach the tree: temp dirs are created 0700.
fn make_ancestors_traversable(path: &Path) -> Result<()> {
    for anc in path.ancestors().skip(1) {
        if anc.as_os_str().is_empty() || anc == Path::new("/") {
            continue;
        }
        let meta = std::fs::metadata(anc)?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(anc, std::fs::Permissions::from_mode(mode | 0o011))
                .with_context(|| format!("chmod o+x {}", anc.display()))?;
        }
    }
    Ok(())
}

/// The server's private config directory and its file.
fn write_server_config(location: &str, uid: u32, gid: u32) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("dovecot-judge-")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let conf = format!(
        "# written by the dsync test harness\n\
         mail_location = {location}\n\
         mail_uid = {uid}\n\
         mail_gid = {gid}\n\
         first_valid_uid = 0\n\
         first_valid_gid = 0\n\
         ssl = no\n\
         log_path = /dev/stderr\n\
         base_dir = {base}/run\n\
         pop3_uidl_format = %08Xu%08Xv\n\
         namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n",
        base = dir.path().display()
    );
    let path = dir.path().join("dovecot.conf");
    std::fs::write(&path, conf)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(dir)
}

/// A running Dovecot process (IMAP or POP3) with its stderr collected.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: BufReader<ChildStdout>,
    log: Arc<Mutex<Vec<u8>>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
    done: Arc<AtomicBool>,
    _conf: tempfile::TempDir,
    ownership: Ownership,
}

impl Server {
    fn start(binary: &str, location: &str) -> Result<Server> {
        let (uid, gid, user) = server_identity();
        let paths = location_paths(location);
        if let Some(root) = paths.first() {
            if !root.exists() {
                bail!(
                    "mail location {location}: {} does not exist",
                    root.display()
                );
            }
        }
        let conf = write_server_config(location, uid, gid)?;
        let ownership = Ownership::take(&paths, uid, gid)?;
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(binary);
            c
        } else {
            Command::new(binary)
        };
        cmd.arg("-c")
            .arg(conf.path().join("dovecot.conf"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("USER", &user)
            .env("HOME", conf.path())
            .env("TZ", "UTC")
            .env("LANG", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {binary}"))?;
        let stdin = child.stdin.take().unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let log_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        // A hung server would hang the test forever: kill our own child
        // (by its pid) after the deadline.
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done2.load(Ordering::Relaxed) {
                if start.elapsed() > SESSION_DEADLINE {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Server {
            child,
            stdin: Some(stdin),
            reader,
            log,
            log_reader: Some(log_reader),
            done,
            _conf: conf,
            ownership,
        })
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The whole log of a server that has stopped talking: waits briefly
    /// for it to exit (killing it otherwise) and for its stderr to drain.
    fn log_after_exit(&mut self) -> String {
        self.stdin.take();
        let start = Instant::now();
        while let Ok(None) = self.child.try_wait() {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.log_reader.take() {
            let _ = h.join();
        }
        self.log()
    }

    /// Waits for the process to exit, gives the tree back, returns the log.
    fn finish(mut self) -> Result<String> {
        // EOF on stdin ends a session that did not log out.
        self.stdin.take();
        let status = self.child.wait()?;
        let log = self.log_after_exit();
        self.ownership.restore();
        if !status.success() {
            bail!("Dovecot exited with {status}; log:\n{log}");
        }
        Ok(log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Relaxed) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.done.store(true, Ordering::Relaxed);
        }
        self.ownership.restore();
    }
}

/// One IMAP value as Dovecot sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Atom(String),
    /// A quoted string or a literal: bytes, not necessarily UTF-8.
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
}

impl Value {
    pub fn as_str(&self) -> Option<String> {
        match self {
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Atom(a) => Some(a.as_bytes()),
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Parses IMAP values (atoms, quoted strings, literals, lists, NIL) up to
/// the end of `b`. `b` holds one response as it came off the wire, literal
/// bodies included after their `{n}\r\n`.
pub fn parse_values(b: &[u8]) -> Result<Vec<Value>> {
    let mut pos = 0;
    let v = parse_seq(b, &mut pos, false)?;
    Ok(v)
}

fn parse_seq(b: &[u8], pos: &mut usize, in_list: bool) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        while *pos < b.len() && matches!(b[*pos], b' ' | b'\r' | b'\n') {
            *pos += 1;
        }
        if *pos >= b.len() {
            if in_list {
                bail!("unterminated list");
            }
            return Ok(out);
        }
        match b[*pos] {
            b')' => {
                if !in_list {
                    bail!("unbalanced ')' at byte {}", *pos);
                }
                *pos += 1;
                return Ok(out);
            }
            b'(' => {
                *pos += 1;
                out.push(Value::List(parse_seq(b, pos, true)?));
            }
            b'"' => {
                *pos += 1;
                let mut s = Vec::new();
                loop {
                    let c = *b.get(*pos).context("unterminated quoted string")?;
                    *pos += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            s.push(*b.get(*pos).context("dangling backslash")?);
                            *pos += 1;
                        }
                        _ => s.push(c),
                    }
                }
                out.push(Value::Str(s));
            }
            b'{' | b'~' if literal_at(b, *pos).is_some() => {
                let (len, body_start) = literal_at(b, *pos).unwrap();
                let end = body_start + len;
                if end > b.len() {
                    bail!("literal of {len} bytes runs past the response");
                }
                out.push(Value::Str(b[body_start..end].to_vec()));
                *pos = end;
            }
            _ => {
                let start = *pos;
                while *pos < b.len() && !matches!(b[*pos], b' ' | b'(' | b')' | b'\r' | b'\n') {
                    if b[*pos] == b'[' {
                        // BODY[HEADER.FIELDS (A B)] is one atom.
                        let close = b[*pos..]
                            .iter()
                            .position(|&c| c == b']')
                            .context("unclosed '['")?;
                        *pos += close;
                    }
                    *pos += 1;
                }
                let atom = String::from_utf8_lossy(&b[start..*pos]).into_owned();
                if atom.eq_ignore_ascii_case("NIL") {
                    out.push(Value::Nil);
                } else {
                    out.push(Value::Atom(atom));
                }
            }
        }
    }
}

/// `{n}\r\n` (or `~{n}`, `{n+}`) at `pos`: the length and where the body starts.
fn literal_at(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut p = pos;
    if b.get(p) == Some(&b'~') {
        p += 1;
    }
    if b.get(p) != Some(&b'{') {
        return None;
    }
    let close = p + b[p..].iter().position(|&c| c == b'}')?;
    let digits = std::str::from_utf8(&b[p + 1..close])
        .ok()?
        .trim_end_matches('+');
    let len: usize = digits.parse().ok()?;
    if b.get(close + 1..close + 3) != Some(b"\r\n") {
        return None;
    }
    Some((len, close + 3))
}

/// Length of the literal announced at the end of a line ending in `{n}\r\n`.
fn trailing_literal(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&c| c == b'{')?;
    let digits = std::str::from_utf8(&line[open + 1..])
        .ok()?
        .trim_end_matches('+');
    digits.parse().ok()
}

/// Quotes a UTF-8 mailbox name (with `/` as separator) for the wire.
pub fn quote_mailbox(name: &str) -> String {
    quote(&mutf7::encode(name))
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// One response line with its literals, as received.
#[derive(Clone)]
pub struct Response(pub Vec<u8>);

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).trim_end().to_string()
    }
    /// The values after `* ` of an untagged response.
    pub fn untagged_values(&self) -> Result<Vec<Value>> {
        let rest = self
            .0
            .strip_prefix(b"* ")
            .context("not an untagged response")?;
        parse_values(rest).with_context(|| format!("parsing response {:?}", self.short()))
    }
    fn short(&self) -> String {
        let t = self.text();
        if t.len() > 200 {
            format!(
                "{}…",
                &t[..t.char_indices().nth(200).map(|(i, _)| i).unwrap_or(t.len())]
            )
        } else {
            t
        }
    }
}

/// The outcome of one tagged command.
pub struct Reply {
    pub untagged: Vec<Response>,
    /// The tagged line, e.g. `OK [APPENDUID 1 5] Append completed.`, tag removed.
    pub status: String,
}

/// An IMAP session with Dovecot, preauthenticated, on one mail location.
/// Mailbox names given to its methods are UTF-8 with `/` as separator.
pub struct Session {
    server: Option<Server>,
    tag: u64,
    pub greeting: String,
}

/// Opens an IMAP session on `location` (e.g. `maildir:/tmp/x/Maildir`).
/// Panics when Dovecot is missing or does not start; call
/// [`dovecot_available`] first to skip instead.
pub fn imap_session(location: &str) -> Session {
    Session::open(location).unwrap_or_else(|e| panic!("IMAP session on {location}: {e:#}"))
}

impl Session {
    pub fn open(location: &str) -> Result<Session> {
        let server = Server::start(&imap_binary(), location)?;
        let mut s = Session {
            server: Some(server),
            tag: 0,
            greeting: String::new(),
        };
        let g = s.read_response()?;
        s.greeting = g.text();
        if !s.greeting.starts_with("* PREAUTH") {
            bail!("unexpected greeting {:?}; log:\n{}", s.greeting, s.log());
        }
        Ok(s)
    }

    fn server(&mut self) -> &mut Server {
        self.server.as_mut().expect("session already finished")
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        self.server.as_ref().map(|s| s.log()).unwrap_or_default()
    }

    fn read_response(&mut self) -> Result<Response> {
        let server = self.server();
        let mut buf = Vec::new();
        loop {
            let start = buf.len();
            let n = server.reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                let log = server.log_after_exit();
                bail!("Dovecot closed the connection; log:\n{log}");
            }
            match trailing_literal(&buf[start..]) {
                Some(len) => {
                    let old = buf.len();
                    buf.resize(old + len, 0);
                    if let Err(e) = server.reader.read_exact(&mut buf[old..]) {
                        let log = server.log_after_exit();
                        bail!("reading a {len}-byte literal: {e}; Dovecot log:\n{log}");
                    }
                }
                None => return Ok(Response(buf)),
            }
        }
    }

    /// Sends one command (without tag and CRLF; it may contain `{n+}`
    /// literals) and collects its responses. A NO or BAD is an error.
    pub fn command(&mut self, command: &[u8]) -> Result<Reply> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut line = Vec::with_capacity(command.len() + 16);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        let stdin = self.server().stdin.as_mut().context("stdin closed")?;
        stdin.write_all(&line)?;
        stdin.flush()?;
        let mut untagged = Vec::new();
        loop {
            let r = self.read_response()?;
            if let Some(rest) = r.0.strip_prefix(format!("{tag} ").as_bytes()) {
                let status = String::from_utf8_lossy(rest).trim_end().to_string();
                if !status.starts_with("OK") {
                    let shown =
                        String::from_utf8_lossy(&command[..command.len().min(200)]).into_owned();
                    bail!(
                        "IMAP `{shown}` failed: {status}\nDovecot log:\n{}",
                        self.log()
                    );
                }
                return Ok(Reply { untagged, status });
            }
            if r.0.starts_with(b"+") {
                continue;
            }
            untagged.push(r);
        }
    }

    /// Sends a command; returns the untagged responses as text.
    pub fn cmd(&mut self, command: &str) -> Result<Vec<String>> {
        Ok(self
            .command(command.as_bytes())?
            .untagged
            .iter()
            .map(Response::text)
            .collect())
    }

    pub fn select(&mut self, mailbox: &str) -> Result<Vec<String>> {
        self.cmd(&format!("SELECT {}", quote_mailbox(mailbox)))
    }
    pub fn examine(&mut self, mailbox: &str) -> Result<Vec<String>> {
        self.cmd(&format!("EXAMINE {}", quote_mailbox(mailbox)))
    }
    pub fn create(&mut self, mailbox: &str) -> Result<()> {
        self.cmd(&format!("CREATE {}", quote_mailbox(mailbox)))
            .map(drop)
    }
    pub fn delete(&mut self, mailbox: &str) -> Result<()> {
        self.cmd(&format!("DELETE {}", quote_mailbox(mailbox)))
            .map(drop)
    }
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.cmd(&format!(
            "RENAME {} {}",
            quote_mailbox(from),
            quote_mailbox(to)
        ))
        .map(drop)
    }
    pub fn subscribe(&mut self, mailbox: &str) -> Result<()> {
        self.cmd(&format!("SUBSCRIBE {}", quote_mailbox(mailbox)))
            .map(drop)
    }
    pub fn unsubscribe(&mut self, mailbox: &str) -> Result<()> {
        self.cmd(&format!("UNSUBSCRIBE {}", quote_mailbox(mailbox)))
            .map(drop)
    }
    /// `UID STORE uids +FLAGS.SILENT (flags)` in the selected mailbox;
    /// `op` is `+FLAGS`, `-FLAGS` or `FLAGS`.
    pub fn store(&mut self, uids: &str, op: &str, flags: &[&str]) -> Result<()> {
        self.cmd(&format!(
            "UID STORE {uids} {op}.SILENT ({})",
            flags.join(" ")
        ))
        .map(drop)
    }
    /// Marks the UIDs \Deleted and expunges exactly them (UIDPLUS).
    pub fn expunge_uids(&mut self, uids: &str) -> Result<()> {
        self.store(uids, "+FLAGS", &["\\Deleted"])?;
        self.cmd(&format!("UID EXPUNGE {uids}")).map(drop)
    }
    /// `UID MOVE uids mailbox` from the selected mailbox.
    pub fn move_uids(&mut self, uids: &str, to: &str) -> Result<()> {
        self.cmd(&format!("UID MOVE {uids} {}", quote_mailbox(to)))
            .map(drop)
    }

    /// Appends a message; `date` is an IMAP date-time such as
    /// `"01-Jan-2020 10:00:00 +0000"`. Returns the new UID (APPENDUID).
    pub fn append(
        &mut self,
        mailbox: &str,
        flags: &[&str],
        date: Option<&str>,
        bytes: &[u8],
    ) -> Result<u32> {
        let mut c = format!("APPEND {} ({})", quote_mailbox(mailbox), flags.join(" ")).into_bytes();
        if let Some(d) = date {
            c.extend_from_slice(format!(" {}", quote(d)).as_bytes());
        }
        c.extend_from_slice(format!(" {{{}+}}\r\n", bytes.len()).as_bytes());
        c.extend_from_slice(bytes);
        let reply = self.command(&c)?;
        // OK [APPENDUID <uidvalidity> <uid>] ...
        let uid = reply
            .status
            .split_once("[APPENDUID ")
            .and_then(|(_, r)| r.split(']').next())
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok())
            .with_context(|| format!("no APPENDUID in {:?}", reply.status))?;
        Ok(uid)
    }

    /// Logs out and waits for the server; returns Dovecot's log.
    pub fn logout(mut self) -> Result<String> {
        self.command(b"LOGOUT")?;
        self.server.take().unwrap().finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Server's own Drop kills the process and gives the tree back.
        self.server.take();
    }
}

/// Lines of a Dovecot log that mean something went wrong.
pub fn log_problems(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            [": Error:", ": Fatal:", ": Panic:", ": Warning:"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect()
}

/// POP3 UIDLs (`UIDL` listing: message number and UIDL) of a Maildir's
/// INBOX, or `None` when dovecot-pop3d is not installed (it is optional)
/// or the location is not a Maildir.
///
/// A POP3 session opens INBOX read-write, and Dovecot then moves `new/`
/// to `cur/`: so it runs on a copy of INBOX, never on the tree under test.
pub fn pop3_uidls(location: &str) -> Option<Vec<(u32, String)>> {
    if !Path::new(&pop3_binary()).exists() || !location.starts_with("maildir:") {
        return None;
    }
    let run = || -> Result<Vec<(u32, String)>> {
        let root = location_paths(location)
            .into_iter()
            .next()
            .context("no Maildir root")?;
        let copy = tempfile::Builder::new().prefix("dovecot-pop3-").tempdir()?;
        std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755))?;
        let mut cp = Command::new("cp");
        cp.arg("-a");
        for e in std::fs::read_dir(&root)? {
            let e = e?;
            let name = e.file_name();
            let is_inbox_part = matches!(name.to_str(), Some("cur" | "new" | "tmp"))
                || (e.file_type()?.is_file() && name.to_string_lossy().starts_with("dovecot"));
            if is_inbox_part {
                cp.arg(e.path());
            }
        }
        // With CONTROL=, INBOX's UID list lives in the control directory
        // (`CONTROL/.INBOX/`, Maildir++): without it the copy would get
        // new UIDs and UIDVALIDITY, and so other UIDLs.
        if let Some(control) = location.split(':').find_map(|p| p.strip_prefix("CONTROL=")) {
            let dir = Path::new(control).join(".INBOX");
            if dir.is_dir() {
                for e in std::fs::read_dir(&dir)? {
                    let e = e?;
                    if e.file_name().to_string_lossy().starts_with("dovecot") {
                        cp.arg(e.path());
                    }
                }
            }
        }
        let st = cp.arg(copy.path()).status()?;
        if !st.success() {
            bail!("copying INBOX of {} for POP3 failed", root.display());
        }
        let copy_location = format!("maildir:{}", copy.path().display());
        let mut s = Server::start(&pop3_binary(), &copy_location)?;
        let stdin = s.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(b"UIDL\r\nQUIT\r\n")?;
        stdin.flush()?;
        // Preauthenticated POP3 sends no greeting: the first +OK is UIDL's.
        let mut out = Vec::new();
        let mut line = String::new();
        let mut state = 0; // 0: before UIDL's +OK, 1: in the listing, 2: after
        loop {
            line.clear();
            if s.reader.read_line(&mut line)? == 0 {
                break;
            }
            let l = line.trim_end();
            if l.starts_with("-ERR") {
                bail!("POP3 error {l:?}; log:\n{}", s.log());
            }
            match state {
                0 if l.starts_with("+OK") => state = 1,
                1 if l == "." => state = 2,
                1 => {
                    let (n, u) = l.split_once(' ').context("bad UIDL line")?;
                    out.push((n.parse()?, u.to_string()));
                }
                _ => {}
            }
        }
        let log = s.finish()?;
        let problems = log_problems(&log);
        if !problems.is_empty() {
            bail!("Dovecot's POP3 complained:\n  {}", problems.join("\n  "));
        }
        Ok(out)
    };
    Some(run().unwrap_or_else(|e| panic!("POP3 UIDL on {location}: {e:#}")))
}
