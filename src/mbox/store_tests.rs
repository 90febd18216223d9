//! The store through its public API, on its own (Dovecot's view is in
//! `dovecot_tests`).

use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord};
use std::io::Read;

pub(crate) fn rec(uid: u32, guid: &str, body: &[u8]) -> MessageRecord {
    MessageRecord {
        uid,
        guid: guid.into(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 1_500_000_000,
        size: body.len() as u64,
        pop3_uidl: None,
        pop3_order: None,
        in_new: false,
    }
}

pub(crate) fn save(s: &mut MboxStore, name: &MailboxName, recs: &[(MessageRecord, &[u8])]) {
    let mut u = s.update(name).unwrap();
    for (r, body) in recs {
        let mut h = u.save_begin(r).unwrap();
        u.write_chunk(&mut h, body).unwrap();
        u.save_finish(h).unwrap();
    }
    u.commit().unwrap();
}

fn body(s: &MboxStore, name: &MailboxName, uid: u32) -> Vec<u8> {
    let (mut r, len) = s.open_message(name, uid).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v.len() as u64, len);
    v
}

fn store(d: &std::path::Path) -> MboxStore {
    let mut o = MboxOptions::new(d.join("mail"));
    o.inbox = Some(d.join("inbox"));
    MboxStore::open(o, true).unwrap()
}

#[test]
fn save_read_change_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store(d.path());
    let inbox = MailboxName::inbox();
    s.create_mailbox(&inbox, MailboxGuid([1; 16]), 4242)
        .unwrap();
    let mut a = rec(
        3,
        "guid-a",
        b"Subject: a\n\nFrom x Thu Nov 29 22:33:52 2001\nbody\n",
    );
    a.flags = Flags::SEEN;
    a.keywords = vec!["work".into()];
    a.pop3_uidl = Some("uidl-a".into());
    let b = rec(7, "", b"Subject: b\r\n\r\nno newline");
    save(
        &mut s,
        &inbox,
        &[
            (
                a.clone(),
                b"Subject: a\n\nFrom x Thu Nov 29 22:33:52 2001\nbody\n",
            ),
            (b.clone(), b"Subject: b\r\n\r\nno newline"),
        ],
    );
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.info.guid, MailboxGuid([1; 16]));
    assert_eq!((snap.info.uidvalidity, snap.info.uidnext), (4242, 8));
    assert_eq!(snap.messages.len(), 2);
    let m = &snap.messages[0];
    assert_eq!(
        (m.uid, m.guid.as_str(), m.flags),
        (3, "guid-a", Flags::SEEN)
    );
    assert_eq!(m.keywords, vec!["work"]);
    assert_eq!(m.internal_date, 1_500_000_000);
    assert_eq!(m.pop3_uidl.as_deref(), Some("uidl-a"));
    assert_eq!(m.size, a.size);
    // No GUID given: Dovecot's header MD5 (of nothing here).
    assert_eq!(snap.messages[1].guid, "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        body(&s, &inbox, 3),
        b"Subject: a\n\nFrom x Thu Nov 29 22:33:52 2001\nbody\n"
    );
    assert_eq!(body(&s, &inbox, 7), b"Subject: b\r\n\r\nno newline");

    let mut u = s.update(&inbox).unwrap();
    u.set_flags(3, Flags::FLAGGED, &["x".into()]).unwrap();
    u.set_internal_date(7, 1_000_000_000);
    u.relabel(7, 20).unwrap();
    u.commit().unwrap();
    let mut s = store(d.path());
    let snap = s.snapshot(&inbox).unwrap();
    let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![3, 20]);
    assert_eq!(snap.messages[0].flags, Flags::FLAGGED);
    assert_eq!(snap.messages[0].keywords, vec!["x"]);
    assert_eq!(snap.messages[0].guid, "guid-a");
    assert_eq!(snap.messages[1].internal_date, 1_000_000_000);
    assert_eq!(snap.info.uidnext, 21);

    let mut u = s.update(&inbox).unwrap();
    u.expunge(3).unwrap();
    u.expunge(20).unwrap();
    u.commit().unwrap();
    let snap = s.snapshot(&inbox).unwrap();
    assert!(snap.messages.is_empty());
    assert_eq!((snap.info.uidvalidity, snap.info.uidnext), (4242, 21));
    assert_eq!(snap.info.guid, MailboxGuid([1; 16]));
}

#[test]
fn tree_subscriptions_and_renames() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store(d.path());
    let a = MailboxName::parse("Arch/2024", '/').unwrap();
    let b = MailboxName::parse("Ärger", '/').unwrap();
    s.create_mailbox(&a, MailboxGuid([2; 16]), 10).unwrap();
    s.create_mailbox(&b, MailboxGuid([3; 16]), 11).unwrap();
    assert!(d.path().join("mail/Arch/2024").is_file());
    assert!(d.path().join("mail/&AMQ-rger").is_file());
    let names: Vec<String> = s
        .folder_names()
        .unwrap()
        .iter()
        .map(|n| n.join('/'))
        .collect();
    assert_eq!(names, vec!["INBOX", "Arch/2024", "Ärger"]);
    let info = s.list_mailboxes().unwrap();
    assert_eq!(info[1].guid, MailboxGuid([2; 16]));
    assert_eq!(info[1].uidvalidity, 10);
    s.set_subscriptions(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(s.subscriptions().unwrap(), vec![a.clone(), b.clone()]);
    let c = MailboxName::parse("New/Place", '/').unwrap();
    s.rename_mailbox(&a, &c).unwrap();
    let info = s.mailbox_info(&c).unwrap();
    assert_eq!((info.guid, info.uidvalidity), (MailboxGuid([2; 16]), 10));
    s.delete_mailbox(&c).unwrap();
    assert!(!s.mailbox_exists(&c).unwrap());
    // A mailbox file cannot hold children.
    let child = MailboxName::parse("Ärger/sub", '/').unwrap();
    let e = s
        .create_mailbox(&child, MailboxGuid([4; 16]), 12)
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("cannot hold other mailboxes"),
        "{e:#}"
    );
    assert!(s.store_id().unwrap().len() == 32);
    assert!(d.path().join("mail/.imap/dsync-store-id").exists());
}

#[test]
fn delivered_mail_gets_uids_written() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store(d.path());
    let inbox = MailboxName::inbox();
    s.create_mailbox(&inbox, MailboxGuid([1; 16]), 77).unwrap();
    save(
        &mut s,
        &inbox,
        &[(rec(5, "g5", b"S: 1\n\nx\n"), b"S: 1\n\nx\n")],
    );
    // A delivery agent appends a plain message.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("inbox"))
        .unwrap();
    f.write_all(b"From someone@example.com Mon Jan  1 10:00:00 2024\nSubject: new\n\nhello\n\n")
        .unwrap();
    drop(f);
    let snap = s.snapshot(&inbox).unwrap();
    let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![5, 6]);
    assert_eq!(snap.messages[0].guid, "g5");
    assert!(snap.messages[1].in_new);
    let text = std::fs::read_to_string(d.path().join("inbox")).unwrap();
    assert!(text.contains("X-UID: 6\n"), "{text}");
    assert!(text.contains("X-IMAP: 77 0000000006\n"), "{text}");
}

#[test]
fn saves_below_uidnext_and_conflicts() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store(d.path());
    let inbox = MailboxName::inbox();
    save(
        &mut s,
        &inbox,
        &[(rec(10, "g10", b"S: 1\n\nx\n"), b"S: 1\n\nx\n")],
    );
    save(
        &mut s,
        &inbox,
        &[(rec(4, "g4", b"S: 2\n\ny\n"), b"S: 2\n\ny\n")],
    );
    let snap = s.snapshot(&inbox).unwrap();
    let got: Vec<(u32, String)> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.clone()))
        .collect();
    assert_eq!(got, vec![(4, "g4".into()), (10, "g10".into())]);
    let mut u = s.update(&inbox).unwrap();
    assert!(u.save_begin(&rec(10, "x", b"")).is_err());
    drop(u);
    let mut u = s.update(&inbox).unwrap();
    let h = u.save_begin(&rec(11, "x", b"abc")).unwrap();
    assert!(u.save_finish(h).is_err());
}

#[test]
fn listing_an_unchanged_mbox_does_not_read_it() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store(d.path());
    let inbox = MailboxName::inbox();
    save(
        &mut s,
        &inbox,
        &[(rec(3, "g3", b"S: 1\n\nx\n"), b"S: 1\n\nx\n")],
    );
    // Settled, then read once in full: that records the file's stamp.
    std::thread::sleep(s.fingerprint_settles_in(&inbox) + std::time::Duration::from_millis(30));
    let mut s = store(d.path());
    let first = s.list_mailboxes().unwrap();
    assert_eq!(s.cache.len(), 1);
    // Unchanged: listed from the side file, the mbox is not read.
    let mut s = store(d.path());
    assert_eq!(s.list_mailboxes().unwrap(), first);
    assert!(s.cache.is_empty());
    // Changed (a delivery): read again.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("inbox"))
        .unwrap()
        .write_all(b"From a@b Thu Nov 29 22:33:52 2001\nS: 2\n\ny\n")
        .unwrap();
    let mut s = store(d.path());
    let now = s.list_mailboxes().unwrap();
    assert_eq!((now[0].messages, now[0].uidnext), (2, 5));
}

/// The pair's state in an mbox store: a main file, then a journal entry
/// for a small change, both under the control root; read back whole.
#[test]
fn sync_state_appends_to_its_journal() {
    use crate::brain::delta::BaseEdit;
    use crate::brain::merge::{BaseMailbox, BaseMessage};
    use crate::state::journal::{BoxChange, Change};
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    let peer = "ab".repeat(16);
    let guid = MailboxGuid([5; 16]);
    let messages: Vec<BaseMessage> = (1..=400u32)
        .map(|uid| BaseMessage {
            uid,
            guid: format!("message-{uid}"),
            flags: Flags::SEEN,
            keywords: Vec::<String>::new().into(),
        })
        .collect();
    let mut st = crate::state::SyncState::new("first".into());
    st.insert(
        MailboxName::inbox(),
        BaseMailbox {
            guid,
            uidvalidity: 9,
            uidnext: 401,
            messages,
        },
    );
    s.save_state(&peer, &st).unwrap();
    let main = s.control_root().join(format!("dsync-state.{peer}"));
    let before = std::fs::metadata(&main).unwrap().modified().unwrap();
    let edit = BaseEdit {
        dropped: vec![3],
        set: vec![BaseMessage {
            uid: 7,
            guid: "message-7".into(),
            flags: Flags::FLAGGED,
            keywords: Vec::<String>::new().into(),
        }],
    };
    let mut new = st.clone();
    new.sync_id = "second".into();
    crate::brain::delta::apply(
        &mut new.mailboxes.get_mut(&guid).unwrap().1,
        BaseEdit {
            dropped: edit.dropped.clone(),
            set: edit.set.clone(),
        },
    );
    let change = Change {
        old_sync_id: "first",
        mailboxes: vec![(guid, BoxChange::Edit(&edit))],
        dropped: vec![],
    };
    s.save_state_change(&peer, &new, &change).unwrap();
    assert_eq!(
        std::fs::metadata(&main).unwrap().modified().unwrap(),
        before
    );
    assert!(s
        .control_root()
        .join(format!("dsync-state.{peer}.log"))
        .is_file());
    assert_eq!(s.load_state(&peer).unwrap().unwrap(), new);
    assert_eq!(
        crate::state::peek_sync_id(&s.control_root(), &peer)
            .unwrap()
            .as_deref(),
        Some("second")
    );
}
