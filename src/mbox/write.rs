//! Writing an mbox as Dovecot writes it, so Dovecot reads back exactly
//! the UIDs, flags, keywords, dates and messages we meant:
//! - each message is its `From_` line, its header without any old
//!   metadata headers, our metadata headers (`X-IMAPbase` in the first
//!   message only, `X-UID`, `Status`, `X-Status`, `X-Keywords`,
//!   `Content-Length`), the empty line, the body, and one LF separator;
//! - no `>From` quoting: Dovecot neither quotes nor unquotes (it would
//!   serve the `>`); `Content-Length` keeps body lines that look like
//!   `From_` lines in the body, as in Dovecot's own files;
//! - a message without an empty line after its header gets one (as
//!   Dovecot's save does), after a line break if its last line has none;
//! - an empty mailbox is c-client's pseudo message with `X-IMAP`, which
//!   is how Dovecot keeps UIDVALIDITY and UIDNEXT in an empty mbox.

use super::from_line;
use super::layout::Layout;
use super::meta::{self, ImapBase};
use crate::model::Flags;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

const COPY_BUF: usize = 256 * 1024;

/// Counts what goes through, for offsets in error messages.
pub struct Out<W: Write> {
    pub w: W,
    pub written: u64,
    /// Line feeds written.
    pub lfs: u64,
}

impl<W: Write> Out<W> {
    pub fn new(w: W) -> Self {
        Out {
            w,
            written: 0,
            lfs: 0,
        }
    }

    pub fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)?;
        self.written += b.len() as u64;
        self.lfs += b.iter().filter(|&&c| c == b'\n').count() as u64;
        Ok(())
    }

    /// Copies `[a, b)` of `src`, with every CR LF as LF if `strip_cr`.
    pub fn copy(&mut self, src: &File, path: &Path, a: u64, b: u64, strip_cr: bool) -> Result<()> {
        if !strip_cr {
            return self.copy_range(src, path, a, b);
        }
        let mut buf = vec![0u8; COPY_BUF.min((b - a) as usize).max(1)];
        let mut out = Vec::with_capacity(buf.len());
        let mut at = a;
        let mut held_cr = false;
        while at < b {
            let want = ((b - at) as usize).min(buf.len());
            let n = src
                .read_at(&mut buf[..want], at)
                .with_context(|| format!("reading {} at byte {at}", path.display()))?;
            if n == 0 {
                anyhow::bail!("{} ended at byte {at} (changed meanwhile?)", path.display());
            }
            out.clear();
            for &c in &buf[..n] {
                if held_cr && c != b'\n' {
                    out.push(b'\r');
                }
                held_cr = c == b'\r';
                if !held_cr {
                    out.push(c);
                }
            }
            self.put(&out).context("writing the new mbox")?;
            at += n as u64;
        }
        if held_cr {
            self.put(b"\r").context("writing the new mbox")?;
        }
        Ok(())
    }

    /// Copies `[a, b)` of `src`.
    pub fn copy_range(&mut self, src: &File, path: &Path, a: u64, b: u64) -> Result<()> {
        let mut buf = vec![0u8; COPY_BUF.min((b - a) as usize).max(1)];
        let mut at = a;
        while at < b {
            let want = ((b - at) as usize).min(buf.len());
            let n = src
                .read_at(&mut buf[..want], at)
                .with_context(|| format!("reading {} at byte {at}", path.display()))?;
            if n == 0 {
                anyhow::bail!(
                    "{} ended at byte {at} while bytes up to {b} were expected (changed meanwhile?)",
                    path.display()
                );
            }
            self.put(&buf[..n]).context("writing the new mbox")?;
            at += n as u64;
        }
        Ok(())
    }
}

/// The metadata one message gets.
pub struct Meta<'a> {
    pub base: Option<&'a ImapBase>,
    pub uid: u32,
    pub flags: Flags,
    pub recent: bool,
    pub keywords: &'a [String],
}

/// Where a message's bytes come from: `[hdr, end)` of `file`, laid out.
pub struct Source<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub hdr: u64,
    pub end: u64,
    pub layout: &'a Layout,
    /// Store CR LF line ends as LF.
    pub strip_cr: bool,
}

/// CR LF pairs in `[a, b)` of a file.
pub fn count_crlf(file: &File, path: &Path, a: u64, b: u64) -> Result<u64> {
    let mut buf = vec![0u8; COPY_BUF.min((b - a) as usize).max(1)];
    let (mut at, mut n_crlf, mut prev) = (a, 0u64, 0u8);
    while at < b {
        let want = ((b - at) as usize).min(buf.len());
        let n = file
            .read_at(&mut buf[..want], at)
            .with_context(|| format!("reading {} at byte {at}", path.display()))?;
        if n == 0 {
            break;
        }
        for &c in &buf[..n] {
            if c == b'\n' && prev == b'\r' {
                n_crlf += 1;
            }
            prev = c;
        }
        at += n as u64;
    }
    Ok(n_crlf)
}

/// What a written message looks like to a client: its bytes as stored
/// and the line feeds among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub visible: u64,
    pub lfs: u64,
}

/// Writes one message (From_ line given whole, with its line break).
pub fn message<W: Write>(
    out: &mut Out<W>,
    from_line: &[u8],
    src: &Source,
    m: &Meta,
) -> Result<Written> {
    let (start, start_lfs) = (out.written, out.lfs);
    out.put(from_line).context("writing the new mbox")?;
    if !from_line.ends_with(b"\n") {
        out.put(b"\n").context("writing the new mbox")?;
    }
    let l = src.layout;
    let head_end = l.eoh.unwrap_or(src.end);
    // Header lines we keep.
    let mut at = src.hdr;
    for &(a, b) in &l.drop {
        if a > at {
            out.copy(src.file, src.path, at, a, src.strip_cr)?;
        }
        at = at.max(b);
    }
    if head_end > at {
        out.copy(src.file, src.path, at, head_end, src.strip_cr)?;
    }
    let last_dropped = l.drop.last().is_some_and(|&(_, b)| b >= head_end);
    if l.eoh.is_none() && l.unterminated && head_end > src.hdr && !last_dropped {
        // The last line must end before our headers start.
        out.put(b"\n").context("writing the new mbox")?;
    }
    let mut body_len = l.body.map_or(0, |b| src.end - b);
    if src.strip_cr {
        if let Some(b) = l.body {
            body_len -= count_crlf(src.file, src.path, b, src.end)?;
        }
    }
    let hdrs = meta::format_headers(m.base, m.uid, m.flags, m.recent, m.keywords, body_len);
    let (hdrs_at, hdrs_lfs) = (out.written, out.lfs);
    out.put(&hdrs).context("writing the new mbox")?;
    let meta_len = out.written - hdrs_at;
    let meta_lfs = out.lfs - hdrs_lfs;
    match l.eoh {
        Some(e) => out.copy(src.file, src.path, e, src.end, src.strip_cr)?,
        None => out.put(b"\n").context("writing the new mbox")?,
    }
    out.put(b"\n").context("writing the new mbox")?;
    let from_lfs = 1;
    let from_len = from_line.len() as u64 + u64::from(!from_line.ends_with(b"\n"));
    Ok(Written {
        visible: out.written - start - from_len - meta_len - 1,
        lfs: out.lfs - start_lfs - from_lfs - meta_lfs - 1,
    })
}

/// The date as RFC 5322 writes it, in UTC.
fn rfc822_date(t: i64) -> String {
    let line = from_line::format(b"x", t);
    // "From x  Www Mmm dd hh:mm:ss yyyy +0000\n"
    let s = String::from_utf8_lossy(&line[8..line.len() - 1]).into_owned();
    let f: Vec<&str> = s.split_whitespace().collect();
    format!("{}, {} {} {} {} +0000", f[0], f[2], f[1], f[4], f[3])
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// c-client's pseudo message, as Dovecot writes it when a mailbox
/// becomes empty, holding UIDVALIDITY, the last UID and the keywords.
pub fn pseudo<W: Write>(out: &mut Out<W>, base: &ImapBase, now: i64) -> Result<()> {
    let host = hostname();
    let mut s = Vec::new();
    s.extend_from_slice(&from_line::format(b"MAILER_DAEMON", now));
    s.extend_from_slice(
        format!(
            "Date: {}\nFrom: Mail System Internal Data <MAILER-DAEMON@{host}>\n\
             Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\
             Message-ID: <{now}@{host}>\n{}Status: RO\n\n\
             This text is part of the internal format of your mail folder, and is not\n\
             a real message.  It is created automatically by the mail system software.\n\
             If deleted, important folder data will be lost, and it will be re-created\n\
             with the data reset to initial values.\n\n",
            rfc822_date(now),
            meta::format_imapbase("X-IMAP", base)
        )
        .as_bytes(),
    );
    out.put(&s).context("writing the new mbox")
}

#[cfg(test)]
mod tests;
