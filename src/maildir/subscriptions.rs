//! The `subscriptions` file at the mail root.
//!
//! Version 2 (what Dovecot 2.x writes): the header `V\t2\n\n`, then one
//! line per subscribed mailbox, its hierarchy parts joined by TAB. Parts are
//! storage names, so in Maildir they are modified UTF-7, and each part is
//! tab-escaped (`\x01` followed by `1`, `t`, `r`, `n` or `0`).
//! Version 1 (no header): one storage name per line, written with the
//! layout's own separator (`.` for Maildir++, `/` for the fs layout).

use super::mutf7;
use crate::model::MailboxName;

pub const FILE_NAME: &str = "subscriptions";
const V2_HEADER: &[u8] = b"V\t2\n\n";

/// What a subscriptions file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// In file order, without duplicates.
    pub names: Vec<MailboxName>,
    /// Lines that name no valid mailbox (bad mUTF-7, empty parts), kept so
    /// the caller can warn about them.
    pub invalid: Vec<String>,
}

fn tab_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == 1 && i + 1 < s.len() {
            out.push(match s[i + 1] {
                b'0' => 0,
                b'1' => 1,
                b't' => b'\t',
                b'r' => b'\r',
                b'n' => b'\n',
                other => other,
            });
            i += 2;
        } else {
            if s[i] != 1 {
                out.push(s[i]);
            }
            i += 1;
        }
    }
    out
}

fn tab_escape(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            0 => out.extend_from_slice(b"\x010"),
            1 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            _ => out.push(b),
        }
    }
}

fn decode_parts(raw: Vec<Vec<u8>>) -> Option<MailboxName> {
    let mut parts = Vec::with_capacity(raw.len());
    for p in raw {
        let s = String::from_utf8(p).ok()?;
        parts.push(mutf7::decode(&s).ok()?);
    }
    if parts
        .first()
        .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"))
    {
        parts[0] = "INBOX".to_string();
    }
    MailboxName::from_parts(parts)
}

impl Subscriptions {
    /// `v1_sep` is the separator a version 1 file uses (the layout's).
    pub fn parse(data: &[u8], v1_sep: u8) -> Subscriptions {
        let (v2, body) = match data.strip_prefix(V2_HEADER) {
            Some(rest) => (true, rest),
            None => (false, data),
        };
        let mut subs = Subscriptions::default();
        for line in body.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let raw: Vec<Vec<u8>> = if v2 {
                line.split(|b| *b == b'\t').map(tab_unescape).collect()
            } else {
                line.split(|b| *b == v1_sep).map(<[u8]>::to_vec).collect()
            };
            match decode_parts(raw) {
                Some(name) => {
                    if !subs.names.contains(&name) {
                        subs.names.push(name);
                    }
                }
                None => subs
                    .invalid
                    .push(String::from_utf8_lossy(line).into_owned()),
            }
        }
        subs
    }

    /// Version 2 bytes for these names (invalid lines are not written).
    pub fn to_bytes(names: &[MailboxName]) -> Vec<u8> {
        let mut out = V2_HEADER.to_vec();
        for name in names {
            for (i, part) in name.parts().iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                tab_escape(&mutf7::encode(part), &mut out);
            }
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> MailboxName {
        MailboxName::parse(s, '/').unwrap()
    }

    #[test]
    fn dovecot_v2() {
        // Byte for byte what Dovecot 2.3 wrote after SUBSCRIBE INBOX and
        // SUBSCRIBE "&AMQ-rger/sub".
        let file = b"V\t2\n\nINBOX\n&AMQ-rger\tsub\n";
        let s = Subscriptions::parse(file, b'.');
        assert_eq!(s.names, vec![n("INBOX"), n("Ärger/sub")]);
        assert!(s.invalid.is_empty());
        assert_eq!(Subscriptions::to_bytes(&s.names), file);
    }

    #[test]
    fn v1_and_invalid() {
        let s = Subscriptions::parse("inbox\nA.b\n&Ä\nA..b\nA.b\n".as_bytes(), b'.');
        assert_eq!(s.names, vec![n("INBOX"), n("A/b")]);
        assert_eq!(s.invalid.len(), 2);
        let s = Subscriptions::parse(b"A/b\n", b'/');
        assert_eq!(s.names, vec![n("A/b")]);
    }

    #[test]
    fn tab_escapes() {
        let s = Subscriptions::parse(b"V\t2\n\na\x01tb\tc\n", b'.');
        assert_eq!(s.invalid.len(), 1); // a TAB cannot be in a mUTF-7 name
        assert_eq!(tab_unescape(b"x\x01ny\x011"), b"x\ny\x01");
    }

    proptest! {
        #[test]
        fn roundtrip(names in proptest::collection::vec(
            proptest::collection::vec("\\PC{1,8}", 1..4), 0..6)) {
            let mut list: Vec<MailboxName> = Vec::new();
            for parts in names {
                let mut name = MailboxName::from_parts(parts).unwrap();
                if name.parts()[0].eq_ignore_ascii_case("INBOX") {
                    let mut p = name.parts().to_vec();
                    p[0] = "INBOX".into();
                    name = MailboxName::from_parts(p).unwrap();
                }
                if !list.contains(&name) { list.push(name); }
            }
            let s = Subscriptions::parse(&Subscriptions::to_bytes(&list), b'.');
            prop_assert_eq!(s.names, list);
            prop_assert!(s.invalid.is_empty());
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = Subscriptions::parse(&data, b'.');
            let again = Subscriptions::parse(&Subscriptions::to_bytes(&s.names), b'.');
            prop_assert_eq!(again.names, s.names);
        }
    }
}
