//! The header of one message in a file: which lines are Dovecot's hidden
//! metadata headers (left out when serving, replaced when writing), where
//! the header ends, and the header MD5. Read line by line, capped, like
//! the scanner.

use super::meta::{self, HeaderMd5};
use super::scan::{split_header, PosReader};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

const LINE_CAP: usize = 8 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Byte ranges (absolute offsets) of header lines to leave out.
    pub drop: Vec<(u64, u64)>,
    /// Start of the empty line ending the header, if any.
    pub eoh: Option<u64>,
    /// Where the body starts: after that empty line.
    pub body: Option<u64>,
    /// The header's last line has no line break (the message is all
    /// header and ends without one).
    pub unterminated: bool,
    pub md5: [u8; 16],
}

impl Layout {
    pub fn dropped_len(&self) -> u64 {
        self.drop.iter().map(|(a, b)| b - a).sum()
    }
}

/// Lays out the message `[start, end)` of `file`. `saving`: also drop what
/// Dovecot drops from messages it saves (`X-Delivery-ID`, header lines
/// starting with `From `), since they would be read back as metadata or
/// separators.
pub fn layout(file: &File, path: &Path, start: u64, end: u64, saving: bool) -> Result<Layout> {
    let mut r = BufReader::with_capacity(
        64 * 1024,
        PosReader {
            file,
            pos: start,
            end,
        },
    );
    let mut out = Layout::default();
    let mut md5 = HeaderMd5::default();
    let mut pos = start;
    let mut line: Vec<u8> = Vec::new();
    let mut cur_name: Vec<u8> = Vec::new();
    let mut cur_drop = false;
    loop {
        // One line, keeping at most LINE_CAP bytes of it.
        line.clear();
        let line_start = pos;
        let mut lf = false;
        loop {
            let buf = r
                .fill_buf()
                .with_context(|| format!("reading {} at byte {pos}", path.display()))?;
            if buf.is_empty() {
                break;
            }
            let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let keep = n.min(LINE_CAP.saturating_sub(line.len()));
            line.extend_from_slice(&buf[..keep]);
            r.consume(n);
            pos += n as u64;
            if found {
                lf = true;
                break;
            }
        }
        if pos == line_start {
            break;
        }
        if line == b"\n" || line == b"\r\n" {
            out.eoh = Some(line_start);
            out.body = Some(pos);
            break;
        }
        let mut text = &line[..];
        if lf {
            text = &text[..text.len() - 1];
            if text.last() == Some(&b'\r') {
                text = &text[..text.len() - 1];
            }
        } else {
            out.unterminated = true;
        }
        let continuation = matches!(text.first(), Some(b' ' | b'\t')) && !cur_name.is_empty();
        if continuation {
            if cur_drop {
                push_range(&mut out.drop, line_start, pos);
            } else {
                md5.value(&cur_name, text);
            }
            continue;
        }
        if !cur_name.is_empty() && !cur_drop {
            md5.end(&cur_name);
        }
        let (name, value) = split_header(text);
        cur_name = name.to_vec();
        cur_drop = (!name.is_empty() && meta::is_hidden(name))
            || (saving
                && (text.starts_with(b"From ") || name.eq_ignore_ascii_case(b"X-Delivery-ID")));
        if cur_drop {
            push_range(&mut out.drop, line_start, pos);
        } else {
            md5.value(&cur_name, value);
        }
        if cur_name.is_empty() {
            cur_drop = false;
        }
    }
    if !cur_name.is_empty() && !cur_drop {
        md5.end(&cur_name);
    }
    out.md5 = md5.finish();
    Ok(out)
}

fn push_range(v: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    if let Some(last) = v.last_mut() {
        if last.1 == a {
            last.1 = b;
            return;
        }
    }
    v.push((a, b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lay(data: &[u8], saving: bool) -> Layout {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        let file = File::open(f.path()).unwrap();
        layout(&file, f.path(), 0, data.len() as u64, saving).unwrap()
    }

    #[test]
    fn hidden_lines_and_eoh() {
        let d = b"A: 1\nX-UID: 5\nB: 2\nStatus: RO\n cont\nX-Status: F\n\nbody\nX-UID: 9\n";
        let l = lay(d, false);
        assert_eq!(l.drop, vec![(5, 14), (19, 48)]);
        assert_eq!(l.eoh, Some(48));
        assert!(!l.unterminated);
    }

    #[test]
    fn saving_drops_from_lines_and_delivery_ids() {
        let d = b"From x Thu Nov 29 22:33:52 2001\nX-Delivery-ID: abc\nA: 1\n\nb";
        let l = lay(d, true);
        assert_eq!(l.drop, vec![(0, 51)]);
        assert_eq!(lay(d, false).drop, vec![]);
    }

    #[test]
    fn no_eoh() {
        let l = lay(b"A: 1\nB: 2", false);
        assert_eq!(l.eoh, None);
        assert!(l.unterminated);
    }
}
