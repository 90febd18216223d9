//! The streaming mbox reader: finds every message's boundaries and reads
//! its metadata headers, holding one line (capped) at a time, never a
//! body, so a 2 GB mbox scans in constant memory.
//!
//! Boundaries are Dovecot's (istream-raw-mbox.c), so both agree on where
//! each message is:
//! - a message starts after a `From_` line (one `from_line::parse`
//!   accepts); the line break before the next `From_` line (LF, or CR LF)
//!   is the separator, not part of the message; so is the file's final
//!   line break;
//! - the first line of a message is never a separator;
//! - a valid `Content-Length` wins over a `From_` line inside the body
//!   (valid: body start + length lands on a separator or on the end);
//! - `>From ` lines (mboxo/mboxrd quoting) are message text: Dovecot
//!   serves them as they are, and so do we.
//!
//! Text before the first `From_` line is reported ([`Scanner::preamble`]),
//! not taken as a message; a file that ends mid-message (truncated) just
//! ends that message; a `Content-Length` pointing past the end is noted
//! in [`Message::truncated`].

use super::from_line::{self, FromLine};
use super::meta::{self, HeaderMd5, ImapBase};
use crate::model::Flags;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Longest line prefix kept (the rest of a longer line is counted, not
/// kept): enough for any `From_` line and metadata header.
const LINE_CAP: usize = 8 * 1024;
/// Longest header value kept for parsing (a longer one is cut).
const VALUE_CAP: usize = 64 * 1024;
const READ_BUF: usize = 256 * 1024;

/// What the metadata headers of one message say, raw (before Dovecot's
/// rules on which X-UID and X-IMAPbase count are applied).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawMeta {
    /// `X-IMAPbase` (or `X-IMAP`, then `pseudo`), if valid.
    pub base: Option<ImapBase>,
    /// The message is c-client's "FOLDER INTERNAL DATA" (it had `X-IMAP`).
    pub pseudo: bool,
    pub uid: Option<u32>,
    /// An X-UID came before the X-IMAPbase header (Dovecot ignores it in
    /// the first message).
    pub uid_before_base: bool,
    /// More than one X-UID header, or a malformed one.
    pub uid_dup: bool,
    pub flags: Flags,
    /// `Status:` had `O`: a mail program saw it (not \Recent).
    pub old: bool,
    pub keywords: Vec<String>,
    pub content_length: Option<u64>,
    /// Dovecot's GUID of the message: MD5 of some header values.
    pub md5: [u8; 16],
}

/// One message as it lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Where its `From_` line starts.
    pub from_offset: u64,
    /// The first byte after the `From_` line: the message starts here.
    pub hdr_offset: u64,
    /// The first body byte (after the empty line ending the header), or
    /// `end` when there is no body.
    pub body_offset: u64,
    /// One past the last byte of the message (the separator excluded).
    pub end: u64,
    /// Where the empty line ending the header starts, if there is one.
    pub eoh: Option<u64>,
    pub from: FromLine,
    pub meta: RawMeta,
    /// Bytes of hidden header lines (Dovecot's metadata) in the header:
    /// the message a client sees is `end - hdr_offset - hidden_len` bytes.
    pub hidden_len: u64,
    /// `Content-Length` points past the end of the file.
    pub truncated: bool,
}

impl Message {
    /// The size a client sees: the message without the hidden headers.
    pub fn visible_size(&self) -> u64 {
        self.end - self.hdr_offset - self.hidden_len
    }
}

#[derive(Default)]
struct Line {
    start: u64,
    /// Full length, line break included.
    len: u64,
    /// The first `LINE_CAP` bytes.
    head: Vec<u8>,
    lf: bool,
    /// Ends in CR LF.
    crlf: bool,
}

impl Line {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    fn is_blank(&self) -> bool {
        self.head == b"\n" || self.head == b"\r\n"
    }

    /// The line without its line break (as far as kept).
    fn text(&self) -> &[u8] {
        let mut t = &self.head[..];
        if self.lf && t.last() == Some(&b'\n') {
            t = &t[..t.len() - 1];
            if t.last() == Some(&b'\r') {
                t = &t[..t.len() - 1];
            }
        }
        t
    }

    fn as_from_line(&self) -> Option<FromLine> {
        let t = self.text();
        if !t.starts_with(b"From ") {
            return None;
        }
        // A line longer than we keep is judged by its start, as Dovecot
        // does with a From_ line longer than its buffer.
        from_line::parse(&t[5..])
    }
}

/// Reads a file through a shared reference at its own position, so no
/// second descriptor is opened: closing one would release this process's
/// fcntl locks on the file.
pub struct PosReader<'a> {
    pub file: &'a File,
    pub pos: u64,
    pub end: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads an mbox file message by message.
pub struct Scanner<'a> {
    path: PathBuf,
    file: &'a File,
    reader: BufReader<PosReader<'a>>,
    pos: u64,
    len: u64,
    line: Line,
    /// A `From_` line read while ending the previous message.
    pending: Option<(u64, u64, FromLine)>,
    started: bool,
    preamble: Option<(u64, u64)>,
    done: bool,
}

impl<'a> Scanner<'a> {
    /// Scans `file` from its start; `path` is for messages only.
    pub fn new(path: &Path, file: &'a File) -> Result<Scanner<'a>> {
        let len = file
            .metadata()
            .with_context(|| format!("stat of {}", path.display()))?
            .len();
        let reader = BufReader::with_capacity(
            READ_BUF,
            PosReader {
                file,
                pos: 0,
                end: len,
            },
        );
        Ok(Scanner {
            path: path.to_path_buf(),
            file,
            reader,
            pos: 0,
            len,
            line: Line::default(),
            pending: None,
            started: false,
            preamble: None,
            done: false,
        })
    }

    /// The file size when the scan began.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Text before the first `From_` line other than blank lines:
    /// `(offset, length)`. Known once the first message was read.
    pub fn preamble(&self) -> Option<(u64, u64)> {
        self.preamble
    }

    fn err_ctx(&self) -> String {
        format!("reading {} at byte {}", self.path.display(), self.pos)
    }

    /// Reads the next line into `self.line`; false at the end. Stops at
    /// the length seen when the scan began (a delivery appending meanwhile
    /// is for the next scan).
    fn next_line(&mut self) -> Result<bool> {
        let l = &mut self.line;
        l.head.clear();
        l.start = self.pos;
        l.len = 0;
        l.lf = false;
        l.crlf = false;
        let mut last2 = [0u8; 2];
        while self.pos + l.len < self.len {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let ctx = format!("reading {} at byte {}", self.path.display(), self.pos);
                    return Err(e).context(ctx);
                }
            };
            if buf.is_empty() {
                break;
            }
            let room = (self.len - self.pos - l.len).min(buf.len() as u64) as usize;
            let buf = &buf[..room];
            let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let keep = n.min(LINE_CAP.saturating_sub(l.head.len()));
            l.head.extend_from_slice(&buf[..keep]);
            if n >= 2 {
                last2 = [buf[n - 2], buf[n - 1]];
            } else {
                last2 = [last2[1], buf[0]];
            }
            self.reader.consume(n);
            l.len += n as u64;
            if found {
                l.lf = true;
                l.crlf = last2[0] == b'\r';
                break;
            }
        }
        self.pos += l.len;
        Ok(l.len > 0)
    }

    /// Whether a separator (or the end) is at `off`: `\n` or `\r\n` then
    /// the end of the file, or then a valid `From_` line.
    fn separator_at(&self, off: u64) -> Result<bool> {
        let mut buf = vec![0u8; LINE_CAP + 8];
        let want = ((self.len.saturating_sub(off)) as usize).min(buf.len());
        let mut got = 0;
        while got < want {
            let n = self
                .file
                .read_at(&mut buf[got..want], off + got as u64)
                .with_context(|| format!("reading {} at byte {off}", self.path.display()))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let b = &buf[..got];
        let rest = self.len - off;
        if (rest == 1 && b == b"\n") || (rest == 2 && b == b"\r\n") {
            return Ok(true);
        }
        let line = if let Some(r) = b.strip_prefix(b"\nFrom ") {
            r
        } else if let Some(r) = b.strip_prefix(b"\r\nFrom ") {
            r
        } else {
            return Ok(false);
        };
        let end = line.iter().position(|&c| c == b'\n').unwrap_or(line.len());
        let mut l = &line[..end];
        if l.last() == Some(&b'\r') {
            l = &l[..l.len() - 1];
        }
        Ok(from_line::parse(l).is_some())
    }

    /// The next message, or `None` at the end of the file.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        if self.done {
            return Ok(None);
        }
        let (from_offset, hdr_offset, from) = match self.pending.take() {
            Some(p) => p,
            None => {
                // Start of file: skip blank lines, note any other text.
                let mut found = None;
                while self.next_line()? {
                    if let Some(f) = self.line.as_from_line() {
                        found = Some((self.line.start, self.line.end(), f));
                        break;
                    }
                    if !self.line.head.iter().all(|b| b.is_ascii_whitespace()) {
                        let start = self.preamble.map_or(self.line.start, |p| p.0);
                        self.preamble = Some((start, self.line.end() - start));
                    } else if let Some(p) = &mut self.preamble {
                        p.1 = self.line.end() - p.0;
                    }
                }
                self.started = true;
                match found {
                    Some(f) => f,
                    None => {
                        self.done = true;
                        return Ok(None);
                    }
                }
            }
        };
        let mut msg = Message {
            from_offset,
            hdr_offset,
            body_offset: u64::MAX,
            end: 0,
            eoh: None,
            from,
            meta: RawMeta::default(),
            hidden_len: 0,
            truncated: false,
        };
        let mut md5 = HeaderMd5::default();
        // The header being read: its name, whether hidden, its value.
        let mut cur_name: Vec<u8> = Vec::new();
        let mut cur_hidden = false;
        let mut cur_value: Vec<u8> = Vec::new();
        let mut in_header = true;
        let mut prev_crlf = false;
        // Where the last hidden header line ended.
        let mut hidden_end = 0u64;
        // Separators before this offset are body (Content-Length said so).
        let mut guard = 0u64;
        let ended_by;
        loop {
            if !self.next_line()? {
                ended_by = None;
                break;
            }
            let first = self.line.start == hdr_offset;
            if !first && self.line.start >= guard {
                if let Some(f) = self.line.as_from_line() {
                    let l = self.line.start;
                    let mut e = l - 1;
                    if prev_crlf && l >= hdr_offset + 2 {
                        e = l - 2;
                    }
                    let body = msg.body_offset;
                    if let (Some(cl), false) = (msg.meta.content_length, in_header) {
                        let x = body.saturating_add(cl);
                        if x > e && x + 1 != l {
                            // The body may go on past this From_ line:
                            // it does if a separator is where the length
                            // says the body ends.
                            if x >= l && self.separator_at(x)? {
                                guard = x + 1;
                                prev_crlf = self.line.crlf;
                                continue;
                            }
                        } else if x > e {
                            // The length ends just before this separator's
                            // LF (a body ending in CR keeps it).
                            e = x;
                        }
                    }
                    msg.end = e;
                    ended_by = Some(f);
                    break;
                }
            }
            prev_crlf = self.line.crlf;
            if !in_header {
                continue;
            }
            if self.line.is_blank() {
                self.finish_header(&mut msg, &mut md5, &cur_name, cur_hidden, &cur_value);
                cur_name.clear();
                msg.body_offset = self.line.end();
                msg.eoh = Some(self.line.start);
                in_header = false;
                continue;
            }
            let text = self.line.text();
            let continuation = matches!(text.first(), Some(b' ' | b'\t')) && !cur_name.is_empty();
            if continuation {
                md5.value(&cur_name, text);
                if cur_hidden {
                    msg.hidden_len += self.line.len;
                    hidden_end = self.line.end();
                    if cur_value.len() < VALUE_CAP {
                        cur_value.push(b'\n');
                        cur_value.extend_from_slice(text);
                    }
                }
                continue;
            }
            let (name, value) = split_header(text);
            let (name, value) = (name.to_vec(), value.to_vec());
            self.finish_header(&mut msg, &mut md5, &cur_name, cur_hidden, &cur_value);
            cur_name = name;
            cur_hidden = !cur_name.is_empty() && meta::is_hidden(&cur_name);
            cur_value = value;
            if cur_hidden {
                msg.hidden_len += self.line.len;
                hidden_end = self.line.end();
            } else {
                md5.value(&cur_name, &cur_value);
            }
            if cur_name.is_empty() {
                // A line without a colon ends any header before it and
                // folds nothing into the next.
                cur_value.clear();
            }
        }
        if in_header {
            self.finish_header(&mut msg, &mut md5, &cur_name, cur_hidden, &cur_value);
        }
        match ended_by {
            Some(f) => {
                self.pending = Some((self.line.start, self.line.end(), f));
            }
            None => {
                // End of file: its final line break is the separator.
                // NUL bytes after it are space Dovecot added for an
                // in-place rewrite it did not finish, not mail.
                let mut e = self.trailing_nuls_start(hdr_offset)?;
                if e > hdr_offset && self.last_byte_is(e - 1, b'\n')? {
                    e -= 1;
                    if e > hdr_offset && self.last_byte_is(e - 1, b'\r')? {
                        e -= 1;
                    }
                }
                let body = msg.body_offset;
                if let Some(cl) = msg.meta.content_length {
                    let x = body.saturating_add(cl);
                    if !in_header && x > e {
                        if (x + 1 == self.len && self.last_byte_is(x, b'\n')?)
                            || (x + 2 == self.len
                                && self.last_byte_is(x, b'\r')?
                                && self.last_byte_is(x + 1, b'\n')?)
                        {
                            e = x;
                        } else if x > self.len {
                            msg.truncated = true;
                        }
                    }
                }
                msg.end = e;
                self.done = true;
            }
        }
        if hidden_end > msg.end {
            // The separator took that line's line break.
            msg.hidden_len -= hidden_end - msg.end;
        }
        if msg.body_offset > msg.end {
            // "headers\n\nFrom ...": that empty line was the separator.
            msg.body_offset = msg.end;
            msg.eoh = None;
        }
        msg.meta.md5 = md5.finish();
        Ok(Some(msg))
    }

    /// Where a run of NUL bytes ending the file starts, if a line break
    /// comes before it; else the end of the file.
    fn trailing_nuls_start(&self, floor: u64) -> Result<u64> {
        let mut at = self.len;
        let mut buf = vec![0u8; 64 * 1024];
        while at > floor {
            let n = ((at - floor) as usize).min(buf.len());
            self.file
                .read_exact_at(&mut buf[..n], at - n as u64)
                .with_context(|| self.err_ctx())?;
            match buf[..n].iter().rposition(|&b| b != 0) {
                Some(i) => {
                    let stop = at - n as u64 + i as u64;
                    return Ok(if buf[i] == b'\n' && stop + 1 < self.len {
                        stop + 1
                    } else {
                        self.len
                    });
                }
                None => at -= n as u64,
            }
        }
        Ok(self.len)
    }

    fn last_byte_is(&self, off: u64, want: u8) -> Result<bool> {
        let mut b = [0u8; 1];
        if off >= self.len {
            return Ok(false);
        }
        self.file
            .read_exact_at(&mut b, off)
            .with_context(|| self.err_ctx())?;
        Ok(b[0] == want)
    }

    fn finish_header(
        &self,
        msg: &mut Message,
        md5: &mut HeaderMd5,
        name: &[u8],
        hidden: bool,
        value: &[u8],
    ) {
        if name.is_empty() {
            return;
        }
        if !hidden {
            md5.end(name);
            return;
        }
        let is = |h: &str| h.as_bytes().eq_ignore_ascii_case(name);
        let m = &mut msg.meta;
        if is("X-IMAPbase") || is("X-IMAP") {
            if m.base.is_none() {
                if let Some(b) = meta::parse_imapbase(value) {
                    m.base = Some(b);
                    m.pseudo = is("X-IMAP");
                }
            }
        } else if is("X-UID") {
            match (m.uid, meta::parse_uid(value)) {
                (None, Some(u)) => {
                    m.uid = Some(u);
                    m.uid_before_base = m.base.is_none();
                }
                _ => m.uid_dup = true,
            }
        } else if is("Status") {
            m.old |= meta::parse_status(value, &mut m.flags);
        } else if is("X-Status") {
            meta::parse_xstatus(value, &mut m.flags);
        } else if is("X-Keywords") {
            if m.keywords.is_empty() {
                m.keywords = meta::parse_keywords(value);
            }
        } else if is("Content-Length") && m.content_length.is_none() {
            m.content_length = meta::parse_content_length(value);
        }
    }
}

/// A header line's name and value as Dovecot's parser splits them: the
/// name up to `:` without trailing blanks; the value after one blank.
/// A line without `:` has no name.
pub fn split_header(text: &[u8]) -> (&[u8], &[u8]) {
    let Some(colon) = text.iter().position(|&b| b == b':') else {
        return (&[], text);
    };
    let mut name = &text[..colon];
    while let Some((&last, rest)) = name.split_last() {
        if last == b' ' || last == b'\t' {
            name = rest;
        } else {
            break;
        }
    }
    let mut value = &text[colon + 1..];
    if matches!(value.first(), Some(b' ' | b'\t')) {
        value = &value[1..];
    }
    (name, value)
}

/// Text before the first From_ line: `(offset, length)`.
pub type Preamble = Option<(u64, u64)>;

/// Every message of a file, read to the end (for tests and small tools;
/// the store iterates with [`Scanner::next_message`]).
pub fn scan_all(path: &Path) -> Result<(Vec<Message>, Preamble)> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut s = Scanner::new(path, &f)?;
    let mut v = Vec::new();
    while let Some(m) = s.next_message()? {
        v.push(m);
    }
    Ok((v, s.preamble()))
}

/// Reads a short byte range (a From_ line) of an open file.
pub fn read_range_of(file: &File, path: &Path, start: u64, end: u64) -> Result<Vec<u8>> {
    let mut v = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut v, start)
        .with_context(|| format!("reading {} at byte {start}", path.display()))?;
    Ok(v)
}

/// Reads a byte range of a file into memory (tests, small ranges only).
pub fn read_range(path: &Path, start: u64, end: u64) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut v = vec![0u8; (end - start) as usize];
    f.read_exact_at(&mut v, start)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(v)
}

#[cfg(test)]
mod tests;
