//! Store behaviour on a real file system (no Dovecot needed).

use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord};
use std::fs;
use std::path::Path;

fn n(s: &str) -> MailboxName {
    MailboxName::parse(s, '/').unwrap()
}

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
    for chunk in body.chunks(3) {
        u.write_chunk(&mut h, chunk).unwrap();
    }
    u.save_finish(h).unwrap();
}

fn new_store(layout: Layout) -> (tempfile::TempDir, MaildirStore) {
    let d = tempfile::tempdir().unwrap();
    let mut o = MaildirOptions::new(d.path().join("Maildir"));
    o.layout = layout;
    let s = MaildirStore::open(o, true).unwrap();
    (d, s)
}

fn read(p: &Path) -> String {
    String::from_utf8(fs::read(p).unwrap()).unwrap()
}

#[test]
fn open_errors() {
    let d = tempfile::tempdir().unwrap();
    let e = MaildirStore::open(MaildirOptions::new(d.path().join("x")), false)
        .err()
        .unwrap();
    assert!(e.to_string().contains("does not exist"), "{e}");
    fs::write(d.path().join("f"), "").unwrap();
    let e = MaildirStore::open(MaildirOptions::new(d.path().join("f")), true)
        .err()
        .unwrap();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn foreign_files_get_uids_in_dovecot_order() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let root = s.options().root.clone();
    fs::write(root.join("cur/200.M5P1.h,S=3:2,FS"), "abc").unwrap();
    fs::write(root.join("new/100.M9P1.h"), "hello").unwrap();
    fs::write(root.join("cur/200.M40P1.h:2,a"), "x\ny").unwrap();
    fs::write(root.join("dovecot-keywords"), "0 $Junk\n").unwrap();
    let infos = s.list_mailboxes().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].uidnext, 4);
    assert_eq!(infos[0].messages, 3);
    let uv = infos[0].uidvalidity;
    assert_eq!(read(&root.join("dovecot-uidvalidity")), format!("{uv:08x}"));
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    let m = &snap.messages;
    assert_eq!(m[0].guid, "100.M9P1.h");
    assert!(m[0].in_new);
    assert_eq!(m[0].size, 5);
    assert_eq!(m[1].guid, "200.M5P1.h,S=3");
    assert_eq!(m[1].flags, Flags::FLAGGED.union(Flags::SEEN));
    assert_eq!(m[2].keywords, vec!["$Junk".to_string()]);
    let ul = read(&root.join("dovecot-uidlist"));
    assert!(ul.starts_with(&format!("3 V{uv} N4 G")), "{ul}");
    assert!(
        ul.ends_with("1 :100.M9P1.h\n2 :200.M5P1.h,S=3\n3 :200.M40P1.h\n"),
        "{ul}"
    );
    // A second look changes nothing on disk.
    let before = fs::metadata(root.join("dovecot-uidlist"))
        .unwrap()
        .modified()
        .unwrap();
    s.list_mailboxes().unwrap();
    let after = fs::metadata(root.join("dovecot-uidlist"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    // A vanished file loses its record; UIDNEXT stays.
    fs::remove_file(root.join("new/100.M9P1.h")).unwrap();
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    assert_eq!(snap.messages.len(), 2);
    assert_eq!(snap.info.uidnext, 4);
}

#[test]
fn damaged_uidlist_is_an_error_naming_the_line() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let root = s.options().root.clone();
    fs::write(root.join("dovecot-uidlist"), "3 V1 N9\n5 :a\n3 :b\n").unwrap();
    let e = format!("{:#}", s.snapshot(&MailboxName::inbox()).unwrap_err());
    assert!(
        e.contains("dovecot-uidlist line 3: UIDs not ascending (3 after 5)"),
        "{e}"
    );
}

#[test]
fn save_flags_expunge_and_header() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let root = s.options().root.clone();
    let guid = MailboxGuid([7; 16]);
    s.create_mailbox(&inbox, guid, 1234).unwrap();

    let mut u = s.update(&inbox).unwrap();
    let mut r1 = rec(5, "1.M1P1.h,S=6,W=9", b"a\nb\nc\n");
    r1.flags = Flags::SEEN;
    r1.keywords = vec!["$Label1".into(), "work".into()];
    r1.pop3_uidl = Some("UIDL-1".into());
    r1.pop3_order = Some(3);
    save(&mut u, &r1, b"a\nb\nc\n");
    let mut r2 = rec(7, "plain-guid", b"xyz");
    r2.in_new = true;
    save(&mut u, &r2, b"xyz");
    let r3 = rec(9, "bad size,S=1", b"12345");
    save(&mut u, &r3, b"12345");
    let bad = rec(10, "g", b"12");
    let mut h = u.save_begin(&bad).unwrap();
    u.write_chunk(&mut h, b"1").unwrap();
    assert!(u.save_finish(h).is_err());
    u.commit().unwrap();

    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
    assert!(root.join("cur/1.M1P1.h,S=6,W=9:2,Sab").exists());
    assert!(root.join("new/plain-guid,S=3,W=3").exists());
    assert_eq!(read(&root.join("dovecot-keywords")), "0 $Label1\n1 work\n");
    let ul = read(&root.join("dovecot-uidlist"));
    let lines: Vec<&str> = ul.lines().collect();
    // New messages only: appended after the header as it was (readers
    // take the next UID from the last record), not a rewrite.
    assert_eq!(lines[0], format!("3 V1234 N1 G{}", guid.to_hex()));
    assert_eq!(
        uidlist::Uidlist::parse(ul.as_bytes()).unwrap().next_uid(),
        10
    );
    assert_eq!(
        lines[1],
        "5 P UIDL-1 O3 :1.M1P1.h,S=6,W=9".replace("P UIDL", "PUIDL")
    );
    assert_eq!(lines[2], "7 Gplain-guid :plain-guid,S=3,W=3");
    assert!(
        lines[3].starts_with("9 Gbad size,S=1 :") || lines[3].starts_with("9 :"),
        "{}",
        lines[3]
    );

    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.info.uidnext, 10);
    assert_eq!(snap.info.guid, guid);
    let m: Vec<_> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.as_str()))
        .collect();
    assert_eq!(m[0], (5, "1.M1P1.h,S=6,W=9"));
    assert_eq!(m[1], (7, "plain-guid"));
    assert_eq!(snap.messages[0].keywords, vec!["$Label1", "work"]);
    assert_eq!(snap.messages[0].internal_date, 1_600_000_000);
    assert_eq!(snap.messages[0].pop3_uidl.as_deref(), Some("UIDL-1"));
    assert_eq!(snap.messages[0].pop3_order, Some(3));
    assert!(snap.messages[1].in_new);
    let (mut f, len) = s.open_message(&inbox, 5).unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut f, &mut body).unwrap();
    assert_eq!((body.as_str(), len), ("a\nb\nc\n", 6));

    // Flags, dates, expunges.
    let mut u = s.update(&inbox).unwrap();
    u.set_flags(5, Flags::ANSWERED, &["work".into(), "new".into()])
        .unwrap();
    u.set_flags(7, Flags::DRAFT, &[]).unwrap();
    u.set_internal_date(5, 1_000_000_000);
    u.expunge(9).unwrap();
    u.commit().unwrap();
    assert!(root.join("cur/1.M1P1.h,S=6,W=9:2,Rbc").exists());
    assert!(root.join("cur/plain-guid,S=3,W=3:2,D").exists());
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.messages.len(), 2);
    assert_eq!(snap.messages[0].keywords, vec!["new", "work"]);
    assert_eq!(snap.messages[0].internal_date, 1_000_000_000);
    assert!(!snap.messages[1].in_new);
    assert_eq!(snap.info.uidnext, 10);
    assert!(s.open_message(&inbox, 9).is_err());

    // An unchanged commit writes nothing.
    let before = fs::metadata(root.join("dovecot-uidlist"))
        .unwrap()
        .modified()
        .unwrap();
    s.update(&inbox).unwrap().commit().unwrap();
    let mut u = s.update(&inbox).unwrap();
    u.set_flags(7, Flags::DRAFT, &[]).unwrap();
    u.commit().unwrap();
    let after = fs::metadata(root.join("dovecot-uidlist"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // Forced header, even lower.
    let mut u = s.update(&inbox).unwrap();
    u.set_header(MailboxGuid([9; 16]), 77, 8);
    u.commit().unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!((snap.info.uidvalidity, snap.info.uidnext), (77, 8));
    // A used UID cannot be saved again.
    let mut u = s.update(&inbox).unwrap();
    assert!(u.save_begin(&rec(5, "z", b"")).is_err());
}

#[test]
fn delivery_during_transaction_gets_higher_uid() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let root = s.options().root.clone();
    s.list_mailboxes().unwrap();
    let mut u = s.update(&inbox).unwrap();
    save(&mut u, &rec(1, "mine", b"m"), b"m");
    fs::write(root.join("new/1.M1P1.other"), "o").unwrap();
    u.commit().unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    let m: Vec<_> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.as_str()))
        .collect();
    assert_eq!(m, vec![(1, "mine"), (2, "1.M1P1.other")]);
}

#[test]
fn save_copy_of_file() {
    let (d, mut s) = new_store(Layout::MaildirPlusPlus);
    let src = d.path().join("src,S=4,W=6:2,S");
    fs::write(&src, "a\nb\n").unwrap();
    let inbox = MailboxName::inbox();
    s.list_mailboxes().unwrap();
    let mut u = s.update(&inbox).unwrap();
    u.save_copy_of(&rec(3, "src,S=4,W=6", b"a\nb\n"), &src)
        .unwrap();
    u.commit().unwrap();
    let p = s.message_path(&inbox, 3).unwrap();
    assert!(p.ends_with("cur/src,S=4,W=6:2,"), "{}", p.display());
    assert_eq!(fs::read(p).unwrap(), b"a\nb\n");
}

#[test]
fn mailbox_tree_maildirpp() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let root = s.options().root.clone();
    s.create_mailbox(&n("Ärger/sub"), MailboxGuid([1; 16]), 5)
        .unwrap();
    s.create_mailbox(&n("Ärger/sub/deep"), MailboxGuid([2; 16]), 6)
        .unwrap();
    assert!(root.join(".&AMQ-rger.sub/maildirfolder").exists());
    assert!(s
        .create_mailbox(&n("Ärger/sub"), MailboxGuid([1; 16]), 5)
        .is_err());
    assert!(s
        .create_mailbox(&n("a.b"), MailboxGuid([1; 16]), 5)
        .is_err());
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "Ärger/sub", "Ärger/sub/deep"]);
    let info = s.list_mailboxes().unwrap()[1].clone();
    assert_eq!(
        (info.guid, info.uidvalidity, info.uidnext),
        (MailboxGuid([1; 16]), 5, 1)
    );

    s.rename_mailbox(&n("Ärger/sub"), &n("Neu")).unwrap();
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "Neu", "Neu/deep"]);
    assert_eq!(s.list_mailboxes().unwrap()[2].guid, MailboxGuid([2; 16]));
    s.delete_mailbox(&n("Neu")).unwrap();
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "Neu/deep"]);
    assert!(s.delete_mailbox(&MailboxName::inbox()).is_err());
    assert!(s.delete_mailbox(&n("Neu")).is_err());
}

/// The store's mailbox names, as `list_mailboxes` gives them.
fn listed(s: &mut MaildirStore) -> Vec<String> {
    s.list_mailboxes()
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect()
}

#[test]
fn mailbox_tree_fs() {
    let (_d, mut s) = new_store(Layout::Fs);
    let root = s.options().root.clone();
    s.create_mailbox(&n("a/b"), MailboxGuid([1; 16]), 5)
        .unwrap();
    s.create_mailbox(&n("a"), MailboxGuid([2; 16]), 6).unwrap();
    assert!(root.join("a/b/cur").is_dir());
    assert!(!root.join("a/b/maildirfolder").exists());
    assert!(s
        .create_mailbox(&n("x/cur"), MailboxGuid([1; 16]), 5)
        .is_err());
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "a", "a/b"]);
    s.delete_mailbox(&n("a")).unwrap();
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "a/b"]);
    s.rename_mailbox(&n("a/b"), &n("c/d")).unwrap();
    let names = listed(&mut s);
    assert_eq!(names, vec!["INBOX", "c/d"]);
}

#[test]
fn subscriptions_roundtrip_and_no_needless_write() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let root = s.options().root.clone();
    assert!(s.subscriptions().unwrap().is_empty());
    let names = vec![MailboxName::inbox(), n("Ärger/sub")];
    s.set_subscriptions(&names).unwrap();
    assert_eq!(
        read(&root.join("subscriptions")),
        "V\t2\n\nINBOX\n&AMQ-rger\tsub\n"
    );
    assert_eq!(s.subscriptions().unwrap(), names);
    let before = fs::metadata(root.join("subscriptions"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.set_subscriptions(&names).unwrap();
    let after = fs::metadata(root.join("subscriptions"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn separate_control_dir() {
    let d = tempfile::tempdir().unwrap();
    let mut o = MaildirOptions::new(d.path().join("mail"));
    o.control = Some(d.path().join("control"));
    let mut s = MaildirStore::open(o, true).unwrap();
    s.create_mailbox(&n("F"), MailboxGuid([3; 16]), 9).unwrap();
    s.list_mailboxes().unwrap();
    assert!(d.path().join("control/.F/dovecot-uidlist").exists());
    // Dovecot's layout: INBOX is `.INBOX` in a separate control tree.
    assert!(d.path().join("control/.INBOX/dovecot-uidlist").exists());
    assert!(!d.path().join("mail/dovecot-uidlist").exists());
}

#[test]
fn vanished_message_error() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let root = s.options().root.clone();
    fs::write(root.join("cur/1.M1P1.h:2,"), "x").unwrap();
    s.snapshot(&MailboxName::inbox()).unwrap();
    // A flag change by someone else is followed.
    fs::rename(root.join("cur/1.M1P1.h:2,"), root.join("cur/1.M1P1.h:2,S")).unwrap();
    assert!(s.open_message(&MailboxName::inbox(), 1).is_ok());
    fs::remove_file(root.join("cur/1.M1P1.h:2,S")).unwrap();
    let e = s.open_message(&MailboxName::inbox(), 1).unwrap_err();
    assert!(e.downcast_ref::<ChangedMeanwhile>().is_some());
    assert!(e.to_string().contains("vanished"), "{e}");
}

/// `cargo test --release -- --ignored million --nocapture`: timings for a
/// 1,000,000-message uidlist.
#[test]
#[ignore]
fn million_record_uidlist_timing() {
    use super::uidlist::{Uidlist, UidlistRecord};
    use std::time::Instant;
    let mut l = Uidlist::new(1, MailboxGuid([1; 16]));
    for i in 1..=1_000_000u32 {
        let mut r = UidlistRecord::new(
            i,
            format!(
                "{}.M{}P1234.host.example.com,S=4321,W=4400",
                1_600_000_000 + i,
                i % 1_000_000
            ),
        );
        if i % 10 == 0 {
            r.set(b'G', format!("guid{i}"));
        }
        l.records.push(r);
    }
    l.header_next_uid = 1_000_001;
    let t = Instant::now();
    let bytes = l.to_bytes();
    let w = t.elapsed();
    let t = Instant::now();
    let p = Uidlist::parse(&bytes).unwrap();
    let r = t.elapsed();
    assert_eq!(p.records.len(), 1_000_000);
    eprintln!("{} MB: write {w:?}, parse {r:?}", bytes.len() >> 20);
}

/// `cargo test --release -- --ignored hundred_thousand --nocapture`.
#[test]
#[ignore]
fn hundred_thousand_files_timing() {
    use std::time::Instant;
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let cur = s.options().root.join("cur");
    for i in 0..100_000u32 {
        fs::write(
            cur.join(format!("{}.M{i}P1.h,S=1,W=1:2,S", 1_600_000_000 + i / 7)),
            "x",
        )
        .unwrap();
    }
    let t = Instant::now();
    s.list_mailboxes().unwrap();
    let first = t.elapsed();
    let t = Instant::now();
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    let snap_t = t.elapsed();
    let mut s2 = MaildirStore::open(s.options().clone(), false).unwrap();
    let t = Instant::now();
    s2.snapshot(&MailboxName::inbox()).unwrap();
    let cold = t.elapsed();
    let t = Instant::now();
    let mut u = s2.update(&MailboxName::inbox()).unwrap();
    u.set_flags(5, Flags::ANSWERED, &[]).unwrap();
    u.commit().unwrap();
    let commit = t.elapsed();
    assert_eq!(snap.messages.len(), 100_000);
    eprintln!("assign UIDs {first:?}, snapshot (cached scan) {snap_t:?}, cold snapshot {cold:?}, one-flag commit {commit:?}");
}

#[test]
fn uid_taken_meanwhile_is_a_retryable_error() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let root = s.options().root.clone();
    s.create_mailbox(&inbox, MailboxGuid([1; 16]), 5).unwrap();
    let mut u = s.update(&inbox).unwrap();
    save(&mut u, &rec(1, "mine", b"m"), b"m");
    // Another program assigns UID 1 to its own delivery meanwhile.
    fs::write(root.join("cur/9.M1P1.x:2,"), "o").unwrap();
    fs::write(
        root.join("dovecot-uidlist"),
        format!("3 V5 N2 G{}\n1 :9.M1P1.x\n", MailboxGuid([1; 16]).to_hex()),
    )
    .unwrap();
    let e = u.commit().unwrap_err();
    assert!(e.downcast_ref::<ChangedMeanwhile>().is_some(), "{e}");
    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
    assert!(!root.join("dovecot-uidlist.lock").exists());
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.messages.len(), 1);
    assert_eq!(snap.messages[0].guid, "9.M1P1.x");
}

#[test]
fn changes_left_out_are_reported() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let root = s.options().root.clone();
    fs::write(root.join("cur/1.M1P1.h:2,"), "x").unwrap();
    s.snapshot(&inbox).unwrap();
    let mut u = s.update(&inbox).unwrap();
    u.set_flags(1, Flags::SEEN, &[]).unwrap();
    assert!(u
        .set_flags(2, Flags::SEEN, &[])
        .unwrap_err()
        .downcast_ref::<ChangedMeanwhile>()
        .is_some());
    save(&mut u, &rec(2, "bad guid", b"y"), b"y");
    fs::remove_file(root.join("cur/1.M1P1.h:2,")).unwrap();
    u.commit().unwrap();
    let skipped = s.take_skipped();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].contains("UID 1"), "{skipped:?}");
    assert!(skipped[1].contains("bad guid"), "{skipped:?}");
    assert!(s.take_skipped().is_empty());
}

#[test]
fn store_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<MaildirStore>();
    assert_send::<SaveHandle>();
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let info = s.mailbox_info(&MailboxName::inbox()).unwrap();
    assert_eq!(info.uidnext, 1);
    assert!(s.mailbox_info(&n("nope")).is_err());
}

/// `cargo test --release -- --ignored memory_per_message --nocapture`.
/// What a cached folder costs a message, and what a cold read of it costs
/// at its peak (records, the name index, the places found by the listing).
#[test]
#[ignore]
fn memory_per_message() {
    use super::scan::{FileLoc, NameIndex};
    use super::uidlist::{Uidlist, UidlistRecord};
    fn rss_kb() -> u64 {
        let s = fs::read_to_string("/proc/self/status").unwrap();
        let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    const N: usize = 1_000_000;
    let before = rss_kb();
    let mut l = Uidlist::new(1, MailboxGuid([1; 16]));
    l.records.reserve_exact(N);
    for i in 0..N as u32 {
        // As Dovecot names them (46 bytes), as the uidlist parser allocates.
        let base = format!(
            "{}.M{}P12345.host.example,S=4321,W=4400",
            1_600_000_000 + i,
            100_000 + i % 900_000
        );
        // Allocated exactly, as the parser does (format! reserves more).
        let mut exact = String::with_capacity(base.len());
        exact.push_str(&base);
        drop(base);
        l.records.push(UidlistRecord::new(i + 1, exact));
    }
    let records = rss_kb();
    let index = NameIndex::new(&l.records);
    let mut found: Vec<Option<FileLoc>> = vec![None; N];
    for (i, r) in l.records.iter().enumerate() {
        let full = format!("{}:2,S", r.filename());
        found[i] = Some(FileLoc::new(&full, r.filename().len(), false));
        assert_eq!(index.get(&l.records, r.filename()), Some(i));
    }
    let locs: Vec<FileLoc> = found.into_iter().map(Option::unwrap).collect();
    let peak = rss_kb();
    drop(index);
    let folder = super::store::Folder::new(l, locs, None);
    let after = rss_kb();
    let per = |kb: u64| kb * 1024 / N as u64;
    eprintln!(
        "bytes per message: uidlist records {}, cached folder {}, peak of a read {} (upper bound: \
         freed memory is not always returned)",
        per(records - before),
        per(after - before),
        per(peak - before)
    );
    drop(folder);
}

#[test]
fn orphan_keyword_letters_get_dovecots_names() {
    let (_d, mut s) = new_store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let root = s.options().root.clone();
    // 'a' on a file, but no dovecot-keywords says what it means: Dovecot
    // calls it "unknown-0" and writes that name down; so do we.
    fs::write(root.join("cur/1.M1P1.h:2,a"), "x").unwrap();
    fs::write(root.join("cur/2.M1P1.h:2,"), "y").unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.messages[0].keywords, vec!["unknown-0"]);
    assert_eq!(read(&root.join("dovecot-keywords")), "0 unknown-0\n");
    let mut u = s.update(&inbox).unwrap();
    u.set_flags(2, Flags::empty(), &["work".into()]).unwrap();
    u.set_flags(1, Flags::SEEN, &[]).unwrap();
    u.commit().unwrap();
    assert_eq!(
        read(&root.join("dovecot-keywords")),
        "0 unknown-0\n1 work\n"
    );
    assert!(root.join("cur/2.M1P1.h:2,b").exists());
    assert!(root.join("cur/1.M1P1.h:2,S").exists());
    let snap = s.snapshot(&inbox).unwrap();
    assert!(snap.messages[0].keywords.is_empty());
    assert_eq!(snap.messages[1].keywords, vec!["work"]);
}
