//! `dsync-mbox-guids`: what an mbox cannot hold but dsync must keep, in
//! the mailbox's index directory beside Dovecot's index (`.imap/<name>/`):
//! the mailbox GUID (Dovecot keeps its own only in its index), and the
//! GUIDs and POP3 UIDLs of messages saved with GUIDs other than the one
//! Dovecot derives from their headers.
//!
//! A message's row counts only while its UID and header MD5 both still
//! match (under the same UIDVALIDITY), so a file rewritten or renumbered
//! by another program never gets GUIDs mixed up: an unmatched message
//! simply has Dovecot's GUID, the hex header MD5.
//!
//! Format, one record per line, fields separated by TAB:
//! ```text
//! dsync-mbox-guids  1
//! M  <mailbox guid, 32 hex>
//! V  <uidvalidity the rows belong to>
//! S  <mbox file stamp>  <uidnext>  <messages>   (as last read in full)
//! <uid>  <header md5, 32 hex>  <guid>  <pop3 uidl or empty>  <pop3 order or empty>  <CR LF size or empty>
//! ```

use crate::model::{MailboxGuid, Uid};
use std::collections::BTreeMap;

pub const FILE_NAME: &str = "dsync-mbox-guids";
const MAGIC: &str = "dsync-mbox-guids\t1";

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Row {
    pub md5: String,
    pub guid: String,
    pub pop3_uidl: Option<String>,
    pub pop3_order: Option<u32>,
    /// The message came with CR LF line ends, which we store as LF (as
    /// Dovecot does: its mbox code cannot rewrite CR LF headers) and give
    /// back as CR LF: its size then.
    pub crlf_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Guids {
    pub mailbox: Option<MailboxGuid>,
    pub uidvalidity: u32,
    pub rows: BTreeMap<Uid, Row>,
    /// The mbox file's identity and times when it was last read in full,
    /// with its UIDNEXT and message count then: while the file still has
    /// that stamp, listing it needs no read.
    pub seen: Option<(String, Uid, u32)>,
}

/// A value we can store in a field: no TAB, CR or LF.
pub fn storable(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| matches!(b, b'\t' | b'\r' | b'\n'))
}

impl Guids {
    /// Parses the file; anything unreadable is left out (a lost row only
    /// means Dovecot's GUID for that message).
    pub fn parse(data: &[u8]) -> Guids {
        let mut g = Guids::default();
        let text = String::from_utf8_lossy(data);
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return g;
        }
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["M", hex] => g.mailbox = MailboxGuid::from_hex(hex),
                ["V", v] => g.uidvalidity = v.parse().unwrap_or(0),
                ["S", stamp, next, count] => {
                    if let (Ok(n), Ok(c)) = (next.parse(), count.parse()) {
                        g.seen = Some((stamp.to_string(), n, c));
                    }
                }
                [uid, md5, guid, uidl, order, rest @ ..] => {
                    let Ok(uid) = uid.parse::<Uid>() else {
                        continue;
                    };
                    let crlf_size = rest.first().and_then(|v| v.parse().ok());
                    if guid.is_empty() && uidl.is_empty() && order.is_empty() && crlf_size.is_none()
                    {
                        continue;
                    }
                    g.rows.insert(
                        uid,
                        Row {
                            md5: md5.to_string(),
                            guid: guid.to_string(),
                            pop3_uidl: (!uidl.is_empty()).then(|| uidl.to_string()),
                            pop3_order: order.parse().ok(),
                            crlf_size,
                        },
                    );
                }
                _ => {}
            }
        }
        g
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::from(MAGIC);
        s.push('\n');
        if let Some(m) = &self.mailbox {
            s.push_str(&format!("M\t{}\n", m.to_hex()));
        }
        s.push_str(&format!("V\t{}\n", self.uidvalidity));
        if let Some((stamp, next, count)) = &self.seen {
            s.push_str(&format!("S\t{stamp}\t{next}\t{count}\n"));
        }
        for (uid, r) in &self.rows {
            s.push_str(&format!(
                "{uid}\t{}\t{}\t{}\t{}\t{}\n",
                r.md5,
                r.guid,
                r.pop3_uidl.as_deref().unwrap_or(""),
                r.pop3_order.map(|o| o.to_string()).unwrap_or_default(),
                r.crlf_size.map(|o| o.to_string()).unwrap_or_default()
            ));
        }
        s.into_bytes()
    }

    /// The row for a message, if it still describes it.
    pub fn get(&self, uidvalidity: u32, uid: Uid, md5: &str) -> Option<&Row> {
        if self.uidvalidity != uidvalidity {
            return None;
        }
        self.rows.get(&uid).filter(|r| r.md5 == md5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_matching() {
        let mut g = Guids {
            mailbox: Some(MailboxGuid([7; 16])),
            uidvalidity: 42,
            rows: BTreeMap::new(),
            seen: Some(("1.2:3:4:5".into(), 7, 2)),
        };
        g.rows.insert(
            3,
            Row {
                md5: "ab".into(),
                guid: "1.M2P3.host".into(),
                pop3_uidl: Some("u1".into()),
                pop3_order: Some(4),
                crlf_size: Some(99),
            },
        );
        g.rows.insert(
            5,
            Row {
                md5: "cd".into(),
                guid: "g5".into(),
                ..Default::default()
            },
        );
        let back = Guids::parse(&g.to_bytes());
        assert_eq!(back, g);
        assert_eq!(back.get(42, 3, "ab").unwrap().guid, "1.M2P3.host");
        assert!(back.get(42, 3, "xx").is_none());
        assert!(back.get(41, 3, "ab").is_none());
        assert_eq!(Guids::parse(b"garbage"), Guids::default());
        assert!(storable("a b") && !storable("a\tb") && !storable(""));
    }
}
