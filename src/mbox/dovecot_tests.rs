//! The real Dovecot must serve what this store writes, and this store must
//! read what Dovecot writes. Runs /usr/lib/dovecot/imap preauthenticated on
//! stdin/stdout as `nobody` with `mail_location = mbox:…`; skips (loudly)
//! where that is impossible.

use super::store_tests::rec;
use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord};
use std::io::Read;
use std::path::PathBuf;

use crate::dovecot_imap_tests::fetched;

struct Dovecot {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    inbox: PathBuf,
    conf: PathBuf,
}

fn dovecot() -> Option<Dovecot> {
    if !crate::dovecot_imap_tests::available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let root = base.join("mail");
    let inbox = base.join("inbox");
    std::fs::create_dir_all(&root).unwrap();
    let location = format!("mbox:{}:INBOX={}", root.display(), inbox.display());
    let conf = crate::dovecot_imap_tests::write_conf(&base, &location);
    Some(Dovecot {
        _dir: dir,
        base,
        root,
        inbox,
        conf,
    })
}

impl Dovecot {
    fn store(&self) -> MboxStore {
        let mut o = MboxOptions::new(&self.root);
        o.inbox = Some(self.inbox.clone());
        MboxStore::open(o, true).unwrap()
    }

    fn imap(&self, cmds: &[&str]) -> String {
        crate::dovecot_imap_tests::imap(&self.base, &self.conf, &["TZ=UTC"], cmds)
    }
}

/// `X-GUID` of each FETCH response that has one, by UID.
fn guids(out: &str) -> Vec<(u32, String)> {
    out.lines()
        .filter(|l| l.contains("X-GUID "))
        .map(|l| {
            let uid = l.split("UID ").nth(1).unwrap();
            let uid = uid.split([' ', ')']).next().unwrap().parse().unwrap();
            let g = l.split("X-GUID ").nth(1).unwrap();
            let g = g
                .split([' ', ')'])
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string();
            (uid, g)
        })
        .collect()
}

/// An APPEND command with the literal's length filled in.
fn append(args: &str, msg: &str) -> String {
    format!("APPEND {args} {{{}}}\r\n{msg}", msg.len())
}

/// The message as IMAP sends it: every line break CRLF.
fn crlf(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            v.push(b'\r');
        }
        v.push(c);
    }
    v
}

fn save(s: &mut MboxStore, name: &MailboxName, recs: &[(MessageRecord, Vec<u8>)]) {
    let mut u = s.update(name).unwrap();
    for (r, body) in recs {
        let mut r = r.clone();
        r.size = body.len() as u64;
        let mut h = u.save_begin(&r).unwrap();
        u.write_chunk(&mut h, body).unwrap();
        u.save_finish(h).unwrap();
    }
    u.commit().unwrap();
}

/// The literal of a `BODY[]` response for `uid`.
fn body_of(out: &str, uid: u32) -> Vec<u8> {
    let at = out
        .find(&format!("UID {uid} BODY[] {{"))
        .or_else(|| {
            out.lines()
                .find(|l| l.contains(&format!("UID {uid} ")) && l.contains("BODY[] {"))
                .map(|l| {
                    out.find(l).unwrap() + l.find("BODY[] {").unwrap() - format!("UID {uid} ").len()
                })
        })
        .unwrap_or_else(|| panic!("no BODY[] of UID {uid} in\n{out}"));
    let rest = &out[at..];
    let open = rest.find('{').unwrap();
    let close = rest.find('}').unwrap();
    let n: usize = rest[open + 1..close].parse().unwrap();
    rest.as_bytes()[close + 3..close + 3 + n].to_vec()
}

#[test]
fn dovecot_serves_what_we_wrote() {
    let Some(dv) = dovecot() else { return };
    let mut s = dv.store();
    let inbox = MailboxName::inbox();
    s.create_mailbox(&inbox, MailboxGuid([0xab; 16]), 4242)
        .unwrap();
    let sub = MailboxName::parse("Ärger/sub", '/').unwrap();
    s.create_mailbox(&sub, MailboxGuid([0xcd; 16]), 777)
        .unwrap();
    let empty = MailboxName::parse("Empty", '/').unwrap();
    s.create_mailbox(&empty, MailboxGuid([0xef; 16]), 555)
        .unwrap();

    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: a\nMessage-ID: <a@x>\n\nFrom x Thu Nov 29 22:33:52 2001\n>From y\nbye\n"
            .to_vec(),
        b"Subject: b\r\n\r\ncrlf body\r\n".to_vec(),
        b"Subject: c\n\nno final newline".to_vec(),
        b"Subject: d\nStatus: RO\nX-UID: 999\n\nmetadata headers in the message\n".to_vec(),
    ];
    let mut a = rec(3, "1500000000.M1P1.host,S=8,W=9", b"");
    a.flags = Flags::SEEN.union(Flags::FLAGGED);
    a.keywords = vec!["$Label1".into(), "work".into()];
    let mut b = rec(10, "other-guid", b"");
    b.flags = Flags::ANSWERED.union(Flags::DRAFT).union(Flags::DELETED);
    b.in_new = true;
    b.internal_date = 1_400_000_000;
    let c = rec(11, "", b"");
    let mut d = rec(12, "g-d", b"");
    d.keywords = vec!["work".into()];
    save(
        &mut s,
        &inbox,
        &[
            (a, bodies[0].clone()),
            (b, bodies[1].clone()),
            (c, bodies[2].clone()),
            (d, bodies[3].clone()),
        ],
    );
    save(&mut s, &sub, &[(rec(1, "g1", b""), b"x\n".to_vec())]);
    let ours = s.snapshot(&inbox).unwrap();

    let out = dv.imap(&[
        "SELECT INBOX",
        "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE X-GUID)",
        "UID FETCH 3,10,11,12 (UID BODY.PEEK[])",
        "STATUS \"&AMQ-rger/sub\" (UIDVALIDITY UIDNEXT MESSAGES)",
        "STATUS Empty (UIDVALIDITY UIDNEXT MESSAGES)",
    ]);
    assert!(out.contains("[UIDVALIDITY 4242]"), "{out}");
    assert!(out.contains("[UIDNEXT 13]"), "{out}");
    let f = fetched(&out);
    let got: Vec<(u32, &str, &str)> = f
        .iter()
        .map(|x| (x.0, x.1.as_str(), x.2.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                3,
                "\\Flagged \\Seen $Label1 work",
                "14-Jul-2017 02:40:00 +0000"
            ),
            (
                10,
                "\\Answered \\Deleted \\Draft",
                "13-May-2014 16:53:20 +0000"
            ),
            (11, "", "14-Jul-2017 02:40:00 +0000"),
            (12, "work", "14-Jul-2017 02:40:00 +0000"),
        ],
        "{out}"
    );
    // Bodies and sizes as given (CRLF on the wire); metadata headers the
    // message itself carried are Dovecot's, so they are dropped.
    let want = [
        crlf(&bodies[0]),
        crlf(&bodies[1]),
        crlf(&bodies[2]),
        crlf(b"Subject: d\n\nmetadata headers in the message\n"),
    ];
    for ((uid, w), fx) in [3, 10, 11, 12].iter().zip(&want).zip(&f) {
        assert_eq!(
            String::from_utf8_lossy(&body_of(&out, *uid)),
            String::from_utf8_lossy(w),
            "UID {uid}"
        );
        assert_eq!(fx.3, w.len() as u64, "RFC822.SIZE of UID {uid}");
    }
    // Dovecot's GUID of a message saved without one is the one we report.
    let g = guids(&out);
    assert_eq!(
        g.iter().find(|x| x.0 == 11).unwrap().1,
        ours.messages[2].guid
    );
    let status = |name: &str| {
        out.lines()
            .find(|l| l.starts_with("* STATUS") && l.contains(name))
            .unwrap()
            .to_string()
    };
    let st = status("&AMQ-rger/sub");
    for want in ["UIDVALIDITY 777", "UIDNEXT 2", "MESSAGES 1"] {
        assert!(st.contains(want), "{st}");
    }
    let st = status("Empty");
    for want in ["UIDVALIDITY 555", "UIDNEXT 1", "MESSAGES 0"] {
        assert!(st.contains(want), "{st}");
    }

    // Dovecot has looked (and may have rewritten headers): we read back
    // the same UIDs, flags and GUIDs.
    let mut s = dv.store();
    let snap = s.snapshot(&inbox).unwrap();
    assert_eq!(snap.info.uidvalidity, 4242);
    assert_eq!(snap.info.guid, MailboxGuid([0xab; 16]));
    let view = |m: &MessageRecord| (m.uid, m.guid.clone(), m.flags, m.keywords.clone());
    assert_eq!(
        snap.messages.iter().map(view).collect::<Vec<_>>(),
        ours.messages.iter().map(view).collect::<Vec<_>>()
    );
    assert_eq!(snap.messages[0].guid, "1500000000.M1P1.host,S=8,W=9");
}

#[test]
fn we_read_what_dovecot_wrote() {
    let Some(dv) = dovecot() else { return };
    let out = dv.imap(&[
        "CREATE \"&AMQ-rger/sub\"",
        "SUBSCRIBE \"&AMQ-rger/sub\"",
        &*append(
            "INBOX (\\Seen $Junk foo) \"14-Jul-2017 02:40:00 +0000\"",
            "Message-ID: <1@x>\r\nSubject: 1\r\n\r\nhello",
        ),
        &*append(
            "INBOX (\\Draft)",
            "Subject: 2\r\n\r\nFrom x Thu Nov 29 22:33:52 2001\r\n",
        ),
        &*append("INBOX ()", "xyz"),
        &*append("\"&AMQ-rger/sub\" (\\Flagged)", "abc"),
        "STATUS INBOX (UIDVALIDITY)",
    ]);
    dv.imap(&["SELECT INBOX", "UID STORE 2 +FLAGS (bar \\Answered)"]);
    dv.imap(&["SELECT INBOX", "UID STORE 3 +FLAGS (\\Deleted)"]);
    dv.imap(&["SELECT INBOX", "UID EXPUNGE 3"]);
    let served = dv.imap(&[
        "SELECT INBOX",
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE X-GUID)",
        "UID FETCH 1:* (UID BODY.PEEK[])",
    ]);
    let uv: u32 = out
        .lines()
        .find(|l| l.starts_with("* STATUS INBOX"))
        .unwrap()
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let file_before = std::fs::read(&dv.inbox).unwrap();
    let mut s = dv.store();
    let infos = s.list_mailboxes().unwrap();
    assert_eq!(infos.len(), 2, "{infos:?}");
    // Reading a file Dovecot wrote changes nothing in it.
    assert_eq!(std::fs::read(&dv.inbox).unwrap(), file_before);
    assert_eq!(infos[0].uidvalidity, uv);
    assert_eq!(infos[0].uidnext, 4);
    assert_eq!(infos[0].messages, 2);
    assert_eq!(infos[1].name.to_string(), "Ärger/sub");
    let inbox = MailboxName::inbox();
    let snap = s.snapshot(&inbox).unwrap();
    let m = &snap.messages;
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!((m[0].uid, m[0].flags), (1, Flags::SEEN));
    assert_eq!(m[0].keywords, vec!["$Junk", "foo"]);
    assert_eq!(m[0].internal_date, 1_500_000_000);
    assert_eq!(
        (m[1].uid, m[1].flags),
        (2, Flags::DRAFT.union(Flags::ANSWERED))
    );
    assert_eq!(m[1].keywords, vec!["bar"]);
    let f = fetched(&served);
    let g = guids(&served);
    for (i, msg) in m.iter().enumerate() {
        let (mut r, len) = s.open_message(&inbox, msg.uid).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v.len() as u64, len);
        assert_eq!(
            String::from_utf8_lossy(&crlf(&v)),
            String::from_utf8_lossy(&body_of(&served, msg.uid)),
            "UID {}",
            msg.uid
        );
        assert_eq!(crlf(&v).len() as u64, f[i].3);
        assert_eq!(g[i], (msg.uid, msg.guid.clone()), "Dovecot's GUID");
    }
    assert_eq!(
        s.subscriptions().unwrap(),
        vec![MailboxName::parse("Ärger/sub", '/').unwrap()]
    );
    let sub = s.snapshot(&infos[1].name).unwrap();
    assert_eq!(sub.messages[0].flags, Flags::FLAGGED);
}

#[test]
fn dovecot_follows_our_changes_and_we_follow_its() {
    let Some(dv) = dovecot() else { return };
    dv.imap(&[
        &*append("INBOX ()", "Subject: 1\r\n\r\none"),
        &*append("INBOX ()", "Subject: 2\r\n\r\ntwo"),
        &*append("INBOX ()", "Subject: 3\r\n\r\nthree"),
        "SELECT INBOX",
        "UID STORE 2 +FLAGS (\\Deleted)",
        "EXPUNGE",
    ]);
    let mut s = dv.store();
    let inbox = MailboxName::inbox();
    let before = s.snapshot(&inbox).unwrap();
    assert_eq!(before.info.uidnext, 4);
    // A message back at UID 2 (below UIDNEXT), flags on 3, a new one at 9.
    let mut u = s.update(&inbox).unwrap();
    let mut r = rec(2, "restored", b"Subject: R\n\nTWO!\n");
    r.flags = Flags::FLAGGED;
    let mut h = u.save_begin(&r).unwrap();
    u.write_chunk(&mut h, b"Subject: R\n\nTWO!\n").unwrap();
    u.save_finish(h).unwrap();
    let r9 = rec(9, "nine", b"Subject: 9\n\n9\n");
    let mut h = u.save_begin(&r9).unwrap();
    u.write_chunk(&mut h, b"Subject: 9\n\n9\n").unwrap();
    u.save_finish(h).unwrap();
    u.set_flags(3, Flags::SEEN, &["kw".into()]).unwrap();
    u.commit().unwrap();
    let out = dv.imap(&[
        "SELECT INBOX",
        "UID FETCH 1:* (UID FLAGS)",
        "UID FETCH 2 BODY.PEEK[]",
    ]);
    assert!(
        out.contains(&format!("[UIDVALIDITY {}]", before.info.uidvalidity)),
        "{out}"
    );
    assert!(out.contains("[UIDNEXT 10]"), "{out}");
    let f = fetched(&out);
    let got: Vec<(u32, &str)> = f.iter().map(|x| (x.0, x.1.as_str())).collect();
    assert_eq!(
        got,
        vec![(1, ""), (2, "\\Flagged"), (3, "\\Seen kw"), (9, "")],
        "{out}"
    );
    assert!(out.contains("TWO!"), "{out}");

    // Dovecot changes things; we see them.
    dv.imap(&["SELECT INBOX", "UID STORE 1 +FLAGS (\\Seen later)"]);
    dv.imap(&[&*append("INBOX ()", "Subject: 10\r\n\r\nx")]);
    let snap = s.snapshot(&inbox).unwrap();
    let got: Vec<(u32, String, Vec<String>)> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.flags.to_letters(), m.keywords.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "S".into(), vec!["later".to_string()]),
            (2, "F".into(), vec![]),
            (3, "S".into(), vec!["kw".to_string()]),
            (9, "".into(), vec![]),
            (10, "".into(), vec![]),
        ]
    );
    assert_eq!(snap.messages[1].guid, "restored");
    assert_eq!(snap.messages[3].guid, "nine");

    // A forced header (backup): new UIDVALIDITY, lower UIDNEXT.
    let mut u = s.update(&inbox).unwrap();
    u.expunge(9).unwrap();
    u.expunge(10).unwrap();
    u.set_header(MailboxGuid([5; 16]), 99, 4);
    u.commit().unwrap();
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (UID FLAGS)"]);
    assert!(out.contains("[UIDVALIDITY 99]"), "{out}");
    assert!(out.contains("[UIDNEXT 4]"), "{out}");
    let uids: Vec<u32> = fetched(&out).iter().map(|x| x.0).collect();
    assert_eq!(uids, vec![1, 2, 3], "{out}");
    // Everything expunged: the numbers stay (in a pseudo message).
    let mut u = s.update(&inbox).unwrap();
    for uid in [1, 2, 3] {
        u.expunge(uid).unwrap();
    }
    u.commit().unwrap();
    let out = dv.imap(&["STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)"]);
    let st = out.lines().find(|l| l.starts_with("* STATUS")).unwrap();
    for want in ["UIDVALIDITY 99", "UIDNEXT 4", "MESSAGES 0"] {
        assert!(st.contains(want), "{st}");
    }
}

#[test]
fn dovecot_changes_flags_in_crlf_messages_we_wrote() {
    let Some(dv) = dovecot() else { return };
    let mut s = dv.store();
    let sent = MailboxName::parse("Sent", '/').unwrap();
    s.create_mailbox(&sent, MailboxGuid([1; 16]), 100).unwrap();
    let msgs: Vec<(MessageRecord, Vec<u8>)> = (1..=3)
        .map(|i| {
            let body = format!(
                "From: a@b\r\nSubject: {i}\r\nMessage-ID: <{i}@x>\r\n\r\nline one\r\nline two\r\n"
            )
            .into_bytes();
            let mut r = rec(i, &format!("g{i}"), &body);
            r.flags = Flags::SEEN;
            (r, body)
        })
        .collect();
    save(&mut s, &sent, &msgs);
    let before = std::fs::read(s.options().mbox_path(&sent).unwrap()).unwrap();
    dv.imap(&["SELECT Sent", "UID STORE 1 +FLAGS (\\Flagged urgent)"]);
    let after = std::fs::read(s.options().mbox_path(&sent).unwrap()).unwrap();
    assert!(
        !after.ends_with(b"\0"),
        "Dovecot left padding zeros:\n{}",
        String::from_utf8_lossy(&after)
    );
    let out = dv.imap(&[
        "SELECT Sent",
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE)",
        "UID FETCH 3 BODY.PEEK[]",
    ]);
    let f = fetched(&out);
    assert_eq!(f[0].1, "\\Flagged \\Seen urgent", "{out}");
    assert_eq!(body_of(&out, 3), msgs[2].1, "{out}");
    let mut s = dv.store();
    let snap = s.snapshot(&sent).unwrap();
    assert_eq!(
        snap.messages[0].flags,
        Flags::SEEN.union(Flags::FLAGGED),
        "{}",
        String::from_utf8_lossy(&after)
    );
    assert_eq!(snap.messages[0].keywords, vec!["urgent"]);
    assert_eq!(snap.messages[2].size, msgs[2].1.len() as u64);
    let _ = before;
}
