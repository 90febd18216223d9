//! Everything an IMAP client can observe about one mail location, as real
//! Dovecot reports it, and a readable comparison of two such snapshots.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::imap::{log_problems, pop3_uidls, quote, Session, Value};
use super::mutf7;

/// What IMAP shows of one location. Compare two with [`diff`] or
/// [`assert_same`]; `location` is a label, never compared.
#[derive(Clone)]
pub struct MailSnapshot {
    pub location: String,
    /// By UTF-8 name, `/` as separator ("INBOX", "Archive/2024").
    pub mailboxes: BTreeMap<String, MailboxState>,
    /// From `LSUB "" "*"`, UTF-8.
    pub subscriptions: BTreeSet<String>,
    /// INBOX's POP3 UIDLs when dovecot-pop3d is installed.
    pub pop3_uidls: Option<Vec<(u32, String)>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub messages: u32,
}

#[derive(Clone)]
pub struct MailboxState {
    /// LIST attributes minus the volatile ones (\Marked, \Unmarked).
    pub attributes: BTreeSet<String>,
    /// None for a \Noselect or \NonExistent mailbox.
    pub status: Option<Status>,
    pub messages: BTreeMap<u32, MessageState>,
}

#[derive(Clone)]
pub struct MessageState {
    pub uid: u32,
    /// System flags (\Seen, …) without \Recent.
    pub flags: BTreeSet<String>,
    pub keywords: BTreeSet<String>,
    /// As Dovecot prints it, in UTC ("28-Nov-2026 18:02:53 +0000").
    pub internaldate: String,
    /// RFC822.SIZE.
    pub size: u64,
    /// SHA-256 of BODY[] (hex).
    pub sha256: String,
    /// The Subject header, for humans reading a diff; never compared.
    pub subject: String,
}

/// Snapshots `location` through Dovecot (this creates Dovecot's own
/// dovecot-uidlist and index files if they are missing). Panics on any
/// failure, and when Dovecot logs an error or warning: a Maildir that
/// makes Dovecot complain is a failed test.
pub fn snapshot(location: &str) -> MailSnapshot {
    let (snap, log) =
        try_snapshot(location).unwrap_or_else(|e| panic!("snapshot of {location}: {e:#}"));
    let problems = log_problems(&log);
    if !problems.is_empty() {
        panic!(
            "snapshot of {location}: Dovecot complained:\n  {}\n(full log:\n{log})",
            problems.join("\n  ")
        );
    }
    snap
}

/// Like [`snapshot`], but returns errors and Dovecot's log instead of
/// judging them.
pub fn try_snapshot(location: &str) -> Result<(MailSnapshot, String)> {
    let mut s = Session::open(location)?;
    let mut mailboxes = BTreeMap::new();
    let mut wire_names = Vec::new();
    for r in s.command(b"LIST \"\" \"*\"")?.untagged {
        let v = r.untagged_values()?;
        if v.first().and_then(Value::as_str).as_deref() != Some("LIST") {
            continue;
        }
        let (attrs, name) =
            list_entry(&v).with_context(|| format!("LIST response {:?}", r.text()))?;
        let attributes: BTreeSet<String> = attrs
            .into_iter()
            .filter(|a| {
                !a.eq_ignore_ascii_case("\\Marked") && !a.eq_ignore_ascii_case("\\Unmarked")
            })
            .collect();
        let utf8 = mutf7::decode(&name)
            .with_context(|| format!("LIST name {name:?} is not modified UTF-7"))?;
        wire_names.push((utf8.clone(), name, attributes.clone()));
        mailboxes.insert(
            utf8,
            MailboxState {
                attributes,
                status: None,
                messages: BTreeMap::new(),
            },
        );
    }
    let mut subscriptions = BTreeSet::new();
    for r in s.command(b"LSUB \"\" \"*\"")?.untagged {
        let v = r.untagged_values()?;
        if v.first().and_then(Value::as_str).as_deref() != Some("LSUB") {
            continue;
        }
        let (_, name) = list_entry(&v)?;
        subscriptions.insert(mutf7::decode(&name).with_context(|| format!("LSUB name {name:?}"))?);
    }
    for (utf8, wire, attrs) in wire_names {
        if attrs.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        }) {
            continue;
        }
        let status = status(&mut s, &wire)?;
        s.command(format!("EXAMINE {}", quote(&wire)).as_bytes())?;
        let messages = if status.messages > 0 {
            fetch_all(&mut s).with_context(|| format!("fetching {utf8:?}"))?
        } else {
            BTreeMap::new()
        };
        if messages.len() as u32 != status.messages {
            bail!(
                "{utf8:?}: STATUS says {} messages but FETCH returned {}",
                status.messages,
                messages.len()
            );
        }
        let mb = mailboxes.get_mut(&utf8).unwrap();
        mb.status = Some(status);
        mb.messages = messages;
    }
    let log = s.logout()?;
    let pop3 = pop3_uidls(location);
    Ok((
        MailSnapshot {
            location: location.to_string(),
            mailboxes,
            subscriptions,
            pop3_uidls: pop3,
        },
        log,
    ))
}

/// `LIST (attrs) "sep" name` → (attrs, wire name).
fn list_entry(v: &[Value]) -> Result<(Vec<String>, String)> {
    let attrs = v
        .get(1)
        .and_then(Value::as_list)
        .context("no attribute list")?;
    let attrs = attrs.iter().filter_map(Value::as_str).collect();
    let name = v
        .get(3)
        .and_then(Value::as_str)
        .context("no mailbox name")?;
    Ok((attrs, name))
}

fn status(s: &mut Session, wire: &str) -> Result<Status> {
    let reply =
        s.command(format!("STATUS {} (UIDVALIDITY UIDNEXT MESSAGES)", quote(wire)).as_bytes())?;
    for r in reply.untagged {
        let v = r.untagged_values()?;
        if v.first().and_then(Value::as_str).as_deref() != Some("STATUS") {
            continue;
        }
        let items = v
            .get(2)
            .and_then(Value::as_list)
            .context("STATUS without list")?;
        let mut st = Status {
            uidvalidity: 0,
            uidnext: 0,
            messages: 0,
        };
        for pair in items.chunks(2) {
            let n = pair
                .get(1)
                .and_then(Value::as_u64)
                .context("STATUS value")? as u32;
            match pair[0].as_str().as_deref() {
                Some("UIDVALIDITY") => st.uidvalidity = n,
                Some("UIDNEXT") => st.uidnext = n,
                Some("MESSAGES") => st.messages = n,
                _ => {}
            }
        }
        return Ok(st);
    }
    bail!("no STATUS response for {wire:?}")
}

fn fetch_all(s: &mut Session) -> Result<BTreeMap<u32, MessageState>> {
    let reply = s.command(b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")?;
    let mut out = BTreeMap::new();
    for r in reply.untagged {
        let v = r.untagged_values()?;
        if v.get(1).and_then(Value::as_str).as_deref() != Some("FETCH") {
            continue;
        }
        let items = v
            .get(2)
            .and_then(Value::as_list)
            .context("FETCH without list")?;
        let mut m = MessageState {
            uid: 0,
            flags: BTreeSet::new(),
            keywords: BTreeSet::new(),
            internaldate: String::new(),
            size: 0,
            sha256: String::new(),
            subject: String::new(),
        };
        let mut have_body = false;
        for pair in items.chunks(2) {
            let key = pair[0].as_str().unwrap_or_default().to_ascii_uppercase();
            let val = pair.get(1).context("FETCH item without value")?;
            match key.as_str() {
                "UID" => m.uid = val.as_u64().context("UID")? as u32,
                "FLAGS" => {
                    for f in val
                        .as_list()
                        .context("FLAGS")?
                        .iter()
                        .filter_map(Value::as_str)
                    {
                        if f.eq_ignore_ascii_case("\\Recent") {
                            continue;
                        }
                        if f.starts_with('\\') {
                            m.flags.insert(f);
                        } else {
                            m.keywords.insert(f);
                        }
                    }
                }
                "INTERNALDATE" => m.internaldate = val.as_str().context("INTERNALDATE")?,
                "RFC822.SIZE" => m.size = val.as_u64().context("RFC822.SIZE")?,
                "BODY[]" => {
                    let body = val.as_bytes().unwrap_or_default();
                    m.sha256 = hex(&Sha256::digest(body));
                    m.subject = subject_of(body);
                    have_body = true;
                }
                _ => {}
            }
        }
        if m.uid == 0 || !have_body {
            bail!("incomplete FETCH response {:?}", r.text());
        }
        out.insert(m.uid, m);
    }
    Ok(out)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn subject_of(body: &[u8]) -> String {
    for line in body.split(|&c| c == b'\n') {
        if line.is_empty() || line == b"\r" {
            break;
        }
        if line.len() > 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            let s = String::from_utf8_lossy(&line[8..]).trim().to_string();
            return s.chars().take(60).collect();
        }
    }
    String::new()
}

impl fmt::Debug for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags: Vec<&str> = self
            .flags
            .iter()
            .chain(&self.keywords)
            .map(String::as_str)
            .collect();
        write!(
            f,
            "uid {} ({}) {:?} {} B sha256:{} {:?}",
            self.uid,
            flags.join(" "),
            self.internaldate,
            self.size,
            &self.sha256[..12.min(self.sha256.len())],
            self.subject
        )
    }
}

impl fmt::Debug for MailSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "MailSnapshot of {}", self.location)?;
        for (name, mb) in &self.mailboxes {
            let attrs: Vec<&str> = mb.attributes.iter().map(String::as_str).collect();
            match &mb.status {
                Some(st) => writeln!(
                    f,
                    "  {name:?} ({}) UIDVALIDITY {} UIDNEXT {} MESSAGES {}",
                    attrs.join(" "),
                    st.uidvalidity,
                    st.uidnext,
                    st.messages
                )?,
                None => writeln!(f, "  {name:?} ({})", attrs.join(" "))?,
            }
            for m in mb.messages.values() {
                writeln!(f, "    {m:?}")?;
            }
        }
        writeln!(f, "  subscriptions: {:?}", self.subscriptions)?;
        if let Some(u) = &self.pop3_uidls {
            writeln!(f, "  pop3 uidls: {u:?}")?;
        }
        Ok(())
    }
}

impl MailSnapshot {
    /// Total number of messages in all mailboxes.
    pub fn message_count(&self) -> usize {
        self.mailboxes.values().map(|m| m.messages.len()).sum()
    }
    pub fn mailbox(&self, name: &str) -> &MailboxState {
        self.mailboxes
            .get(name)
            .unwrap_or_else(|| panic!("no mailbox {name:?} in {self:?}"))
    }
}

fn set_str(s: &BTreeSet<String>) -> String {
    format!(
        "({})",
        s.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
    )
}

/// Every difference between `a` and `b`, one readable line each, in
/// mailbox and UID order.
pub fn diff(a: &MailSnapshot, b: &MailSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = a.mailboxes.keys().chain(b.mailboxes.keys()).collect();
    for name in names {
        let (ma, mb) = match (a.mailboxes.get(name), b.mailboxes.get(name)) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => {
                out.push(format!(
                    "mailbox {name:?}: only in left ({} messages)",
                    x.messages.len()
                ));
                continue;
            }
            (None, Some(y)) => {
                out.push(format!(
                    "mailbox {name:?}: only in right ({} messages)",
                    y.messages.len()
                ));
                continue;
            }
            (None, None) => unreachable!(),
        };
        if ma.attributes != mb.attributes {
            out.push(format!(
                "mailbox {name:?}: attributes {} vs {}",
                set_str(&ma.attributes),
                set_str(&mb.attributes)
            ));
        }
        match (&ma.status, &mb.status) {
            (Some(x), Some(y)) => {
                for (what, l, r) in [
                    ("UIDVALIDITY", x.uidvalidity, y.uidvalidity),
                    ("UIDNEXT", x.uidnext, y.uidnext),
                    ("MESSAGES", x.messages, y.messages),
                ] {
                    if l != r {
                        out.push(format!("mailbox {name:?}: {what} {l} vs {r}"));
                    }
                }
            }
            (None, None) => {}
            (x, y) => out.push(format!("mailbox {name:?}: status {x:?} vs {y:?}")),
        }
        let uids: BTreeSet<&u32> = ma.messages.keys().chain(mb.messages.keys()).collect();
        for uid in uids {
            match (ma.messages.get(uid), mb.messages.get(uid)) {
                (Some(x), None) => {
                    out.push(format!("mailbox {name:?} uid {uid}: only in left: {x:?}"))
                }
                (None, Some(y)) => {
                    out.push(format!("mailbox {name:?} uid {uid}: only in right: {y:?}"))
                }
                (Some(x), Some(y)) => {
                    let p = format!("mailbox {name:?} uid {uid}");
                    if x.flags != y.flags {
                        out.push(format!(
                            "{p}: flags {} vs {}",
                            set_str(&x.flags),
                            set_str(&y.flags)
                        ));
                    }
                    if x.keywords != y.keywords {
                        out.push(format!(
                            "{p}: keywords {} vs {}",
                            set_str(&x.keywords),
                            set_str(&y.keywords)
                        ));
                    }
                    if x.internaldate != y.internaldate {
                        out.push(format!(
                            "{p}: INTERNALDATE {:?} vs {:?}",
                            x.internaldate, y.internaldate
                        ));
                    }
                    if x.size != y.size {
                        out.push(format!("{p}: RFC822.SIZE {} vs {}", x.size, y.size));
                    }
                    if x.sha256 != y.sha256 {
                        out.push(format!(
                            "{p}: content differs (sha256 {} vs {}; subjects {:?} vs {:?})",
                            &x.sha256[..12],
                            &y.sha256[..12],
                            x.subject,
                            y.subject
                        ));
                    }
                }
                (None, None) => unreachable!(),
            }
        }
    }
    for s in a.subscriptions.difference(&b.subscriptions) {
        out.push(format!("subscription {s:?}: only in left"));
    }
    for s in b.subscriptions.difference(&a.subscriptions) {
        out.push(format!("subscription {s:?}: only in right"));
    }
    if let (Some(x), Some(y)) = (&a.pop3_uidls, &b.pop3_uidls) {
        if x != y {
            out.push(format!("POP3 UIDLs differ: {x:?} vs {y:?}"));
        }
    }
    out
}

/// Panics with the first differences between two snapshots (left = `a`,
/// right = `b`), not with a dump of both.
#[track_caller]
pub fn assert_same(a: &MailSnapshot, b: &MailSnapshot) {
    let d = diff(a, b);
    if d.is_empty() {
        return;
    }
    const SHOWN: usize = 25;
    let mut msg = format!(
        "snapshots differ in {} ways\n  left:  {}\n  right: {}\n",
        d.len(),
        a.location,
        b.location
    );
    for line in d.iter().take(SHOWN) {
        msg.push_str("  - ");
        msg.push_str(line);
        msg.push('\n');
    }
    if d.len() > SHOWN {
        msg.push_str(&format!("  … and {} more\n", d.len() - SHOWN));
    }
    panic!("{msg}");
}
