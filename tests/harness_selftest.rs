//! The harness must be able to fail: equal trees compare equal, and every
//! kind of difference a sync could get wrong is reported, readably.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::tree::*;
use common::{mutf7, snapshot::try_snapshot};
use std::fs;
use std::path::Path;
use std::process::Command;

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a failed");
}

/// An indexed Maildir and a `cp -a` copy of it.
fn indexed_pair(t: &Path) -> (Maildir, Maildir) {
    let a = typical_maildir(&t.join("a"), 7, 15);
    index_with_dovecot(&a.location());
    cp_a(&a.root, &t.join("b"));
    (a, Maildir::at(t.join("b")))
}

fn expect_diff(a: &MailSnapshot, b: &MailSnapshot, needles: &[&str]) {
    let d = diff(a, b);
    assert!(
        !d.is_empty(),
        "no difference reported between\n{a:?}\nand\n{b:?}"
    );
    for n in needles {
        assert!(
            d.iter().any(|l| l.contains(n)),
            "no difference mentions {n:?}: {d:#?}"
        );
    }
    // assert_same must panic with a short message naming the difference.
    let r = std::panic::catch_unwind(|| assert_same(a, b));
    let msg = r.expect_err("assert_same accepted differing snapshots");
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(
        msg.lines().count() < 40,
        "assert_same message too long:\n{msg}"
    );
    assert!(msg.contains(needles[0]), "{msg}");
}

#[test]
fn cp_a_copy_snapshots_equal() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    let sa = snapshot(&a.location());
    let sb = snapshot(&b.location());
    assert_same(&sa, &sb);
    assert_eq!(sa.message_count(), 15 + 3 + 1 + 4);
    assert!(sa.mailbox("Archive").attributes.contains("\\Noselect"));
    assert!(sa.mailbox("Drafts").messages.is_empty());
    assert!(sa.subscriptions.contains("Entwürfe"));
}

#[test]
fn changed_flag_is_reported() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    let f = b
        .inbox()
        .files()
        .into_iter()
        .find(|p| p.to_str().unwrap().ends_with(":2,S"))
        .unwrap();
    fs::rename(&f, format!("{}F", f.display()).replace(":2,SF", ":2,FS")).unwrap();
    expect_diff(
        &snapshot(&a.location()),
        &snapshot(&b.location()),
        &["flags (\\Seen) vs (\\Flagged \\Seen)"],
    );
}

#[test]
fn changed_keyword_is_reported() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    let f = b
        .inbox()
        .files()
        .into_iter()
        .find(|p| p.to_str().unwrap().ends_with(":2,FSa"))
        .unwrap();
    fs::rename(&f, f.to_str().unwrap().trim_end_matches('a')).unwrap();
    expect_diff(
        &snapshot(&a.location()),
        &snapshot(&b.location()),
        &["keywords ($Label1) vs ()"],
    );
}

#[test]
fn changed_byte_is_reported() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    let f = &b.folder("Sent").files()[1];
    let mut bytes = fs::read(f).unwrap();
    let mtime = fs::metadata(f).unwrap().modified().unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    fs::write(f, bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    expect_diff(
        &snapshot(&a.location()),
        &snapshot(&b.location()),
        &["mailbox \"Sent\" uid 2: content differs"],
    );
}

#[test]
fn changed_mtime_is_reported() {
    require_dovecot!();
    let t = tempdir();
    let a = typical_maildir(&t.path().join("a"), 7, 15);
    // Copy before Dovecot has cached the dates, as a sync would write it.
    cp_a(&a.root, &t.path().join("b"));
    let b = Maildir::at(t.path().join("b"));
    let f = &b.folder("Entwürfe").files()[0];
    set_mtime(f, 1_620_000_000 + 3600);
    // Both have no dovecot-uidlist yet: pin equal UIDVALIDITYs by indexing
    // a first, copying its uidlists over.
    let sa = snapshot(&a.location());
    for dir in ["", ".Entw&APw-rfe", ".Sent", ".Drafts", ".Archive.2024"] {
        fs::copy(
            a.root.join(dir).join("dovecot-uidlist"),
            b.root.join(dir).join("dovecot-uidlist"),
        )
        .unwrap();
    }
    fs::copy(
        a.root.join("dovecot-uidvalidity"),
        b.root.join("dovecot-uidvalidity"),
    )
    .unwrap();
    let sb = snapshot(&b.location());
    expect_diff(
        &sa,
        &sb,
        &["mailbox \"Entwürfe\" uid 1: INTERNALDATE \"03-May-2021 00:00:00 +0000\" vs \"03-May-2021 01:00:00 +0000\""],
    );
    assert_eq!(diff(&sa, &sb).len(), 1, "{:#?}", diff(&sa, &sb));
}

#[test]
fn missing_subscription_is_reported() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    b.subscribe(&["INBOX", "Sent", "Drafts", "Archive/2024"]);
    expect_diff(
        &snapshot(&a.location()),
        &snapshot(&b.location()),
        &["subscription \"Entwürfe\": only in left"],
    );
}

#[test]
fn missing_message_extra_folder_and_uidvalidity_are_reported() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = indexed_pair(t.path());
    fs::remove_file(&b.folder("Archive/2024").files()[2]).unwrap();
    b.folder("Extra");
    let ul = b.root.join(".Sent/dovecot-uidlist");
    let text = fs::read_to_string(&ul).unwrap();
    let (v, _) = parse_uidlist(&text);
    fs::write(&ul, text.replacen(&format!("V{}", v.unwrap()), "V12345", 1)).unwrap();
    // Dovecot warns about the changed UIDVALIDITY; that is the point here.
    let (sb, log) = try_snapshot(&b.location()).unwrap();
    assert!(log.contains("UIDVALIDITY changed"), "{log}");
    expect_diff(
        &snapshot(&a.location()),
        &sb,
        &[
            "mailbox \"Archive/2024\" uid 3: only in left",
            "mailbox \"Extra\": only in right",
            "mailbox \"Sent\": UIDVALIDITY",
        ],
    );
}

#[test]
fn broken_size_in_file_name_makes_the_snapshot_fail() {
    require_dovecot!();
    let t = tempdir();
    let md = Maildir::create(t.path().join("m"));
    let mut m = Msg::new(b"Subject: x\r\n\r\nbody\r\n".to_vec())
        .sizes(Sizes::None)
        .base("1.M1P1.h,S=3,W=3");
    m.flags = "S".into();
    md.inbox().put(&m);
    let err = match try_snapshot(&md.location()) {
        Err(e) => format!("{e:#}"),
        Ok((s, log)) => {
            assert!(
                !log_problems(&log).is_empty(),
                "Dovecot served a wrong S= silently: {s:?}"
            );
            return;
        }
    };
    assert!(err.contains("size"), "{err}");
}

#[test]
fn session_changes_go_through_dovecot() {
    require_dovecot!();
    let t = tempdir();
    let md = Maildir::create(t.path().join("m"));
    let mut s = imap_session(&md.location());
    s.create("Entwürfe/Alt").unwrap();
    s.subscribe("Entwürfe/Alt").unwrap();
    let body = b"From: a@b\r\nSubject: appended\r\n\r\nbinary \x00\xff ok\r\n";
    let uid = s
        .append(
            "Entwürfe/Alt",
            &["\\Seen", "$Important"],
            Some("01-Jan-2020 10:00:00 +0000"),
            body,
        )
        .unwrap();
    assert_eq!(uid, 1);
    s.append("INBOX", &[], None, b"Subject: two\r\n\r\nx\r\n")
        .unwrap();
    s.select("INBOX").unwrap();
    s.store("1", "+FLAGS", &["\\Flagged"]).unwrap();
    assert!(s.cmd("SELECT \"No such\"").is_err());
    s.logout().unwrap();
    assert!(md.dir_of("Entwürfe/Alt").join("cur").is_dir());
    assert!(t.path().join("m/.Entw&APw-rfe.Alt").is_dir());

    let snap = snapshot(&md.location());
    let alt = snap.mailbox("Entwürfe/Alt");
    let m = &alt.messages[&1];
    assert_eq!(m.internaldate, "01-Jan-2020 10:00:00 +0000");
    assert!(m.keywords.contains("$Important"));
    assert_eq!(m.size, body.len() as u64);
    assert_eq!(m.subject, "appended");
    assert!(snap.mailbox("INBOX").messages[&1]
        .flags
        .contains("\\Flagged"));
    assert!(snap.subscriptions.contains("Entwürfe/Alt"));
    // The tree went back to root after the session.
    use std::os::unix::fs::MetadataExt;
    if unsafe { libc::geteuid() } == 0 {
        for (p, _) in listing(&md.root) {
            let meta = fs::symlink_metadata(md.root.join(&p)).unwrap();
            assert_eq!(meta.uid(), 0, "{p} still owned by uid {}", meta.uid());
        }
    }
}

#[test]
fn megabyte_literal_round_trips() {
    require_dovecot!();
    let t = tempdir();
    let md = Maildir::create(t.path().join("m"));
    let big = Gen::new(3).message(3_000_000, Eol::Crlf);
    md.inbox().put(&Msg::new(big.clone()).flags("S"));
    let s = snapshot(&md.location());
    let m = &s.mailbox("INBOX").messages[&1];
    assert_eq!(m.size, big.len() as u64);
    use sha2::Digest;
    assert_eq!(m.sha256, common::snapshot::hex(&sha2::Sha256::digest(&big)));
}

#[test]
fn tree_listing_sees_inode_mtime_and_content_changes() {
    let t = tempdir();
    let md = typical_maildir(&t.path().join("m"), 2, 5);
    let before = listing(&md.root);
    assert!(changes(&before, &listing(&md.root)).is_empty());
    let files = md.inbox().files();
    // Re-created with the same bytes and name: another inode.
    let bytes = fs::read(&files[0]).unwrap();
    fs::remove_file(&files[0]).unwrap();
    fs::write(&files[0], bytes).unwrap();
    set_mtime(&files[1], 5);
    fs::remove_file(&files[2]).unwrap();
    fs::write(md.root.join("new/stray"), b"x").unwrap();
    let c: Vec<String> = changes(&before, &listing(&md.root))
        .iter()
        .map(|c| c.to_string())
        .collect();
    let joined = c.join("\n");
    assert!(joined.contains("re-created"), "{joined}");
    assert!(joined.contains("mtime"), "{joined}");
    assert!(joined.contains("removed"), "{joined}");
    assert!(joined.contains("new/stray: added"), "{joined}");
}

#[test]
fn source_guard_allows_only_uid_bookkeeping() {
    let t = tempdir();
    let md = typical_maildir(&t.path().join("m"), 2, 5);
    fs::write(md.root.join("dovecot-uidlist"), "3 V5 N2 G00\n1 :a\n").unwrap();
    let g = tree::SourceGuard::new(&md.root);
    fs::write(md.root.join("dovecot-uidlist"), "3 V5 N3 G00\n1 :a\n2 :b\n").unwrap();
    fs::write(md.root.join(".Sent/dovecot-uidlist"), "3 V9 N1\n").unwrap();
    fs::write(md.root.join("dovecot-uidvalidity"), "6b0b1d31").unwrap();
    fs::write(md.root.join("dovecot-uidvalidity.6b0b1d31"), "").unwrap();
    g.assert_untouched();
    fs::write(md.root.join("dovecot.index.log"), "x").unwrap();
    assert!(
        std::panic::catch_unwind(|| g.assert_untouched()).is_err(),
        "a Dovecot index file in the source went unnoticed"
    );
    fs::remove_file(md.root.join("dovecot.index.log")).unwrap();
    fs::write(md.root.join("dovecot-uidlist"), "3 V5 N3 G00\n2 :b\n").unwrap();
    let r = std::panic::catch_unwind(|| g.assert_untouched());
    assert!(r.is_err(), "a lost UID went unnoticed");
    fs::write(md.root.join("dovecot-uidlist"), "3 V5 N3 G00\n1 :a\n").unwrap();
    set_mtime(&md.inbox().files()[0], 77);
    assert!(
        std::panic::catch_unwind(|| g.assert_untouched()).is_err(),
        "an mtime change went unnoticed"
    );
}

use common::tree;

#[test]
fn mutf7_round_trips() {
    for (utf8, wire) in [
        ("Entwürfe", "Entw&APw-rfe"),
        ("A & B", "A &- B"),
        ("日本語", "&ZeVnLIqe-"),
        ("INBOX", "INBOX"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
    ] {
        assert_eq!(mutf7::encode(utf8), wire, "encode {utf8}");
        assert_eq!(mutf7::decode(wire).as_deref(), Some(utf8), "decode {wire}");
    }
    assert_eq!(mutf7::decode("&Jjo!"), None);
    assert_eq!(folder_dir_name("Archive/2024"), ".Archive.2024");
    assert_eq!(folder_dir_name("INBOX"), "");
}

#[test]
fn imap_values_parse_literals_and_brackets() {
    let r = b"12 FETCH (UID 7 FLAGS (\\Seen $X) INTERNALDATE \"01-Jan-2020 10:00:00 +0000\" BODY[] {5}\r\na)\"\r\n NIL)\r\n";
    let v = parse_values(r).unwrap();
    assert_eq!(v[0], Value::Atom("12".into()));
    let items = v[2].as_list().unwrap();
    assert_eq!(items[1].as_u64(), Some(7));
    assert_eq!(items[3].as_list().unwrap()[1], Value::Atom("$X".into()));
    assert_eq!(items[5].as_str().unwrap(), "01-Jan-2020 10:00:00 +0000");
    assert_eq!(items[6], Value::Atom("BODY[]".into()));
    assert_eq!(items[7], Value::Str(b"a)\"\r\n".to_vec()));
    assert_eq!(items[8], Value::Nil);
    let v = parse_values(b"BODY[HEADER.FIELDS (A B)] \"q\\\"x\"").unwrap();
    assert_eq!(v[0], Value::Atom("BODY[HEADER.FIELDS (A B)]".into()));
    assert_eq!(v[1], Value::Str(b"q\"x".to_vec()));
    assert!(parse_values(b"(unclosed").is_err());
    assert!(parse_values(b"{10}\r\nshort").is_err());
}

#[test]
fn generator_is_deterministic_and_sized() {
    let a = Gen::new(42).message(50_000, Eol::Lf);
    let b = Gen::new(42).message(50_000, Eol::Lf);
    assert_eq!(a, b);
    assert!(!a.windows(2).any(|w| w == b"\r\n"));
    let mut g = Gen::new(1);
    for size in [200, 1000, 10_000, 100_000, 2_000_000] {
        let m = g.message(size, Eol::Crlf);
        assert!(
            m.len() >= size * 95 / 100 && m.len() < size + size / 5 + 1000,
            "{size} -> {}",
            m.len()
        );
        assert!(
            !m.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF in CRLF message"
        );
    }
    assert_eq!(crlf_size(b"a\nb\r\nc\n"), 9);
    assert_eq!(rfc2822(0), "Thu, 1 Jan 1970 00:00:00 +0000");
    assert_eq!(rfc2822(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
    assert_eq!(
        parse_uidlist("3 V1 N5 G00\n1 :x\n4 W10 S9 :y:2,S\n")
            .1
            .get(&4)
            .map(String::as_str),
        Some("y:2,S")
    );
}

#[test]
fn mbox_location_snapshots() {
    require_dovecot!();
    let t = tempdir();
    let root = t.path().join("mail");
    let inbox = t.path().join("mail/inbox");
    write_mbox(
        &inbox,
        &[
            (
                1_600_000_000,
                b"Subject: one\n\nbody\nFrom the start\n".to_vec(),
            ),
            (1_600_000_100, b"Subject: two\n\nsecond\n".to_vec()),
        ],
    );
    write_mbox(
        &root.join("Archive"),
        &[(1_500_000_000, b"Subject: old\n\nold\n".to_vec())],
    );
    let loc = format!("mbox:{}:INBOX={}", root.display(), inbox.display());
    let s = snapshot(&loc);
    let msgs = &s.mailbox("INBOX").messages;
    assert_eq!(msgs.len(), 2, "{s:?}");
    assert_eq!(msgs[&1].subject, "one");
    assert_eq!(msgs[&1].internaldate, "13-Sep-2020 12:26:40 +0000");
    assert_eq!(s.mailbox("Archive").messages[&1].subject, "old");
    assert_eq!(
        s.mailbox("Archive").messages[&1].internaldate,
        "14-Jul-2017 02:40:00 +0000"
    );
}

#[test]
fn pop3_uidls_are_snapshotted_when_pop3_is_installed() {
    require_dovecot!();
    let t = tempdir();
    let md = Maildir::create(t.path().join("m"));
    for b in ["1.M1P1.h", "2.M1P1.h"] {
        md.inbox().put(
            &Msg::new(format!("Subject: {b}\r\n\r\nx\r\n"))
                .base(b)
                .sizes(Sizes::None)
                .flags("S"),
        );
    }
    fs::write(
        md.root.join("dovecot-uidlist"),
        "3 V1234 N3 G0123456789abcdef0123456789abcdef\n1 Pold-uidl-one :1.M1P1.h\n2 :2.M1P1.h\n",
    )
    .unwrap();
    let s = snapshot(&md.location());
    let Some(u) = &s.pop3_uidls else {
        eprintln!("NOTE: dovecot-pop3d not installed; POP3 UIDLs are not compared");
        return;
    };
    assert_eq!(
        u,
        &vec![
            (1, "old-uidl-one".to_string()),
            (2, "00000002000004d2".to_string())
        ]
    );
    fs::write(
        md.root.join("dovecot-uidlist"),
        "3 V1234 N3 G0123456789abcdef0123456789abcdef\n1 Pchanged :1.M1P1.h\n2 :2.M1P1.h\n",
    )
    .unwrap();
    // Dovecot caches the UIDL in its index; a fresh copy reads the file.
    cp_a(&md.root, &t.path().join("copy"));
    for f in ["dovecot.index", "dovecot.index.log", "dovecot.index.cache"] {
        let _ = fs::remove_file(t.path().join("copy").join(f));
    }
    let c = snapshot(&Maildir::at(t.path().join("copy")).location());
    expect_diff(&s, &c, &["POP3 UIDLs differ"]);
}

/// The judge must not disturb what it judges: message files keep their
/// names (new/ stays new/), inodes, mtimes and bytes.
#[test]
fn snapshot_leaves_message_files_alone() {
    require_dovecot!();
    let t = tempdir();
    let md = typical_maildir(&t.path().join("m"), 5, 18);
    let messages = |l: Listing| -> Listing {
        l.into_iter()
            .filter(|(p, e)| e.kind == 'f' && (p.contains("cur/") || p.contains("new/")))
            .collect()
    };
    let before = messages(listing(&md.root));
    assert!(before.keys().any(|p| p.starts_with("new/")));
    snapshot(&md.location());
    snapshot(&md.location());
    tree::assert_unchanged(
        "messages after two snapshots",
        &before,
        &messages(listing(&md.root)),
    );
}

#[test]
fn listings_leave_out_the_engine_lock_file() {
    let t = tempdir();
    let md = typical_maildir(&t.path().join("m"), 3, 2);
    let g = tree::SourceGuard::new(&md.root);
    let before = listing(&md.root);
    fs::write(md.root.join("dsync.lock"), "123\n").unwrap();
    assert!(changes(&before, &listing(&md.root)).is_empty());
    g.assert_untouched();
}
