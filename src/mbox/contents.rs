//! What an mbox file holds as Dovecot sees it: UIDVALIDITY, UIDNEXT, the
//! keyword list and each message's UID, flags and keywords, from the
//! scanned metadata headers by Dovecot's rules (mbox-sync-parse.c):
//! - `X-IMAPbase` counts only in the first message; `X-IMAP` there marks
//!   c-client's pseudo message, which is not a message;
//! - an `X-UID` counts only if it is above the previous message's UID and
//!   at most the next free UID (one above `X-IMAPbase`'s last UID, or the
//!   highest seen); in the first message only after its `X-IMAPbase`;
//! - messages without a valid `X-UID` get the next free UIDs in file
//!   order (Dovecot then writes them into the file; so do we);
//! - `X-Keywords` names count only if `X-IMAPbase` lists them.

use super::scan::{Message, Scanner};
use crate::model::{Flags, Uid};
use anyhow::{bail, Result};
use std::collections::HashSet;
use std::path::Path;

/// One message with its UID and metadata resolved.
#[derive(Clone, Debug)]
pub struct Entry {
    pub uid: Uid,
    pub flags: Flags,
    /// Sorted, no duplicates.
    pub keywords: Vec<String>,
    /// No `O` in `Status:`: no mail program has seen it.
    pub recent: bool,
    /// Where and how it lies in the file.
    pub msg: Message,
}

impl Entry {
    pub fn md5_hex(&self) -> String {
        super::md5::to_hex(&self.msg.meta.md5)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Contents {
    /// From `X-IMAPbase`/`X-IMAP`; `None` when the file has none.
    pub uidvalidity: Option<u32>,
    pub uidnext: Uid,
    /// The keyword list of `X-IMAPbase`, in its order.
    pub keywords: Vec<String>,
    /// The pseudo message, if the file starts with one.
    pub pseudo: Option<Message>,
    pub entries: Vec<Entry>,
    /// Some message got its UID here (none or an invalid one in the
    /// file), or the file has messages but no `X-IMAPbase`: the file
    /// should be written so that every reader agrees on UIDs.
    pub needs_write: bool,
    /// The file's size when it was read.
    pub file_len: u64,
}

impl Contents {
    pub fn find(&self, uid: Uid) -> Option<usize> {
        self.entries.binary_search_by_key(&uid, |e| e.uid).ok()
    }
}

/// Reads a whole mbox file. Text before the first `From_` line is an
/// error (Dovecot cannot open such a file either), naming file and offset.
pub fn read(path: &Path, file: &std::fs::File) -> Result<Contents> {
    let mut sc = Scanner::new(path, file)?;
    let mut c = Contents {
        uidnext: 1,
        file_len: sc.file_len(),
        ..Default::default()
    };
    let mut next_uid: Uid = 1;
    let mut prev_uid: Uid = 0;
    let mut known: HashSet<String> = HashSet::new();
    let mut seq = 0u32;
    let mut base_seen = false;
    while let Some(msg) = sc.next_message()? {
        if seq == 0 {
            if let Some((off, len)) = sc.preamble() {
                bail!(
                    "mbox {} does not start with a \"From \" line: {len} bytes of other text at \
                     byte {off} (not an mbox, or damaged). Nothing was changed; move that text \
                     into a message of its own or remove it, then run again",
                    path.display()
                );
            }
        }
        seq += 1;
        if msg.truncated {
            tracing::warn!(
                "mbox {}: the message at byte {} is shorter than its Content-Length says \
                 (the file was cut off?); it is taken as it is",
                path.display(),
                msg.from_offset
            );
        }
        let m = &msg.meta;
        if seq == 1 {
            if let Some(b) = &m.base {
                base_seen = true;
                c.uidvalidity = Some(b.uidvalidity);
                if next_uid - 1 <= b.last_uid {
                    next_uid = b.last_uid.saturating_add(1);
                }
                for k in &b.keywords {
                    if known.insert(k.clone()) {
                        c.keywords.push(k.clone());
                    }
                }
                if m.pseudo {
                    c.pseudo = Some(msg);
                    continue;
                }
            }
        }
        let valid = match m.uid {
            Some(v) if !(seq == 1 && m.uid_before_base) && v > prev_uid && v <= next_uid => {
                if v == next_uid {
                    next_uid += 1;
                }
                Some(v)
            }
            _ => None,
        };
        let uid = match valid {
            Some(v) => v,
            None => {
                c.needs_write = true;
                let u = next_uid;
                next_uid += 1;
                u
            }
        };
        if uid == u32::MAX {
            bail!(
                "mbox {}: UIDs ran out at the message at byte {}; the mailbox needs a new \
                 UIDVALIDITY",
                path.display(),
                msg.from_offset
            );
        }
        prev_uid = uid;
        let mut keywords: Vec<String> = m
            .keywords
            .iter()
            .filter(|k| known.contains(*k))
            .cloned()
            .collect();
        keywords.sort();
        keywords.dedup();
        c.entries.push(Entry {
            uid,
            flags: m.flags,
            keywords,
            recent: !m.old,
            msg,
        });
    }
    if seq == 0 {
        if let Some((off, len)) = sc.preamble() {
            bail!(
                "mbox {} holds no \"From \" line: {len} bytes of text at byte {off} (not an \
                 mbox?). Nothing was changed",
                path.display()
            );
        }
    }
    if !base_seen && !c.entries.is_empty() {
        c.needs_write = true;
    }
    c.uidnext = next_uid.max(prev_uid + 1);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const F: &str = "From a@b  Thu Nov 29 22:33:52 2001 +0000\n";

    fn read_str(s: &str) -> Result<Contents> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(s.as_bytes()).unwrap();
        read(f.path(), &std::fs::File::open(f.path()).unwrap())
    }

    fn uids(c: &Contents) -> Vec<u32> {
        c.entries.iter().map(|e| e.uid).collect()
    }

    #[test]
    fn uids_from_headers() {
        let c = read_str(&format!(
            "{F}X-IMAPbase: 77 0000000010 a b\nX-UID: 3\nX-Keywords: b x\n\n1\n\n\
             {F}X-UID: 9\nStatus: O\n\n2\n\n{F}X-UID: 11\n\n3\n"
        ))
        .unwrap();
        assert_eq!(c.uidvalidity, Some(77));
        assert_eq!(uids(&c), vec![3, 9, 11]);
        assert_eq!(c.uidnext, 12);
        assert!(!c.needs_write);
        assert_eq!(c.keywords, vec!["a", "b"]);
        assert_eq!(c.entries[0].keywords, vec!["b"]);
        assert!(c.entries[0].recent && !c.entries[1].recent);
    }

    #[test]
    fn broken_uids_get_new_ones() {
        // 12 is above the next free UID (11), 5 is not ascending.
        let c = read_str(&format!(
            "{F}X-IMAPbase: 77 0000000010\nX-UID: 3\n\n1\n\n{F}X-UID: 12\n\n2\n\n\
             {F}X-UID: 2\n\n3\n\n{F}\n4\n"
        ))
        .unwrap();
        assert_eq!(uids(&c), vec![3, 11, 12, 13]);
        assert!(c.needs_write);
        assert_eq!(c.uidnext, 14);
    }

    #[test]
    fn first_message_uid_needs_the_base_first() {
        let c = read_str(&format!("{F}X-UID: 1\nX-IMAPbase: 5 0000000001\n\n1\n")).unwrap();
        assert_eq!(uids(&c), vec![2]);
        assert!(c.needs_write);
    }

    #[test]
    fn no_base() {
        let c = read_str(&format!("{F}S: 1\n\n1\n\n{F}X-UID: 2\n\n2\n")).unwrap();
        assert_eq!(c.uidvalidity, None);
        assert_eq!(uids(&c), vec![1, 2]);
        assert!(c.needs_write);
    }

    #[test]
    fn pseudo_message() {
        let c = read_str(&format!(
            "{F}Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\
             X-IMAP: 1000 0000000041 k\nStatus: RO\n\ntext\n\n{F}X-UID: 42\nX-Keywords: k\n\nm\n"
        ))
        .unwrap();
        assert!(c.pseudo.is_some());
        assert_eq!(c.uidvalidity, Some(1000));
        assert_eq!(uids(&c), vec![42]);
        assert_eq!(c.entries[0].keywords, vec!["k"]);
        assert!(!c.needs_write);
        let c = read_str(&format!("{F}X-IMAP: 1000 0000000041\n\ntext\n")).unwrap();
        assert_eq!((c.entries.len(), c.uidnext), (0, 42));
    }

    #[test]
    fn preamble_is_an_error_naming_the_offset() {
        let e = read_str(&format!("hello\n{F}S: 1\n\nx\n")).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("6 bytes of other text at byte 0"), "{e}");
        assert!(read_str("").unwrap().entries.is_empty());
    }
}
