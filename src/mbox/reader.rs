//! Serving one message as Dovecot serves it: the bytes between its
//! `From_` line and the separator, without the hidden metadata headers.
//! `>From ` lines are served as they are (Dovecot does not unquote).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

/// A message's visible bytes, read from the mbox file on demand. Holds
/// the file (and with it any lock taken on it) while it lives.
pub struct MessageReader {
    file: File,
    /// Byte ranges to read, in order.
    segments: Vec<(u64, u64)>,
    seg: usize,
    pos: u64,
    len: u64,
}

impl MessageReader {
    /// `[start, end)` of `file` minus the `drop` ranges (sorted, inside).
    pub fn new(file: File, start: u64, end: u64, drop: &[(u64, u64)]) -> MessageReader {
        let mut segments = Vec::new();
        let mut at = start;
        for &(a, b) in drop {
            if a > at {
                segments.push((at, a));
            }
            at = at.max(b);
        }
        if end > at {
            segments.push((at, end));
        }
        let len = segments.iter().map(|(a, b)| b - a).sum();
        let pos = segments.first().map_or(0, |s| s.0);
        MessageReader {
            file,
            segments,
            seg: 0,
            pos,
            len,
        }
    }

    /// The number of bytes the reader yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(&(_, end)) = self.segments.get(self.seg) {
            if self.pos >= end {
                self.seg += 1;
                if let Some(&(a, _)) = self.segments.get(self.seg) {
                    self.pos = a;
                }
                continue;
            }
            let want = ((end - self.pos) as usize).min(buf.len());
            let n = self.file.read_at(&mut buf[..want], self.pos)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the mbox file was shortened while a message was read from it",
                ));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Gives back a message stored with LF that came with CR LF: every LF
/// becomes CR LF (the original had no LF without a CR before it).
pub struct CrlfReader<R: Read> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> CrlfReader<R> {
    pub fn new(inner: R) -> Self {
        CrlfReader {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: Read> Read for CrlfReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            let mut raw = vec![0u8; (out.len() / 2).clamp(1, 128 * 1024)];
            let n = self.inner.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            for &c in &raw[..n] {
                if c == b'\n' {
                    self.buf.push(b'\r');
                }
                self.buf.push(c);
            }
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A message as served: as stored, or with CR LF given back.
pub enum Served {
    Plain(MessageReader),
    Crlf(CrlfReader<MessageReader>),
}

impl Read for Served {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Served::Plain(r) => r.read(out),
            Served::Crlf(r) => r.read(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn skips_ranges() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123456789abcdef").unwrap();
        let file = File::open(f.path()).unwrap();
        let mut r = MessageReader::new(file, 2, 14, &[(2, 4), (6, 8), (8, 9)]);
        assert_eq!(r.len(), 7);
        let mut out = Vec::new();
        let mut buf = [0u8; 2];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"459abcd");
    }

    #[test]
    fn crlf_comes_back() {
        let mut r = CrlfReader::new(&b"a\nb\r\n\n"[..]);
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v, b"a\r\nb\r\r\n\r\n");
    }
}
