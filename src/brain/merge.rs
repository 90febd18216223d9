//! Pure planning for a two-way sync (mirror) of one mailbox: a three-way
//! merge of the two sides against their common state at the last
//! successful sync (the *base*). No I/O here.
//!
//! Rules (DESIGN §3):
//! - A UID in the base that one side lacks was expunged there: expunge it
//!   on the other side too (expunge beats flag changes).
//! - A UID not in the base is new on the side that has it. It keeps its UID
//!   if the other side never used it (UID ≥ the other's UIDNEXT); otherwise
//!   it gets a fresh UID from max(UIDNEXT) on both sides. Never reused.
//! - The same new UID on both sides with different GUIDs is a conflict:
//!   both messages get fresh UIDs.
//! - Flags and keywords merge one by one against the base: the side that
//!   changed a flag wins. Without a base, the leader's value wins.
//! - Without a usable base (first sync, lost state, UIDVALIDITY changed)
//!   nothing is expunged: messages are matched by GUID and the union is
//!   kept, so lost state can never cause mass deletion.

use crate::model::{Flags, MailboxGuid, MailboxSnapshot, MessageRecord, Uid};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One message as it was on both sides after the last sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseMessage {
    pub uid: Uid,
    pub guid: String,
    pub flags: Flags,
    pub keywords: Keywords,
}

/// A base message's keywords, sorted. Most messages have none: then the
/// list is one null pointer (no allocation), where a `Vec` costs 24 bytes
/// in each of the base's messages.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
// The box is the point: a thin pointer where the `Vec` would be inline.
#[allow(clippy::box_collection)]
pub struct Keywords(Option<Box<Vec<String>>>);

impl Keywords {
    pub fn as_slice(&self) -> &[String] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl From<Vec<String>> for Keywords {
    fn from(v: Vec<String>) -> Self {
        // Never `Some` of an empty list: equality stays structural.
        Keywords((!v.is_empty()).then(|| Box::new(v)))
    }
}

impl From<&[String]> for Keywords {
    fn from(v: &[String]) -> Self {
        Keywords::from(v.to_vec())
    }
}

impl std::ops::Deref for Keywords {
    type Target = [String];
    fn deref(&self) -> &[String] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Keywords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq<Vec<String>> for Keywords {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Keywords> for Vec<String> {
    fn eq(&self, other: &Keywords) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A mailbox's common state after the last successful sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseMailbox {
    pub guid: MailboxGuid,
    pub uidvalidity: u32,
    pub uidnext: Uid,
    pub messages: Vec<BaseMessage>,
}

impl BaseMailbox {
    /// The same GUID, UIDVALIDITY and UIDNEXT, no messages.
    pub fn header_only(&self) -> BaseMailbox {
        BaseMailbox {
            guid: self.guid,
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            messages: Vec::new(),
        }
    }
}

/// Where a message to be saved on a side comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The other side's message with this UID (its body crosses the wire).
    Other(Uid),
    /// This side's own message with this UID, taking a new UID (a
    /// renumbering: no body moves).
    Own(Uid),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Save {
    /// The record as it must exist after the save (its `uid` is the new UID).
    pub record: MessageRecord,
    pub origin: Origin,
}

/// The changes to one side's mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidePlan {
    /// New (GUID, UIDVALIDITY, UIDNEXT) when they change.
    pub header: Option<(MailboxGuid, u32, Uid)>,
    pub expunge: Vec<Uid>,
    pub flags: Vec<(Uid, Flags, Vec<String>)>,
    pub saves: Vec<Save>,
}

impl SidePlan {
    pub fn is_empty(&self) -> bool {
        self.header.is_none()
            && self.expunge.is_empty()
            && self.flags.is_empty()
            && self.saves.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergePlan {
    /// Changes to the leader's side.
    pub a: SidePlan,
    /// Changes to the follower's side.
    pub b: SidePlan,
    /// The common state once both plans are applied: the next run's base.
    pub base: BaseMailbox,
}

/// Which side a message or decision belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    A,
    B,
}

/// Builds the merge plan. `a` is the leader's side, `b` the follower's.
/// The snapshots stay as they are: the plan's records are copies (see
/// [`merge_owned`], which moves them instead).
pub fn merge_mailbox(
    base: Option<&BaseMailbox>,
    a: &MailboxSnapshot,
    b: &MailboxSnapshot,
) -> MergePlan {
    merge_owned(base, a.clone(), b.clone(), BaseGuids::Copied).0
}

/// Whether the new base gets its own copy of the GUID of each message a
/// save creates (`Copied`), or an empty GUID until the caller, done with
/// the saves, gives it theirs with [`MergePlan::reclaim_guids`] (`Lent`):
/// in a first copy of a large mailbox every message is both a save and a
/// base message, and its GUID is then held once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BaseGuids {
    Copied,
    Lent,
}

impl MergePlan {
    /// Moves the GUIDs the base lent to the saves back into it (see
    /// [`BaseGuids::Lent`]); the saves' records are left without GUIDs.
    pub fn reclaim_guids(&mut self) {
        let MergePlan { a, b, base } = self;
        for s in a.saves.iter_mut().chain(b.saves.iter_mut()) {
            let at = base.messages.binary_search_by_key(&s.record.uid, |m| m.uid);
            if let Ok(i) = at {
                let m = &mut base.messages[i];
                if m.guid.is_empty() {
                    m.guid = std::mem::take(&mut s.record.guid);
                }
            }
        }
    }
}

/// The records of two merged snapshots that no save took (each side's in
/// ascending UID order): what a side still holds besides its saves.
#[derive(Debug, Default)]
pub struct Leftover {
    pub a: Vec<MessageRecord>,
    pub b: Vec<MessageRecord>,
}

/// [`merge_mailbox`], moving each saved record out of its snapshot into
/// the plan instead of copying it: a first copy of a large mailbox holds
/// its records once, not twice. What no save took comes back.
pub fn merge_owned(
    base: Option<&BaseMailbox>,
    a: MailboxSnapshot,
    b: MailboxSnapshot,
    guids: BaseGuids,
) -> (MergePlan, Leftover) {
    let (mut plan, pending) = plan_mailbox(base, &a, &b, guids);
    let left = materialize(&mut plan, pending, a.messages, b.messages);
    (plan, left)
}

/// The plan with its saves still in the snapshots (`Pending`).
fn plan_mailbox(
    base: Option<&BaseMailbox>,
    a: &MailboxSnapshot,
    b: &MailboxSnapshot,
    guids: BaseGuids,
) -> (MergePlan, Vec<Pending>) {
    let base = base.filter(|base| {
        base.uidvalidity == a.info.uidvalidity
            && base.uidvalidity == b.info.uidvalidity
            && base.guid == a.info.guid
    });
    if a.info.uidvalidity != b.info.uidvalidity {
        return merge_by_guid(a, b, guids);
    }
    let mut m = Merger::new(a, b, guids);
    let base_map: BTreeMap<Uid, &BaseMessage> = base
        .map(|b| b.messages.iter().map(|m| (m.uid, m)).collect())
        .unwrap_or_default();
    let index = |s: &MailboxSnapshot| -> BTreeMap<Uid, usize> {
        s.messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.uid, i))
            .collect()
    };
    let (mut am, mut bm) = (index(a), index(b));
    // The same message new on both sides under different UIDs (moved into
    // this mailbox on both, say) is one message: it takes one fresh UID on
    // both sides, and no copy is made.
    let is_new = |msg: &MessageRecord| base_map.get(&msg.uid).is_none_or(|o| o.guid != msg.guid);
    let b_new: HashMap<&str, Uid> = b
        .messages
        .iter()
        .filter(|x| is_new(x))
        .map(|x| (x.guid.as_str(), x.uid))
        .collect();
    let twins: Vec<(Uid, Uid)> = a
        .messages
        .iter()
        .filter(|x| is_new(x))
        .filter_map(|x| b_new.get(x.guid.as_str()).map(|&ub| (x.uid, ub)))
        .filter(|(ua, ub)| ua != ub)
        .collect();
    drop(b_new);
    for (ua, ub) in twins {
        let (x, y) = (
            am.remove(&ua).expect("from a"),
            bm.remove(&ub).expect("from b"),
        );
        m.relabel_both(x, y);
    }
    let uids: BTreeSet<Uid> = am.keys().chain(bm.keys()).copied().collect();
    for uid in uids {
        let (x, y, o) = (
            am.get(&uid).copied(),
            bm.get(&uid).copied(),
            base_map.get(&uid).copied(),
        );
        let (xr, yr) = (x.map(|i| &a.messages[i]), y.map(|i| &b.messages[i]));
        match (x, y, o) {
            (Some(x), Some(y), _) if xr.map(|r| &r.guid) == yr.map(|r| &r.guid) => {
                m.keep_both(x, y, o)
            }
            (Some(x), Some(y), _) => {
                // Same UID, different messages: neither may keep it.
                m.renumber(Side::A, x);
                m.renumber(Side::B, y);
            }
            (Some(_), None, Some(o)) if xr.is_some_and(|r| o.guid == r.guid) => {
                m.plan_mut(Side::A).expunge.push(uid)
            }
            (None, Some(_), Some(o)) if yr.is_some_and(|r| o.guid == r.guid) => {
                m.plan_mut(Side::B).expunge.push(uid)
            }
            (Some(x), None, _) => m.new_on(Side::A, x),
            (None, Some(y), _) => m.new_on(Side::B, y),
            (None, None, _) => unreachable!("uid comes from one of the sides"),
        }
    }
    m.finish(a.info.guid, a.info.uidvalidity)
}

/// The two sides have different UIDVALIDITYs (a fresh pair, or one side
/// lost its index). The side with more messages keeps its UIDs; the other
/// side's messages are matched by GUID; nothing is expunged.
fn merge_by_guid(
    a: &MailboxSnapshot,
    b: &MailboxSnapshot,
    guids: BaseGuids,
) -> (MergePlan, Vec<Pending>) {
    let winner = if b.messages.len() > a.messages.len() {
        Side::B
    } else {
        Side::A
    };
    let (w, l) = match winner {
        Side::A => (a, b),
        Side::B => (b, a),
    };
    let loser = other(winner);
    let mut m = Merger::new(a, b, guids);
    // The loser's UIDs are meaningless under the winner's UIDVALIDITY, so
    // fresh UIDs for the loser-only messages start above both sides.
    m.next = m.next.max(l.info.uidnext);
    let mut by_guid: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, msg) in l.messages.iter().enumerate() {
        by_guid.entry(msg.guid.as_str()).or_default().push(i);
    }
    for (wi, msg) in w.messages.iter().enumerate() {
        match by_guid
            .get_mut(msg.guid.as_str())
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        {
            Some(li) => {
                let lm = &l.messages[li];
                // Same message on both: the loser's copy takes the winner's
                // UID; with no base to tell who changed what, the leader's
                // flags win.
                let leader = if winner == Side::A { msg } else { lm };
                let (flags, keywords) = (leader.flags, leader.keywords.clone());
                if lm.uid != msg.uid {
                    m.plan_mut(loser).expunge.push(lm.uid);
                    m.pending.push(
                        Pending::new(loser, (loser, li), msg.uid, Origin::Own(lm.uid))
                            .marked(flags, keywords.clone()),
                    );
                } else if (lm.flags, &lm.keywords) != (flags, &keywords) {
                    m.plan_mut(loser)
                        .flags
                        .push((lm.uid, flags, keywords.clone()));
                }
                if (msg.flags, &msg.keywords) != (flags, &keywords) {
                    m.plan_mut(winner)
                        .flags
                        .push((msg.uid, flags, keywords.clone()));
                }
                m.result.push(base_of(msg.uid, &msg.guid, flags, &keywords));
            }
            None => {
                m.pending.push(Pending::new(
                    loser,
                    (winner, wi),
                    msg.uid,
                    Origin::Other(msg.uid),
                ));
                m.saved_base(msg.uid, msg);
            }
        }
    }
    // In the loser's order (HashMap order would make runs differ).
    let mut rest: Vec<usize> = by_guid.into_values().flatten().collect();
    rest.sort_unstable();
    for li in rest {
        // Loser-only: renumber on the loser, copy to the winner.
        let msg = &l.messages[li];
        let uid = m.take_uid();
        m.plan_mut(loser).expunge.push(msg.uid);
        for (to, origin) in [(loser, Origin::Own(msg.uid)), (winner, Origin::Other(uid))] {
            m.pending.push(Pending::new(to, (loser, li), uid, origin));
        }
        m.saved_base(uid, msg);
    }
    // Other(uid) for the loser refers to the winner's UID; for the winner
    // it refers to the loser's *new* UID, which exists once the loser's
    // plan is applied. Executors apply renumberings before copies.
    m.finish(w.info.guid, w.info.uidvalidity)
}

fn other(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

fn base_of(uid: Uid, guid: &str, flags: Flags, keywords: &[String]) -> BaseMessage {
    BaseMessage {
        uid,
        guid: guid.to_string(),
        flags,
        keywords: keywords.into(),
    }
}

/// A save planned while its record still sits in a snapshot; the record
/// is moved (or, for a second save of the same record, copied) into the
/// plan once planning is done (`materialize`).
struct Pending {
    /// The side whose plan gets the save.
    to: Side,
    /// The snapshot holding the record, and where.
    from: Side,
    idx: u32,
    /// The UID the saved record takes.
    uid: Uid,
    /// Flags and keywords replacing the record's own (rare: boxed, so
    /// that the common entry stays small).
    marks: Option<Box<(Flags, Vec<String>)>>,
    origin: Origin,
}

impl Pending {
    fn new(to: Side, (from, idx): (Side, usize), uid: Uid, origin: Origin) -> Pending {
        Pending {
            to,
            from,
            idx: u32::try_from(idx).expect("a mailbox holds fewer than 2^32 messages"),
            uid,
            marks: None,
            origin,
        }
    }

    fn marked(mut self, flags: Flags, keywords: Vec<String>) -> Pending {
        self.marks = Some(Box::new((flags, keywords)));
        self
    }
}

/// Moves the pending saves' records out of the snapshots into the plans;
/// returns what no save took. A record that feeds two saves (a message
/// renumbered on its side and copied to the other) is planned back to
/// back: one save gets a copy, the other the record itself.
///
/// Saves are taken last to first and a snapshot's taken tail is cut off
/// as it grows, so a copy of a whole mailbox (saves in snapshot order)
/// holds the records once, not once in the snapshot and once in the plan.
fn materialize(
    plan: &mut MergePlan,
    mut pending: Vec<Pending>,
    mut a: Vec<MessageRecord>,
    mut b: Vec<MessageRecord>,
) -> Leftover {
    let to_a = pending.iter().filter(|p| p.to == Side::A).count();
    plan.a.saves.reserve_exact(to_a);
    plan.b.saves.reserve_exact(pending.len() - to_a);
    let (mut taken_a, mut taken_b) = (vec![false; a.len()], vec![false; b.len()]);
    let (mut cut, mut popped) = (0usize, 0usize);
    while let Some(p) = pending.pop() {
        let again = pending
            .last()
            .is_some_and(|n| (n.from, n.idx) == (p.from, p.idx));
        // The list of pending saves shrinks as the saves fill up.
        popped += 1;
        if popped >= 16_384 {
            pending.shrink_to_fit();
            popped = 0;
        }
        let idx = p.idx as usize;
        let (msgs, taken) = match p.from {
            Side::A => (&mut a, &mut taken_a),
            Side::B => (&mut b, &mut taken_b),
        };
        assert!(
            !taken[idx],
            "merge: a record taken by a save is planned again, not back to back"
        );
        let mut record = if again {
            msgs[idx].clone()
        } else {
            taken[idx] = true;
            std::mem::replace(&mut msgs[idx], hollow())
        };
        // Taken records at the end are gone for good: every index still
        // to be taken lies below them.
        while msgs.last().is_some() && taken[msgs.len() - 1] {
            msgs.pop();
            cut += 1;
        }
        if cut >= 16_384 {
            msgs.shrink_to_fit();
            cut = 0;
        }
        record.uid = p.uid;
        if let Some(marks) = p.marks {
            let (flags, keywords) = *marks;
            record.flags = flags;
            record.keywords = keywords;
        }
        plan.plan_mut(p.to).saves.push(Save {
            record,
            origin: p.origin,
        });
    }
    for side in [&mut plan.a, &mut plan.b] {
        // A side's saves have distinct UIDs: an unstable sort is the same
        // order, without a scratch copy of the records.
        side.saves.sort_unstable_by_key(|s| s.record.uid);
    }
    let keep = |mut v: Vec<MessageRecord>, taken: &[bool]| {
        let mut i = 0;
        v.retain(|_| {
            i += 1;
            !taken[i - 1]
        });
        v.shrink_to_fit();
        v
    };
    Leftover {
        a: keep(a, &taken_a),
        b: keep(b, &taken_b),
    }
}

/// What a moved-out record leaves in its snapshot until the snapshot is
/// compacted: nothing on the heap.
fn hollow() -> MessageRecord {
    MessageRecord {
        uid: 0,
        guid: String::new(),
        flags: Flags::empty(),
        keywords: Vec::new(),
        internal_date: 0,
        size: 0,
        pop3_uidl: None,
        pop3_order: None,
        in_new: false,
    }
}

impl MergePlan {
    fn plan_mut(&mut self, s: Side) -> &mut SidePlan {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }
}

struct Merger<'s> {
    a_snap: &'s MailboxSnapshot,
    b_snap: &'s MailboxSnapshot,
    a: SidePlan,
    b: SidePlan,
    pending: Vec<Pending>,
    guids: BaseGuids,
    /// Next fresh UID: above everything either side ever handed out.
    next: Uid,
    /// The new base's messages, in no particular order until `finish`.
    result: Vec<BaseMessage>,
}

impl<'s> Merger<'s> {
    fn new(a: &'s MailboxSnapshot, b: &'s MailboxSnapshot, guids: BaseGuids) -> Self {
        let max_uid = a
            .messages
            .iter()
            .chain(&b.messages)
            .map(|m| m.uid)
            .max()
            .unwrap_or(0);
        Merger {
            a_snap: a,
            b_snap: b,
            a: SidePlan::default(),
            b: SidePlan::default(),
            pending: Vec::new(),
            guids,
            next: a.info.uidnext.max(b.info.uidnext).max(max_uid + 1),
            // At most one entry per message of either side; pages never
            // written cost no memory, and `finish` gives the rest back.
            result: Vec::with_capacity(a.messages.len() + b.messages.len()),
        }
    }

    fn snap(&self, s: Side) -> &'s MailboxSnapshot {
        match s {
            Side::A => self.a_snap,
            Side::B => self.b_snap,
        }
    }

    fn rec(&self, s: Side, idx: usize) -> &'s MessageRecord {
        &self.snap(s).messages[idx]
    }

    fn plan_mut(&mut self, s: Side) -> &mut SidePlan {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn uidnext_of(&self, s: Side) -> Uid {
        self.snap(s).info.uidnext
    }

    fn take_uid(&mut self) -> Uid {
        let uid = self.next;
        self.next += 1;
        uid
    }

    /// The same message under the same UID on both sides: merge its flags.
    fn keep_both(&mut self, xi: usize, yi: usize, o: Option<&BaseMessage>) {
        let (x, y) = (self.rec(Side::A, xi), self.rec(Side::B, yi));
        let o = o.filter(|o| o.guid == x.guid);
        let flags = merge_flags(x.flags, y.flags, o.map(|o| o.flags));
        let keywords = merge_keywords(&x.keywords, &y.keywords, o.map(|o| o.keywords.as_slice()));
        if (x.flags, &x.keywords) != (flags, &keywords) {
            self.a.flags.push((x.uid, flags, keywords.clone()));
        }
        if (y.flags, &y.keywords) != (flags, &keywords) {
            self.b.flags.push((y.uid, flags, keywords.clone()));
        }
        self.result.push(BaseMessage {
            uid: x.uid,
            guid: x.guid.clone(),
            flags,
            keywords: keywords.into(),
        });
    }

    /// A message only `side` has and the base does not: new there.
    fn new_on(&mut self, side: Side, idx: usize) {
        let msg = self.rec(side, idx);
        if msg.uid >= self.uidnext_of(other(side)) {
            self.pending.push(Pending::new(
                other(side),
                (side, idx),
                msg.uid,
                Origin::Other(msg.uid),
            ));
            self.saved_base(msg.uid, msg);
        } else {
            self.renumber(side, idx);
        }
    }

    /// One message that both sides hold under different UIDs: a fresh UID
    /// on both, each side renumbering its own copy.
    fn relabel_both(&mut self, xi: usize, yi: usize) {
        let uid = self.take_uid();
        let x = self.rec(Side::A, xi);
        for (side, idx) in [(Side::A, xi), (Side::B, yi)] {
            let own = self.rec(side, idx).uid;
            self.plan_mut(side).expunge.push(own);
            self.pending.push(
                Pending::new(side, (side, idx), uid, Origin::Own(own))
                    .marked(x.flags, x.keywords.clone()),
            );
        }
        self.saved_base(uid, x);
    }

    /// Gives `side`'s message a fresh UID on both sides.
    fn renumber(&mut self, side: Side, idx: usize) {
        let uid = self.take_uid();
        let msg = self.rec(side, idx);
        self.plan_mut(side).expunge.push(msg.uid);
        for (to, origin) in [
            (side, Origin::Own(msg.uid)),
            (other(side), Origin::Other(uid)),
        ] {
            self.pending
                .push(Pending::new(to, (side, idx), uid, origin));
        }
        self.saved_base(uid, msg);
    }

    /// The new base's record of a message a save creates under `uid`
    /// (its GUID lent to the save when asked: `BaseGuids`).
    fn saved_base(&mut self, uid: Uid, msg: &MessageRecord) {
        let guid = match self.guids {
            BaseGuids::Copied => msg.guid.as_str(),
            BaseGuids::Lent => "",
        };
        self.result
            .push(base_of(uid, guid, msg.flags, &msg.keywords));
    }

    fn finish(mut self, guid: MailboxGuid, uidvalidity: u32) -> (MergePlan, Vec<Pending>) {
        let uidnext = self.next;
        for (side, snap) in [(Side::A, self.a_snap), (Side::B, self.b_snap)] {
            let i = &snap.info;
            if (i.guid, i.uidvalidity, i.uidnext) != (guid, uidvalidity, uidnext) {
                self.plan_mut(side).header = Some((guid, uidvalidity, uidnext));
            }
            self.plan_mut(side).expunge.sort_unstable();
        }
        let mut messages = self.result;
        messages.sort_unstable_by_key(|m| m.uid);
        debug_assert!(messages.windows(2).all(|w| w[0].uid < w[1].uid));
        messages.shrink_to_fit();
        let plan = MergePlan {
            a: self.a,
            b: self.b,
            base: BaseMailbox {
                guid,
                uidvalidity,
                uidnext,
                messages,
            },
        };
        (plan, self.pending)
    }
}

/// Per-flag three-way merge: a side that changed a flag since the base
/// wins; two booleans that both changed agree, so only a missing base can
/// leave a conflict, which the leader (`x`) wins.
fn merge_flags(x: Flags, y: Flags, o: Option<Flags>) -> Flags {
    let Some(o) = o else { return x };
    let (x, y, o) = (x.bits(), y.bits(), o.bits());
    let changed_x = x ^ o;
    // Bits x changed come from x; the rest from y (which equals o where y
    // did not change them).
    Flags::from_bits((x & changed_x) | (y & !changed_x)).expect("valid flag bits")
}

fn merge_keywords(x: &[String], y: &[String], o: Option<&[String]>) -> Vec<String> {
    let Some(o) = o else { return x.to_vec() };
    let all: BTreeSet<&String> = x.iter().chain(y).chain(o).collect();
    all.into_iter()
        .filter(|k| {
            let (in_x, in_y, in_o) = (x.contains(k), y.contains(k), o.contains(k));
            if in_x != in_o {
                in_x
            } else {
                in_y
            }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MailboxInfo, MailboxName};
    use proptest::prelude::*;

    fn rec(uid: Uid, guid: &str, flags: Flags) -> MessageRecord {
        MessageRecord {
            uid,
            guid: guid.into(),
            flags,
            keywords: vec![],
            internal_date: 0,
            size: 1,
            pop3_uidl: None,
            pop3_order: None,
            in_new: false,
        }
    }

    fn snap(uv: u32, next: Uid, msgs: Vec<MessageRecord>) -> MailboxSnapshot {
        MailboxSnapshot {
            info: MailboxInfo {
                name: MailboxName::inbox(),
                guid: MailboxGuid([1; 16]),
                uidvalidity: uv,
                uidnext: next,
                messages: msgs.len() as u32,
                highest_modseq: 0,
            },
            messages: msgs,
        }
    }

    fn base(next: Uid, msgs: &[MessageRecord]) -> BaseMailbox {
        BaseMailbox {
            guid: MailboxGuid([1; 16]),
            uidvalidity: 5,
            uidnext: next,
            messages: msgs
                .iter()
                .map(|m| base_of(m.uid, &m.guid, m.flags, &m.keywords))
                .collect(),
        }
    }

    #[test]
    fn expunges_and_new_messages_flow_both_ways() {
        let common = vec![rec(1, "a", Flags::empty()), rec(2, "b", Flags::empty())];
        let o = base(3, &common);
        let a = snap(
            5,
            4,
            vec![rec(1, "a", Flags::SEEN), rec(3, "c", Flags::empty())],
        );
        let b = snap(
            5,
            3,
            vec![rec(1, "a", Flags::empty()), rec(2, "b", Flags::FLAGGED)],
        );
        let p = merge_mailbox(Some(&o), &a, &b);
        // 2 was expunged on A: expunge on B despite B's flag change.
        assert_eq!(p.b.expunge, vec![2]);
        assert_eq!(p.b.flags, vec![(1, Flags::SEEN, vec![])]);
        assert_eq!(p.b.saves.len(), 1);
        assert_eq!(p.b.saves[0].origin, Origin::Other(3));
        assert!(p.a.expunge.is_empty() && p.a.saves.is_empty());
        assert_eq!(p.base.uidnext, 4);
    }

    #[test]
    fn uid_conflict_renumbers_both() {
        let o = base(2, &[rec(1, "a", Flags::empty())]);
        let a = snap(
            5,
            3,
            vec![rec(1, "a", Flags::empty()), rec(2, "x", Flags::empty())],
        );
        let b = snap(
            5,
            3,
            vec![rec(1, "a", Flags::empty()), rec(2, "y", Flags::empty())],
        );
        let p = merge_mailbox(Some(&o), &a, &b);
        assert_eq!(p.a.expunge, vec![2]);
        assert_eq!(p.b.expunge, vec![2]);
        let uids: Vec<Uid> = p.base.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![1, 3, 4]);
        assert_eq!(p.base.uidnext, 5);
    }

    #[test]
    fn the_same_new_message_on_both_sides_is_kept_once() {
        let o = base(2, &[rec(1, "a", Flags::empty())]);
        let a = snap(
            5,
            3,
            vec![rec(1, "a", Flags::empty()), rec(2, "m", Flags::SEEN)],
        );
        let b = snap(
            5,
            4,
            vec![
                rec(1, "a", Flags::empty()),
                rec(2, "n", Flags::empty()),
                rec(3, "m", Flags::SEEN),
            ],
        );
        let p = merge_mailbox(Some(&o), &a, &b);
        let guids: Vec<&str> = p.base.messages.iter().map(|m| m.guid.as_str()).collect();
        assert_eq!(guids.iter().filter(|g| **g == "m").count(), 1, "{guids:?}");
        assert_eq!(guids.len(), 3, "{guids:?}");
        assert!(p
            .a
            .saves
            .iter()
            .chain(&p.b.saves)
            .filter(|s| s.record.guid == "m")
            .all(|s| matches!(s.origin, Origin::Own(_))));
    }

    #[test]
    fn merge_owned_moves_saved_records_and_returns_the_rest() {
        let o = base(
            3,
            &[rec(1, "a", Flags::empty()), rec(2, "b", Flags::empty())],
        );
        let a = snap(
            5,
            5,
            vec![
                rec(1, "a", Flags::empty()),
                rec(2, "b", Flags::SEEN),
                rec(3, "x", Flags::empty()),
                rec(4, "n", Flags::empty()),
            ],
        );
        // UID 3 is taken on both with different messages: both renumbered,
        // each record feeding a save on its side and one on the other.
        let b = snap(
            5,
            4,
            vec![
                rec(1, "a", Flags::empty()),
                rec(2, "b", Flags::empty()),
                rec(3, "y", Flags::empty()),
            ],
        );
        let want = merge_mailbox(Some(&o), &a, &b);
        let (plan, left) = merge_owned(Some(&o), a, b, BaseGuids::Copied);
        assert_eq!(plan, want);
        let uids = |v: &[MessageRecord]| v.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!(uids(&left.a), vec![1, 2]);
        assert_eq!(uids(&left.b), vec![1, 2]);
        let guids = |p: &SidePlan| {
            p.saves
                .iter()
                .map(|s| s.record.guid.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(guids(&plan.b), vec!["n", "x", "y"]);
        assert_eq!(guids(&plan.a), vec!["x", "y"]);
        // A first copy under different UIDVALIDITYs: every record moves.
        let full = snap(
            5,
            3,
            vec![rec(1, "a", Flags::empty()), rec(2, "b", Flags::SEEN)],
        );
        let empty = snap(6, 1, vec![]);
        let (mut plan, left) = merge_owned(None, full.clone(), empty.clone(), BaseGuids::Lent);
        assert!(plan.base.messages.iter().all(|m| m.guid.is_empty()));
        plan.reclaim_guids();
        let mut want = merge_mailbox(None, &full, &empty);
        for s in &mut want.b.saves {
            s.record.guid.clear();
        }
        assert_eq!(plan, want);
        assert!(left.a.is_empty() && left.b.is_empty());
        assert_eq!(plan.b.saves.len(), 2);
    }

    #[test]
    fn base_messages_stay_small() {
        // 1,000,000 base messages are held on each side of a large mirror.
        assert!(std::mem::size_of::<BaseMessage>() <= 40);
        let none: Keywords = Vec::new().into();
        assert_eq!(none, Keywords::default());
        assert!(none.is_empty());
        let some: Keywords = vec!["$Label1".to_string()].into();
        assert_eq!(some, vec!["$Label1".to_string()]);
        assert_eq!(vec!["$Label1".to_string()], some);
    }

    #[test]
    fn lost_state_never_deletes() {
        let a = snap(5, 3, vec![rec(1, "a", Flags::empty())]);
        let b = snap(5, 3, vec![rec(2, "b", Flags::empty())]);
        let p = merge_mailbox(None, &a, &b);
        assert!(p.a.saves.iter().all(|s| s.origin != Origin::Own(0)));
        assert_eq!(p.base.messages.len(), 2);
    }

    #[test]
    fn flag_merge_takes_each_sides_changes() {
        let o = Flags::SEEN;
        let x = Flags::SEEN.union(Flags::FLAGGED); // A added Flagged
        let y = Flags::empty(); // B removed Seen
        assert_eq!(merge_flags(x, y, Some(o)), Flags::FLAGGED);
        let kw = merge_keywords(
            &["A".into(), "B".into()],
            &["B".into(), "C".into()],
            Some(&["B".into()]),
        );
        assert_eq!(kw, vec!["A".to_string(), "B".into(), "C".into()]);
    }

    /// Applies a side plan to a model of that side.
    fn apply(
        side: &MailboxSnapshot,
        plan: &SidePlan,
        other: &MailboxSnapshot,
    ) -> BTreeMap<Uid, (String, Flags)> {
        let mut m: BTreeMap<Uid, MessageRecord> =
            side.messages.iter().map(|r| (r.uid, r.clone())).collect();
        let originals = m.clone();
        for (uid, f, kw) in &plan.flags {
            let r = m.get_mut(uid).expect("flag change on an existing message");
            r.flags = *f;
            r.keywords = kw.clone();
        }
        for uid in &plan.expunge {
            assert!(m.remove(uid).is_some(), "expunge of a missing UID {uid}");
        }
        for s in &plan.saves {
            match s.origin {
                Origin::Own(u) => assert_eq!(originals[&u].guid, s.record.guid),
                Origin::Other(_) => {}
            }
            assert!(s.record.uid >= side.info.uidnext, "save below UIDNEXT");
            assert!(
                m.insert(s.record.uid, s.record.clone()).is_none(),
                "save over a UID"
            );
        }
        let _ = other;
        m.into_iter().map(|(u, r)| (u, (r.guid, r.flags))).collect()
    }

    proptest! {
        /// Random independent changes on both sides of a synced pair:
        /// after the merge both sides are identical; every message that
        /// neither side expunged survives exactly once; nothing expunged on
        /// either side comes back.
        #[test]
        fn mirror_converges_losing_nothing(
            n in 0u32..12,
            a_ops in proptest::collection::vec((0u8..4, 0u32..14, 0u8..32), 0..10),
            b_ops in proptest::collection::vec((0u8..4, 0u32..14, 0u8..32), 0..10),
        ) {
            let common: Vec<MessageRecord> = (1..=n).map(|u| rec(u, &format!("m{u}"), Flags::empty())).collect();
            let o = base(n + 1, &common);
            let mut new_id = 0;
            let mut mutate = |ops: &[(u8, u32, u8)], tag: &str| {
                let mut msgs: BTreeMap<Uid, MessageRecord> = common.iter().map(|r| (r.uid, r.clone())).collect();
                let mut next = n + 1;
                let mut expunged = BTreeSet::new();
                let mut added = Vec::new();
                for &(op, uid, f) in ops {
                    match op {
                        0 => {
                            if let Some(r) = msgs.remove(&uid) {
                                expunged.insert(r.guid);
                            }
                        }
                        1 => if let Some(r) = msgs.get_mut(&uid) { r.flags = Flags::from_bits(f).unwrap(); },
                        _ => {
                            new_id += 1;
                            let g = format!("{tag}{new_id}");
                            added.push(g.clone());
                            msgs.insert(next, rec(next, &g, Flags::empty()));
                            next += 1;
                        }
                    }
                }
                (snap(5, next, msgs.into_values().collect()), expunged, added)
            };
            let (a, a_exp, a_new) = mutate(&a_ops, "a");
            let (b, b_exp, b_new) = mutate(&b_ops, "b");
            let p = merge_mailbox(Some(&o), &a, &b);
            let ra = apply(&a, &p.a, &b);
            let rb = apply(&b, &p.b, &a);
            prop_assert_eq!(&ra, &rb);
            let guids: Vec<&String> = ra.values().map(|(g, _)| g).collect();
            let unique: BTreeSet<&String> = guids.iter().copied().collect();
            prop_assert_eq!(guids.len(), unique.len(), "duplicate message");
            for r in &common {
                let gone = a_exp.contains(&r.guid) || b_exp.contains(&r.guid);
                prop_assert_eq!(unique.contains(&r.guid), !gone, "message {}", r.guid);
            }
            for g in a_new.iter().filter(|g| !a_exp.contains(*g)).chain(b_new.iter().filter(|g| !b_exp.contains(*g))) {
                prop_assert!(unique.contains(g), "new message {} lost", g);
            }
            let base_view: BTreeMap<Uid, (String, Flags)> = p.base.messages.iter().map(|m| (m.uid, (m.guid.clone(), m.flags))).collect();
            prop_assert_eq!(&base_view, &ra);
            // A second merge against the new base changes nothing.
            let a2 = snap(5, p.base.uidnext, ra.iter().map(|(u, (g, f))| rec(*u, g, *f)).collect());
            let again = merge_mailbox(Some(&p.base), &a2, &a2.clone());
            prop_assert!(again.a.is_empty() && again.b.is_empty());
        }
    }
}
