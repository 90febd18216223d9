//! The mail model shared by every store, the protocol and the sync engine:
//! what an IMAP client can observe about mailboxes and messages, and nothing
//! format-specific.

use std::fmt;

/// An IMAP UID. 0 is never a valid UID.
pub type Uid = u32;

/// A mailbox name as a list of hierarchy parts, each valid UTF-8 and never
/// empty. The separator is a property of the namespace, not of the name, so
/// names are kept split: the same name maps onto Maildir++ (`.a.b`), the fs
/// layout (`a/b`) or an mbox tree without re-parsing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName(Vec<String>);

impl MailboxName {
    pub fn inbox() -> Self {
        MailboxName(vec!["INBOX".to_string()])
    }

    /// Builds a name from its parts; `None` when there are no parts or a
    /// part is empty (such a name cannot exist in any store).
    pub fn from_parts(parts: Vec<String>) -> Option<Self> {
        if parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(MailboxName(parts))
    }

    /// Splits a name written with `sep` ("Archive/2024"). INBOX is matched
    /// case-insensitively as IMAP requires and normalised to "INBOX".
    pub fn parse(s: &str, sep: char) -> Option<Self> {
        let mut parts: Vec<String> = s.split(sep).map(str::to_string).collect();
        if parts[0].eq_ignore_ascii_case("INBOX") {
            parts[0] = "INBOX".to_string();
        }
        Self::from_parts(parts)
    }

    pub fn parts(&self) -> &[String] {
        &self.0
    }

    pub fn is_inbox(&self) -> bool {
        self.0.len() == 1 && self.0[0] == "INBOX"
    }

    pub fn join(&self, sep: char) -> String {
        let mut s = String::new();
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(sep);
            }
            s.push_str(p);
        }
        s
    }

    /// This name after renaming `from` to `to`, when it is `from` or lies
    /// below it (a rename takes the children along, as IMAP RENAME does).
    pub fn renamed(&self, from: &MailboxName, to: &MailboxName) -> Option<MailboxName> {
        let n = from.0.len();
        if self.0.len() < n || self.0[..n] != from.0[..] {
            return None;
        }
        let mut parts = to.0.clone();
        parts.extend_from_slice(&self.0[n..]);
        Some(MailboxName(parts))
    }

    /// The parent name, if this name has more than one part.
    pub fn parent(&self) -> Option<MailboxName> {
        if self.0.len() > 1 {
            Some(MailboxName(self.0[..self.0.len() - 1].to_vec()))
        } else {
            None
        }
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join('/'))
    }
}

impl fmt::Debug for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.join('/'))
    }
}

/// A mailbox's permanent 128-bit GUID. It travels with the mailbox through
/// renames, so it is how mailboxes are matched between the two sides.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MailboxGuid(pub [u8; 16]);

impl MailboxGuid {
    /// A new random GUID (from the kernel's CSPRNG).
    pub fn generate() -> std::io::Result<Self> {
        use std::io::Read;
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(MailboxGuid(b))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0u8; 16]
    }

    /// Parses the 32-hex-digit form used by dovecot-uidlist and the protocol.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(MailboxGuid(b))
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for MailboxGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MailboxGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The five IMAP system flags that are stored per message (\Recent is a
/// session property, not stored).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    pub const ANSWERED: Flags = Flags(1);
    pub const FLAGGED: Flags = Flags(2);
    pub const DELETED: Flags = Flags(4);
    pub const SEEN: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    const ALL: u8 = 31;

    pub const fn empty() -> Self {
        Flags(0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Rejects bits outside the five system flags.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::ALL != 0 {
            None
        } else {
            Some(Flags(bits))
        }
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: Flags) {
        self.0 &= !other.0;
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// The Maildir info letter of each flag, in the ASCII order Maildir
    /// requires (D, F, R, S, T).
    pub const MAILDIR_LETTERS: [(char, Flags); 5] = [
        ('D', Flags::DRAFT),
        ('F', Flags::FLAGGED),
        ('R', Flags::ANSWERED),
        ('S', Flags::SEEN),
        ('T', Flags::DELETED),
    ];

    /// Compact letters used on the wire (same letters as Maildir).
    pub fn to_letters(self) -> String {
        Self::MAILDIR_LETTERS
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(c, _)| *c)
            .collect()
    }

    pub fn from_letters(s: &str) -> Option<Flags> {
        let mut f = Flags::empty();
        for c in s.chars() {
            let (_, flag) = Self::MAILDIR_LETTERS.iter().find(|(l, _)| *l == c)?;
            f.insert(*flag);
        }
        Some(f)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({})", self.to_letters())
    }
}

/// What a store reports about one mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxInfo {
    pub name: MailboxName,
    pub guid: MailboxGuid,
    pub uidvalidity: u32,
    pub uidnext: Uid,
    pub messages: u32,
    /// 0 when the store keeps no modseqs for this mailbox yet.
    pub highest_modseq: u64,
}

/// Everything an IMAP client can observe about one message except its
/// bytes, plus the message GUID that identifies it across sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: Uid,
    /// Maildir: the `G` uidlist field or the file name up to `:`.
    pub guid: String,
    pub flags: Flags,
    /// Keyword names, sorted and without duplicates.
    pub keywords: Vec<String>,
    /// INTERNALDATE, seconds since the epoch (Maildir: the file's mtime).
    pub internal_date: i64,
    /// Exact byte size of the message as stored.
    pub size: u64,
    /// POP3 UIDL, when one was recorded (uidlist `P`).
    pub pop3_uidl: Option<String>,
    /// POP3 order, when one was recorded (uidlist `O`).
    pub pop3_order: Option<u32>,
    /// True when the message sits in Maildir `new/` (it is \Recent there).
    pub in_new: bool,
}

/// A mailbox's state as one store sees it: its info and its messages in
/// ascending UID order.
#[derive(Clone, Debug)]
pub struct MailboxSnapshot {
    pub info: MailboxInfo,
    pub messages: Vec<MessageRecord>,
}

/// A mailbox compared with the base both sides of a pair hold (see
/// `brain::delta`): its info, the messages that are new or whose GUID,
/// flags or keywords differ from their base record (ascending UID), and
/// the base UIDs it no longer holds.
#[derive(Clone, Debug)]
pub struct MailboxDelta {
    pub info: MailboxInfo,
    pub changed: Vec<MessageRecord>,
    pub gone: Vec<Uid>,
}

/// A digest of what two synced copies of a mailbox must agree on: its
/// GUID, UIDVALIDITY, UIDNEXT and each message's UID, GUID, flags and
/// keywords. Both sides compute it the same way (FNV-1a, 64 bits), so a
/// side can confirm it holds an expected state without sending it.
pub struct Digest(u64);

impl Digest {
    pub fn new(guid: &MailboxGuid, uidvalidity: u32, uidnext: Uid) -> Digest {
        let mut d = Digest(0xcbf2_9ce4_8422_2325);
        d.bytes(&guid.0);
        d.bytes(&uidvalidity.to_le_bytes());
        d.bytes(&uidnext.to_le_bytes());
        d
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn message(&mut self, uid: Uid, guid: &str, flags: Flags, keywords: &[String]) {
        self.bytes(&uid.to_le_bytes());
        self.bytes(guid.as_bytes());
        self.bytes(&[0, flags.bits()]);
        for k in keywords {
            self.bytes(k.as_bytes());
            self.bytes(&[0]);
        }
        self.bytes(&[1]);
    }

    pub fn of_snapshot(s: &MailboxSnapshot) -> String {
        let mut d = Digest::new(&s.info.guid, s.info.uidvalidity, s.info.uidnext);
        for m in &s.messages {
            d.message(m.uid, &m.guid, m.flags, &m.keywords);
        }
        d.finish()
    }

    pub fn finish(&self) -> String {
        format!("{:016x}", self.0)
    }
}
