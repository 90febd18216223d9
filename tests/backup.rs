//! `dsync backup` scenarios, judged by real Dovecot.
//!
//! The contract: `dsync -c CONF [-o mail_location=maildir:SRC] backup
//! maildir:DEST` makes DEST what SRC is as IMAP sees it (UIDVALIDITY, UIDs,
//! UIDNEXT, flags, keywords, INTERNALDATE, bytes, folders with empty ones and
//! parents, subscriptions), exits 0, and a rerun with nothing changed exits
//! 0 without touching DEST. The source is never modified (only its
//! dovecot-uidlist may appear or grow). Stray changes on DEST are undone
//! message by message: what was not touched keeps its inode.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::{dsync, Run};
use common::tree::{self, listing, Listing, SourceGuard};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// `dsync -c CONF -o mail_location=SRC OPTS… backup DEST`.
fn backup(t: &Path, src: &str, opts: &[&str], dest: &str) -> Run {
    let mut args: Vec<&str> = opts.to_vec();
    args.push("backup");
    args.push(dest);
    dsync(t, Some(src), &args)
}

/// Only the message files (in `cur/` and `new/`) of a listing.
fn message_files(l: &Listing) -> Listing {
    l.iter()
        .filter(|(p, e)| {
            e.kind == 'f' && {
                let parent = p.rsplit('/').nth(1).unwrap_or("");
                parent == "cur" || parent == "new"
            }
        })
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// The whole contract for one SRC → DEST backup: exit 0, the source left
/// alone, a second run that changes nothing, DEST equal to SRC through
/// Dovecot, and a third run after Dovecot has indexed both sides that
/// still changes no message file. Returns the source's snapshot.
fn backup_and_check(t: &Path, src: &Maildir, dst: &Maildir) -> MailSnapshot {
    let guard = SourceGuard::new(&src.root);
    backup(t, &src.location(), &[], &dst.location()).expect_ok();
    guard.assert_untouched();
    assert!(
        dst.root.join("cur").is_dir(),
        "DEST has no INBOX after backup"
    );
    assert_uidvalidity_pinned(src, dst);

    let first = listing(&dst.root);
    backup(t, &src.location(), &[], &dst.location()).expect_ok();
    tree::assert_unchanged(
        "DEST after a backup with nothing to do",
        &first,
        &listing(&dst.root),
    );
    guard.assert_untouched();

    let s = snapshot(&src.location());
    let d = snapshot(&dst.location());
    assert_same(&s, &d);

    // Dovecot has now written its indexes on both sides, as a live server
    // would: the next run must still find nothing to do.
    let indexed = message_files(&listing(&dst.root));
    backup(t, &src.location(), &[], &dst.location()).expect_ok();
    tree::assert_unchanged(
        "DEST's messages after a backup of an unchanged, Dovecot-indexed source",
        &indexed,
        &message_files(&listing(&dst.root)),
    );
    assert_same(&s, &snapshot(&dst.location()));
    s
}

/// Every folder of SRC has a dovecot-uidlist on both sides, with the same
/// UIDVALIDITY. Without one, Dovecot would pick UIDVALIDITY and UIDs itself
/// when it first opens the folder, and the two sides would drift apart
/// (two Dovecots indexing within the same second pick the same values, so
/// comparing snapshots alone would miss this).
fn assert_uidvalidity_pinned(src: &Maildir, dst: &Maildir) {
    for (path, e) in listing(&src.root) {
        if e.kind != 'd' || !(path == "cur" || path.ends_with("/cur")) {
            continue;
        }
        let folder = path.trim_end_matches("cur").trim_end_matches('/');
        let read = |root: &Path| {
            let f = root.join(folder).join("dovecot-uidlist");
            let text = fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("{}: {e} (UIDs are not pinned)", f.display()));
            tree::parse_uidlist(&text).0
        };
        let (s, d) = (read(&src.root), read(&dst.root));
        assert!(
            s.is_some(),
            "{folder:?}: source dovecot-uidlist has no UIDVALIDITY"
        );
        assert_eq!(
            s, d,
            "{folder:?}: UIDVALIDITY in source and DEST dovecot-uidlist"
        );
    }
}

fn pair(t: &Path) -> (Maildir, Maildir) {
    (Maildir::at(t.join("src")), Maildir::at(t.join("dest")))
}

#[test]
fn source_already_indexed_by_dovecot() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 11, 30);
    index_with_dovecot(&src.location());
    let s = backup_and_check(t.path(), &src, &dst);
    assert_eq!(s.message_count(), 30 + 3 + 1 + 4);
}

#[test]
fn plain_maildir_never_touched_by_dovecot() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 12, 30);
    assert!(!src.root.join("dovecot-uidlist").exists());
    backup_and_check(t.path(), &src, &dst);
}

#[test]
fn destination_directory_exists_but_is_empty() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 13, 5);
    fs::create_dir(&dst.root).unwrap();
    backup_and_check(t.path(), &src, &dst);
}

#[test]
fn unicode_folder_names() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(21);
    let names = [
        "Entwürfe",
        "日本語/サブ",
        "A & B",
        "Ärger/Ümlaut/Tief",
        "😀 emoji",
        "Straße",
    ];
    for (i, n) in names.iter().enumerate() {
        let f = md.folder(n);
        for j in 0..3 {
            f.put(
                &Msg::new(g.message(900, Eol::Crlf))
                    .flags("S")
                    .mtime(1_650_000_000 + (i * 10 + j) as i64),
            );
        }
    }
    assert!(src.root.join(".Entw&APw-rfe/cur").is_dir());
    md.subscribe(&["Entwürfe", "日本語/サブ", "A & B", "😀 emoji"]);
    let s = backup_and_check(t.path(), &src, &dst);
    for n in names {
        assert_eq!(s.mailbox(n).messages.len(), 3, "{n}");
    }
}

#[test]
fn crlf_and_lf_messages_keep_their_bytes() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let inbox = md.inbox();
    let mut g = Gen::new(31);
    for i in 0..12 {
        let eol = if i % 2 == 0 { Eol::Crlf } else { Eol::Lf };
        inbox.put(
            &Msg::new(g.message(300 + i * 700, eol))
                .flags("S")
                .mtime(1_640_000_000 + i as i64),
        );
    }
    // Mixed line ends in one message, and no final newline.
    inbox.put(
        &Msg::new(b"Subject: mixed\r\n\nline one\r\nline two\nlast".to_vec()).mtime(1_640_000_100),
    );
    backup_and_check(t.path(), &src, &dst);
    assert_eq!(
        tree::message_contents(&src.root),
        tree::message_contents(&dst.root),
        "message files differ in their bytes (IMAP shows LF as CRLF, the disk must not differ)"
    );
}

#[test]
fn file_names_without_sizes() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(41);
    for (i, sizes) in [Sizes::None, Sizes::S, Sizes::None, Sizes::S, Sizes::None]
        .into_iter()
        .enumerate()
    {
        let eol = if i % 2 == 0 { Eol::Lf } else { Eol::Crlf };
        md.inbox().put(
            &Msg::new(g.message(2000, eol))
                .sizes(sizes)
                .flags("RS")
                .mtime(1_630_000_000 + i as i64),
        );
    }
    // A bare base name with no ":2," part in cur/, as some clients leave it.
    let bare = md.root.join("cur/1630000100.M1P1.bare");
    fs::write(&bare, g.message(500, Eol::Lf)).unwrap();
    set_mtime(&bare, 1_630_000_100);
    backup_and_check(t.path(), &src, &dst);
}

#[test]
fn files_in_new() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(51);
    for i in 0..4 {
        md.inbox().put(
            &Msg::new(g.message(1200, Eol::Lf))
                .flags("S")
                .mtime(1_660_000_000 + i),
        );
    }
    for i in 0..5 {
        let sizes = if i % 2 == 0 { Sizes::None } else { Sizes::S };
        md.inbox().put(
            &Msg::new(g.message(1500, Eol::Lf))
                .in_new()
                .sizes(sizes)
                .mtime(1_660_001_000 + i),
        );
    }
    md.folder("Lists").put(
        &Msg::new(g.message(700, Eol::Crlf))
            .in_new()
            .mtime(1_660_002_000),
    );
    let new_before: BTreeSet<_> = fs::read_dir(src.root.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    backup_and_check(t.path(), &src, &dst);
    // The source's new/ was not moved to cur/ (only Dovecot's EXAMINE ran).
    let new_after: BTreeSet<_> = fs::read_dir(src.root.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(new_before, new_after);
}

#[test]
fn empty_folders_and_parents() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    md.folder("Empty");
    md.folder("Parent");
    md.folder("Parent/Child");
    // Only the grandchild exists: "Deep" and "Deep/Er" are \Noselect.
    md.folder("Deep/Er/Est")
        .put(&Msg::new(Gen::new(61).message(400, Eol::Crlf)).mtime(1_670_000_000));
    md.folder("Trash");
    md.subscribe(&["Empty", "Parent/Child", "Deep/Er/Est", "Gone"]);
    let s = backup_and_check(t.path(), &src, &dst);
    assert!(s.mailbox("Deep").attributes.contains("\\Noselect"));
    assert!(s.mailbox("Empty").status.is_some());
    assert!(s.subscriptions.contains("Gone"));
    assert!(dst.root.join(".Empty/cur").is_dir());
}

#[test]
fn thirty_megabyte_message() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(71);
    let mut big = Gen::new(72).message(30 << 20, Eol::Crlf);
    while big.len() < 30 << 20 {
        big = Gen::new(big.len() as u64).message(31 << 20, Eol::Crlf);
    }
    md.inbox().put(
        &Msg::new(g.message(300, Eol::Crlf))
            .flags("S")
            .mtime(1_680_000_000),
    );
    md.inbox()
        .put(&Msg::new(big).flags("S").mtime(1_680_000_001));
    md.inbox()
        .put(&Msg::new(g.message(300, Eol::Lf)).mtime(1_680_000_002));
    let s = backup_and_check(t.path(), &src, &dst);
    assert!(s.mailbox("INBOX").messages[&2].size >= 30 << 20);
}

/// Changes made to DEST's files directly (a mail client on the backup)
/// are undone, and DEST's untouched files are not re-created.
#[test]
fn stray_destination_edits_are_undone_in_place() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 81, 20);
    backup(t.path(), &src.location(), &[], &dst.location()).expect_ok();
    let s = snapshot(&src.location());
    assert_same(&s, &snapshot(&dst.location()));

    let guard = SourceGuard::new(&src.root);
    let inbox = dst.inbox().files();
    let mut touched = BTreeSet::new();
    let rel = |p: &Path| {
        p.strip_prefix(&dst.root)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    // A flag change: \Flagged added to a message that had only \Seen.
    let f = inbox
        .iter()
        .find(|p| p.to_str().unwrap().ends_with(":2,S"))
        .unwrap();
    let flagged = PathBuf::from(f.to_str().unwrap().replace(":2,S", ":2,FS"));
    fs::rename(f, &flagged).unwrap();
    touched.insert(rel(f));
    touched.insert(rel(&flagged));
    // A deleted message.
    let gone = inbox.iter().find(|p| !touched.contains(&rel(p))).unwrap();
    fs::remove_file(gone).unwrap();
    touched.insert(rel(gone));
    // A keyword removed (keyword letters end the name).
    let k = inbox
        .iter()
        .find(|p| !touched.contains(&rel(p)) && p.to_str().unwrap().ends_with('a'))
        .unwrap();
    let unkeyworded = PathBuf::from(k.to_str().unwrap().trim_end_matches('a'));
    fs::rename(k, &unkeyworded).unwrap();
    touched.insert(rel(k));
    touched.insert(rel(&unkeyworded));
    // An extra message in cur/, one dropped into new/, an extra folder.
    fs::write(
        dst.root.join("cur/1700000000.M9P9.stray:2,S"),
        b"Subject: stray\r\n\r\nx\r\n",
    )
    .unwrap();
    fs::write(
        dst.root.join("new/1700000001.M9P9.stray"),
        b"Subject: stray new\r\n\r\ny\r\n",
    )
    .unwrap();
    dst.folder("Stray Folder")
        .put(&Msg::new(b"Subject: in stray folder\r\n\r\nz\r\n".to_vec()));
    // A message removed from a folder, and an empty folder removed.
    let archived = dst.folder("Archive/2024").files()[1].clone();
    fs::remove_file(&archived).unwrap();
    touched.insert(rel(&archived));
    fs::remove_dir_all(dst.dir_of("Drafts")).unwrap();
    // The subscriptions file edited.
    dst.subscribe(&["INBOX", "Stray Folder"]);

    let before = message_files(&listing(&dst.root));
    backup(t.path(), &src.location(), &[], &dst.location()).expect_ok();
    guard.assert_untouched();
    assert_same(&s, &snapshot(&dst.location()));

    let after = listing(&dst.root);
    let mut recreated = Vec::new();
    for (path, e) in &before {
        if touched.contains(path) || path.contains("stray") || path.contains("Stray") {
            continue;
        }
        match after.get(path) {
            Some(a) if a.ino == e.ino && a.btime_ns == e.btime_ns => {}
            Some(_) => recreated.push(format!("{path}: re-created")),
            None => recreated.push(format!("{path}: gone (renamed?)")),
        }
    }
    assert!(
        recreated.is_empty(),
        "backup re-created DEST files it had no reason to touch:\n  {}",
        recreated.join("\n  ")
    );
}

/// The same through a real IMAP server on DEST: flag changes, an append,
/// an expunge, a new folder, a deleted folder, an unsubscribe. Undoing the
/// expunge and the append means reusing a UID and lowering UIDNEXT, which
/// Dovecot's own index forbids, so DEST's Dovecot index has to be dealt with.
#[test]
fn stray_edits_through_imap_are_undone() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 82, 12);
    backup(t.path(), &src.location(), &[], &dst.location()).expect_ok();
    let s = snapshot(&src.location());
    assert_same(&s, &snapshot(&dst.location()));

    let mut imap = imap_session(&dst.location());
    imap.select("INBOX").unwrap();
    imap.store("1:3", "+FLAGS", &["\\Flagged", "$Stray"])
        .unwrap();
    imap.store("4", "-FLAGS", &["\\Seen"]).unwrap();
    imap.expunge_uids("5").unwrap();
    imap.append(
        "INBOX",
        &["\\Seen"],
        None,
        b"Subject: appended on the backup\r\n\r\nx\r\n",
    )
    .unwrap();
    imap.create("Made On Backup").unwrap();
    imap.delete("Drafts").unwrap();
    imap.unsubscribe("Sent").unwrap();
    imap.select("Sent").unwrap();
    imap.move_uids("1", "Archive/2024").unwrap();
    imap.logout().unwrap();

    let guard = SourceGuard::new(&src.root);
    backup(t.path(), &src.location(), &[], &dst.location()).expect_ok();
    guard.assert_untouched();
    assert_same(&s, &snapshot(&dst.location()));
}

#[test]
fn reverse_backup_restores_into_the_configured_location() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    // A (the configured location) has other mail; B is the backup.
    typical_maildir(&a.root, 91, 6);
    typical_maildir(&b.root, 92, 15);
    index_with_dovecot(&b.location());
    let guard = SourceGuard::new(&b.root);
    backup(t.path(), &a.location(), &["-R"], &b.location()).expect_ok();
    guard.assert_untouched();
    let first = listing(&a.root);
    backup(t.path(), &a.location(), &["-R"], &b.location()).expect_ok();
    tree::assert_unchanged(
        "the restored location after a second -R run",
        &first,
        &listing(&a.root),
    );
    assert_same(&snapshot(&b.location()), &snapshot(&a.location()));
}

/// A snapshot cut down to some mailboxes, subscriptions left out.
fn only(s: &MailSnapshot, names: &[&str]) -> MailSnapshot {
    let mut c = s.clone();
    c.mailboxes.retain(|n, _| names.contains(&n.as_str()));
    c.subscriptions.clear();
    c.pop3_uidls = None;
    c
}

#[test]
fn mailbox_option_limits_the_backup() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 101, 10);
    index_with_dovecot(&src.location());
    let guard = SourceGuard::new(&src.root);
    backup(
        t.path(),
        &src.location(),
        &["-m", "Sent", "-m", "Archive/2024"],
        &dst.location(),
    )
    .expect_ok();
    guard.assert_untouched();
    let s = snapshot(&src.location());
    let d = snapshot(&dst.location());
    assert_same(
        &only(&s, &["Sent", "Archive/2024"]),
        &only(&d, &["Sent", "Archive/2024"]),
    );
    for (name, mb) in &d.mailboxes {
        if name != "Sent" && name != "Archive/2024" {
            assert!(
                mb.messages.is_empty(),
                "-m Sent -m Archive/2024 also copied {name:?}: {d:?}"
            );
        }
    }
    assert!(!d.mailboxes.contains_key("Entwürfe"), "{d:?}");
}

#[test]
fn mailbox_option_leaves_other_destination_mailboxes_alone() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 102, 10);
    backup(t.path(), &src.location(), &[], &dst.location()).expect_ok();
    let old = snapshot(&dst.location());
    // New mail in INBOX and Sent, a flag change in Entwürfe.
    let mut g = Gen::new(103);
    src.inbox()
        .put(&Msg::new(g.message(800, Eol::Crlf)).mtime(1_690_000_000));
    src.folder("Sent").put(
        &Msg::new(g.message(800, Eol::Crlf))
            .flags("S")
            .mtime(1_690_000_001),
    );
    let e = &src.folder("Entwürfe").files()[0];
    fs::rename(e, format!("{}F", e.display()).replace(":2,DSF", ":2,DFS")).unwrap();
    backup(t.path(), &src.location(), &["-m", "Sent"], &dst.location()).expect_ok();
    let s = snapshot(&src.location());
    let d = snapshot(&dst.location());
    assert_same(&only(&s, &["Sent"]), &only(&d, &["Sent"]));
    assert_same(
        &only(&old, &["INBOX", "Entwürfe"]),
        &only(&d, &["INBOX", "Entwürfe"]),
    );
}

#[test]
fn missing_source_fails_naming_it() {
    let t = tempdir();
    let missing = t.path().join("no-such-maildir");
    let dst = t.path().join("dest");
    let r = backup(
        t.path(),
        &format!("maildir:{}", missing.display()),
        &[],
        &format!("maildir:{}", dst.display()),
    );
    r.expect_code(1)
        .expect_stderr_contains(missing.to_str().unwrap());
    assert!(!missing.exists(), "the missing source was created");
}

#[test]
fn destination_that_is_a_regular_file_fails() {
    let t = tempdir();
    let (src, _) = pair(t.path());
    typical_maildir(&src.root, 111, 3);
    let file = t.path().join("dest-file");
    fs::write(&file, b"not a maildir\n").unwrap();
    let guard = SourceGuard::new(&src.root);
    let r = backup(
        t.path(),
        &src.location(),
        &[],
        &format!("maildir:{}", file.display()),
    );
    r.expect_code(1)
        .expect_stderr_contains(file.to_str().unwrap());
    assert_eq!(fs::read(&file).unwrap(), b"not a maildir\n");
    guard.assert_untouched();
}

#[test]
fn corrupt_source_uidlist_fails_and_changes_nothing() {
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(121);
    for b in ["a", "b"] {
        md.inbox().put(
            &Msg::new(g.message(600, Eol::Crlf))
                .base(b)
                .sizes(Sizes::None)
                .flags("S"),
        );
    }
    md.folder("Other")
        .put(&Msg::new(g.message(600, Eol::Crlf)).flags("S"));
    let uidlist = src.root.join("dovecot-uidlist");
    let header = "3 V1 N10 G0123456789abcdef0123456789abcdef\n";
    fs::write(&uidlist, format!("{header}7 :a\n9 :b\n")).unwrap();
    // DEST: an earlier copy of the source (with a sound uidlist), which
    // must survive the failure.
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src.root)
        .arg(&dst.root)
        .status()
        .unwrap();
    assert!(st.success());
    // Then the source's uidlist breaks: UID 7 after UID 9, on line 3.
    fs::write(&uidlist, format!("{header}9 :b\n7 :a\n")).unwrap();
    md.inbox()
        .put(&Msg::new(g.message(600, Eol::Crlf)).base("c"));

    let src_before = listing(&src.root);
    let dst_before = listing(&dst.root);
    let r = backup(t.path(), &src.location(), &[], &dst.location());
    r.expect_code(1)
        .expect_stderr_contains(uidlist.to_str().unwrap());
    assert!(
        r.stderr.contains("line 3") || r.stderr.contains("dovecot-uidlist:3"),
        "stderr does not name line 3 of the uidlist:\n{}",
        r.stderr
    );
    tree::assert_unchanged(
        "the source after a failed backup",
        &src_before,
        &listing(&src.root),
    );
    tree::assert_unchanged(
        "DEST after a failed backup",
        &dst_before,
        &listing(&dst.root),
    );
}

#[test]
fn backup_without_location_is_a_usage_error() {
    let t = tempdir();
    let (src, _) = pair(t.path());
    Maildir::create(&src.root);
    let r = dsync(t.path(), Some(&src.location()), &["backup"]);
    r.expect_code(64);
    assert!(!r.stderr.is_empty(), "a usage error must say what is wrong");
}

/// POP3 UIDLs kept from an earlier server (`P` fields in dovecot-uidlist)
/// travel with their messages. Compared only where dovecot-pop3d is
/// installed; the IMAP side is compared everywhere.
#[test]
fn pop3_uidls_are_kept() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    let md = Maildir::create(&src.root);
    let mut g = Gen::new(131);
    for b in ["1.M1P1.old", "2.M1P1.old", "3.M1P1.old"] {
        md.inbox().put(
            &Msg::new(g.message(700, Eol::Crlf))
                .base(b)
                .sizes(Sizes::None)
                .flags("S"),
        );
    }
    fs::write(
        src.root.join("dovecot-uidlist"),
        "3 V1234 N4 G0123456789abcdef0123456789abcdef\n\
         1 Puidl-from-old-server-1 :1.M1P1.old\n\
         2 :2.M1P1.old\n\
         3 Puidl-from-old-server-3 :3.M1P1.old\n",
    )
    .unwrap();
    let s = backup_and_check(t.path(), &src, &dst);
    match &s.pop3_uidls {
        Some(u) => assert_eq!(u[0].1, "uidl-from-old-server-1"),
        None => eprintln!("NOTE: dovecot-pop3d not installed; POP3 UIDLs were not compared"),
    }
}
