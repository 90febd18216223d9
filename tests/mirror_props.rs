//! Property: whatever each side of a synced pair does on its own (new
//! messages, flag changes, expunges, moves between two folders; A through
//! its files, B through Dovecot IMAP), one `dsync mirror` leaves both
//! sides identical through Dovecot, keeps every message that no side
//! expunged exactly once, brings back none that a side expunged, carries
//! new messages both ways and merges flags flag by flag.
//!
//! Each message carries a unique Subject/Message-ID, so it can be followed
//! across folders, UIDs and sides.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::pair::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeSet;
use std::fs;

/// The two folders messages live and move in.
const FOLDERS: [&str; 2] = ["INBOX", "Other"];
/// Messages of the synced pair: `k0…k5`, the first four in INBOX.
const BASE: usize = 6;
/// Flags the operations toggle (Maildir letter, IMAP name).
const FLAGS: [(char, &str); 3] = [('S', "\\Seen"), ('F', "\\Flagged"), ('R', "\\Answered")];

#[derive(Clone, Debug)]
enum Op {
    /// A new message in `FOLDERS[folder]`, \Seen or not.
    Append {
        folder: usize,
        seen: bool,
    },
    /// Sets or clears `FLAGS[flag]` on base message `target`.
    Flag {
        target: usize,
        flag: usize,
        on: bool,
    },
    Expunge {
        target: usize,
    },
    /// Moves base message `target` to the other folder.
    Move {
        target: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, any::<bool>()).prop_map(|(folder, seen)| Op::Append { folder, seen }),
        (0..BASE, 0..FLAGS.len(), any::<bool>()).prop_map(|(target, flag, on)| Op::Flag {
            target,
            flag,
            on
        }),
        (0..BASE).prop_map(|target| Op::Expunge { target }),
        (0..BASE).prop_map(|target| Op::Move { target }),
    ]
}

/// What one side did, as far as the expected outcome depends on it.
#[derive(Clone, Debug)]
struct Side {
    /// Per base message: its folder index, None once expunged.
    folder: Vec<Option<usize>>,
    flags: Vec<BTreeSet<char>>,
    moved: Vec<bool>,
    /// New messages: (subject, folder, seen).
    new: Vec<(String, usize, bool)>,
}

fn base_folder(k: usize) -> usize {
    usize::from(k >= 4)
}

fn base_flags(k: usize) -> BTreeSet<char> {
    match k % 3 {
        0 => BTreeSet::from(['S']),
        1 => BTreeSet::from(['F', 'S']),
        _ => BTreeSet::new(),
    }
}

impl Side {
    fn new() -> Side {
        Side {
            folder: (0..BASE).map(|k| Some(base_folder(k))).collect(),
            flags: (0..BASE).map(base_flags).collect(),
            moved: vec![false; BASE],
            new: Vec::new(),
        }
    }
}

fn letters(f: &BTreeSet<char>) -> String {
    f.iter().collect()
}

/// Applies `ops` to a side by editing its files, as mail clients do; new
/// messages are called `new<tag><n>`.
fn apply_by_files(a: &Maildir, ops: &[Op], tag: &str) -> Side {
    let mut side = Side::new();
    for op in ops {
        match *op {
            Op::Append { folder, seen } => {
                let id = format!("new{tag}{}", side.new.len());
                let m = Msg::new(traced(&id)).mtime(1_760_000_000 + side.new.len() as i64);
                let m = if seen { m.flags("S") } else { m.in_new() };
                a.folder(FOLDERS[folder]).put(&m);
                side.new.push((id, folder, seen));
            }
            Op::Flag { target, flag, on } => {
                if side.folder[target].is_none() {
                    continue;
                }
                let (letter, _) = FLAGS[flag];
                if on {
                    side.flags[target].insert(letter);
                } else {
                    side.flags[target].remove(&letter);
                }
                let path = file_of(a, &format!("k{target}"));
                set_file_flags(&path, &letters(&side.flags[target]));
            }
            Op::Expunge { target } => {
                if side.folder[target].take().is_some() {
                    fs::remove_file(file_of(a, &format!("k{target}"))).unwrap();
                }
            }
            Op::Move { target } => {
                let Some(from) = side.folder[target] else {
                    continue;
                };
                if side.moved[target] {
                    continue;
                }
                let to = 1 - from;
                move_file(a, &file_of(a, &format!("k{target}")), FOLDERS[to]);
                side.folder[target] = Some(to);
                side.moved[target] = true;
            }
        }
    }
    side
}

/// Applies `ops` to a side through Dovecot IMAP.
fn apply_by_imap(b: &Maildir, ops: &[Op], tag: &str) -> Side {
    let mut side = Side::new();
    let mut s = imap_session(&b.location());
    for op in ops {
        match *op {
            Op::Append { folder, seen } => {
                let id = format!("new{tag}{}", side.new.len());
                let flags: &[&str] = if seen { &["\\Seen"] } else { &[] };
                s.append(FOLDERS[folder], flags, None, &traced(&id))
                    .unwrap();
                side.new.push((id, folder, seen));
            }
            Op::Flag { target, flag, on } => {
                let Some(folder) = side.folder[target] else {
                    continue;
                };
                let (letter, name) = FLAGS[flag];
                let uid = uid_of(&mut s, FOLDERS[folder], &format!("k{target}"));
                let how = if on { "+FLAGS" } else { "-FLAGS" };
                s.store(&uid.to_string(), how, &[name]).unwrap();
                if on {
                    side.flags[target].insert(letter);
                } else {
                    side.flags[target].remove(&letter);
                }
            }
            Op::Expunge { target } => {
                if let Some(folder) = side.folder[target].take() {
                    let uid = uid_of(&mut s, FOLDERS[folder], &format!("k{target}"));
                    s.expunge_uids(&uid.to_string()).unwrap();
                }
            }
            Op::Move { target } => {
                let Some(from) = side.folder[target] else {
                    continue;
                };
                if side.moved[target] {
                    continue;
                }
                let to = 1 - from;
                let uid = uid_of(&mut s, FOLDERS[from], &format!("k{target}"));
                s.move_uids(&uid.to_string(), FOLDERS[to]).unwrap();
                side.folder[target] = Some(to);
                side.moved[target] = true;
            }
        }
    }
    s.logout().unwrap();
    side
}

/// Flags (Maildir letters) of a message as the snapshot shows them.
fn snapshot_letters(s: &MailSnapshot, subject: &str) -> BTreeSet<char> {
    flags_of(s, subject)
        .iter()
        .filter_map(|f| FLAGS.iter().find(|(_, n)| n == f).map(|(l, _)| *l))
        .collect()
}

/// One case: a synced pair, independent changes on both sides, a mirror.
/// With `files_on_a`, A is edited through its files and B through IMAP;
/// otherwise the other way round.
fn run_case(ops_a: &[Op], ops_b: &[Op], files_on_a: bool) {
    let t = tempdir();
    let a = Maildir::create(t.path().join("a"));
    let b = Maildir::at(t.path().join("b"));
    for k in 0..BASE {
        a.folder(FOLDERS[base_folder(k)]).put(
            &Msg::new(traced(&format!("k{k}")))
                .flags(&letters(&base_flags(k)))
                .mtime(1_750_000_000 + k as i64),
        );
    }
    mirror(t.path(), &a, &b, &[]).expect_ok();

    let (sa, sb) = if files_on_a {
        (
            apply_by_files(&a, ops_a, "A"),
            apply_by_imap(&b, ops_b, "B"),
        )
    } else {
        (
            apply_by_imap(&a, ops_a, "A"),
            apply_by_files(&b, ops_b, "B"),
        )
    };
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    let places = locations(&s);
    let how = if files_on_a {
        "A by files, B by IMAP"
    } else {
        "A by IMAP, B by files"
    };
    let ctx = || format!("\n({how})\nA did {ops_a:?}\nB did {ops_b:?}\nresult: {s:?}");

    let mut known: BTreeSet<String> = BTreeSet::new();
    for k in 0..BASE {
        let id = format!("k{k}");
        known.insert(id.clone());
        let found: &[(String, u32)] = places.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let (fa, fb) = (sa.folder[k], sb.folder[k]);
        match (fa, fb) {
            (Some(fa), Some(fb)) => {
                // Kept on both sides: exactly once, where a move put it.
                assert_eq!(found.len(), 1, "{id} should be there once{}", ctx());
                let want = if sa.moved[k] { fa } else { fb };
                assert_eq!(found[0].0, FOLDERS[want], "{id}'s folder{}", ctx());
                if !sa.moved[k] && !sb.moved[k] {
                    let base = base_flags(k);
                    let want: BTreeSet<char> = FLAGS
                        .iter()
                        .map(|(l, _)| *l)
                        .filter(|l| {
                            let (in_a, in_b) = (sa.flags[k].contains(l), sb.flags[k].contains(l));
                            if in_a != base.contains(l) {
                                in_a
                            } else {
                                in_b
                            }
                        })
                        .collect();
                    assert_eq!(snapshot_letters(&s, &id), want, "{id}'s flags{}", ctx());
                }
            }
            (None, Some(_)) if sb.moved[k] => {
                // Expunged on A, moved on B: either outcome, never twice.
                assert!(found.len() <= 1, "{id} duplicated{}", ctx());
            }
            (Some(_), None) if sa.moved[k] => {
                assert!(found.len() <= 1, "{id} duplicated{}", ctx());
            }
            _ => assert!(found.is_empty(), "{id} was expunged but came back{}", ctx()),
        }
    }
    for side in [&sa, &sb] {
        for (id, folder, seen) in &side.new {
            known.insert(id.clone());
            let found: &[(String, u32)] = places.get(id).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(
                found.len(),
                1,
                "new message {id} should be there once{}",
                ctx()
            );
            assert_eq!(found[0].0, FOLDERS[*folder], "{id}'s folder{}", ctx());
            assert_eq!(
                snapshot_letters(&s, id).contains(&'S'),
                *seen,
                "{id}'s \\Seen{}",
                ctx()
            );
        }
    }
    let unknown: Vec<&String> = places.keys().filter(|id| !known.contains(*id)).collect();
    assert!(
        unknown.is_empty(),
        "messages from nowhere: {unknown:?}{}",
        ctx()
    );
    let names: BTreeSet<&str> = s.mailboxes.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(FOLDERS), "{}", ctx());
}

#[test]
fn independent_changes_on_both_sides_merge() {
    require_dovecot!();
    let config = Config {
        cases: 32,
        // A case takes well under a second here; bounded shrinking keeps a
        // failing run under a minute.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let ops = || prop::collection::vec(op(), 0..7);
    let result = runner.run(&(ops(), ops(), any::<bool>()), |(oa, ob, files_on_a)| {
        run_case(&oa, &ob, files_on_a);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The first check of the property, on fixed inputs: a readable failure
/// when the engine is broken, before any random case runs.
#[test]
fn one_change_of_each_kind_on_each_side() {
    require_dovecot!();
    let (a_ops, b_ops) = one_of_each();
    run_case(&a_ops, &b_ops, true);
}

fn one_of_each() -> (Vec<Op>, Vec<Op>) {
    let a_ops = vec![
        Op::Append {
            folder: 0,
            seen: false,
        },
        Op::Flag {
            target: 0,
            flag: 1,
            on: true,
        },
        Op::Expunge { target: 1 },
        Op::Move { target: 2 },
    ];
    let b_ops = vec![
        Op::Append {
            folder: 1,
            seen: true,
        },
        Op::Flag {
            target: 0,
            flag: 2,
            on: true,
        },
        Op::Expunge { target: 3 },
        Op::Move { target: 4 },
    ];
    (a_ops, b_ops)
}

/// The same, with the roles of files and IMAP swapped.
#[test]
fn one_change_of_each_kind_on_each_side_swapped() {
    require_dovecot!();
    let (a_ops, b_ops) = one_of_each();
    run_case(&a_ops, &b_ops, false);
}

/// Found by the property test: the same message moved on both sides while
/// B also moved and expunged others.
#[test]
fn regression_same_move_on_both_sides_with_other_moves() {
    require_dovecot!();
    run_case(
        &[Op::Move { target: 0 }],
        &[
            Op::Expunge { target: 4 },
            Op::Move { target: 1 },
            Op::Move { target: 0 },
        ],
        true,
    );
}
