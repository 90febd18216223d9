//! The real Dovecot must serve what this store writes, and this store must
//! read what Dovecot writes. Runs /usr/lib/dovecot/imap preauthenticated on
//! stdin/stdout as `nobody`; skips (loudly) where that is impossible.

use super::*;
use crate::model::{Flags, MailboxGuid, MailboxName, MessageRecord};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::dovecot_imap_tests::fetched;

struct Dovecot {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    conf: PathBuf,
}

/// A Maildir and a config for the real Dovecot, or `None` (with a loud
/// message) when Dovecot is not installed or we cannot switch users.
fn dovecot(layout: &str) -> Option<Dovecot> {
    if !crate::dovecot_imap_tests::available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let root = base.join("Maildir");
    std::fs::create_dir_all(&root).unwrap();
    let location = format!(
        "maildir:{}{}",
        root.display(),
        layout.replace("{base}", &base.display().to_string())
    );
    let conf = crate::dovecot_imap_tests::write_conf(&base, &location);
    Some(Dovecot {
        _dir: dir,
        base,
        root,
        conf,
    })
}

impl Dovecot {
    fn store(&self, layout: Layout) -> MaildirStore {
        let mut o = MaildirOptions::new(&self.root);
        o.layout = layout;
        MaildirStore::open(o, true).unwrap()
    }

    /// Runs one IMAP session with these commands (tags are added) and
    /// returns the server's output.
    fn imap(&self, cmds: &[&str]) -> String {
        crate::dovecot_imap_tests::imap(&self.base, &self.conf, &[], cmds)
    }
}

fn rec(uid: u32, guid: &str, body: &[u8]) -> MessageRecord {
    MessageRecord {
        uid,
        guid: guid.into(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 1_500_000_000, // 2017-07-14 02:40:00 UTC
        size: body.len() as u64,
        pop3_uidl: None,
        pop3_order: None,
        in_new: false,
    }
}

fn save(s: &mut MaildirStore, name: &MailboxName, recs: &[(MessageRecord, &[u8])]) {
    let mut u = s.update(name).unwrap();
    for (r, body) in recs {
        let mut h = u.save_begin(r).unwrap();
        u.write_chunk(&mut h, body).unwrap();
        u.save_finish(h).unwrap();
    }
    u.commit().unwrap();
}

#[test]
fn dovecot_serves_what_we_wrote() {
    for (layout, suffix) in [(Layout::MaildirPlusPlus, ""), (Layout::Fs, ":LAYOUT=fs")] {
        let Some(dv) = dovecot(suffix) else { return };
        let mut s = dv.store(layout);
        let inbox = MailboxName::inbox();
        s.create_mailbox(&inbox, MailboxGuid([0xab; 16]), 4242)
            .unwrap();
        let sub = MailboxName::parse("Ärger/sub", '/').unwrap();
        s.create_mailbox(&sub, MailboxGuid([0xcd; 16]), 777)
            .unwrap();
        let mut a = rec(3, "1500000000.M1P1.host,S=8,W=9", b"Hi\nthere");
        a.flags = Flags::SEEN.union(Flags::FLAGGED);
        a.keywords = vec!["$Label1".into(), "work".into()];
        let mut b = rec(10, "other-guid", b"Sub: x\r\n\r\nbody\r\n");
        b.flags = Flags::ANSWERED;
        b.in_new = true;
        b.internal_date = 1_400_000_000;
        save(
            &mut s,
            &inbox,
            &[(a, b"Hi\nthere"), (b, b"Sub: x\r\n\r\nbody\r\n")],
        );
        save(&mut s, &sub, &[(rec(1, "g1", b"x\n"), b"x\n")]);

        let out = dv.imap(&[
            "SELECT INBOX",
            "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)",
            "UID FETCH 10 BODY.PEEK[]",
            "STATUS \"&AMQ-rger/sub\" (UIDVALIDITY UIDNEXT MESSAGES)",
        ]);
        assert!(out.contains("[UIDVALIDITY 4242]"), "{out}");
        assert!(out.contains("[UIDNEXT 11]"), "{out}");
        let f = fetched(&out);
        assert_eq!(f.len(), 2, "{out}");
        assert_eq!(f[0].0, 3);
        assert_eq!(f[0].1, "\\Flagged \\Seen $Label1 work");
        assert_eq!(f[0].2, "14-Jul-2017 02:40:00 +0000");
        assert_eq!(f[0].3, 9); // the CRLF size, from our W=
        assert_eq!(f[1].0, 10);
        assert!(f[1].1.contains("\\Answered"), "{out}");
        assert_eq!(f[1].3, 16);
        assert!(out.contains("Sub: x\r\n\r\nbody\r\n"), "{out}");
        let status = out.lines().find(|l| l.starts_with("* STATUS")).unwrap();
        for want in [
            "&AMQ-rger/sub",
            "UIDVALIDITY 777",
            "UIDNEXT 2",
            "MESSAGES 1",
        ] {
            assert!(status.contains(want), "{status}");
        }

        // Dovecot's view did not move our UIDs: we read back the same.
        let snap = s.snapshot(&inbox).unwrap();
        let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![3, 10]);
        assert_eq!(snap.messages[0].guid, "1500000000.M1P1.host,S=8,W=9");
        assert_eq!(snap.messages[1].guid, "other-guid");
        assert_eq!(snap.info.uidvalidity, 4242);
        assert_eq!(snap.info.guid, MailboxGuid([0xab; 16]));
    }
}

#[test]
fn we_read_what_dovecot_wrote() {
    let Some(dv) = dovecot("") else { return };
    let out = dv.imap(&[
        "CREATE \"&AMQ-rger/sub\"",
        "SUBSCRIBE \"&AMQ-rger/sub\"",
        "APPEND INBOX (\\Seen $Junk foo) \"14-Jul-2017 02:40:00 +0000\" {5}\r\nhello",
        "APPEND INBOX (\\Draft) {3}\r\nabc",
        "APPEND INBOX () {3}\r\nxyz",
        "STATUS \"&AMQ-rger/sub\" (UIDVALIDITY)",
        "SELECT INBOX",
    ]);
    // Dovecot runs pipelined commands concurrently; one at a time here.
    dv.imap(&["SELECT INBOX", "UID STORE 2 +FLAGS (bar)"]);
    dv.imap(&["SELECT INBOX", "UID STORE 3 +FLAGS (\\Deleted)"]);
    dv.imap(&["SELECT INBOX", "UID EXPUNGE 3"]);
    let uv_line = out
        .lines()
        .find(|l| l.starts_with("* OK [UIDVALIDITY"))
        .unwrap();
    let uv: u32 = uv_line.split([' ', ']']).nth(3).unwrap().parse().unwrap();
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let infos = s.list_mailboxes().unwrap();
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_eq!(infos[0].uidvalidity, uv);
    assert_eq!(infos[0].uidnext, 4);
    assert_eq!(infos[1].name.to_string(), "Ärger/sub");
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    let m = &snap.messages;
    assert_eq!(m.len(), 2, "{m:?}\n{out}");
    assert_eq!(m[0].uid, 1);
    assert_eq!(m[0].flags, Flags::SEEN);
    assert_eq!(m[0].keywords, vec!["$Junk", "foo"]);
    assert_eq!(m[0].internal_date, 1_500_000_000);
    assert_eq!(m[0].size, 5);
    assert_eq!((m[1].uid, m[1].flags), (2, Flags::DRAFT));
    assert_eq!(m[1].keywords, vec!["bar"]);
    assert_eq!(
        s.subscriptions().unwrap(),
        vec![MailboxName::parse("Ärger/sub", '/').unwrap()]
    );
}

#[test]
fn dovecot_follows_a_rewritten_uidlist() {
    let Some(dv) = dovecot("") else { return };
    // Dovecot indexes INBOX with UIDs 1..3, then expunges 2.
    dv.imap(&[
        "APPEND INBOX () {3}\r\none",
        "APPEND INBOX () {3}\r\ntwo",
        "APPEND INBOX () {5}\r\nthree",
        "SELECT INBOX",
        "UID FETCH 1:* (FLAGS)",
        "UID STORE 2 +FLAGS (\\Deleted)",
        "EXPUNGE",
    ]);
    assert!(dv.root.join("dovecot.index.log").exists());
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let before = s.snapshot(&inbox).unwrap();
    assert_eq!(before.info.uidnext, 4);
    // We put a message back at UID 2 (below UIDNEXT) and flag UID 3.
    let mut r = rec(2, "restored", b"TWO!");
    r.flags = Flags::FLAGGED;
    let mut u = s.update(&inbox).unwrap();
    let mut h = u.save_begin(&r).unwrap();
    u.write_chunk(&mut h, b"TWO!").unwrap();
    u.save_finish(h).unwrap();
    u.set_flags(3, Flags::SEEN, &["kw".into()]).unwrap();
    u.commit().unwrap();
    assert!(!dv.root.join("dovecot.index.log").exists());

    let out = dv.imap(&[
        "SELECT INBOX",
        "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)",
        "UID FETCH 2 BODY.PEEK[]",
    ]);
    assert!(
        out.contains(&format!("[UIDVALIDITY {}]", before.info.uidvalidity)),
        "{out}"
    );
    assert!(out.contains("[UIDNEXT 4]"), "{out}");
    let f = fetched(&out);
    let got: Vec<(u32, &str)> = f.iter().map(|x| (x.0, x.1.as_str())).collect();
    assert_eq!(
        got,
        vec![(1, ""), (2, "\\Flagged"), (3, "\\Seen kw")],
        "{out}"
    );
    assert!(out.contains("TWO!"), "{out}");

    // Then a forced header: new UIDVALIDITY and a lower UIDNEXT than
    // Dovecot has seen (backup making the destination equal the source).
    let mut u = s.update(&inbox).unwrap();
    u.expunge(3).unwrap();
    u.set_header(MailboxGuid([5; 16]), 99, 3);
    u.commit().unwrap();
    let out = dv.imap(&[
        "SELECT INBOX",
        "UID FETCH 1:* (UID FLAGS)",
        "STATUS INBOX (UIDNEXT UIDVALIDITY)",
    ]);
    assert!(out.contains("[UIDVALIDITY 99]"), "{out}");
    assert!(out.contains("[UIDNEXT 3]"), "{out}");
    let f = fetched(&out);
    assert_eq!(
        f.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1, 2],
        "{out}"
    );
}

#[test]
fn dovecot_index_follows_ordinary_changes() {
    let Some(dv) = dovecot("") else { return };
    // Dovecot indexes INBOX (and reads dovecot-keywords) ...
    dv.imap(&[
        "APPEND INBOX (old) {3}\r\none",
        "APPEND INBOX () {3}\r\ntwo",
        "APPEND INBOX () {5}\r\nthree",
        "SELECT INBOX",
        "UID FETCH 1:* (FLAGS)",
    ]);
    let index_before = std::fs::read(dv.root.join("dovecot.index.log")).unwrap();
    // ... then, within the same second, we change flags and keywords,
    // expunge one, and add one above UIDNEXT: Dovecot's index stays valid.
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let mut u = s.update(&inbox).unwrap();
    u.set_flags(1, Flags::SEEN, &["old".into(), "fresh".into()])
        .unwrap();
    u.expunge(2).unwrap();
    let mut r = rec(4, "four", b"FOUR");
    r.keywords = vec!["another".into()];
    let mut h = u.save_begin(&r).unwrap();
    u.write_chunk(&mut h, b"FOUR").unwrap();
    u.save_finish(h).unwrap();
    u.commit().unwrap();
    assert_eq!(
        std::fs::read(dv.root.join("dovecot.index.log")).unwrap(),
        index_before,
        "an ordinary commit must leave Dovecot's index alone"
    );
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (UID FLAGS)"]);
    assert!(out.contains("[UIDNEXT 5]"), "{out}");
    let f = fetched(&out);
    let got: Vec<(u32, &str)> = f.iter().map(|x| (x.0, x.1.as_str())).collect();
    assert_eq!(
        got,
        vec![(1, "\\Seen old fresh"), (3, ""), (4, "another")],
        "{out}"
    );
}

#[test]
fn dovecot_reads_records_we_appended_and_appends_after_them() {
    let Some(dv) = dovecot("") else { return };
    dv.imap(&[
        "APPEND INBOX () {3}\r\none",
        "APPEND INBOX () {3}\r\ntwo",
        "SELECT INBOX",
        "UID FETCH 1:* (FLAGS)",
    ]);
    let uidlist = dv.root.join("dovecot-uidlist");
    let before = std::fs::read(&uidlist).unwrap();
    // Only new messages: their records go after Dovecot's, the file is
    // not rewritten (same inode, same first lines).
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    save(
        &mut s,
        &inbox,
        &[
            (rec(3, "three", b"THREE"), b"THREE"),
            (rec(7, "seven", b"SEVEN"), b"SEVEN"),
        ],
    );
    let after = std::fs::read(&uidlist).unwrap();
    assert!(
        after.starts_with(&before),
        "{}",
        String::from_utf8_lossy(&after)
    );
    let tail = String::from_utf8_lossy(&after[before.len()..]).into_owned();
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (FLAGS)"]);
    assert!(out.contains("[UIDNEXT 8]"), "{out}");
    let uids: Vec<u32> = fetched(&out).iter().map(|x| x.0).collect();
    assert_eq!(uids, vec![1, 2, 3, 7], "{out}");
    let out = dv.imap(&["APPEND INBOX () {4}\r\nnext"]);
    assert!(out.contains(" 8] Append completed"), "{out}");
    // And we read what Dovecot appended after our records.
    let snap = dv.store(Layout::MaildirPlusPlus).snapshot(&inbox).unwrap();
    let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![1, 2, 3, 7, 8]);
    assert_eq!(snap.info.uidnext, 9);
}

#[test]
fn separate_control_and_index_dirs_with_fs_layout() {
    let Some(dv) = dovecot(":LAYOUT=fs:CONTROL={base}/control:INDEX={base}/index") else {
        return;
    };
    let out = dv.imap(&[
        "APPEND INBOX () {3}\r\nin1",
        "STATUS INBOX (UIDVALIDITY)",
        "CREATE a/b",
        "APPEND a/b () {3}\r\none",
        "APPEND a/b () {3}\r\ntwo",
        "SELECT a/b",
        "UID STORE 1 +FLAGS (\\Deleted)",
    ]);
    dv.imap(&["SELECT a/b", "EXPUNGE"]);
    let index_log = dv.base.join("index/a/b/dovecot.index.log");
    assert!(index_log.exists());
    assert!(dv.base.join("control/a/b/dovecot-uidlist").exists());
    let mut o = MaildirOptions::new(&dv.root);
    o.layout = Layout::Fs;
    o.control = Some(dv.base.join("control"));
    o.index = IndexDir::Path(dv.base.join("index"));
    let mut s = MaildirStore::open(o, false).unwrap();
    let name = MailboxName::parse("a/b", '/').unwrap();
    let names: Vec<String> = s
        .list_mailboxes()
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, vec!["INBOX", "a/b"]);
    // INBOX's uidlist is found where Dovecot keeps it (control/INBOX).
    let inbox = &s.list_mailboxes().unwrap()[0];
    assert_eq!(inbox.uidnext, 2);
    assert!(
        out.contains(&format!("UIDVALIDITY {}", inbox.uidvalidity)),
        "{out}"
    );
    assert!(dv.base.join("control/INBOX/dovecot-uidlist").exists());
    let mut u = s.update(&name).unwrap();
    let mut r = rec(1, "back", b"ONE");
    r.keywords = vec!["k".into()];
    let mut h = u.save_begin(&r).unwrap();
    u.write_chunk(&mut h, b"ONE").unwrap();
    u.save_finish(h).unwrap();
    u.commit().unwrap();
    assert!(!index_log.exists());
    assert!(dv.base.join("control/a/b/dovecot-keywords").exists());
    let out = dv.imap(&["SELECT a/b", "UID FETCH 1:* (UID FLAGS)"]);
    let f = fetched(&out);
    let got: Vec<(u32, &str)> = f.iter().map(|x| (x.0, x.1.as_str())).collect();
    assert_eq!(got, vec![(1, "k"), (2, "")], "{out}");
    assert!(out.contains("[UIDNEXT 3]"), "{out}");
}

/// The child half of `concurrent_with_dovecot`: run as `nobody` (so the
/// files it writes are Dovecot's too), saves messages the way the engine
/// does, retrying when the mailbox changed under it.
#[test]
#[ignore]
fn concurrent_child() {
    let Ok(root) = std::env::var("DSYNC_MAILDIR_CHILD_ROOT") else {
        return;
    };
    let mut s = MaildirStore::open(MaildirOptions::new(root), false).unwrap();
    let inbox = MailboxName::inbox();
    let mut retries = 0;
    for i in 0..20u32 {
        loop {
            let next = s.snapshot(&inbox).unwrap().info.uidnext;
            let body = format!("ours {i}\n");
            let r = rec(next, &format!("ours-{i}"), body.as_bytes());
            let mut u = s.update(&inbox).unwrap();
            let mut h = match u.save_begin(&r) {
                Ok(h) => h,
                Err(e) if e.downcast_ref::<ChangedMeanwhile>().is_some() => {
                    retries += 1;
                    continue;
                }
                Err(e) => panic!("{e:#}"),
            };
            u.write_chunk(&mut h, body.as_bytes()).unwrap();
            u.save_finish(h).unwrap();
            match u.commit() {
                Ok(()) => break,
                Err(e) if e.downcast_ref::<ChangedMeanwhile>().is_some() => retries += 1,
                Err(e) => panic!("{e:#}"),
            }
        }
    }
    eprintln!("child: {retries} retries");
}

/// Runs the ignored test `name` of this module in a child process as
/// `nobody` (so it works on the store at the same time as Dovecot does),
/// telling it the store's root through env `key`.
fn spawn_child_test(name: &str, key: &str, root: &std::path::Path) -> std::process::Child {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("maildir::dovecot_tests::{name}"),
            "--ignored",
            "--nocapture",
        ])
        .env(key, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_with_dovecot() {
    let Some(dv) = dovecot("") else { return };
    dv.imap(&["SELECT INBOX"]);
    let child = spawn_child_test("concurrent_child", "DSYNC_MAILDIR_CHILD_ROOT", &dv.root);
    // Dovecot appends at the same time.
    let mut cmds = Vec::new();
    for i in 0..20 {
        cmds.push(format!(
            "APPEND INBOX () {{{}}}\r\ntheirs {i}\n",
            9 + i.to_string().len()
        ));
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    dv.imap(&cmds);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child did not run:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!(
        "{}",
        err.lines().find(|l| l.contains("retries")).unwrap_or("")
    );

    // Everything is there once, and Dovecot and we agree on every UID.
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (UID BODY.PEEK[])"]);
    let mut ours: Vec<(u32, String)> = Vec::new();
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    for m in &snap.messages {
        let (mut f, _) = s.open_message(&MailboxName::inbox(), m.uid).unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut f, &mut body).unwrap();
        ours.push((m.uid, body));
    }
    assert_eq!(ours.len(), 40, "{ours:?}");
    let mut bodies: Vec<&str> = ours.iter().map(|(_, b)| b.as_str()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 40);
    let dovecot_uids: Vec<u32> = out
        .lines()
        .filter(|l| l.contains(" FETCH (UID "))
        .map(|l| {
            l.split("UID ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let our_uids: Vec<u32> = ours.iter().map(|(u, _)| *u).collect();
    assert_eq!(dovecot_uids, our_uids);
    for (uid, body) in &ours {
        let marker = format!(
            "* {} FETCH (UID {uid} BODY[] {{",
            our_uids.iter().position(|u| u == uid).unwrap() + 1
        );
        let at = out
            .find(&marker)
            .unwrap_or_else(|| panic!("{marker} not in\n{out}"));
        // Dovecot serves LF as CRLF.
        let served = body.replace('\n', "\r\n");
        assert!(
            out[at..].starts_with(&format!("{marker}{}}}\r\n{served})", served.len())),
            "{}",
            &out[at..at + 40]
        );
    }
}

/// Child half of `concurrent_flag_changes`: flags every message, many times.
#[test]
#[ignore]
fn concurrent_flag_child() {
    let Ok(root) = std::env::var("DSYNC_MAILDIR_FLAG_ROOT") else {
        return;
    };
    let mut s = MaildirStore::open(MaildirOptions::new(root), false).unwrap();
    let inbox = MailboxName::inbox();
    for round in 0..40 {
        let mut u = s.update(&inbox).unwrap();
        for uid in 1..=30 {
            let kw = vec![format!("round{}", round % 3)];
            u.set_flags(uid, Flags::SEEN, &kw).unwrap();
        }
        u.commit().unwrap();
    }
}

#[test]
fn concurrent_flag_changes() {
    let Some(dv) = dovecot("") else { return };
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let inbox = MailboxName::inbox();
    let recs: Vec<(MessageRecord, Vec<u8>)> = (1..=30)
        .map(|i| {
            let body = format!("m{i}\n").into_bytes();
            (rec(i, &format!("msg-{i}"), &body), body)
        })
        .collect();
    let refs: Vec<(MessageRecord, &[u8])> = recs
        .iter()
        .map(|(r, b)| (r.clone(), b.as_slice()))
        .collect();
    save(&mut s, &inbox, &refs);
    dv.imap(&["SELECT INBOX"]);
    let child = spawn_child_test("concurrent_flag_child", "DSYNC_MAILDIR_FLAG_ROOT", &dv.root);
    let mut cmds = vec!["SELECT INBOX"];
    for _ in 0..40 {
        cmds.push("STORE 1:* +FLAGS (\\Flagged)");
        cmds.push("STORE 1:* -FLAGS (\\Flagged)");
    }
    dv.imap(&cmds);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever the flags ended as, no message was lost, doubled or
    // renumbered, and Dovecot agrees.
    let snap = s.snapshot(&inbox).unwrap();
    let got: Vec<(u32, &str)> = snap
        .messages
        .iter()
        .map(|m| (m.uid, m.guid.as_str()))
        .collect();
    let want: Vec<(u32, String)> = (1..=30).map(|i| (i, format!("msg-{i}"))).collect();
    let want: Vec<(u32, &str)> = want.iter().map(|(u, g)| (*u, g.as_str())).collect();
    assert_eq!(got, want);
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (UID FLAGS)"]);
    let f = fetched(&out);
    assert_eq!(
        f.iter().map(|x| x.0).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<u32>>()
    );
    assert!(out.contains("[UIDNEXT 31]"), "{out}");
}

#[test]
fn dovecot_lists_our_tree_changes() {
    let Some(dv) = dovecot("") else { return };
    // Dovecot builds its mailbox list index and STATUS cache first.
    dv.imap(&[
        "CREATE Old",
        "CREATE Old/Child",
        "CREATE Gone",
        "APPEND Old () {3}\r\none",
        "LIST \"\" *",
        "STATUS Old (MESSAGES UIDNEXT UIDVALIDITY)",
        "STATUS Gone (MESSAGES UIDNEXT UIDVALIDITY)",
    ]);
    let mut s = dv.store(Layout::MaildirPlusPlus);
    let n = |x: &str| MailboxName::parse(x, '/').unwrap();
    s.rename_mailbox(&n("Old"), &n("New")).unwrap();
    s.delete_mailbox(&n("Gone")).unwrap();
    s.create_mailbox(&n("Fresh"), MailboxGuid([3; 16]), 31337)
        .unwrap();
    save(&mut s, &n("New"), &[(rec(5, "two", b"2\n"), b"2\n")]);
    let out = dv.imap(&[
        "LIST \"\" *",
        "STATUS New (MESSAGES UIDNEXT)",
        "STATUS Fresh (MESSAGES UIDNEXT UIDVALIDITY)",
    ]);
    let mut listed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("* LIST"))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["Fresh", "INBOX", "New", "New/Child"], "{out}");
    let status = |mbox: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("* STATUS {mbox} ")))
            .unwrap_or_else(|| panic!("no STATUS {mbox} in\n{out}"))
            .to_string()
    };
    assert!(status("New").contains("MESSAGES 2"), "{out}");
    assert!(status("New").contains("UIDNEXT 6"), "{out}");
    assert!(status("Fresh").contains("UIDVALIDITY 31337"), "{out}");
    assert!(status("Fresh").contains("MESSAGES 0"), "{out}");
}

#[test]
fn separate_inbox_dir() {
    let Some(dv) = dovecot(":INBOX={base}/inbox") else {
        return;
    };
    let out = dv.imap(&[
        "APPEND INBOX (\\Seen) {3}\r\nin1",
        "CREATE Sub",
        "APPEND Sub () {3}\r\ns11",
        "STATUS INBOX (UIDVALIDITY UIDNEXT)",
    ]);
    let mut o = MaildirOptions::new(&dv.root);
    o.inbox = Some(dv.base.join("inbox"));
    let mut s = MaildirStore::open(o, false).unwrap();
    let infos = s.list_mailboxes().unwrap();
    let names: Vec<String> = infos.iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, vec!["INBOX", "Sub"]);
    assert!(
        out.contains(&format!("UIDVALIDITY {}", infos[0].uidvalidity)),
        "{out}"
    );
    assert_eq!(infos[0].uidnext, 2);
    assert!(dv.base.join("inbox/dovecot-uidlist").exists());
    let snap = s.snapshot(&MailboxName::inbox()).unwrap();
    assert_eq!(snap.messages.len(), 1);
    assert_eq!(snap.messages[0].flags, Flags::SEEN);
    save(&mut s, &MailboxName::inbox(), &[(rec(7, "x", b"x"), b"x")]);
    let out = dv.imap(&["SELECT INBOX", "UID FETCH 1:* (UID)"]);
    assert!(out.contains("[UIDNEXT 8]"), "{out}");
    assert!(out.contains("FETCH (UID 7)"), "{out}");
}

#[test]
fn dovecot_serves_a_relabeled_message_under_its_new_uid() {
    for (layout, suffix) in [(Layout::MaildirPlusPlus, ""), (Layout::Fs, ":LAYOUT=fs")] {
        let Some(dv) = dovecot(suffix) else { return };
        // Dovecot indexes INBOX with UIDs 1..3 and caches their flags.
        dv.imap(&[
            "APPEND INBOX (\\Seen) {3}\r\none",
            "APPEND INBOX (\\Seen old) {6}\r\ntwo\r\n!",
            "APPEND INBOX () {5}\r\nthree",
            "SELECT INBOX",
            "UID FETCH 1:* (FLAGS BODY.PEEK[])",
        ]);
        let mut s = dv.store(layout);
        let inbox = MailboxName::inbox();
        let before = s.snapshot(&inbox).unwrap();
        assert_eq!(before.info.uidnext, 4);
        let path = s.message_path(&inbox, 2).unwrap();
        let mut u = s.update(&inbox).unwrap();
        u.relabel(2, 10).unwrap();
        u.set_flags(10, Flags::FLAGGED, &["new".into()]).unwrap();
        u.commit().unwrap();
        assert_eq!(s.message_path(&inbox, 10).unwrap().parent(), path.parent());

        let out = dv.imap(&[
            "SELECT INBOX",
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE)",
            "UID FETCH 10 BODY.PEEK[]",
            "UID FETCH 2 BODY.PEEK[]",
        ]);
        assert!(
            out.contains(&format!("[UIDVALIDITY {}]", before.info.uidvalidity)),
            "{out}"
        );
        assert!(out.contains("[UIDNEXT 11]"), "{out}");
        let f = fetched(&out);
        let got: Vec<(u32, &str, u64)> = f.iter().map(|x| (x.0, x.1.as_str(), x.3)).collect();
        assert_eq!(
            got,
            vec![(1, "\\Seen", 3), (3, "", 5), (10, "\\Flagged new", 6)],
            "{out}"
        );
        assert!(out.contains("BODY[] {6}\r\ntwo\r\n!"), "{out}");
        // Dovecot kept its index (nothing went below UIDNEXT), and the next
        // message it takes in gets UID 11.
        assert!(dv.root.join("dovecot.index.log").exists());
        let out = dv.imap(&[
            "APPEND INBOX () {4}\r\nfour",
            "STATUS INBOX (UIDNEXT MESSAGES)",
        ]);
        assert!(out.contains("[APPENDUID "), "{out}");
        assert!(out.contains(" 11]"), "{out}");
        assert!(out.contains("(MESSAGES 4 UIDNEXT 12)"), "{out}");
        let uids: Vec<u32> = s
            .snapshot(&inbox)
            .unwrap()
            .messages
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(uids, vec![1, 3, 10, 11]);

        // A renumbering under a new UIDVALIDITY: 1 and 10 swap places.
        let mut u = s.update(&inbox).unwrap();
        u.set_header(before.info.guid, 4242, 12);
        u.relabel(10, 1).unwrap();
        u.relabel(1, 10).unwrap();
        u.commit().unwrap();
        let out = dv.imap(&[
            "SELECT INBOX",
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE)",
            "UID FETCH 1 BODY.PEEK[]",
        ]);
        assert!(out.contains("[UIDVALIDITY 4242]"), "{out}");
        assert!(out.contains("[UIDNEXT 12]"), "{out}");
        let f = fetched(&out);
        let got: Vec<(u32, &str, u64)> = f.iter().map(|x| (x.0, x.1.as_str(), x.3)).collect();
        assert_eq!(
            got,
            vec![
                (1, "\\Flagged new", 6),
                (3, "", 5),
                (10, "\\Seen", 3),
                (11, "\\Recent", 4)
            ],
            "{out}"
        );
        assert!(out.contains("BODY[] {6}\r\ntwo\r\n!"), "{out}");
    }
}

#[test]
fn dovecot_never_sees_the_sync_state_as_a_mailbox() {
    for (layout, suffix, control) in [
        (Layout::MaildirPlusPlus, "", false),
        (Layout::Fs, ":LAYOUT=fs", false),
        (Layout::MaildirPlusPlus, ":CONTROL={base}/ctl", true),
        (Layout::Fs, ":LAYOUT=fs:CONTROL={base}/ctl", true),
    ] {
        let Some(dv) = dovecot(suffix) else { return };
        let mut o = MaildirOptions::new(&dv.root);
        o.layout = layout;
        if control {
            o.control = Some(dv.base.join("ctl"));
        }
        let mut s = MaildirStore::open(o, true).unwrap();
        s.create_mailbox(
            &MailboxName::parse("a", '/').unwrap(),
            MailboxGuid([4; 16]),
            9,
        )
        .unwrap();
        let me = s.store_id().unwrap();
        let peer = crate::state::store_id(&dv.base).unwrap();
        let mut st = crate::state::SyncState::new("run1".into());
        st.insert(
            MailboxName::parse("a", '/').unwrap(),
            crate::brain::merge::BaseMailbox {
                guid: MailboxGuid([4; 16]),
                uidvalidity: 9,
                uidnext: 1,
                messages: vec![],
            },
        );
        s.save_state(&peer, &st).unwrap();
        assert_eq!(s.load_state(&peer).unwrap(), Some(st));
        assert_eq!(s.store_id().unwrap(), me);
        let ctl_root = if control {
            dv.base.join("ctl")
        } else {
            dv.root.clone()
        };
        assert!(ctl_root.join(format!("dsync-state.{peer}")).is_file());
        assert!(dv.root.join("dsync-store-id").is_file());

        let out = dv.imap(&["LIST \"\" \"*\""]);
        let listed: Vec<&str> = out.lines().filter(|l| l.starts_with("* LIST")).collect();
        assert_eq!(listed.len(), 2, "{suffix}: {out}");
        assert!(listed.iter().any(|l| l.ends_with(" INBOX")), "{out}");
        assert!(listed.iter().any(|l| l.ends_with(" a")), "{out}");
        let names: Vec<String> = s
            .list_mailboxes()
            .unwrap()
            .iter()
            .map(|i| i.name.to_string())
            .collect();
        assert_eq!(names, vec!["INBOX", "a"], "{suffix}");
    }
}
