//! Pure planning for a one-way sync (backup): given what the source and the
//! destination hold, the changes that make the destination equal to the
//! source. No I/O here, so every rule is unit-tested directly.

use super::delta;
use super::names::NameMap;
use crate::model::{Flags, MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, Uid};
use std::collections::{HashMap, HashSet};

/// A change to the destination's mailbox tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeOp {
    Delete(MailboxName),
    Rename {
        from: MailboxName,
        to: MailboxName,
    },
    Create {
        name: MailboxName,
        guid: MailboxGuid,
        uidvalidity: u32,
    },
}

/// Which mailboxes a run covers (`-m`); empty means all.
#[derive(Clone, Debug, Default)]
pub struct Filter(pub Vec<MailboxName>);

impl Filter {
    pub fn covers(&self, name: &MailboxName) -> bool {
        self.0.is_empty() || self.0.contains(name)
    }

    /// Whether the run covers `name` of the other side, which keeps the
    /// names given with `-m` as `map` says (see `names`).
    pub fn covers_as(&self, name: &MailboxName, map: &NameMap) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f == name || &map.get(f) == name)
    }
}

/// One source mailbox and what the destination has for it before the run.
#[derive(Clone, Debug)]
pub struct Pairing {
    pub src: MailboxInfo,
    /// The destination mailbox holding it (by GUID, else by name), under
    /// its name *before* the tree ops; `None` when it is created.
    pub dst: Option<MailboxInfo>,
    /// The destination's name for it *after* the tree ops: the source's
    /// name as the destination can hold it.
    pub dst_name: MailboxName,
}

/// Plans the tree: deletes first (they free names), then renames (through
/// temporary names when a target is still taken), then creates, parents
/// before children.
///
/// `dst_names` gives the name the destination keeps each source name under
/// (see `names`): the destination is compared with, renamed to and created
/// with those names, so a name it cannot hold is neither created twice nor
/// renamed back and forth.
pub fn plan_tree(
    src: &[MailboxInfo],
    dst: &[MailboxInfo],
    filter: &Filter,
    dst_names: &NameMap,
) -> (Vec<TreeOp>, Vec<Pairing>) {
    let src: Vec<&MailboxInfo> = src.iter().filter(|b| filter.covers(&b.name)).collect();
    let src_at_dst: Vec<MailboxName> = src.iter().map(|s| dst_names.get(&s.name)).collect();
    let mut pairings = Vec::new();
    let mut used = HashSet::new();
    let dst_by_guid: HashMap<MailboxGuid, usize> =
        dst.iter().enumerate().map(|(i, b)| (b.guid, i)).collect();
    let dst_by_name: HashMap<&MailboxName, usize> =
        dst.iter().enumerate().map(|(i, b)| (&b.name, i)).collect();
    // GUID matches win over name matches: a renamed mailbox keeps its
    // messages even if another mailbox now has its old name.
    let mut matched: Vec<Option<usize>> = src
        .iter()
        .map(|s| {
            let i = dst_by_guid.get(&s.guid).copied()?;
            used.insert(i);
            Some(i)
        })
        .collect();
    for k in 0..src.len() {
        if matched[k].is_none() {
            if let Some(&i) = dst_by_name.get(&src_at_dst[k]) {
                if used.insert(i) {
                    matched[k] = Some(i);
                }
            }
        }
    }
    let mut ops = Vec::new();
    let mut deletes: Vec<&MailboxInfo> = dst
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            !used.contains(i) && filter.covers_as(&b.name, dst_names) && !b.name.is_inbox()
        })
        .map(|(_, b)| b)
        .collect();
    // Children before parents, so no layout ever sees a parent vanish first.
    deletes.sort_by(|a, b| {
        b.name
            .parts()
            .len()
            .cmp(&a.name.parts().len())
            .then(a.name.cmp(&b.name))
    });
    ops.extend(deletes.iter().map(|b| TreeOp::Delete(b.name.clone())));

    // Renames, simulated on the destination's current names: a store
    // renames a mailbox's children with it (IMAP RENAME), so after a
    // parent moves, a child may already be where it belongs.
    let mut cur: Vec<Option<MailboxName>> = dst
        .iter()
        .map(|b| (!deletes.iter().any(|d| d.name == b.name)).then(|| b.name.clone()))
        .collect();
    let mut wanted: Vec<(usize, MailboxName)> = (0..src.len())
        .filter_map(|k| matched[k].map(|i| (i, src_at_dst[k].clone())))
        .collect();
    // Parents first, so their children ride along.
    wanted.sort_by_key(|(_, to)| to.parts().len());
    let mut tmp_count = 0;
    for (i, to) in wanted {
        let from = cur[i].clone().expect("matched mailboxes are not deleted");
        if from == to {
            continue;
        }
        if let Some(j) = cur.iter().position(|n| n.as_ref() == Some(&to)) {
            // Taken by a mailbox that is itself renamed later: park it.
            let tmp = MailboxName::from_parts(vec![format!("dsync-rename-{tmp_count}")])
                .expect("non-empty name");
            tmp_count += 1;
            ops.push(TreeOp::Rename {
                from: to.clone(),
                to: tmp.clone(),
            });
            rename_subtree(&mut cur, &to, &tmp);
            debug_assert!(cur[j].as_ref() == Some(&tmp));
        }
        ops.push(TreeOp::Rename {
            from: from.clone(),
            to: to.clone(),
        });
        rename_subtree(&mut cur, &from, &to);
    }
    let mut creates: Vec<(&MailboxName, &MailboxInfo)> = (0..src.len())
        .filter(|&k| matched[k].is_none())
        .map(|k| (&src_at_dst[k], src[k]))
        .collect();
    creates.sort_by(|(a, _), (b, _)| a.parts().len().cmp(&b.parts().len()).then(a.cmp(b)));
    ops.extend(creates.iter().map(|(name, s)| TreeOp::Create {
        name: (*name).clone(),
        guid: s.guid,
        uidvalidity: s.uidvalidity,
    }));
    for ((k, s), dst_name) in src.iter().enumerate().zip(src_at_dst) {
        pairings.push(Pairing {
            src: (*s).clone(),
            dst: matched[k].map(|i| dst[i].clone()),
            dst_name,
        });
    }
    (ops, pairings)
}

/// Applies a rename to a list of names the way a store does: the mailbox
/// and everything below it.
fn rename_subtree(names: &mut [Option<MailboxName>], from: &MailboxName, to: &MailboxName) {
    for name in names.iter_mut().flatten() {
        if let Some(n) = name.renamed(from, to) {
            *name = n;
        }
    }
}

/// The changes to one destination mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxPlan {
    /// Set when the destination's GUID, UIDVALIDITY or UIDNEXT differ.
    pub header: Option<(MailboxGuid, u32, Uid)>,
    pub expunge: Vec<Uid>,
    pub flags: Vec<(Uid, Flags, Vec<String>)>,
    pub dates: Vec<(Uid, i64)>,
    /// The source records to copy, as indexes into the source snapshot's
    /// messages (ascending UID): the plan holds no copy of them, which in
    /// a first copy would be every record twice.
    pub saves: Vec<usize>,
}

impl MailboxPlan {
    /// True when the plan copies a message of `src` (the snapshot it was
    /// made from) known only by its base record (a delta run's restricted
    /// view, see `delta`): its date and size are still to be read.
    pub fn needs_full_records(&self, src: &MailboxSnapshot) -> bool {
        self.saves
            .iter()
            .any(|&i| delta::is_from_base(&src.messages[i]))
    }

    pub fn is_empty(&self) -> bool {
        self.header.is_none()
            && self.expunge.is_empty()
            && self.flags.is_empty()
            && self.dates.is_empty()
            && self.saves.is_empty()
    }
}

/// Plans one mailbox, message by message: same UID and GUID on both sides
/// keeps the destination's file and fixes only what differs; anything else
/// the source lacks is expunged and anything the destination lacks (or
/// holds a different message under that UID) is copied with the source's UID.
pub fn plan_mailbox(src: &MailboxSnapshot, dst: Option<&MailboxSnapshot>) -> MailboxPlan {
    let mut plan = MailboxPlan::default();
    let s = &src.info;
    let empty = Vec::new();
    let (dst_msgs, same_uid_space) = match dst {
        Some(d) => (&d.messages, d.info.uidvalidity == s.uidvalidity),
        None => (&empty, true),
    };
    let header_differs = match dst {
        Some(d) => {
            d.info.guid != s.guid
                || d.info.uidvalidity != s.uidvalidity
                || d.info.uidnext != s.uidnext
        }
        None => false,
    };
    if header_differs {
        plan.header = Some((s.guid, s.uidvalidity, s.uidnext));
    }
    if !same_uid_space {
        // The destination's UIDs mean nothing under another UIDVALIDITY.
        plan.expunge = dst_msgs.iter().map(|m| m.uid).collect();
        plan.saves = (0..src.messages.len()).collect();
        return plan;
    }
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&src.messages, dst_msgs);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.uid == y.uid => {
                // A record standing for a base record (a delta run, see
                // `delta`) has no size or date to compare.
                let partial = delta::is_from_base(x) || delta::is_from_base(y);
                if x.guid == y.guid && (partial || x.size == y.size) {
                    if x.flags != y.flags || x.keywords != y.keywords {
                        plan.flags.push((x.uid, x.flags, x.keywords.clone()));
                    }
                    if !partial && x.internal_date != y.internal_date {
                        plan.dates.push((x.uid, x.internal_date));
                    }
                } else {
                    plan.expunge.push(y.uid);
                    plan.saves.push(i);
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.uid < y.uid => {
                plan.saves.push(i);
                i += 1;
            }
            (Some(_), None) => {
                plan.saves.push(i);
                i += 1;
            }
            (_, Some(y)) => {
                plan.expunge.push(y.uid);
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    plan
}

/// The destination's subscriptions after the run: the source's for the
/// mailboxes the run covers, the destination's own for the rest. The
/// source's are spelled as the destination keeps them (`dst_names`).
pub fn plan_subscriptions(
    src: &[MailboxName],
    dst: &[MailboxName],
    filter: &Filter,
    dst_names: &NameMap,
) -> Vec<MailboxName> {
    let mut out: Vec<MailboxName> = dst
        .iter()
        .filter(|n| !filter.covers_as(n, dst_names))
        .cloned()
        .collect();
    out.extend(
        src.iter()
            .filter(|n| filter.covers(n))
            .map(|n| dst_names.get(n)),
    );
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageRecord;

    fn name(s: &str) -> MailboxName {
        MailboxName::parse(s, '/').unwrap()
    }

    fn info(n: &str, g: u8, uv: u32, next: Uid) -> MailboxInfo {
        MailboxInfo {
            name: name(n),
            guid: MailboxGuid([g; 16]),
            uidvalidity: uv,
            uidnext: next,
            messages: 0,
            highest_modseq: 0,
        }
    }

    fn msg(uid: Uid, guid: &str, flags: Flags) -> MessageRecord {
        MessageRecord {
            uid,
            guid: guid.into(),
            flags,
            keywords: vec![],
            internal_date: 100,
            size: 10,
            pop3_uidl: None,
            pop3_order: None,
            in_new: false,
        }
    }

    #[test]
    fn tree_creates_renames_deletes() {
        let src = vec![
            info("INBOX", 1, 1, 1),
            info("New", 2, 5, 1),
            info("Renamed", 3, 6, 1),
        ];
        let dst = vec![
            info("INBOX", 1, 1, 1),
            info("Old", 3, 6, 1),
            info("Stray", 4, 7, 1),
        ];
        let (ops, pairs) = plan_tree(&src, &dst, &Filter::default(), &NameMap::default());
        assert_eq!(
            ops,
            vec![
                TreeOp::Delete(name("Stray")),
                TreeOp::Rename {
                    from: name("Old"),
                    to: name("Renamed")
                },
                TreeOp::Create {
                    name: name("New"),
                    guid: MailboxGuid([2; 16]),
                    uidvalidity: 5
                },
            ]
        );
        assert_eq!(pairs.len(), 3);
        assert!(pairs[1].dst.is_none());
    }

    #[test]
    fn tree_matches_by_name_when_guid_differs_and_never_deletes_inbox() {
        let src = vec![info("INBOX", 1, 1, 1), info("A", 2, 1, 1)];
        let dst = vec![info("INBOX", 9, 1, 1), info("A", 8, 1, 1)];
        let (ops, pairs) = plan_tree(&src, &dst, &Filter::default(), &NameMap::default());
        assert!(ops.is_empty());
        assert_eq!(pairs[1].dst.as_ref().unwrap().guid, MailboxGuid([8; 16]));
    }

    #[test]
    fn tree_swapped_names_go_through_a_temporary_name() {
        let src = vec![info("A", 1, 1, 1), info("B", 2, 1, 1)];
        let dst = vec![info("B", 1, 1, 1), info("A", 2, 1, 1)];
        let (ops, _) = plan_tree(&src, &dst, &Filter::default(), &NameMap::default());
        // Replaying the renames must end with A=guid1, B=guid2.
        let state = replay(&[("B", 1), ("A", 2)], &ops);
        assert_eq!(state[&name("A")], 1);
        assert_eq!(state[&name("B")], 2);
    }

    /// Replays rename ops with a store's semantics (children move along).
    fn replay(start: &[(&str, u8)], ops: &[TreeOp]) -> HashMap<MailboxName, u8> {
        let mut names: Vec<Option<MailboxName>> =
            start.iter().map(|(n, _)| Some(name(n))).collect();
        for op in ops {
            if let TreeOp::Rename { from, to } = op {
                assert!(
                    names.iter().flatten().any(|n| n == from),
                    "rename of a missing {from}"
                );
                assert!(
                    !names.iter().flatten().any(|n| n == to),
                    "rename onto a taken name {to}"
                );
                rename_subtree(&mut names, from, to);
            }
        }
        names
            .into_iter()
            .zip(start)
            .map(|(n, (_, g))| (n.unwrap(), *g))
            .collect()
    }

    #[test]
    fn renamed_parent_takes_its_children_along() {
        let src = vec![
            info("New", 1, 1, 1),
            info("New/Child", 2, 1, 1),
            info("Other/Kid", 3, 1, 1),
        ];
        let dst = vec![
            info("Old", 1, 1, 1),
            info("Old/Child", 2, 1, 1),
            info("Old/Kid", 3, 1, 1),
        ];
        let (ops, _) = plan_tree(&src, &dst, &Filter::default(), &NameMap::default());
        let state = replay(&[("Old", 1), ("Old/Child", 2), ("Old/Kid", 3)], &ops);
        assert_eq!(state[&name("New")], 1);
        assert_eq!(state[&name("New/Child")], 2);
        assert_eq!(state[&name("Other/Kid")], 3);
        assert_eq!(ops.len(), 2, "{ops:?}");
    }

    #[test]
    fn names_the_destination_alters_are_created_and_matched_as_it_keeps_them() {
        let to_dst = crate::brain::names::map_of(&[("a.b", "a_b"), ("x.y", "x_y")]);
        let src = vec![
            info("INBOX", 1, 1, 1),
            info("a.b", 2, 1, 1),
            info("x.y", 3, 1, 1),
        ];
        let (ops, pairs) = plan_tree(&src, &[info("INBOX", 1, 1, 1)], &Filter::default(), &to_dst);
        assert_eq!(
            ops,
            vec![
                TreeOp::Create {
                    name: name("a_b"),
                    guid: MailboxGuid([2; 16]),
                    uidvalidity: 1
                },
                TreeOp::Create {
                    name: name("x_y"),
                    guid: MailboxGuid([3; 16]),
                    uidvalidity: 1
                },
            ]
        );
        assert_eq!(pairs[1].dst_name, name("a_b"));
        // Next run: matched by GUID (and by name for a GUID that differs),
        // nothing renamed, nothing deleted.
        let dst = vec![
            info("INBOX", 1, 1, 1),
            info("a_b", 2, 1, 1),
            info("x_y", 9, 1, 1),
        ];
        let (ops, pairs) = plan_tree(&src, &dst, &Filter::default(), &to_dst);
        assert!(ops.is_empty(), "{ops:?}");
        assert_eq!(pairs[2].dst.as_ref().unwrap().guid, MailboxGuid([9; 16]));
        // A rename at the source still travels, in the destination's spelling.
        let src = vec![
            info("INBOX", 1, 1, 1),
            info("c.d", 2, 1, 1),
            info("x.y", 3, 1, 1),
        ];
        let to_dst = crate::brain::names::map_of(&[("c.d", "c_d"), ("x.y", "x_y")]);
        let (ops, _) = plan_tree(&src, &dst, &Filter::default(), &to_dst);
        assert_eq!(
            ops,
            vec![TreeOp::Rename {
                from: name("a_b"),
                to: name("c_d")
            }]
        );
    }

    #[test]
    fn filter_limits_deletes_and_creates() {
        let src = vec![info("INBOX", 1, 1, 1), info("A", 2, 1, 1)];
        let dst = vec![info("INBOX", 1, 1, 1), info("Other", 3, 1, 1)];
        let (ops, pairs) = plan_tree(&src, &dst, &Filter(vec![name("A")]), &NameMap::default());
        assert_eq!(
            ops,
            vec![TreeOp::Create {
                name: name("A"),
                guid: MailboxGuid([2; 16]),
                uidvalidity: 1
            }]
        );
        assert_eq!(pairs.len(), 1);
    }

    #[test]
    fn messages_are_fixed_one_by_one() {
        let src = MailboxSnapshot {
            info: info("INBOX", 1, 7, 6),
            messages: vec![
                msg(1, "a", Flags::SEEN),
                msg(2, "b", Flags::empty()),
                msg(4, "d", Flags::empty()),
                msg(5, "e", Flags::empty()),
            ],
        };
        let mut changed = msg(2, "b", Flags::FLAGGED);
        changed.internal_date = 5;
        let dst = MailboxSnapshot {
            info: info("INBOX", 1, 7, 6),
            messages: vec![
                msg(1, "a", Flags::SEEN),
                changed,
                msg(3, "c", Flags::empty()),
                msg(4, "x", Flags::empty()),
            ],
        };
        let plan = plan_mailbox(&src, Some(&dst));
        assert_eq!(plan.header, None);
        assert_eq!(plan.expunge, vec![3, 4]);
        assert_eq!(plan.flags, vec![(2, Flags::empty(), vec![])]);
        assert_eq!(plan.dates, vec![(2, 100)]);
        assert_eq!(
            plan.saves
                .iter()
                .map(|&i| src.messages[i].uid)
                .collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    /// In a delta run a side's record may stand for its base record (no
    /// size, no date): only GUID, flags and keywords are compared, and a
    /// copy of such a record is flagged as needing the real one.
    #[test]
    fn records_from_the_base_compare_flags_only() {
        let from_base = |uid, guid, flags| MessageRecord {
            size: u64::MAX,
            internal_date: 0,
            ..msg(uid, guid, flags)
        };
        let src = MailboxSnapshot {
            info: info("INBOX", 1, 7, 6),
            messages: vec![
                from_base(1, "a", Flags::SEEN),
                msg(2, "b", Flags::SEEN),
                from_base(3, "c", Flags::empty()),
            ],
        };
        let dst = MailboxSnapshot {
            info: info("INBOX", 1, 7, 6),
            messages: vec![
                msg(1, "a", Flags::FLAGGED),
                from_base(2, "b", Flags::empty()),
            ],
        };
        let plan = plan_mailbox(&src, Some(&dst));
        assert_eq!(
            plan.flags,
            vec![(1, Flags::SEEN, vec![]), (2, Flags::SEEN, vec![])]
        );
        assert!(plan.dates.is_empty() && plan.expunge.is_empty());
        assert_eq!(plan.saves, vec![2]);
        assert!(plan.needs_full_records(&src));
    }

    #[test]
    fn identical_mailboxes_plan_nothing() {
        let snap = MailboxSnapshot {
            info: info("INBOX", 1, 7, 3),
            messages: vec![msg(1, "a", Flags::SEEN), msg(2, "b", Flags::DRAFT)],
        };
        assert!(plan_mailbox(&snap, Some(&snap.clone())).is_empty());
    }

    #[test]
    fn other_uidvalidity_replaces_everything_and_sets_header() {
        let src = MailboxSnapshot {
            info: info("INBOX", 1, 7, 2),
            messages: vec![msg(1, "a", Flags::SEEN)],
        };
        let dst = MailboxSnapshot {
            info: info("INBOX", 1, 8, 2),
            messages: vec![msg(1, "a", Flags::SEEN)],
        };
        let plan = plan_mailbox(&src, Some(&dst));
        assert_eq!(plan.header, Some((MailboxGuid([1; 16]), 7, 2)));
        assert_eq!(plan.expunge, vec![1]);
        assert_eq!(plan.saves.len(), 1);
    }

    #[test]
    fn subscriptions_respect_the_filter() {
        let subs = plan_subscriptions(
            &[name("A"), name("B")],
            &[name("C"), name("A")],
            &Filter(vec![name("B"), name("C")]),
            &NameMap::default(),
        );
        assert_eq!(subs, vec![name("A"), name("B")]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        fn arb_mailbox() -> impl Strategy<Value = MailboxSnapshot> {
            (
                1u32..4,
                proptest::collection::btree_map(1u32..30, (0u8..5, 0u8..32, 0i64..3), 0..20),
            )
                .prop_map(|(uv, msgs)| {
                    let messages: Vec<MessageRecord> = msgs
                        .into_iter()
                        .map(|(uid, (g, f, d))| MessageRecord {
                            internal_date: d,
                            keywords: if f & 1 == 1 {
                                vec!["Work".into()]
                            } else {
                                vec![]
                            },
                            ..msg(uid, &format!("g{g}"), Flags::from_bits(f % 32).unwrap())
                        })
                        .collect();
                    let uidnext = messages.last().map_or(1, |m| m.uid + 1);
                    MailboxSnapshot {
                        info: MailboxInfo {
                            messages: messages.len() as u32,
                            ..info("INBOX", 1, uv, uidnext)
                        },
                        messages,
                    }
                })
        }

        proptest! {
            /// Applying the plan to any destination yields the source,
            /// and planning again yields nothing.
            #[test]
            fn plan_makes_destination_equal_to_source(src in arb_mailbox(), dst in arb_mailbox()) {
                let plan = plan_mailbox(&src, Some(&dst));
                let mut model: BTreeMap<Uid, MessageRecord> = dst.messages.iter().map(|m| (m.uid, m.clone())).collect();
                for uid in &plan.expunge {
                    prop_assert!(model.remove(uid).is_some());
                }
                for (uid, flags, kw) in &plan.flags {
                    let m = model.get_mut(uid).unwrap();
                    m.flags = *flags;
                    m.keywords = kw.clone();
                }
                for (uid, d) in &plan.dates {
                    model.get_mut(uid).unwrap().internal_date = *d;
                }
                for m in plan.saves.iter().map(|&i| &src.messages[i]) {
                    prop_assert!(model.insert(m.uid, m.clone()).is_none(), "save over an existing UID");
                }
                let mut info = dst.info.clone();
                if let Some((g, uv, next)) = plan.header {
                    info.guid = g;
                    info.uidvalidity = uv;
                    info.uidnext = next;
                }
                prop_assert_eq!(info.uidvalidity, src.info.uidvalidity);
                let after = MailboxSnapshot { info, messages: model.into_values().collect() };
                prop_assert_eq!(&after.messages, &src.messages);
                prop_assert!(plan_mailbox(&src, Some(&after)).is_empty());
            }
        }
    }
}
