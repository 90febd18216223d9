//! The state's journal: `dsync-state.<peer>.log` beside the main file, so
//! a run that changed a few messages appends a few lines instead of
//! rewriting a file of 64 bytes per message.
//!
//! An entry is one run's change from token OLD to token NEW:
//! ```text
//! J <old sync_id> <new sync_id>
//! U <mailbox guid> <uidvalidity> <uidnext> <dropped count> <set count> <name part> …
//! <uid>                                    (dropped count lines)
//! <uid> <flags> <message guid> [<keyword> …] (set count lines, UIDs ascending)
//! M …                                      (a whole mailbox, as in the main file)
//! X <mailbox guid>                         (a mailbox no longer in the state)
//! C <new sync_id> <line count> <checksum>
//! ```
//! The commit line counts the entry's lines before it and carries the
//! FNV-1a 64 checksum (16 hex) of their bytes: an entry without a valid
//! commit line was torn by a crash and is ignored, as is everything after
//! it or after an entry whose OLD is not the token reached so far. The
//! next append overwrites that tail. A complete entry whose content does
//! not parse or apply is damage (an error), like a damaged main file.
//!
//! The main file is rewritten (and the journal removed) when the journal
//! would outgrow a quarter of it; the new main file is in place, with the
//! new token, before the journal goes, so a journal left by a crash in
//! between starts with an OLD the main file does not have and is ignored.

use super::{check_messages, push_token, show, Parser, StateError, SyncState};
use crate::brain::delta::{self, BaseEdit};
use crate::brain::merge::{BaseMailbox, BaseMessage};
use crate::model::{MailboxGuid, MailboxName, Uid};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// The journal's file name suffix (after the main file's name).
pub const SUFFIX: &str = ".log";

/// How one mailbox of the state changed in a run.
#[derive(Clone, Copy, Debug)]
pub enum BoxChange<'a> {
    /// Only these messages (and the header: name, UIDVALIDITY, UIDNEXT).
    Edit(&'a BaseEdit),
    /// Anything: the entry holds the mailbox whole.
    Whole,
}

/// One run's change to the state: what the caller knows changed since
/// the state under `old_sync_id`. Mailboxes not named are unchanged.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub old_sync_id: &'a str,
    pub mailboxes: Vec<(MailboxGuid, BoxChange<'a>)>,
    /// Mailboxes that left the state.
    pub dropped: Vec<MailboxGuid>,
}

/// One complete entry found by [`frames`].
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub old: &'a [u8],
    pub new: &'a [u8],
    /// The lines between the header and the commit line.
    pub body: &'a [u8],
    /// Where the entry ends in the journal (after its commit line).
    pub end: usize,
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The complete entries at the journal's start that chain from `token`:
/// each one's OLD is the previous one's NEW. Stops at the first torn or
/// non-matching entry. Reads only the framing, never the content.
pub fn frames<'a>(data: &'a [u8], token: &[u8]) -> Vec<Frame<'a>> {
    let mut out: Vec<Frame<'a>> = Vec::new();
    let mut pos = 0;
    let mut token = token;
    while let Some(f) = frame_at(data, pos) {
        if f.old != token {
            break;
        }
        token = f.new;
        pos = f.end;
        out.push(f);
    }
    out
}

fn frame_at(data: &[u8], start: usize) -> Option<Frame<'_>> {
    let mut pos = start;
    let mut next_line = || -> Option<(usize, &[u8])> {
        let rest = data.get(pos..)?;
        let end = rest.iter().position(|b| *b == b'\n')?;
        let at = pos;
        pos += end + 1;
        Some((at, &rest[..end]))
    };
    let (_, head) = next_line()?;
    let mut h = head.split(|b| *b == b' ');
    let (Some(b"J"), Some(old), Some(new), None) = (h.next(), h.next(), h.next(), h.next()) else {
        return None;
    };
    let mut lines = 1usize;
    loop {
        let (at, l) = next_line()?;
        if l.first() == Some(&b'C') {
            let mut c = l.split(|b| *b == b' ');
            let (Some(b"C"), Some(id), Some(n), Some(sum), None) =
                (c.next(), c.next(), c.next(), c.next(), c.next())
            else {
                return None;
            };
            let whole = &data[start..at];
            let ok = id == new
                && std::str::from_utf8(n).ok()?.parse::<usize>().ok()? == lines
                && sum == format!("{:016x}", fnv1a(whole)).as_bytes();
            let body_start = start + head.len() + 1;
            return ok.then_some(Frame {
                old,
                new,
                body: &data[body_start..at],
                end: at + l.len() + 1,
            });
        }
        lines += 1;
    }
}

/// The edits of successive entries to one mailbox, merged: per UID the
/// last entry's word (`None`: dropped). Applied once at the end, so a
/// long journal costs one pass over each mailbox, not one per entry.
type Pending = HashMap<MailboxGuid, BTreeMap<Uid, Option<BaseMessage>>>;

/// Applies the complete, chaining entries of `data` to `st` (the main
/// file's state); returns where the applied entries end.
pub fn replay(st: &mut SyncState, data: &[u8]) -> Result<usize, StateError> {
    let frames = frames(data, st.sync_id.as_bytes());
    let mut end = 0;
    let mut pending = Pending::new();
    for f in frames {
        apply_body(st, &mut pending, f.body).map_err(|e| StateError {
            line: 0,
            msg: format!(
                "journal entry to {}: line {} of the entry: {}",
                show(f.new),
                e.line + 1,
                e.msg
            ),
        })?;
        st.sync_id = String::from_utf8_lossy(f.new).into_owned();
        if !super::valid_token(&st.sync_id) {
            return Err(StateError {
                line: 0,
                msg: format!("journal entry has a bad sync_id {}", show(f.new)),
            });
        }
        end = f.end;
    }
    for (guid, edits) in pending {
        let Some((_, base)) = st.mailboxes.get_mut(&guid) else {
            continue;
        };
        let mut edit = BaseEdit::default();
        for (uid, m) in edits {
            match m {
                Some(m) => edit.set.push(m),
                None => edit.dropped.push(uid),
            }
        }
        delta::apply(base, edit);
        if let Err(e) = check_messages(base) {
            return Err(StateError {
                line: 0,
                msg: format!("journal: mailbox {guid}: {e}"),
            });
        }
    }
    Ok(end)
}

fn apply_body(st: &mut SyncState, pending: &mut Pending, body: &[u8]) -> Result<(), StateError> {
    let mut p = Parser::new(body);
    while !p.rest.is_empty() {
        let l = p.next_line()?;
        let f = p.fields(l)?;
        match f[0] {
            b"M" => {
                let (name, mb) = p.mailbox(&f)?;
                pending.remove(&mb.guid);
                st.insert(name, mb);
            }
            b"X" => {
                let g = f.get(1).and_then(|g| super::parse_guid(g));
                match (g, f.len()) {
                    (Some(g), 2) => {
                        pending.remove(&g);
                        st.mailboxes.remove(&g);
                    }
                    _ => return p.err(format!("bad mailbox drop line {}", show(l))),
                }
            }
            b"U" => {
                if f.len() < 7 {
                    return p.err("edit line needs U <guid> <uidvalidity> <uidnext> <dropped> <set> <name part>…");
                }
                let Some(guid) = super::parse_guid(f[1]) else {
                    return p.err(format!("bad mailbox GUID {}", show(f[1])));
                };
                let uidvalidity = p.num(f[2], "UIDVALIDITY")?;
                let uidnext = p.num(f[3], "UIDNEXT")?;
                let nd = p.num(f[4], "dropped count")?;
                let ns = p.num(f[5], "set count")?;
                let name = f[6..]
                    .iter()
                    .map(|x| super::parse_token(x))
                    .collect::<Option<Vec<String>>>()
                    .and_then(MailboxName::from_parts);
                let Some(name) = name else {
                    return p.err(format!("bad mailbox name {}", show(&f[6..].join(&b' '))));
                };
                let Some((n, base)) = st.mailboxes.get_mut(&guid) else {
                    return p.err(format!(
                        "edit for mailbox {guid}, which the state does not hold"
                    ));
                };
                *n = name;
                base.uidvalidity = uidvalidity;
                base.uidnext = uidnext;
                let edits = pending.entry(guid).or_default();
                for _ in 0..nd {
                    let l = p.next_line()?;
                    let uid = p.num(l, "dropped UID")?;
                    edits.insert(uid, None);
                }
                for _ in 0..ns {
                    let m = p.message()?;
                    edits.insert(m.uid, Some(m));
                }
            }
            _ => return p.err(format!("expected U, M or X, got {}", show(l))),
        }
    }
    Ok(())
}

fn push_header(
    line: &mut Vec<u8>,
    tag: &str,
    mb: &BaseMailbox,
    counts: &[usize],
    name: &MailboxName,
) {
    let _ = write!(
        line,
        "{tag} {} {} {}",
        mb.guid.to_hex(),
        mb.uidvalidity,
        mb.uidnext
    );
    for c in counts {
        let _ = write!(line, " {c}");
    }
    for part in name.parts() {
        line.push(b' ');
        push_token(line, part);
    }
    line.push(b'\n');
}

fn push_message(line: &mut Vec<u8>, m: &BaseMessage) {
    let _ = write!(line, "{} ", m.uid);
    if m.flags.bits() == 0 {
        line.push(b'-');
    } else {
        line.extend_from_slice(m.flags.to_letters().as_bytes());
    }
    line.push(b' ');
    push_token(line, &m.guid);
    for k in m.keywords.iter() {
        line.push(b' ');
        push_token(line, k);
    }
    line.push(b'\n');
}

/// A lower bound on the entry's size, to decide on compaction before
/// building an entry that would hold most of the state.
pub fn estimate(state: &SyncState, change: &Change) -> usize {
    change
        .mailboxes
        .iter()
        .map(|(g, c)| match c {
            BoxChange::Edit(e) => 40 + e.dropped.len() * 4 + e.set.len() * 40,
            BoxChange::Whole => state.get(g).map_or(40, |(_, b)| 40 + b.messages.len() * 40),
        })
        .sum::<usize>()
        + change.dropped.len() * 35
}

/// The entry turning the state under `change.old_sync_id` into `state`;
/// `None` when the change does not describe `state` (an edited message
/// not as the state holds it), so the caller writes the state whole.
pub fn entry(state: &SyncState, change: &Change) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let _ = writeln!(out, "J {} {}", change.old_sync_id, state.sync_id);
    let mut lines = 1;
    let mut gone: Vec<MailboxGuid> = change.dropped.clone();
    // In the caller's order: replay applies them in turn. An edit a later
    // one superseded no longer matches the state, and the state is then
    // written whole.
    for (g, c) in &change.mailboxes {
        let Some((name, mb)) = state.get(g) else {
            gone.push(*g);
            continue;
        };
        match c {
            BoxChange::Whole => {
                push_header(&mut out, "M", mb, &[mb.messages.len()], name);
                for m in &mb.messages {
                    push_message(&mut out, m);
                }
                lines += 1 + mb.messages.len();
            }
            BoxChange::Edit(e) => {
                let find = |uid| {
                    mb.messages
                        .binary_search_by_key(&uid, |m: &BaseMessage| m.uid)
                };
                let mut dropped = e.dropped.clone();
                dropped.sort_unstable();
                dropped.dedup();
                let mut set: Vec<&BaseMessage> = e.set.iter().collect();
                set.sort_by_key(|m| m.uid);
                let consistent = dropped.iter().all(|u| find(*u).is_err())
                    && set.windows(2).all(|w| w[0].uid < w[1].uid)
                    && set
                        .iter()
                        .all(|m| find(m.uid).is_ok_and(|i| mb.messages[i] == **m));
                if !consistent {
                    return None;
                }
                push_header(&mut out, "U", mb, &[dropped.len(), set.len()], name);
                for u in &dropped {
                    let _ = writeln!(out, "{u}");
                }
                for m in set {
                    push_message(&mut out, m);
                }
                lines += 1 + dropped.len() + e.set.len();
            }
        }
    }
    gone.sort_unstable();
    gone.dedup();
    for g in gone {
        if state.get(&g).is_none() {
            let _ = writeln!(out, "X {}", g.to_hex());
            lines += 1;
        }
    }
    let sum = fnv1a(&out);
    let _ = writeln!(out, "C {} {lines} {sum:016x}", state.sync_id);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flags;
    use proptest::prelude::*;

    const PEER: &str = "0123456789abcdef0123456789abcdef";

    /// A small deterministic generator, so one proptest seed drives a
    /// whole sequence of runs.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn msg(r: &mut Rng, uid: u32) -> BaseMessage {
        let kw: Vec<String> = (0..r.below(3)).map(|i| format!("k{i} x%")).collect();
        BaseMessage {
            uid,
            guid: format!("g{}", r.below(1000)),
            flags: Flags::from_bits((r.below(32)) as u8).unwrap(),
            keywords: kw.into(),
        }
    }

    fn mailbox(r: &mut Rng) -> (MailboxName, BaseMailbox) {
        let mut g = [0u8; 16];
        g[..8].copy_from_slice(&r.next().to_le_bytes());
        let n = r.below(20) as u32;
        let mut messages = Vec::new();
        for u in 1..=n {
            if r.below(4) != 0 {
                messages.push(msg(r, u));
            }
        }
        let name = MailboxName::from_parts(vec![format!("box {}", r.below(100))]).unwrap();
        let base = BaseMailbox {
            guid: MailboxGuid(g),
            uidvalidity: r.below(5) as u32 + 1,
            uidnext: n + 1,
            messages,
        };
        (name, base)
    }

    /// A run's outcome: the new state, the mailboxes changed (an edit, or
    /// `None` for whole) and those dropped.
    type Step = (
        SyncState,
        Vec<(MailboxGuid, Option<BaseEdit>)>,
        Vec<MailboxGuid>,
    );

    /// One run's random change to `st`, applied in memory: the new
    /// state and what a caller would report.
    fn step(r: &mut Rng, st: &SyncState) -> Step {
        let mut new = st.clone();
        new.sync_id = format!("t{}", r.next());
        let mut changes = Vec::new();
        let mut dropped = Vec::new();
        let mut guids: Vec<MailboxGuid> = st.mailboxes.keys().copied().collect();
        guids.sort();
        for g in guids {
            match r.below(5) {
                0 => {
                    new.mailboxes.remove(&g);
                    dropped.push(g);
                }
                1 => {
                    let (n, mut b) = mailbox(r);
                    b.guid = g;
                    new.insert(n, b);
                    changes.push((g, None));
                }
                2 | 3 => {
                    let (name, base) = new.mailboxes.get_mut(&g).unwrap();
                    let mut e = BaseEdit::default();
                    for m in &base.messages {
                        match r.below(4) {
                            0 => e.dropped.push(m.uid),
                            1 => e.set.push(BaseMessage {
                                flags: Flags::from_bits(r.below(32) as u8).unwrap(),
                                ..m.clone()
                            }),
                            _ => {}
                        }
                    }
                    let extra = r.below(3) as u32;
                    for u in base.uidnext..base.uidnext + extra {
                        e.set.push(msg(r, u));
                    }
                    base.uidnext += extra + r.below(2) as u32;
                    if r.below(4) == 0 {
                        *name = MailboxName::from_parts(vec![format!("renamed {}", r.below(9))])
                            .unwrap();
                    }
                    let copy = BaseEdit {
                        dropped: e.dropped.clone(),
                        set: e.set.clone(),
                    };
                    delta::apply(base, e);
                    changes.push((g, Some(copy)));
                }
                _ => {}
            }
        }
        if r.below(3) == 0 {
            let (n, b) = mailbox(r);
            changes.push((b.guid, None));
            new.insert(n, b);
        }
        (new, changes, dropped)
    }

    fn change<'a>(
        old: &'a str,
        changes: &'a [(MailboxGuid, Option<BaseEdit>)],
        dropped: &[MailboxGuid],
    ) -> Change<'a> {
        Change {
            old_sync_id: old,
            mailboxes: changes
                .iter()
                .map(|(g, e)| (*g, e.as_ref().map_or(BoxChange::Whole, BoxChange::Edit)))
                .collect(),
            dropped: dropped.to_vec(),
        }
    }

    fn start(r: &mut Rng) -> SyncState {
        let mut st = SyncState::new("t0".into());
        for _ in 0..r.below(4) {
            let (n, b) = mailbox(r);
            st.insert(n, b);
        }
        st
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Main file plus entries loads as the edits applied in memory;
        /// a last entry cut anywhere leaves the state before it.
        #[test]
        fn entries_replay_like_memory(seed in 1u64.., steps in 1usize..6, cut in any::<prop::sample::Index>()) {
            let mut r = Rng(seed);
            let first = start(&mut r);
            let main = first.to_bytes().unwrap();
            let mut log = Vec::new();
            let mut st = first.clone();
            let mut before_last = first.clone();
            let mut last_len = 0;
            for _ in 0..steps {
                let (new, ch, dr) = step(&mut r, &st);
                let e = entry(&new, &change(&st.sync_id, &ch, &dr)).unwrap();
                last_len = e.len();
                log.extend_from_slice(&e);
                before_last = std::mem::replace(&mut st, new);
            }
            let mut loaded = SyncState::parse(&main).unwrap();
            let end = replay(&mut loaded, &log).unwrap();
            prop_assert_eq!(end, log.len());
            prop_assert_eq!(&loaded, &st);
            // Torn: any proper prefix of the last entry.
            let keep = log.len() - last_len + cut.index(last_len);
            let mut torn = SyncState::parse(&main).unwrap();
            replay(&mut torn, &log[..keep]).unwrap();
            prop_assert_eq!(&torn, &before_last);
            // A stale journal (from another main file) is ignored.
            let mut other = SyncState::parse(&main).unwrap();
            other.sync_id = "elsewhere".into();
            let o = other.clone();
            replay(&mut other, &log).unwrap();
            prop_assert_eq!(other, o);
        }

        /// Through the files: appends while the journal is small,
        /// compaction beyond; either way load gives the state in memory
        /// and peek its token.
        #[test]
        fn files_load_like_memory(seed in 1u64.., steps in 1usize..8, budget in 0usize..3000) {
            let d = tempfile::tempdir().unwrap();
            let mut r = Rng(seed);
            let mut st = start(&mut r);
            super::super::save(d.path(), PEER, &st).unwrap();
            for _ in 0..steps {
                let (new, ch, dr) = step(&mut r, &st);
                super::super::save_change_within(d.path(), PEER, &new, &change(&st.sync_id, &ch, &dr), Some(budget)).unwrap();
                st = new;
                let loaded = super::super::load(d.path(), PEER).unwrap().unwrap();
                prop_assert_eq!(&loaded, &st);
                prop_assert_eq!(super::super::peek_sync_id(d.path(), PEER).unwrap(), Some(st.sync_id.clone()));
            }
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut st = SyncState::new("t0".into());
            let _ = frames(&data, b"t0");
            let _ = replay(&mut st, &data);
            // The same bytes as a well-framed entry's body.
            let mut framed = b"J t0 t1\n".to_vec();
            framed.extend_from_slice(&data);
            if !data.ends_with(b"\n") {
                framed.push(b'\n');
            }
            let lines = framed.iter().filter(|b| **b == b'\n').count();
            let sum = fnv1a(&framed);
            framed.extend_from_slice(format!("C t1 {lines} {sum:016x}\n").as_bytes());
            let _ = replay(&mut st, &framed);
        }
    }

    #[test]
    fn a_journal_left_by_an_interrupted_compaction_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Rng(7);
        let st = start(&mut r);
        super::super::save(d.path(), PEER, &st).unwrap();
        let (new, ch, dr) = step(&mut r, &st);
        super::super::save_change_within(
            d.path(),
            PEER,
            &new,
            &change(&st.sync_id, &ch, &dr),
            Some(1 << 20),
        )
        .unwrap();
        let jpath = super::super::journal_path(d.path(), PEER).unwrap();
        let log = std::fs::read(&jpath).unwrap();
        assert!(!log.is_empty());
        // Compaction: the new main file went in, the journal stayed.
        let mut later = new.clone();
        later.sync_id = "t-later".into();
        super::super::save(d.path(), PEER, &later).unwrap();
        std::fs::write(&jpath, &log).unwrap();
        assert_eq!(super::super::load(d.path(), PEER).unwrap().unwrap(), later);
        assert_eq!(
            super::super::peek_sync_id(d.path(), PEER).unwrap().unwrap(),
            "t-later"
        );
        // The next append replaces the stale journal.
        let (next, ch, dr) = step(&mut r, &later);
        super::super::save_change_within(
            d.path(),
            PEER,
            &next,
            &change("t-later", &ch, &dr),
            Some(1 << 20),
        )
        .unwrap();
        assert_eq!(super::super::load(d.path(), PEER).unwrap().unwrap(), next);
    }

    #[test]
    fn a_damaged_complete_entry_is_an_error() {
        let mut st = SyncState::new("t0".into());
        let body = b"U 00000000000000000000000000000001 1 2 0 0 x\n".to_vec();
        let mut framed = b"J t0 t1\n".to_vec();
        framed.extend_from_slice(&body);
        let sum = fnv1a(&framed);
        framed.extend_from_slice(format!("C t1 2 {sum:016x}\n").as_bytes());
        let e = replay(&mut st, &framed).unwrap_err();
        assert!(e.msg.contains("does not hold"), "{e}");
    }
}
