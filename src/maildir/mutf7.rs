//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding of mailbox names on
//! disk in Dovecot's Maildir (folder directory names, subscriptions).
//!
//! Decoding is as strict as Dovecot's own (`imap-utf7.c`): a name Dovecot
//! would refuse must not be accepted here either, or the two would disagree
//! about which folders exist.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutf7Error {
    /// Byte offset of the offending character or shift sequence.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Mutf7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid modified UTF-7 at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for Mutf7Error {}

fn is_direct(c: char) -> bool {
    ('\x20'..='\x7e').contains(&c)
}

/// Encodes UTF-8 as modified UTF-7. Never fails: every Unicode string has
/// an encoding.
pub fn encode(s: &str) -> String {
    if s.chars().all(|c| is_direct(c) && c != '&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut units: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c) {
            flush_base64(&mut out, &mut units);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_base64(&mut out, &mut units);
    out
}

fn flush_base64(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    for u in units.iter() {
        bits = (bits << 16) | u32::from(*u);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out.push('-');
    units.clear();
}

fn b64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    } as u32)
}

/// Decodes modified UTF-7 to UTF-8, rejecting everything RFC 3501 forbids
/// and Dovecot refuses: raw non-ASCII or control bytes, bad base64, odd
/// UTF-16 lengths, unpaired surrogates, encoded NUL or printable ASCII,
/// non-zero padding bits, unterminated or needlessly split shifts.
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let b = s.as_bytes();
    let err = |offset, reason| Err(Mutf7Error { offset, reason });
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return err(i, "byte outside printable ASCII");
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if b.get(i) == Some(&b'-') {
            out.push('&');
            i += 1;
            continue;
        }
        let mut bits: u32 = 0;
        let mut nbits = 0u32;
        let mut units: Vec<u16> = Vec::new();
        loop {
            match b.get(i) {
                None => return err(start, "unterminated shift sequence"),
                Some(b'-') => break,
                Some(&x) => {
                    let Some(v) = b64_value(x) else {
                        return err(i, "invalid base64 character");
                    };
                    bits = (bits << 6) | v;
                    nbits += 6;
                    if nbits >= 16 {
                        nbits -= 16;
                        units.push((bits >> nbits) as u16);
                        bits &= (1 << nbits) - 1;
                    }
                    i += 1;
                }
            }
        }
        if nbits >= 6 {
            return err(i, "truncated UTF-16 code unit");
        }
        if bits != 0 {
            return err(i, "non-zero padding bits");
        }
        if units.is_empty() {
            return err(start, "empty shift sequence");
        }
        for r in char::decode_utf16(units.iter().copied()) {
            match r {
                Err(_) => return err(start, "unpaired UTF-16 surrogate"),
                Ok('\0') => return err(start, "encoded NUL"),
                Ok(ch) if is_direct(ch) => return err(start, "encoded printable ASCII"),
                Ok(ch) => out.push(ch),
            }
        }
        i += 1; // the '-'
        if b.get(i) == Some(&b'&') && b.get(i + 1) != Some(&b'-') {
            return err(i, "adjacent shift sequences");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(encode("Ärger"), "&AMQ-rger");
        assert_eq!(decode("&AMQ-rger").unwrap(), "Ärger");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(decode("a&-b").unwrap(), "a&b");
        // RFC 3501's example.
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").unwrap(), "😀");
        assert_eq!(encode("tab\there"), "tab&AAk-here");
    }

    #[test]
    fn strict_rejections() {
        for bad in [
            "&",
            "&AMQ",
            "&AMQ-&AOQ-",
            "&AGE-",
            "&AAA-",
            "&2D0-",
            "&A-",
            "&AMR-",
            "ä",
            "a\tb",
            "&!-",
            "&-&",
        ] {
            assert!(decode(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(decode("&AMQ-&-").unwrap(), "Ä&");
    }

    proptest! {
        #[test]
        fn roundtrip(s in "\\PC*") {
            let e = encode(&s);
            prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&e).unwrap(), s);
        }

        #[test]
        fn roundtrip_any(s in any::<String>()) {
            if !s.contains('\0') {
                prop_assert_eq!(decode(&encode(&s)).unwrap(), s);
            }
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            if let Ok(d) = decode(&s) {
                prop_assert_eq!(encode(&d), s);
            }
        }
    }
}
