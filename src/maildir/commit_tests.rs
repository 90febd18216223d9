//! The commit on the cached folder (records and file places in step, no
//! map of names) must leave exactly what a commit that reads the folder
//! again leaves, and a cache that a fresh read of the disk agrees with.

use super::store::Folder;
use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord, Uid};
use proptest::prelude::*;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone)]
enum Op {
    Save {
        flags: u8,
        kw: u8,
        in_new: bool,
    },
    /// A backup's save below UIDNEXT, into the first free UID.
    SaveLow,
    Flags {
        pick: u16,
        flags: u8,
        kw: u8,
    },
    Expunge {
        pick: u16,
    },
    Relabel {
        pick: u16,
    },
    Date {
        pick: u16,
        secs: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, 0u8..4, any::<bool>()).prop_map(|(flags, kw, in_new)| Op::Save { flags, kw, in_new }),
        1 => Just(Op::SaveLow),
        3 => (any::<u16>(), 0u8..8, 0u8..4).prop_map(|(pick, flags, kw)| Op::Flags { pick, flags, kw }),
        2 => any::<u16>().prop_map(|pick| Op::Expunge { pick }),
        1 => any::<u16>().prop_map(|pick| Op::Relabel { pick }),
        1 => (any::<u16>(), 0u32..1000).prop_map(|(pick, secs)| Op::Date { pick, secs }),
    ]
}

fn flags_of(bits: u8) -> Flags {
    // \Answered, \Flagged, \Seen.
    Flags::from_bits(bits & 3 | (bits & 4) << 1).expect("system flags")
}

fn keywords_of(bits: u8) -> Vec<String> {
    ["work", "later"]
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, k)| k.to_string())
        .collect()
}

fn store_at(root: &Path) -> MaildirStore {
    let mut s = MaildirStore::open(MaildirOptions::new(root), true).unwrap();
    // Every commit waits for a stamp its next commit can trust.
    s.stamp_wait_from = 0;
    s
}

/// One transaction's ops on `s`, with UIDs and GUIDs from `counter` (the
/// same on every store the test runs, so they write the same names).
fn apply(s: &mut MaildirStore, ops: &[Op], counter: &mut u32) {
    let inbox = MailboxName::inbox();
    let (uids, next): (Vec<Uid>, Uid) = {
        let f = s.sync_folder_for_test(&inbox);
        (
            f.list.records.iter().map(|r| r.uid).collect(),
            f.list.next_uid(),
        )
    };
    let mut new_uid = next;
    let mut used_low = Vec::new();
    let mut u = s.update(&inbox).unwrap();
    let pick = |p: u16| (!uids.is_empty()).then(|| uids[p as usize % uids.len()]);
    for op in ops {
        *counter += 1;
        match op {
            Op::Save { flags, kw, in_new } => {
                let body = format!("message {counter}\n").into_bytes();
                let r = MessageRecord {
                    uid: new_uid,
                    guid: format!("g{counter}"),
                    flags: flags_of(*flags),
                    keywords: keywords_of(*kw),
                    internal_date: 1_600_000_000 + i64::from(*counter),
                    size: body.len() as u64,
                    pop3_uidl: (*counter % 3 == 0).then(|| format!("p{counter}")),
                    pop3_order: None,
                    in_new: *in_new && *flags == 0 && *kw == 0,
                };
                new_uid += 1;
                let mut h = u.save_begin(&r).unwrap();
                u.write_chunk(&mut h, &body).unwrap();
                u.save_finish(h).unwrap();
            }
            Op::SaveLow => {
                let Some(uid) = (1..next).find(|x| !uids.contains(x) && !used_low.contains(x))
                else {
                    continue;
                };
                used_low.push(uid);
                let body = b"low\n".to_vec();
                let r = MessageRecord {
                    uid,
                    guid: format!("g{counter}"),
                    flags: Flags::SEEN,
                    keywords: vec![],
                    internal_date: 1_500_000_000,
                    size: body.len() as u64,
                    pop3_uidl: None,
                    pop3_order: None,
                    in_new: false,
                };
                let mut h = u.save_begin(&r).unwrap();
                u.write_chunk(&mut h, &body).unwrap();
                u.save_finish(h).unwrap();
            }
            Op::Flags { pick: p, flags, kw } => {
                if let Some(uid) = pick(*p) {
                    let _ = u.set_flags(uid, flags_of(*flags), &keywords_of(*kw));
                }
            }
            Op::Expunge { pick: p } => {
                if let Some(uid) = pick(*p) {
                    let _ = u.expunge(uid);
                }
            }
            Op::Relabel { pick: p } => {
                if let Some(uid) = pick(*p) {
                    if u.relabel(uid, new_uid).is_ok() {
                        new_uid += 1;
                    }
                }
            }
            Op::Date { pick: p, secs } => {
                if let Some(uid) = pick(*p) {
                    u.set_internal_date(uid, 1_400_000_000 + i64::from(*secs));
                }
            }
        }
    }
    u.commit().unwrap();
}

impl MaildirStore {
    fn sync_folder_for_test(&mut self, name: &MailboxName) -> &Folder {
        if self.folders.contains_key(name) {
            return &self.folders[name];
        }
        self.sync_folder(name).unwrap()
    }
}

/// The message files in cur/ and new/, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["cur", "new"] {
        for e in fs::read_dir(root.join(sub)).unwrap() {
            v.push(format!(
                "{sub}/{}",
                e.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    v.sort();
    v
}

/// The cached folder, when a stamp says it is current, must be what a
/// fresh read of the disk finds, and that read must find nothing to write.
fn check_cache(s: &MaildirStore, root: &Path) -> Result<(), TestCaseError> {
    let inbox = MailboxName::inbox();
    let Some(cached) = s.folders.get(&inbox) else {
        return Ok(());
    };
    // Only a cache that some stamp vouches for must be current.
    let now = scan::Stamp::take(root, &root.join(uidlist::FILE_NAME));
    let vouched = |st: &Option<scan::Stamp>| st.as_ref().is_some_and(|st| st.unchanged(&now));
    if !vouched(&cached.stamp) && !vouched(&cached.commit_stamp) {
        return Ok(());
    }
    let before = fs::read(root.join(uidlist::FILE_NAME)).unwrap();
    let mut fresh = store_at(root);
    let f = fresh.sync_folder(&inbox).unwrap();
    prop_assert_eq!(&f.list.records, &cached.list.records);
    prop_assert_eq!(&f.locs, &cached.locs);
    prop_assert_eq!(f.list.next_uid(), cached.list.next_uid());
    prop_assert_eq!(f.list.uidvalidity, cached.list.uidvalidity);
    prop_assert_eq!(f.list.guid, cached.list.guid);
    prop_assert_eq!(f.letters & !cached.letters, 0);
    let after = fs::read(root.join(uidlist::FILE_NAME)).unwrap();
    prop_assert!(before == after, "a fresh read rewrote the uidlist");
    Ok(())
}

fn setup(root: &Path) {
    let mut s = store_at(root);
    s.create_mailbox(&MailboxName::inbox(), MailboxGuid([7; 16]), 1234)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random transactions on one store (each commit on the folder the
    /// previous one cached) leave the same uidlist and files as the same
    /// transactions on a store that reads the folder for every commit.
    #[test]
    fn commit_on_cache_equals_commit_after_read(
        txns in proptest::collection::vec(proptest::collection::vec(op(), 0..8), 1..6),
        deliver in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let d = tempfile::tempdir().unwrap();
        let (ra, rb) = (d.path().join("a"), d.path().join("b"));
        setup(&ra);
        setup(&rb);
        let mut a = store_at(&ra);
        let mut b = store_at(&rb);
        b.commit_on_cache = false;
        let (mut ca, mut cb) = (0u32, 0u32);
        let mut delivered = false;
        for (i, ops) in txns.iter().enumerate() {
            if deliver[i] && i > 0 {
                // Another program delivers into A only: A's next commit
                // must notice (and B is no longer comparable).
                fs::write(ra.join(format!("new/{i}.M1P99.elsewhere")), "x\n").unwrap();
                delivered = true;
            }
            apply(&mut a, ops, &mut ca);
            apply(&mut b, ops, &mut cb);
            check_cache(&a, &ra)?;
            if !delivered {
                prop_assert_eq!(
                    fs::read_to_string(ra.join(uidlist::FILE_NAME)).unwrap(),
                    fs::read_to_string(rb.join(uidlist::FILE_NAME)).unwrap()
                );
                prop_assert_eq!(listing(&ra), listing(&rb));
            }
        }
        let inbox = MailboxName::inbox();
        let snap = a.snapshot(&inbox).unwrap();
        let fresh = store_at(&ra).snapshot(&inbox).unwrap();
        prop_assert_eq!(snap.info, fresh.info);
        prop_assert_eq!(snap.messages, fresh.messages);
        prop_assert_eq!(b.commits_on_cache, 0);
        let saving = txns.iter().filter(|t| t.iter().any(|o| matches!(o, Op::Save { .. }))).count();
        if !delivered && saving == txns.len() && saving > 1 {
            prop_assert!(a.commits_on_cache > 0, "no commit worked on the cache");
        }
    }
}

/// Copies in parts: every commit after the first works on the folder the
/// previous one cached, appends to dovecot-uidlist, and a fresh read
/// agrees.
#[test]
fn batches_commit_on_the_cache_and_append() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("m");
    setup(&root);
    let mut s = store_at(&root);
    let mut counter = 0;
    let saves: Vec<Op> = (0..50)
        .map(|i| Op::Save {
            flags: (i % 3) as u8,
            kw: 0,
            in_new: i % 5 == 0,
        })
        .collect();
    let mut ino = None;
    for _ in 0..4 {
        apply(&mut s, &saves, &mut counter);
        check_cache(&s, &root).unwrap();
        let now = std::os::unix::fs::MetadataExt::ino(
            &fs::metadata(root.join(uidlist::FILE_NAME)).unwrap(),
        );
        // After the first batch the file is appended to, not replaced.
        if let Some(i) = ino {
            assert_eq!(
                i, now,
                "dovecot-uidlist was rewritten for new messages only"
            );
        }
        ino = Some(now);
    }
    assert_eq!(s.commits_on_cache, 3);
    assert_eq!(listing(&root).len(), 200);
    // A delivery meanwhile: the next commit reads the folder again.
    fs::write(root.join("new/9.M1P99.elsewhere"), "x\n").unwrap();
    apply(&mut s, &saves[..3], &mut counter);
    assert_eq!(s.commits_on_cache, 3);
    check_cache(&s, &root).unwrap();
    let f = &s.folders[&MailboxName::inbox()];
    assert_eq!(f.list.records.len(), 204);
    assert_eq!(
        f.list.records.last().unwrap().filename(),
        "9.M1P99.elsewhere"
    );
    // Reads never take a commit's stamp on trust: a listing confirms the
    // cache, and a file delivered since makes them read the folder.
    let inbox = MailboxName::inbox();
    assert_eq!(s.snapshot(&inbox).unwrap().messages.len(), 204);
    apply(&mut s, &saves[..1], &mut counter);
    fs::write(root.join("new/10.M1P99.elsewhere"), "x\n").unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.messages.len(), 206);
    assert_eq!(snap.messages.last().unwrap().guid, "10.M1P99.elsewhere");
}
