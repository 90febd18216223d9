//! Protocol items: the typed meaning of each line frame, in both directions.
//! `protocol-spec/` documents every item; keep the two in step.

use crate::model::{Flags, MailboxGuid, MailboxInfo, MailboxName, MessageRecord, Uid};
use std::fmt;

/// Items the leader (the side that started the run) sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Hello {
        min: u32,
        max: u32,
        features: Vec<String>,
    },
    /// Opens the follower's store; `create` makes a missing one (a backup
    /// destination), otherwise a missing store is an error.
    Open {
        create: bool,
    },
    List,
    Select(MailboxName),
    Snapshot,
    /// Feature `delta`: the selected mailbox compared with the pair's base
    /// for the mailbox with this GUID (the follower's copy of the state
    /// named by the last STATE-GET). Answered like SNAPSHOT, with a DELTA
    /// line after BOX when the answer is a difference.
    Delta(MailboxGuid),
    /// The selected mailbox's fingerprint; with a digest, only if the
    /// mailbox's current state has that digest.
    Fprint(Option<String>),
    Fetch(Uid),
    Create {
        guid: MailboxGuid,
        uidvalidity: u32,
        name: MailboxName,
    },
    Delete(MailboxName),
    /// Renames the selected mailbox; the selection follows it.
    Rename(MailboxName),
    Sub(MailboxName),
    SubsCommit,
    Begin,
    Header {
        guid: MailboxGuid,
        uidvalidity: u32,
        uidnext: Uid,
    },
    /// Followed by DATA chunks and an empty DATA chunk.
    Save(MessageRecord),
    /// Only with the `local-copy` feature: the body is at `path` on the
    /// same machine.
    CopyFile {
        path: String,
        record: MessageRecord,
    },
    Flags {
        uid: Uid,
        flags: Flags,
        keywords: Vec<String>,
    },
    Date {
        uid: Uid,
        secs: i64,
    },
    Expunge(Uid),
    /// The message keeps its file and takes a new UID (≥ UIDNEXT).
    Relabel {
        old: Uid,
        new: Uid,
    },
    /// Saves a copy of the follower's own message `uid` of the mailbox
    /// with GUID `mailbox` (a move or copy: no body crosses the wire).
    CopyLocal {
        mailbox: MailboxGuid,
        uid: Uid,
        record: MessageRecord,
    },
    /// Asks for the follower's store ID and its sync token for `peer`.
    StateGet {
        peer: String,
    },
    /// Starts replacing the follower's sync state for `peer`; BASE and B
    /// lines follow, then STATE-END. `full`: the listed mailboxes are the
    /// whole state (else they update the stored one).
    StatePut {
        peer: String,
        sync_id: String,
        full: bool,
    },
    /// One mailbox of a STATE-PUT; its B lines follow.
    Base {
        guid: MailboxGuid,
        uidvalidity: u32,
        uidnext: Uid,
        name: MailboxName,
    },
    /// One message of the preceding BASE.
    BaseMsg {
        uid: Uid,
        flags: Flags,
        guid: String,
        keywords: Vec<String>,
    },
    /// In an `update` STATE-PUT (feature `delta`): the mailbox's stored
    /// base takes this header and name; the B lines that follow replace or
    /// add messages, B-DROP lines remove them.
    BaseEdit {
        guid: MailboxGuid,
        uidvalidity: u32,
        uidnext: Uid,
        name: MailboxName,
    },
    /// A message the preceding BASE-EDIT removes from the base.
    BaseDrop(Uid),
    /// In an `update` STATE-PUT: the mailbox is no longer part of the
    /// pair's state (deleted, or gone from both sides).
    Unbase(MailboxGuid),
    StateEnd,
    Commit,
    /// Asks (feature `storable`) under which name the follower's store
    /// would keep a mailbox called this: the name itself, or with the
    /// characters it cannot hold replaced by the alternative character.
    Storable(MailboxName),
    Quit,
}

/// Why a request failed: `Temp` means running again may fix it (exit 2),
/// `Fail` means it will not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Temp,
    Fail,
}

/// Items the follower (`dsync server`) sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Hello {
        version: u32,
        features: Vec<String>,
    },
    Box(MailboxInfo),
    Sub(MailboxName),
    Msg(MessageRecord),
    /// After BOX in an answer to DELTA: the MSG lines that follow are the
    /// messages that differ from the base with this digest, and GONE lines
    /// name the base's messages the mailbox no longer holds.
    DeltaOf(String),
    Gone(Uid),
    End,
    /// Followed by DATA chunks and an empty DATA chunk.
    Body {
        uid: Uid,
        size: u64,
    },
    NoBody {
        uid: Uid,
        reason: String,
    },
    Ok,
    /// Answer to FPRINT: the fingerprint, `None` when there is none to trust.
    Fp(Option<String>),
    /// Answer to STATE-GET: the follower's store ID and its sync token for
    /// the leader (`None`: no state for it).
    State {
        store_id: String,
        sync_id: Option<String>,
    },
    /// Answer to STORABLE: the name the store would use.
    Name(MailboxName),
    Error {
        kind: ErrorKind,
        text: String,
    },
    Bye,
}

/// A line that is not a valid item; the text says which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError(pub String);

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ItemError {}

pub const PROTOCOL_NAME: &str = "dsync-rs";

/// BASE and BASE-EDIT: a mailbox's header and name in a STATE-PUT.
fn base_fields(
    verb: &str,
    guid: &MailboxGuid,
    uidvalidity: u32,
    uidnext: Uid,
    name: &MailboxName,
) -> Vec<String> {
    let mut f = v(&[
        verb,
        &guid.to_hex(),
        &uidvalidity.to_string(),
        &uidnext.to_string(),
    ]);
    push_name(&mut f, name);
    f
}

fn err<T>(fields: &[String], why: &str) -> Result<T, ItemError> {
    let mut shown = fields.join(" ");
    if shown.len() > 200 {
        let mut cut = 200;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push('…');
    }
    Err(ItemError(format!("{why} in protocol line {shown:?}")))
}

/// Reads fields left to right with typed accessors, so each item's parser
/// reads like its grammar.
struct Fields<'a> {
    all: &'a [String],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(all: &'a [String]) -> Self {
        Fields { all, pos: 1 }
    }

    fn str(&mut self, what: &str) -> Result<&'a str, ItemError> {
        let f = self.all.get(self.pos).map(String::as_str);
        self.pos += 1;
        f.map_or_else(|| err(self.all, &format!("missing {what}")), Ok)
    }

    fn num<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ItemError> {
        let s = self.str(what)?;
        s.parse()
            .or_else(|_| err(self.all, &format!("bad {what} {s:?}")))
    }

    /// A store or sync ID: hex digits only, so it is safe in file names.
    fn token(&mut self, what: &str) -> Result<String, ItemError> {
        let s = self.str(what)?;
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return err(self.all, &format!("bad {what} {s:?}"));
        }
        Ok(s.to_string())
    }

    fn uid(&mut self) -> Result<Uid, ItemError> {
        let uid: Uid = self.num("UID")?;
        if uid == 0 {
            return err(self.all, "UID 0");
        }
        Ok(uid)
    }

    fn guid(&mut self) -> Result<MailboxGuid, ItemError> {
        let s = self.str("mailbox GUID")?;
        MailboxGuid::from_hex(s).map_or_else(|| err(self.all, "bad mailbox GUID"), Ok)
    }

    fn rest(&mut self) -> &'a [String] {
        let r = &self.all[self.pos.min(self.all.len())..];
        self.pos = self.all.len();
        r
    }

    fn name(&mut self) -> Result<MailboxName, ItemError> {
        let parts = self.rest().to_vec();
        MailboxName::from_parts(parts).map_or_else(|| err(self.all, "bad mailbox name"), Ok)
    }

    fn end(&self) -> Result<(), ItemError> {
        if self.pos < self.all.len() {
            return err(self.all, "unexpected extra fields");
        }
        Ok(())
    }

    /// Message record fields: uid guid flags date size pop3-uidl pop3-order
    /// new keyword...
    fn record(&mut self) -> Result<MessageRecord, ItemError> {
        let uid = self.uid()?;
        let guid = self.str("message GUID")?.to_string();
        if guid.is_empty() {
            return err(self.all, "empty message GUID");
        }
        let flags_s = self.str("flags")?;
        let flags = Flags::from_letters(flags_s)
            .map_or_else(|| err(self.all, &format!("bad flags {flags_s:?}")), Ok)?;
        let internal_date = self.num("date")?;
        let size = self.num("size")?;
        let pop3_uidl = match self.str("POP3 UIDL")? {
            "" => None,
            s => match s.strip_prefix('+') {
                Some(v) => Some(v.to_string()),
                None => return err(self.all, "POP3 UIDL without '+'"),
            },
        };
        let pop3_order = match self.str("POP3 order")? {
            "" => None,
            s => Some(
                s.parse()
                    .or_else(|_| err(self.all, &format!("bad POP3 order {s:?}")))?,
            ),
        };
        let in_new = match self.str("new/cur marker")? {
            "new" => true,
            "cur" => false,
            _ => return err(self.all, "bad new/cur marker"),
        };
        let keywords = self.rest().to_vec();
        if keywords.iter().any(|k| k.is_empty()) {
            return err(self.all, "empty keyword");
        }
        Ok(MessageRecord {
            uid,
            guid,
            flags,
            keywords,
            internal_date,
            size,
            pop3_uidl,
            pop3_order,
            in_new,
        })
    }
}

fn push_name(out: &mut Vec<String>, name: &MailboxName) {
    out.extend(name.parts().iter().cloned());
}

fn push_record(out: &mut Vec<String>, r: &MessageRecord) {
    out.push(r.uid.to_string());
    out.push(r.guid.clone());
    out.push(r.flags.to_letters());
    out.push(r.internal_date.to_string());
    out.push(r.size.to_string());
    out.push(
        r.pop3_uidl
            .as_ref()
            .map_or(String::new(), |u| format!("+{u}")),
    );
    out.push(r.pop3_order.map_or(String::new(), |o| o.to_string()));
    out.push(if r.in_new { "new" } else { "cur" }.to_string());
    out.extend(r.keywords.iter().cloned());
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Command {
    pub fn to_fields(&self) -> Vec<String> {
        match self {
            Command::Hello { min, max, features } => {
                let mut f = v(&["HELLO", PROTOCOL_NAME, &min.to_string(), &max.to_string()]);
                f.extend(features.iter().cloned());
                f
            }
            Command::Open { create } => v(&["OPEN", if *create { "create" } else { "existing" }]),
            Command::List => v(&["LIST"]),
            Command::Select(name) => {
                let mut f = v(&["SELECT"]);
                push_name(&mut f, name);
                f
            }
            Command::Snapshot => v(&["SNAPSHOT"]),
            Command::Delta(guid) => v(&["DELTA", &guid.to_hex()]),
            Command::Fprint(None) => v(&["FPRINT"]),
            Command::Fprint(Some(d)) => v(&["FPRINT", d]),
            Command::Fetch(uid) => v(&["FETCH", &uid.to_string()]),
            Command::Create {
                guid,
                uidvalidity,
                name,
            } => {
                let mut f = v(&["CREATE", &guid.to_hex(), &uidvalidity.to_string()]);
                push_name(&mut f, name);
                f
            }
            Command::Delete(name) => {
                let mut f = v(&["DELETE"]);
                push_name(&mut f, name);
                f
            }
            Command::Rename(name) => {
                let mut f = v(&["RENAME"]);
                push_name(&mut f, name);
                f
            }
            Command::Sub(name) => {
                let mut f = v(&["SUB"]);
                push_name(&mut f, name);
                f
            }
            Command::SubsCommit => v(&["SUBS-COMMIT"]),
            Command::Begin => v(&["BEGIN"]),
            Command::Header {
                guid,
                uidvalidity,
                uidnext,
            } => v(&[
                "HEADER",
                &guid.to_hex(),
                &uidvalidity.to_string(),
                &uidnext.to_string(),
            ]),
            Command::Save(r) => {
                let mut f = v(&["SAVE"]);
                push_record(&mut f, r);
                f
            }
            Command::CopyFile { path, record } => {
                let mut f = v(&["COPYFILE", path]);
                push_record(&mut f, record);
                f
            }
            Command::Flags {
                uid,
                flags,
                keywords,
            } => {
                let mut f = v(&["FLAGS", &uid.to_string(), &flags.to_letters()]);
                f.extend(keywords.iter().cloned());
                f
            }
            Command::Date { uid, secs } => v(&["DATE", &uid.to_string(), &secs.to_string()]),
            Command::Expunge(uid) => v(&["EXPUNGE", &uid.to_string()]),
            Command::Relabel { old, new } => v(&["RELABEL", &old.to_string(), &new.to_string()]),
            Command::CopyLocal {
                mailbox,
                uid,
                record,
            } => {
                let mut f = v(&["COPYLOCAL", &mailbox.to_hex(), &uid.to_string()]);
                push_record(&mut f, record);
                f
            }
            Command::StateGet { peer } => v(&["STATE-GET", peer]),
            Command::StatePut {
                peer,
                sync_id,
                full,
            } => v(&[
                "STATE-PUT",
                peer,
                sync_id,
                if *full { "full" } else { "update" },
            ]),
            Command::Base {
                guid,
                uidvalidity,
                uidnext,
                name,
            } => base_fields("BASE", guid, *uidvalidity, *uidnext, name),
            Command::BaseMsg {
                uid,
                flags,
                guid,
                keywords,
            } => {
                let mut f = v(&["B", &uid.to_string(), &flags.to_letters(), guid]);
                f.extend(keywords.iter().cloned());
                f
            }
            Command::BaseEdit {
                guid,
                uidvalidity,
                uidnext,
                name,
            } => base_fields("BASE-EDIT", guid, *uidvalidity, *uidnext, name),
            Command::BaseDrop(uid) => v(&["B-DROP", &uid.to_string()]),
            Command::Unbase(guid) => v(&["UNBASE", &guid.to_hex()]),
            Command::StateEnd => v(&["STATE-END"]),
            Command::Commit => v(&["COMMIT"]),
            Command::Storable(name) => {
                let mut f = v(&["STORABLE"]);
                push_name(&mut f, name);
                f
            }
            Command::Quit => v(&["QUIT"]),
        }
    }

    pub fn parse(fields: &[String]) -> Result<Command, ItemError> {
        let mut f = Fields::new(fields);
        let cmd = match fields[0].as_str() {
            "HELLO" => {
                if f.str("protocol name")? != PROTOCOL_NAME {
                    return err(fields, "not a dsync-rs peer");
                }
                let min = f.num("minimum version")?;
                let max = f.num("maximum version")?;
                let features = f.rest().to_vec();
                return Ok(Command::Hello { min, max, features });
            }
            "OPEN" => Command::Open {
                create: match f.str("open mode")? {
                    "create" => true,
                    "existing" => false,
                    other => return err(fields, &format!("bad open mode {other:?}")),
                },
            },
            "LIST" => Command::List,
            "SELECT" => Command::Select(f.name()?),
            "SNAPSHOT" => Command::Snapshot,
            "FPRINT" => Command::Fprint(if fields.len() > 1 {
                Some(f.token("digest")?)
            } else {
                None
            }),
            "FETCH" => Command::Fetch(f.uid()?),
            "CREATE" => {
                let guid = f.guid()?;
                let uidvalidity = f.num("UIDVALIDITY")?;
                Command::Create {
                    guid,
                    uidvalidity,
                    name: f.name()?,
                }
            }
            "DELETE" => Command::Delete(f.name()?),
            "RENAME" => Command::Rename(f.name()?),
            "SUB" => Command::Sub(f.name()?),
            "SUBS-COMMIT" => Command::SubsCommit,
            "BEGIN" => Command::Begin,
            "HEADER" => Command::Header {
                guid: f.guid()?,
                uidvalidity: f.num("UIDVALIDITY")?,
                uidnext: f.num("UIDNEXT")?,
            },
            "SAVE" => Command::Save(f.record()?),
            "COPYFILE" => {
                let path = f.str("path")?.to_string();
                Command::CopyFile {
                    path,
                    record: f.record()?,
                }
            }
            "FLAGS" => {
                let uid = f.uid()?;
                let s = f.str("flags")?;
                let flags = Flags::from_letters(s)
                    .map_or_else(|| err(fields, &format!("bad flags {s:?}")), Ok)?;
                let keywords = f.rest().to_vec();
                Command::Flags {
                    uid,
                    flags,
                    keywords,
                }
            }
            "DATE" => Command::Date {
                uid: f.uid()?,
                secs: f.num("date")?,
            },
            "EXPUNGE" => Command::Expunge(f.uid()?),
            "RELABEL" => Command::Relabel {
                old: f.uid()?,
                new: f.uid()?,
            },
            "COPYLOCAL" => Command::CopyLocal {
                mailbox: f.guid()?,
                uid: f.uid()?,
                record: f.record()?,
            },
            "STATE-GET" => Command::StateGet {
                peer: f.token("peer ID")?,
            },
            "STATE-PUT" => Command::StatePut {
                peer: f.token("peer ID")?,
                sync_id: f.token("sync ID")?,
                full: match f.str("state mode")? {
                    "full" => true,
                    "update" => false,
                    other => return err(fields, &format!("bad state mode {other:?}")),
                },
            },
            "BASE" => Command::Base {
                guid: f.guid()?,
                uidvalidity: f.num("UIDVALIDITY")?,
                uidnext: f.num("UIDNEXT")?,
                name: f.name()?,
            },
            "B" => {
                let uid = f.uid()?;
                let s = f.str("flags")?;
                let flags = Flags::from_letters(s)
                    .map_or_else(|| err(fields, &format!("bad flags {s:?}")), Ok)?;
                let guid = f.str("message GUID")?.to_string();
                if guid.is_empty() {
                    return err(fields, "empty message GUID");
                }
                Command::BaseMsg {
                    uid,
                    flags,
                    guid,
                    keywords: f.rest().to_vec(),
                }
            }
            "BASE-EDIT" => Command::BaseEdit {
                guid: f.guid()?,
                uidvalidity: f.num("UIDVALIDITY")?,
                uidnext: f.num("UIDNEXT")?,
                name: f.name()?,
            },
            "B-DROP" => Command::BaseDrop(f.uid()?),
            "DELTA" => Command::Delta(f.guid()?),
            "UNBASE" => Command::Unbase(f.guid()?),
            "STATE-END" => Command::StateEnd,
            "COMMIT" => Command::Commit,
            "STORABLE" => Command::Storable(f.name()?),
            "QUIT" => Command::Quit,
            _ => return err(fields, "unknown command"),
        };
        f.end()?;
        Ok(cmd)
    }
}

impl Reply {
    pub fn to_fields(&self) -> Vec<String> {
        match self {
            Reply::Hello { version, features } => {
                let mut f = v(&["HELLO", PROTOCOL_NAME, &version.to_string()]);
                f.extend(features.iter().cloned());
                f
            }
            Reply::Box(i) => {
                let mut f = v(&[
                    "BOX",
                    &i.guid.to_hex(),
                    &i.uidvalidity.to_string(),
                    &i.uidnext.to_string(),
                    &i.messages.to_string(),
                    &i.highest_modseq.to_string(),
                ]);
                push_name(&mut f, &i.name);
                f
            }
            Reply::Sub(name) => {
                let mut f = v(&["SUB"]);
                push_name(&mut f, name);
                f
            }
            Reply::Msg(r) => {
                let mut f = v(&["MSG"]);
                push_record(&mut f, r);
                f
            }
            Reply::DeltaOf(digest) => v(&["DELTA", digest]),
            Reply::Gone(uid) => v(&["GONE", &uid.to_string()]),
            Reply::End => v(&["END"]),
            Reply::Body { uid, size } => v(&["BODY", &uid.to_string(), &size.to_string()]),
            Reply::NoBody { uid, reason } => v(&["NOBODY", &uid.to_string(), reason]),
            Reply::Ok => v(&["OK"]),
            Reply::Fp(fp) => v(&["FP", fp.as_deref().unwrap_or("")]),
            Reply::State { store_id, sync_id } => {
                v(&["STATE", store_id, sync_id.as_deref().unwrap_or("")])
            }
            Reply::Name(name) => {
                let mut f = v(&["NAME"]);
                push_name(&mut f, name);
                f
            }
            Reply::Error { kind, text } => v(&[
                "ERROR",
                match kind {
                    ErrorKind::Temp => "temp",
                    ErrorKind::Fail => "fail",
                },
                text,
            ]),
            Reply::Bye => v(&["BYE"]),
        }
    }

    pub fn parse(fields: &[String]) -> Result<Reply, ItemError> {
        let mut f = Fields::new(fields);
        let reply = match fields[0].as_str() {
            "HELLO" => {
                if f.str("protocol name")? != PROTOCOL_NAME {
                    return err(fields, "not a dsync-rs peer");
                }
                let version = f.num("version")?;
                return Ok(Reply::Hello {
                    version,
                    features: f.rest().to_vec(),
                });
            }
            "BOX" => {
                let guid = f.guid()?;
                let uidvalidity = f.num("UIDVALIDITY")?;
                let uidnext = f.num("UIDNEXT")?;
                let messages = f.num("message count")?;
                let highest_modseq = f.num("HIGHESTMODSEQ")?;
                Reply::Box(MailboxInfo {
                    guid,
                    uidvalidity,
                    uidnext,
                    messages,
                    highest_modseq,
                    name: f.name()?,
                })
            }
            "SUB" => Reply::Sub(f.name()?),
            "MSG" => Reply::Msg(f.record()?),
            "DELTA" => Reply::DeltaOf(f.token("base digest")?),
            "GONE" => Reply::Gone(f.uid()?),
            "END" => Reply::End,
            "BODY" => Reply::Body {
                uid: f.uid()?,
                size: f.num("size")?,
            },
            "NOBODY" => Reply::NoBody {
                uid: f.uid()?,
                reason: f.str("reason")?.to_string(),
            },
            "OK" => Reply::Ok,
            "FP" => Reply::Fp(match f.str("fingerprint")? {
                "" => None,
                s => Some(s.to_string()),
            }),
            "STATE" => {
                let store_id = f.token("store ID")?;
                let sync_id = match f.str("sync ID")? {
                    "" => None,
                    s if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        Some(s.to_string())
                    }
                    other => return err(fields, &format!("bad sync ID {other:?}")),
                };
                Reply::State { store_id, sync_id }
            }
            "NAME" => Reply::Name(f.name()?),
            "ERROR" => {
                let kind = match f.str("error kind")? {
                    "temp" => ErrorKind::Temp,
                    "fail" => ErrorKind::Fail,
                    _ => return err(fields, "bad error kind"),
                };
                Reply::Error {
                    kind,
                    text: f.str("error text")?.to_string(),
                }
            }
            "BYE" => Reply::Bye,
            _ => return err(fields, "unknown reply"),
        };
        f.end()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec() -> MessageRecord {
        MessageRecord {
            uid: 7,
            guid: "1700000000.M1P2.host,S=10,W=11".into(),
            flags: Flags::SEEN.union(Flags::FLAGGED),
            keywords: vec!["$Forwarded".into(), "Work".into()],
            internal_date: 1_700_000_000,
            size: 10,
            pop3_uidl: Some("".into()),
            pop3_order: Some(3),
            in_new: false,
        }
    }

    #[test]
    fn commands_roundtrip() {
        let name = MailboxName::from_parts(vec!["Archive".into(), "2024\tx".into()]).unwrap();
        let cmds = vec![
            Command::Hello {
                min: 1,
                max: 1,
                features: vec!["local-copy".into()],
            },
            Command::List,
            Command::Open { create: true },
            Command::Select(name.clone()),
            Command::Create {
                guid: MailboxGuid([7; 16]),
                uidvalidity: 42,
                name: name.clone(),
            },
            Command::Save(rec()),
            Command::CopyFile {
                path: "/x/y".into(),
                record: MessageRecord {
                    pop3_uidl: None,
                    pop3_order: None,
                    keywords: vec![],
                    ..rec()
                },
            },
            Command::Flags {
                uid: 3,
                flags: Flags::empty(),
                keywords: vec![],
            },
            Command::Header {
                guid: MailboxGuid([1; 16]),
                uidvalidity: 1,
                uidnext: 9,
            },
            Command::Expunge(4),
            Command::Fprint(None),
            Command::Fprint(Some("00ab".into())),
            Command::Storable(name.clone()),
            Command::Relabel { old: 3, new: 9 },
            Command::CopyLocal {
                mailbox: MailboxGuid([3; 16]),
                uid: 5,
                record: rec(),
            },
            Command::StateGet {
                peer: "00ff".into(),
            },
            Command::StatePut {
                peer: "00ff".into(),
                sync_id: "abc1".into(),
                full: true,
            },
            Command::Base {
                guid: MailboxGuid([4; 16]),
                uidvalidity: 7,
                uidnext: 8,
                name: name.clone(),
            },
            Command::BaseMsg {
                uid: 1,
                flags: Flags::SEEN,
                guid: "g".into(),
                keywords: vec!["$Junk".into()],
            },
            Command::Unbase(MailboxGuid([5; 16])),
            Command::Delta(MailboxGuid([6; 16])),
            Command::BaseEdit {
                guid: MailboxGuid([4; 16]),
                uidvalidity: 7,
                uidnext: 9,
                name: name.clone(),
            },
            Command::BaseDrop(3),
            Command::StateEnd,
            Command::Commit,
        ];
        for c in cmds {
            assert_eq!(Command::parse(&c.to_fields()).unwrap(), c);
        }
    }

    #[test]
    fn replies_roundtrip() {
        let replies = vec![
            Reply::Hello {
                version: 1,
                features: vec![],
            },
            Reply::Box(MailboxInfo {
                name: MailboxName::inbox(),
                guid: MailboxGuid([9; 16]),
                uidvalidity: 5,
                uidnext: 6,
                messages: 5,
                highest_modseq: 0,
            }),
            Reply::Msg(rec()),
            Reply::DeltaOf("00ab12cd00ab12cd".into()),
            Reply::Gone(4),
            Reply::State {
                store_id: "0a".into(),
                sync_id: None,
            },
            Reply::Fp(None),
            Reply::Name(MailboxName::from_parts(vec!["a_b".into()]).unwrap()),
            Reply::Fp(Some("c1.2:3:4:5;".into())),
            Reply::State {
                store_id: "0a".into(),
                sync_id: Some("ff".into()),
            },
            Reply::Error {
                kind: ErrorKind::Temp,
                text: "mailbox changed".into(),
            },
        ];
        for r in replies {
            assert_eq!(Reply::parse(&r.to_fields()).unwrap(), r);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Command::parse(&v(&["FETCH", "0"])).unwrap_err();
        assert!(e.0.contains("UID 0"), "{e}");
        let e = Command::parse(&v(&["FLAGS", "1", "Q"])).unwrap_err();
        assert!(e.0.contains("bad flags"), "{e}");
        let e = Command::parse(&v(&["NOPE"])).unwrap_err();
        assert!(e.0.contains("unknown command"), "{e}");
        let e = Command::parse(&v(&["LIST", "x"])).unwrap_err();
        assert!(e.0.contains("extra"), "{e}");
    }

    proptest! {
        #[test]
        fn random_fields_never_panic(fields in proptest::collection::vec(".{0,12}", 1..12),
                                     verb in prop::sample::select(vec!["HELLO","LIST","SELECT","FETCH","CREATE","SAVE","COPYFILE","FLAGS","DATE","HEADER","BOX","MSG","BODY","ERROR","NOBODY","DELTA","GONE","BASE-EDIT","B-DROP"])) {
            let mut all = vec![verb.to_string()];
            all.extend(fields);
            let _ = Command::parse(&all);
            let _ = Reply::parse(&all);
        }
    }
}
