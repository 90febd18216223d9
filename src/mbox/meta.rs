//! Dovecot's metadata headers in mbox messages, which IMAP clients never
//! see (Dovecot hides them when serving, and drops them from messages it
//! saves):
//! - `X-IMAPbase: <uidvalidity> <last uid, 10 digits> [keywords...]` in the
//!   first message (or `X-IMAP:` in a c-client "pseudo" message that only
//!   holds these numbers, written when a mailbox is empty);
//! - `X-UID: <uid>`; `Status:` (`R` \Seen, `O` not \Recent); `X-Status:`
//!   (`A` \Answered, `F` \Flagged, `T` \Draft, `D` \Deleted);
//!   `X-Keywords:` (names listed in X-IMAPbase); `Content-Length:` (body
//!   bytes, so body lines that look like `From_` lines stay body).
//!
//! Also Dovecot's message GUID for mbox: the hex MD5 of a few header
//! values (its default `mbox_md5 = apop3d`), which `doveadm fetch guid`
//! shows.

use super::md5::Md5;
use crate::model::Flags;

/// Headers Dovecot hides from clients (mbox_hide_headers), compared
/// case-insensitively. Dovecot's save also drops `X-Delivery-ID`.
pub const HIDDEN: [&str; 7] = [
    "Content-Length",
    "Status",
    "X-IMAP",
    "X-IMAPbase",
    "X-Keywords",
    "X-Status",
    "X-UID",
];

pub fn is_hidden(name: &[u8]) -> bool {
    HIDDEN
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// `X-IMAPbase` / `X-IMAP` values.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImapBase {
    pub uidvalidity: u32,
    pub last_uid: u32,
    pub keywords: Vec<String>,
}

fn is_lwsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn words(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| is_lwsp(*b)).filter(|w| !w.is_empty())
}

/// Parses `<uidvalidity> <last uid> [keywords]`; `None` when Dovecot
/// would ignore the header (UIDVALIDITY 0 or not numeric).
pub fn parse_imapbase(v: &[u8]) -> Option<ImapBase> {
    let mut it = words(v);
    let uv: u32 = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    if uv == 0 || v.first().is_some_and(|b| !b.is_ascii_digit()) {
        return None;
    }
    let last = match it.next() {
        Some(w) => std::str::from_utf8(w).ok()?.parse().ok()?,
        None => 0,
    };
    let keywords = it
        .filter_map(|w| std::str::from_utf8(w).ok())
        .filter(|w| valid_keyword(w))
        .map(str::to_string)
        .collect();
    Some(ImapBase {
        uidvalidity: uv,
        last_uid: last,
        keywords,
    })
}

/// A keyword Dovecot accepts (an IMAP atom without `\`), which also
/// cannot break our headers.
pub fn valid_keyword(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 200
        && k.bytes().all(|b| {
            b > b' '
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

/// `X-UID` value: digits, then only whitespace.
pub fn parse_uid(v: &[u8]) -> Option<u32> {
    let end = v
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(v.len());
    if !v[end..].iter().all(|b| is_lwsp(*b)) {
        return None;
    }
    let mut n: u32 = 0;
    for &d in &v[..end] {
        // Dovecot wraps; a UID this large is broken either way.
        n = n.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some(n)
}

pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    let end = v
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(v.len());
    if end == 0 || !v[end..].iter().all(|b| is_lwsp(*b)) {
        return None;
    }
    std::str::from_utf8(&v[..end]).ok()?.parse().ok()
}

/// Flags from `Status:` letters, and whether `O` (seen by a mail
/// program, so not \Recent) was there.
pub fn parse_status(v: &[u8], flags: &mut Flags) -> bool {
    let mut old = false;
    for &b in v {
        match b {
            b'R' => flags.insert(Flags::SEEN),
            b'O' => old = true,
            _ => {}
        }
    }
    old
}

pub fn parse_xstatus(v: &[u8], flags: &mut Flags) {
    for &b in v {
        match b {
            b'A' => flags.insert(Flags::ANSWERED),
            b'F' => flags.insert(Flags::FLAGGED),
            b'T' => flags.insert(Flags::DRAFT),
            b'D' => flags.insert(Flags::DELETED),
            _ => {}
        }
    }
}

pub fn parse_keywords(v: &[u8]) -> Vec<String> {
    words(v)
        .filter_map(|w| std::str::from_utf8(w).ok())
        .map(str::to_string)
        .collect()
}

/// The metadata header lines we write for a message (each ending in LF),
/// in the order Dovecot writes them. `base` only for the first message.
pub fn format_headers(
    base: Option<&ImapBase>,
    uid: u32,
    flags: Flags,
    recent: bool,
    keywords: &[String],
    content_length: u64,
) -> Vec<u8> {
    let mut s = String::new();
    if let Some(b) = base {
        s.push_str(&format_imapbase("X-IMAPbase", b));
    }
    s.push_str(&format!("X-UID: {uid}\n"));
    s.push_str("Status: ");
    if flags.contains(Flags::SEEN) {
        s.push('R');
    }
    if !recent {
        s.push('O');
    }
    s.push('\n');
    let mut x = String::new();
    for (c, f) in [
        ('A', Flags::ANSWERED),
        ('F', Flags::FLAGGED),
        ('T', Flags::DRAFT),
        ('D', Flags::DELETED),
    ] {
        if flags.contains(f) {
            x.push(c);
        }
    }
    if !x.is_empty() {
        s.push_str(&format!("X-Status: {x}\n"));
    }
    if !keywords.is_empty() {
        s.push_str("X-Keywords:");
        for k in keywords {
            s.push(' ');
            s.push_str(k);
        }
        s.push('\n');
    }
    s.push_str(&format!("Content-Length: {content_length}\n"));
    s.into_bytes()
}

pub fn format_imapbase(name: &str, b: &ImapBase) -> String {
    let mut s = format!("{name}: {} {:010}", b.uidvalidity, b.last_uid);
    for k in &b.keywords {
        s.push(' ');
        s.push_str(k);
    }
    s.push('\n');
    s
}

/// Dovecot's `apop3d` header MD5: the value of the first `Received` (all
/// its lines), `Delivered-To`, `X-Delivery-ID`, and `Date` and
/// `Message-ID` only while no `Received` was seen. Fed one header line at
/// a time: a folded header is several lines with the same name.
#[derive(Clone, Default)]
pub struct HeaderMd5 {
    md5: Md5,
    seen_received: bool,
}

impl HeaderMd5 {
    /// One line of header `name`: its value as Dovecot's parser gives it
    /// (after the colon and one blank for the first line, the whole line
    /// for a continuation), without the line break.
    pub fn value(&mut self, name: &[u8], value: &[u8]) {
        let is = |h: &str| h.as_bytes().eq_ignore_ascii_case(name);
        if is("Date") || is("Message-ID") {
            if !self.seen_received {
                self.md5.update(value);
            }
        } else if is("Delivered-To")
            || is("X-Delivery-ID")
            || (is("Received") && !self.seen_received)
        {
            self.md5.update(value);
        }
    }

    /// The header `name` ended (its last line was fed).
    pub fn end(&mut self, name: &[u8]) {
        if b"Received".eq_ignore_ascii_case(name) {
            self.seen_received = true;
        }
    }

    pub fn finish(self) -> [u8; 16] {
        self.md5.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imapbase() {
        let b = parse_imapbase(b"1234 0000000042 $Label1 work").unwrap();
        assert_eq!(b.uidvalidity, 1234);
        assert_eq!(b.last_uid, 42);
        assert_eq!(b.keywords, vec!["$Label1", "work"]);
        assert_eq!(
            format_imapbase("X-IMAPbase", &b),
            "X-IMAPbase: 1234 0000000042 $Label1 work\n"
        );
        assert_eq!(parse_imapbase(b"0 0000000001"), None);
        assert_eq!(parse_imapbase(b"x 1"), None);
        assert_eq!(parse_imapbase(b"7").unwrap().last_uid, 0);
    }

    #[test]
    fn uids_and_lengths() {
        assert_eq!(parse_uid(b"17"), Some(17));
        assert_eq!(parse_uid(b"17 \t"), Some(17));
        assert_eq!(parse_uid(b"17x"), None);
        assert_eq!(parse_uid(b"99999999999"), None);
        assert_eq!(parse_content_length(b"120"), Some(120));
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"1 2"), None);
    }

    #[test]
    fn status_headers() {
        let mut f = Flags::empty();
        assert!(parse_status(b"RO", &mut f));
        assert_eq!(f, Flags::SEEN);
        parse_xstatus(b"AFTD", &mut f);
        assert_eq!(f.to_letters(), "DFRST");
        let h = format_headers(None, 5, f, false, &["a".into(), "b".into()], 10);
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "X-UID: 5\nStatus: RO\nX-Status: AFTD\nX-Keywords: a b\nContent-Length: 10\n"
        );
        let h = format_headers(
            Some(&ImapBase {
                uidvalidity: 9,
                last_uid: 5,
                keywords: vec![],
            }),
            5,
            Flags::empty(),
            true,
            &[],
            0,
        );
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "X-IMAPbase: 9 0000000005\nX-UID: 5\nStatus: \nContent-Length: 0\n"
        );
    }

    #[test]
    fn header_md5_follows_apop3d() {
        let mut a = HeaderMd5::default();
        a.value(b"Date", b"Mon, 1 Jan 2024");
        a.end(b"Date");
        a.value(b"Received", b"from x");
        a.value(b"Received", b"\tby y");
        a.end(b"Received");
        a.value(b"Received", b"from z");
        a.end(b"Received");
        a.value(b"Message-ID", b"<m@x>");
        a.end(b"Message-ID");
        a.value(b"Subject", b"s");
        let mut m = Md5::new();
        m.update(b"Mon, 1 Jan 2024");
        m.update(b"from x");
        m.update(b"\tby y");
        assert_eq!(a.finish(), m.finish());
    }

    #[test]
    fn keywords() {
        assert!(valid_keyword("$Label1"));
        assert!(!valid_keyword("a b"));
        assert!(!valid_keyword("\\Seen"));
        assert_eq!(parse_keywords(b" a  b\tc "), vec!["a", "b", "c"]);
    }
}
