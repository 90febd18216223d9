//! `MailboxUpdate::relabel`: a message keeps its file and takes a new UID.

use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord};
use std::fs;
use std::os::unix::fs::MetadataExt;

fn rec(uid: u32, guid: &str, body: &[u8]) -> MessageRecord {
    MessageRecord {
        uid,
        guid: guid.to_string(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 1_600_000_000,
        size: body.len() as u64,
        pop3_uidl: None,
        pop3_order: None,
        in_new: false,
    }
}

fn save(u: &mut MailboxUpdate<'_>, r: &MessageRecord, body: &[u8]) {
    let mut h = u.save_begin(r).unwrap();
    u.write_chunk(&mut h, body).unwrap();
    u.save_finish(h).unwrap();
}

/// INBOX with UIDs 1, 2 (with P, O and G fields), 3; UIDNEXT 4.
fn setup() -> (tempfile::TempDir, MaildirStore, MailboxName) {
    let d = tempfile::tempdir().unwrap();
    let mut s = MaildirStore::open(MaildirOptions::new(d.path().join("M")), true).unwrap();
    let inbox = MailboxName::inbox();
    s.create_mailbox(&inbox, MailboxGuid([3; 16]), 100).unwrap();
    let mut u = s.update(&inbox).unwrap();
    save(&mut u, &rec(1, "1.M1P1.h,S=1,W=1", b"a"), b"a");
    let mut r2 = rec(2, "plain-guid", b"bb\n");
    r2.flags = Flags::SEEN;
    r2.keywords = vec!["work".into()];
    r2.pop3_uidl = Some("U2".into());
    r2.pop3_order = Some(7);
    save(&mut u, &r2, b"bb\n");
    save(&mut u, &rec(3, "3.M1P1.h,S=1,W=1", b"c"), b"c");
    u.commit().unwrap();
    (d, s, inbox)
}

fn uids(s: &mut MaildirStore, name: &MailboxName) -> Vec<(u32, String)> {
    s.snapshot(name)
        .unwrap()
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.clone()))
        .collect()
}

fn uidlist(s: &MaildirStore) -> Vec<String> {
    fs::read_to_string(s.options().root.join("dovecot-uidlist"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn keeps_file_and_fields_under_the_new_uid() {
    let (_d, mut s, inbox) = setup();
    let before = s.message_path(&inbox, 2).unwrap();
    let line2 = uidlist(&s)[2].clone();
    assert!(line2.starts_with("2 ") && line2.contains(" PU2") && line2.contains(" O7"));
    let ino = fs::metadata(&before).unwrap().ino();
    let mut u = s.update(&inbox).unwrap();
    u.relabel(2, 10).unwrap();
    u.commit().unwrap();
    let l = uidlist(&s);
    assert!(l[0].starts_with("3 V100 N11 "), "{l:?}");
    // The same fields and file name, under the new UID.
    assert_eq!(l[3], format!("10{}", &line2[1..]), "{l:?}");
    assert_eq!(l.len(), 4);
    assert!(l[1].starts_with("1 ") && l[2].starts_with("3 "), "{l:?}");
    let after = s.message_path(&inbox, 10).unwrap();
    assert_eq!(before, after);
    assert_eq!(fs::metadata(&after).unwrap().ino(), ino);
    assert!(s.message_path(&inbox, 2).is_err());
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.info.uidnext, 11);
    let m = snap.messages.iter().find(|m| m.uid == 10).unwrap();
    assert_eq!(m.guid, "plain-guid");
    assert_eq!(m.flags, Flags::SEEN);
    assert_eq!(m.keywords, vec!["work"]);
    assert_eq!(m.pop3_uidl.as_deref(), Some("U2"));
    assert_eq!(m.pop3_order, Some(7));
    assert_eq!(m.size, 3);
    // Only the one file: nothing was copied.
    assert_eq!(
        fs::read_dir(s.options().root.join("cur")).unwrap().count(),
        3
    );
}

#[test]
fn flags_and_dates_follow_in_any_order() {
    let (_d, mut s, inbox) = setup();
    let mut u = s.update(&inbox).unwrap();
    // Before the relabel, under the old UID.
    u.set_flags(1, Flags::FLAGGED, &["a".into()]).unwrap();
    u.relabel(1, 20).unwrap();
    // After it, under the new one.
    u.relabel(2, 21).unwrap();
    u.set_flags(21, Flags::ANSWERED, &[]).unwrap();
    u.set_internal_date(21, 1_000_000_000);
    // Mixed with an expunge and a save.
    u.expunge(3).unwrap();
    save(&mut u, &rec(22, "new-one", b"n"), b"n");
    u.commit().unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    let m: Vec<_> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.as_str(), m.flags, m.keywords.clone()))
        .collect();
    assert_eq!(
        m,
        vec![
            (
                20,
                "1.M1P1.h,S=1,W=1",
                Flags::FLAGGED,
                vec!["a".to_string()]
            ),
            (21, "plain-guid", Flags::ANSWERED, vec![]),
            (22, "new-one", Flags::empty(), vec![]),
        ]
    );
    assert_eq!(snap.messages[1].internal_date, 1_000_000_000);
    assert_eq!(snap.info.uidnext, 23);
}

#[test]
fn chains_saves_and_expunges() {
    let (_d, mut s, inbox) = setup();
    let root = s.options().root.clone();
    let mut u = s.update(&inbox).unwrap();
    // A relabel of a relabel keeps the file.
    u.relabel(1, 10).unwrap();
    u.relabel(10, 11).unwrap();
    // A save of this transaction just changes its UID.
    save(&mut u, &rec(12, "s", b"s"), b"s");
    u.relabel(12, 13).unwrap();
    u.set_flags(13, Flags::SEEN, &[]).unwrap();
    // Expunging the new UID expunges the message.
    u.relabel(2, 14).unwrap();
    u.expunge(14).unwrap();
    u.commit().unwrap();
    assert_eq!(
        uids(&mut s, &inbox),
        vec![
            (3, "3.M1P1.h,S=1,W=1".to_string()),
            (11, "1.M1P1.h,S=1,W=1".to_string()),
            (13, "s".to_string()),
        ]
    );
    assert_eq!(s.snapshot(&inbox).unwrap().messages[2].flags, Flags::SEEN);
    assert!(!root.join("cur/plain-guid,S=3,W=4:2,Sa").exists());
    // UID 14 was never visible to anyone, so it need not be skipped.
    assert_eq!(s.snapshot(&inbox).unwrap().info.uidnext, 14);
}

#[test]
fn clear_errors() {
    let (_d, mut s, inbox) = setup();
    let mut u = s.update(&inbox).unwrap();
    let msg = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    assert!(msg(u.relabel(1, 3)).contains("UIDNEXT 4"));
    assert!(msg(u.relabel(1, 0)).contains("not a valid UID"));
    let e = u.relabel(9, 10).unwrap_err();
    assert!(e.downcast_ref::<ChangedMeanwhile>().is_some(), "{e}");
    u.relabel(1, 10).unwrap();
    assert!(msg(u.relabel(2, 10)).contains("already uses UID 10"));
    assert!(msg(u.relabel(1, 11)).contains("relabeled to UID 10"));
    assert!(msg(u.set_flags(1, Flags::SEEN, &[])).contains("use the new UID"));
    assert!(msg(u.expunge(1)).contains("use the new UID"));
    assert!(u.save_begin(&rec(10, "x", b"")).is_err());
    // Below UIDNEXT only in a renumbering (a new UIDVALIDITY).
    u.set_header(MailboxGuid([3; 16]), 100, 4);
    assert!(msg(u.relabel(2, 3)).contains("UIDNEXT 4"));
    u.expunge(3).unwrap();
    assert!(msg(u.relabel(3, 12)).contains("expunges it"));
    save(&mut u, &rec(12, "y", b"y"), b"y");
    assert!(msg(u.relabel(2, 12)).contains("already uses UID 12"));
    drop(u);
    // Nothing was committed.
    assert_eq!(uids(&mut s, &inbox).len(), 3);
}

#[test]
fn delivery_meanwhile() {
    let (_d, mut s, inbox) = setup();
    let root = s.options().root.clone();
    // A file appearing meanwhile gets a UID above ours.
    let mut u = s.update(&inbox).unwrap();
    u.relabel(2, 5).unwrap();
    fs::write(root.join("new/9.M9P9.other"), "o").unwrap();
    u.commit().unwrap();
    let got: Vec<u32> = uids(&mut s, &inbox).iter().map(|m| m.0).collect();
    assert_eq!(got, vec![1, 3, 5, 6]);

    // Another program's uidlist reached past our new UID: retry.
    let mut u = s.update(&inbox).unwrap();
    u.relabel(1, 8).unwrap();
    let ul = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    let ul = ul.replacen(" N7 ", " N9 ", 1);
    fs::write(root.join("dovecot-uidlist"), ul).unwrap();
    let e = u.commit().unwrap_err();
    assert!(e.downcast_ref::<ChangedMeanwhile>().is_some(), "{e}");
    assert_eq!(uids(&mut s, &inbox)[0].0, 1);

    // The message itself vanished meanwhile: reported, not fatal.
    let mut u = s.update(&inbox).unwrap();
    u.relabel(1, 20).unwrap();
    u.set_flags(20, Flags::SEEN, &[]).unwrap();
    let p = root.join("cur").join(
        fs::read_dir(root.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("1.M1P1.h"))
            .unwrap(),
    );
    fs::remove_file(p).unwrap();
    u.commit().unwrap();
    let skipped = s.take_skipped();
    assert!(
        skipped.iter().any(|m| m.contains("UID 1 was expunged")),
        "{skipped:?}"
    );
    let got: Vec<u32> = uids(&mut s, &inbox).iter().map(|m| m.0).collect();
    assert_eq!(got, vec![3, 5, 6]);
}

#[test]
fn renumbering_may_swap_and_reuse() {
    let (_d, mut s, inbox) = setup();
    let mut u = s.update(&inbox).unwrap();
    // Flags set before the renumbering follow the message.
    u.set_flags(2, Flags::DRAFT, &[]).unwrap();
    u.set_header(MailboxGuid([3; 16]), 200, 4);
    // A swap, in the order a planner sorted by new UID sends it: the old
    // UID is the one on disk.
    u.relabel(2, 1).unwrap();
    u.relabel(1, 2).unwrap();
    u.relabel(3, 5).unwrap();
    // The new UIDs name the messages from now on.
    u.set_flags(2, Flags::FLAGGED, &[]).unwrap();
    // A freed UID may take a new message.
    save(&mut u, &rec(3, "new", b"n"), b"n");
    u.commit().unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.info.uidvalidity, 200);
    assert_eq!(snap.info.uidnext, 6);
    let m: Vec<_> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.as_str(), m.flags))
        .collect();
    assert_eq!(
        m,
        vec![
            (1, "plain-guid", Flags::DRAFT),
            (2, "1.M1P1.h,S=1,W=1", Flags::FLAGGED),
            (3, "new", Flags::empty()),
            (5, "3.M1P1.h,S=1,W=1", Flags::empty()),
        ]
    );
    assert_eq!(snap.messages[0].pop3_uidl.as_deref(), Some("U2"));

    // Two messages may not end up under one UID.
    let mut u = s.update(&inbox).unwrap();
    u.set_header(MailboxGuid([3; 16]), 300, 6);
    u.relabel(1, 3).unwrap();
    let e = u.commit().unwrap_err();
    assert!(e.downcast_ref::<ChangedMeanwhile>().is_some(), "{e}");
    assert_eq!(s.snapshot(&inbox).unwrap().info.uidvalidity, 200);
}
