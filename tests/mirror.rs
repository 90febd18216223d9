//! `dsync mirror` scenarios, judged by real Dovecot.
//!
//! The contract: `dsync -c CONF -o mail_location=maildir:A mirror
//! maildir:B` merges what changed on both sides since the last run: new
//! messages both ways (same UIDs on both sides), expunges both ways,
//! flags and keywords merged flag by flag (a flag changed on one side
//! only wins; with no history A's value wins), an expunge beats a flag
//! change, a UID collision gives both messages fresh UIDs (nothing lost,
//! no UID reused), a move on one side is a move on the other, folders
//! created, renamed or deleted on one side likewise, subscriptions are a
//! union. After one run both sides are identical through Dovecot and a
//! second run changes nothing. A side that lost all its mail since the
//! last sync makes the run refuse (exit 1) unless
//! `dsync_allow_mass_delete` says otherwise.
//!
//! A is edited the way mail clients and delivery agents edit Maildirs
//! (files renamed, unlinked, written); B through Dovecot's IMAP server.
//!
//! To tell a wrong test from a wrong engine, the scenarios can be run
//! against Dovecot's own `doveadm sync` (`DSYNC_TEST_BINARY=
//! tests/common/doveadm-dsync.sh`): it writes its index files into both
//! sides, so the "second run changes nothing" listings fail there, and it
//! falls short where DESIGN.md section 5 says (moves by file rename end up
//! in both folders, folder deletes by `rm` are undone, no mass-delete
//! refusal, exit 2 on a fresh pair); the rest of the expectations hold.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::pair::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn pair(t: &Path) -> (Maildir, Maildir) {
    (Maildir::at(t.join("a")), Maildir::at(t.join("b")))
}

/// A pair that has been mirrored once: INBOX m1…m5 (m1 `S`, m2 `S`, m3 none,
/// m4 `FS` with keyword `Work`, m5 `RS`), Archive a1 a2, Sent s1, an empty
/// Drafts; INBOX subscribed. B did not exist before.
fn synced_pair(t: &Path) -> (Maildir, Maildir) {
    let (a, b) = pair(t);
    let md = Maildir::create(&a.root);
    let inbox = md.inbox();
    let flags = ["S", "S", "", "FS", "RS"];
    for (i, f) in flags.iter().enumerate() {
        let mut m = Msg::new(traced(&format!("m{}", i + 1)))
            .flags(f)
            .mtime(1_700_000_000 + i as i64);
        if i == 3 {
            m = m.keyword("Work");
        }
        inbox.put(&m);
    }
    let arch = md.folder("Archive");
    for i in 1..=2 {
        arch.put(
            &Msg::new(traced(&format!("a{i}")))
                .flags("S")
                .mtime(1_690_000_000 + i),
        );
    }
    md.folder("Sent")
        .put(&Msg::new(traced("s1")).flags("S").mtime(1_695_000_000));
    md.folder("Drafts");
    md.subscribe(&["INBOX"]);
    let s = mirror_and_check(t, &a, &b, &[]);
    assert_eq!(s.message_count(), 8, "{s:?}");
    (a, b)
}

fn subjects(s: &MailSnapshot, mailbox: &str) -> BTreeSet<String> {
    s.mailbox(mailbox)
        .messages
        .values()
        .map(|m| m.subject.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn highest_uid(s: &MailSnapshot, mailbox: &str) -> u32 {
    s.mailbox(mailbox)
        .messages
        .keys()
        .copied()
        .max()
        .unwrap_or(0)
}

// ---- first runs ------------------------------------------------------

#[test]
fn mirror_into_a_location_that_does_not_exist() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    typical_maildir(&a.root, 41, 20);
    let bodies = common::tree::message_contents(&a.root);
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), 20 + 3 + 1 + 4);
    assert!(
        s.mailboxes.contains_key("Drafts"),
        "empty Drafts lost: {s:?}"
    );
    assert_eq!(
        bodies,
        common::tree::message_contents(&a.root),
        "A's message bytes changed"
    );
}

#[test]
fn mirror_into_an_empty_directory() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    typical_maildir(&a.root, 42, 8);
    index_with_dovecot(&a.location());
    fs::create_dir(&b.root).unwrap();
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), 8 + 3 + 1 + 4);
}

#[test]
fn mirror_from_an_empty_local_side() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    Maildir::create(&a.root);
    typical_maildir(&b.root, 43, 8);
    index_with_dovecot(&b.location());
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), 8 + 3 + 1 + 4);
}

/// A Dovecot client opening INBOX read-write moves `new/` files to
/// `cur/` (adding `:2,`): that is no change to the mail, and the next
/// mirror must neither copy, expunge nor rewrite any message.
#[test]
fn dovecot_moving_new_to_cur_is_not_a_change() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    typical_maildir(&a.root, 44, 12);
    let before = mirror_and_check(t.path(), &a, &b, &[]);
    let in_new = |m: &Maildir| {
        m.inbox()
            .files()
            .iter()
            .filter(|p| p.parent().unwrap().ends_with("new"))
            .count()
    };
    assert!(
        in_new(&a) > 0 && in_new(&b) > 0,
        "the fixture should have files in new/"
    );
    for m in [&a, &b] {
        let mut s = imap_session(&m.location());
        s.select("INBOX").unwrap();
        s.logout().unwrap();
        assert_eq!(in_new(m), 0, "SELECT should have moved new/ to cur/");
    }
    let msgs = (
        message_files(&mail_listing(&a.root)),
        message_files(&mail_listing(&b.root)),
    );
    mirror(t.path(), &a, &b, &[]).expect_ok();
    common::tree::assert_unchanged(
        "A's messages",
        &msgs.0,
        &message_files(&mail_listing(&a.root)),
    );
    common::tree::assert_unchanged(
        "B's messages",
        &msgs.1,
        &message_files(&mail_listing(&b.root)),
    );
    let s = settled(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), before.message_count());
    assert_same(&before, &s);
}

/// Both sides had mail and were never synced: the union, no duplicates,
/// one UIDVALIDITY per mailbox on both sides. A message both hold (same
/// file name, the Maildir GUID) is kept once, with A's flags.
#[test]
fn first_mirror_of_a_fresh_pair_keeps_the_union() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = pair(t.path());
    let ma = Maildir::create(&a.root);
    let mb = Maildir::create(&b.root);
    for i in 0..4 {
        ma.inbox().put(
            &Msg::new(traced(&format!("onlyA{i}")))
                .flags("S")
                .mtime(1_700_000_000 + i),
        );
        mb.inbox().put(
            &Msg::new(traced(&format!("onlyB{i}")))
                .flags("F")
                .mtime(1_700_100_000 + i),
        );
    }
    ma.folder("Common")
        .put(&Msg::new(traced("commonA")).mtime(1_700_200_000));
    mb.folder("Common")
        .put(&Msg::new(traced("commonB")).mtime(1_700_200_001));
    ma.folder("FolderA")
        .put(&Msg::new(traced("fa")).mtime(1_700_300_000));
    mb.folder("FolderB")
        .put(&Msg::new(traced("fb")).mtime(1_700_300_001));
    // The same message (same base name, same bytes) on both sides, with
    // different flags and no history: A's value wins.
    let shared = Msg::new(traced("shared"))
        .base("1700400000.Mshared.fixturehost")
        .mtime(1_700_400_000);
    ma.inbox().put(&shared.clone().flags("RS"));
    mb.inbox().put(&shared.clone().flags("F"));
    ma.subscribe(&["INBOX", "FolderA"]);
    mb.subscribe(&["INBOX", "FolderB"]);

    // Different UIDVALIDITYs: B's Dovecot counts from an older value.
    fs::write(b.root.join("dovecot-uidvalidity"), "50000000").unwrap();
    fs::write(b.root.join("dovecot-uidvalidity.50000000"), "").unwrap();
    let (sa, sb) = (snapshot(&a.location()), snapshot(&b.location()));
    let uv = |s: &MailSnapshot| s.mailbox("INBOX").status.as_ref().unwrap().uidvalidity;
    assert_ne!(
        uv(&sa),
        uv(&sb),
        "the fixture should give the sides different UIDVALIDITYs"
    );

    let s = mirror_and_check(t.path(), &a, &b, &[]);
    let all = [
        "onlyA0", "onlyA1", "onlyA2", "onlyA3", "onlyB0", "onlyB1", "onlyB2", "onlyB3", "commonA",
        "commonB", "fa", "fb", "shared",
    ];
    for id in all {
        only_place(&s, id);
    }
    assert_eq!(s.message_count(), all.len(), "{s:?}");
    assert_eq!(subjects(&s, "Common"), set(&["commonA", "commonB"]));
    assert_eq!(only_place(&s, "fa").0, "FolderA");
    assert_eq!(only_place(&s, "fb").0, "FolderB");
    assert_eq!(
        flags_of(&s, "shared"),
        strs(&["\\Answered", "\\Seen"]),
        "with no history A's flags win"
    );
    assert_eq!(flags_of(&s, "onlyB2"), strs(&["\\Flagged"]));
    assert_eq!(s.subscriptions, set(&["INBOX", "FolderA", "FolderB"]));
}

// ---- new messages ------------------------------------------------------

#[test]
fn new_file_on_a_reaches_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    let before = snapshot(&b.location());
    a.inbox()
        .put(&Msg::new(traced("delivered")).in_new().mtime(1_710_000_000));
    a.folder("Archive")
        .put(&Msg::new(traced("filed")).flags("S").mtime(1_710_000_001));
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    let (mb, uid) = only_place(&s, "delivered");
    assert_eq!(mb, "INBOX");
    assert!(uid > highest_uid(&before, "INBOX"), "UID {uid} reused");
    assert_eq!(only_place(&s, "filed").0, "Archive");
    assert_eq!(flags_of(&s, "filed"), strs(&["\\Seen"]));
    assert_eq!(s.message_count(), 10);
}

#[test]
fn append_on_b_reaches_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        s.append(
            "INBOX",
            &["\\Flagged", "Important"],
            Some("02-Feb-2024 12:00:00 +0000"),
            &traced("appended"),
        )
        .unwrap();
        s.append("Sent", &["\\Seen"], None, &traced("sent2"))
            .unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "appended").0, "INBOX");
    assert_eq!(flags_of(&s, "appended"), strs(&["\\Flagged", "Important"]));
    assert_eq!(subjects(&s, "Sent"), set(&["s1", "sent2"]));
    file_of(&a, "appended");
}

/// Both sides got different new messages in different folders.
#[test]
fn new_messages_both_ways_at_once() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    a.folder("Archive")
        .put(&Msg::new(traced("fromA")).flags("S").mtime(1_710_000_000));
    {
        let mut s = imap_session(&b.location());
        s.append("Sent", &["\\Seen"], None, &traced("fromB"))
            .unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "fromA").0, "Archive");
    assert_eq!(only_place(&s, "fromB").0, "Sent");
    assert_eq!(s.message_count(), 10);
}

// ---- flags -------------------------------------------------------------

#[test]
fn flag_renamed_on_a_reaches_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // m1 `:2,S` → `:2,FS`; m4 loses \Flagged; m3 (no flags) becomes Seen.
    let p = file_of(&a, "m1");
    assert_eq!(file_flags(&p), "S");
    set_file_flags(&p, "FS");
    let p4 = file_of(&a, "m4");
    let kw4 = file_flags(&p4).replace(['F', 'S'], "");
    set_file_flags(&p4, &format!("S{kw4}"));
    set_file_flags(&file_of(&a, "m3"), "S");
    // m2 gets a keyword A never had: a new letter in dovecot-keywords.
    let later = a.inbox().keyword_letter("Later");
    set_file_flags(&file_of(&a, "m2"), &format!("S{later}"));
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(flags_of(&s, "m2"), strs(&["\\Seen", "Later"]));
    assert_eq!(flags_of(&s, "m1"), strs(&["\\Flagged", "\\Seen"]));
    assert_eq!(flags_of(&s, "m4"), strs(&["\\Seen", "Work"]));
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Seen"]));
}

#[test]
fn flags_stored_on_b_reach_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        let u1 = uid_of(&mut s, "INBOX", "m1");
        s.store(&u1.to_string(), "+FLAGS", &["\\Answered", "$Label1"])
            .unwrap();
        let u2 = uid_of(&mut s, "INBOX", "m2");
        s.store(&u2.to_string(), "-FLAGS", &["\\Seen"]).unwrap();
        let u4 = uid_of(&mut s, "INBOX", "m4");
        s.store(&u4.to_string(), "-FLAGS", &["Work"]).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(
        flags_of(&s, "m1"),
        strs(&["\\Answered", "\\Seen", "$Label1"])
    );
    assert_eq!(flags_of(&s, "m2"), Vec::<String>::new());
    assert_eq!(flags_of(&s, "m4"), strs(&["\\Flagged", "\\Seen"]));
    assert_eq!(file_flags(&file_of(&a, "m2")), "");
}

/// Both sides changed flags of the same messages: merged flag by flag.
#[test]
fn conflicting_flag_edits_merge_per_flag() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // m2 (S): A adds F and removes S; B adds R and keyword Work.
    set_file_flags(&file_of(&a, "m2"), "F");
    // m3 (none): both add F; A also adds S.
    set_file_flags(&file_of(&a, "m3"), "FS");
    // m5 (RS): A removes R; B removes S.
    set_file_flags(&file_of(&a, "m5"), "S");
    {
        let mut s = imap_session(&b.location());
        let u2 = uid_of(&mut s, "INBOX", "m2");
        s.store(&u2.to_string(), "+FLAGS", &["\\Answered", "Work"])
            .unwrap();
        let u3 = uid_of(&mut s, "INBOX", "m3");
        s.store(&u3.to_string(), "+FLAGS", &["\\Flagged"]).unwrap();
        let u5 = uid_of(&mut s, "INBOX", "m5");
        s.store(&u5.to_string(), "-FLAGS", &["\\Seen"]).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(
        flags_of(&s, "m2"),
        strs(&["\\Answered", "\\Flagged", "Work"])
    );
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Flagged", "\\Seen"]));
    assert_eq!(flags_of(&s, "m5"), Vec::<String>::new());
}

// ---- expunges ----------------------------------------------------------

#[test]
fn file_unlinked_on_a_is_expunged_on_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_file(file_of(&a, "m2")).unwrap();
    fs::remove_file(file_of(&a, "a1")).unwrap();
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "m2") && !has(&s, "a1"), "{s:?}");
    assert_eq!(s.message_count(), 6);
}

#[test]
fn uid_expunge_on_b_is_expunged_on_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m5");
        s.expunge_uids(&u.to_string()).unwrap();
        let u = uid_of(&mut s, "Sent", "s1");
        s.expunge_uids(&u.to_string()).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "m5") && !has(&s, "s1"), "{s:?}");
    assert_eq!(s.message_count(), 6);
    assert!(s.mailboxes.contains_key("Sent"), "emptied Sent was deleted");
}

/// The UID of an expunged message is never given to another one.
#[test]
fn uid_of_an_expunged_message_is_not_reused() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    let before = snapshot(&a.location());
    let (_, old) = only_place(&before, "m5");
    assert_eq!(old, highest_uid(&before, "INBOX"));
    fs::remove_file(file_of(&a, "m5")).unwrap();
    a.inbox()
        .put(&Msg::new(traced("after")).in_new().mtime(1_735_000_000));
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "m5"));
    let (_, uid) = only_place(&s, "after");
    assert!(
        uid > old,
        "new message got UID {uid}, expunged m5 had {old}"
    );
    assert!(!s.mailbox("INBOX").messages.contains_key(&old));
}

/// A message expunged on one side and re-flagged on the other is gone.
#[test]
fn expunge_beats_a_flag_change() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // m1: A changes flags, B expunges. m2: A expunges, B changes flags.
    set_file_flags(&file_of(&a, "m1"), "FRS");
    fs::remove_file(file_of(&a, "m2")).unwrap();
    {
        let mut s = imap_session(&b.location());
        let u1 = uid_of(&mut s, "INBOX", "m1");
        let u2 = uid_of(&mut s, "INBOX", "m2");
        s.store(&u2.to_string(), "+FLAGS", &["\\Flagged"]).unwrap();
        s.expunge_uids(&u1.to_string()).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "m1"), "m1 came back: {s:?}");
    assert!(!has(&s, "m2"), "m2 came back: {s:?}");
    assert_eq!(s.message_count(), 6);
}

/// Both sides expunged the same message.
#[test]
fn expunged_on_both_sides() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_file(file_of(&a, "m3")).unwrap();
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m3");
        s.expunge_uids(&u.to_string()).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "m3"));
    assert_eq!(s.message_count(), 7);
}

// ---- UID collisions ------------------------------------------------------

/// A and B each got a different new message under the same UID: both are
/// kept on both sides, renumbered to UIDs no side used before.
#[test]
fn uid_collision_renumbers_both_messages() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    let before = snapshot(&a.location());
    let next = before.mailbox("INBOX").status.as_ref().unwrap().uidnext;
    // A: a delivery, given its UID by A's own Dovecot.
    a.inbox()
        .put(&Msg::new(traced("newA")).in_new().mtime(1_720_000_000));
    let sa = snapshot(&a.location());
    assert_eq!(only_place(&sa, "newA"), ("INBOX".to_string(), next));
    // B: an APPEND through B's Dovecot takes the same UID.
    {
        let mut s = imap_session(&b.location());
        let uid = s
            .append("INBOX", &["\\Seen"], None, &traced("newB"))
            .unwrap();
        assert_eq!(uid, next, "the fixture should make the UIDs collide");
        s.logout().unwrap();
    }
    let run = common::run::dsync(t.path(), Some(&a.location()), &["mirror", &b.location()]);
    // Renumbering may be reported as "synced, but some changes needed
    // UIDs renumbered" (exit 2); both sides must still agree.
    if run.code != 2 {
        run.expect_ok();
    }
    let s = settled(t.path(), &a, &b, &[]);
    let (_, ua) = only_place(&s, "newA");
    let (_, ub) = only_place(&s, "newB");
    assert_ne!(ua, ub);
    assert!(
        ua > next && ub > next,
        "colliding messages got UIDs {ua} and {ub}; UID {next} was used on both sides and must not be reused"
    );
    assert!(
        !s.mailbox("INBOX").messages.contains_key(&next),
        "UID {next} reused: {s:?}"
    );
    assert_eq!(flags_of(&s, "newB"), strs(&["\\Seen"]));
    assert_eq!(s.message_count(), 10);
}

// ---- moves ---------------------------------------------------------------

#[test]
fn file_moved_between_folders_on_a_is_moved_on_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // Keyword letters are per folder (dovecot-keywords): a client moving
    // m4 (`FS` + Work) must spell Work with the target folder's letter.
    let work = a.folder("Archive").keyword_letter("Work");
    let p = move_file(&a, &file_of(&a, "m4"), "Archive");
    set_file_flags(&p, &format!("FS{work}"));
    move_file(&a, &file_of(&a, "a2"), "INBOX");
    // Read and filed at once, as clients do: moved and renamed to `:2,S`.
    let p = move_file(&a, &file_of(&a, "m3"), "Archive");
    set_file_flags(&p, "S");
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m3").0, "Archive");
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Seen"]));
    assert_eq!(only_place(&s, "m4").0, "Archive");
    assert_eq!(only_place(&s, "a2").0, "INBOX");
    assert_eq!(flags_of(&s, "m4"), strs(&["\\Flagged", "\\Seen", "Work"]));
    assert_eq!(s.message_count(), 8);
    file_of(&a, "m3");
    file_of(&a, "m4");
    file_of(&a, "a2");
}

/// A careless client moves a file with its keyword letter into a folder
/// whose dovecot-keywords does not define it.
#[test]
fn file_moved_with_a_keyword_letter_the_target_does_not_define() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    move_file(&a, &file_of(&a, "m4"), "Archive");
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m4").0, "Archive");
    // Dovecot itself calls the letter "unknown-0" (and writes that down),
    // and both sides agree on it.
    assert_eq!(
        flags_of(&s, "m4"),
        strs(&["\\Flagged", "\\Seen", "unknown-0"])
    );
    assert_eq!(s.message_count(), 8);
}

#[test]
fn imap_move_on_b_is_moved_on_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m1");
        s.move_uids(&u.to_string(), "Archive").unwrap();
        let u = uid_of(&mut s, "Sent", "s1");
        s.move_uids(&u.to_string(), "Drafts").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m1").0, "Archive");
    assert_eq!(only_place(&s, "s1").0, "Drafts");
    assert_eq!(s.message_count(), 8);
    // Exactly one file on A for each.
    assert!(file_of(&a, "m1").starts_with(a.root.join(".Archive")));
    assert!(file_of(&a, "s1").starts_with(a.root.join(".Drafts")));
}

/// Moves into folders the other side does not have yet.
#[test]
fn moves_into_new_folders() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    move_file(&a, &file_of(&a, "m1"), "Projects");
    {
        let mut s = imap_session(&b.location());
        s.create("Trips/2025").unwrap();
        let u = uid_of(&mut s, "Archive", "a1");
        s.move_uids(&u.to_string(), "Trips/2025").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m1").0, "Projects");
    assert_eq!(only_place(&s, "a1").0, "Trips/2025");
    assert_eq!(s.message_count(), 8);
}

/// The same message moved on both sides to the same folder ends up there
/// once.
#[test]
fn same_move_on_both_sides() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    move_file(&a, &file_of(&a, "m2"), "Archive");
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m2");
        s.move_uids(&u.to_string(), "Archive").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m2").0, "Archive");
    assert_eq!(s.message_count(), 8);
}

/// The same move on both sides, while B also got new mail in the target
/// folder: the moved message lands under different UIDs on the two sides
/// (and A's UID collides with B's new message); it must still end up once.
#[test]
fn same_move_on_both_sides_with_new_mail_in_the_target() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    move_file(&a, &file_of(&a, "m2"), "Archive");
    {
        let mut s = imap_session(&b.location());
        s.append("Archive", &[], None, &traced("newB")).unwrap();
        let u = uid_of(&mut s, "INBOX", "m2");
        s.move_uids(&u.to_string(), "Archive").unwrap();
        s.logout().unwrap();
    }
    let run = mirror(t.path(), &a, &b, &[]);
    if run.code != 2 {
        run.expect_ok();
    }
    let s = settled(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "m2").0, "Archive");
    assert_eq!(only_place(&s, "newB").0, "Archive");
    assert_eq!(s.message_count(), 9);
}

// ---- folders -------------------------------------------------------------

#[test]
fn folders_created_on_either_side_appear_on_the_other() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    a.folder("Projects/2025")
        .put(&Msg::new(traced("p1")).flags("S").mtime(1_730_000_000));
    a.folder("EmptyA");
    {
        let mut s = imap_session(&b.location());
        s.create("Ideas").unwrap();
        s.append("Ideas", &[], None, &traced("idea1")).unwrap();
        s.create("EmptyB").unwrap();
        s.create("Entwürfe/Älter").unwrap();
        s.append("Entwürfe/Älter", &["\\Draft"], None, &traced("draft1"))
            .unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "p1").0, "Projects/2025");
    assert_eq!(only_place(&s, "idea1").0, "Ideas");
    assert_eq!(only_place(&s, "draft1").0, "Entwürfe/Älter");
    assert!(
        a.dir_of("Entwürfe/Älter").join("cur").is_dir(),
        "A should have {}",
        a.dir_of("Entwürfe/Älter").display()
    );
    for name in ["EmptyA", "EmptyB"] {
        assert!(
            s.mailbox(name).messages.is_empty(),
            "{name} should exist and be empty"
        );
    }
}

/// `-m` naming a folder that only one side has yet creates it on the other.
#[test]
fn mailbox_option_with_a_folder_new_on_one_side() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    a.inbox()
        .put(&Msg::new(traced("inboxA")).flags("S").mtime(1_750_000_000));
    {
        let mut s = imap_session(&b.location());
        s.create("Ideas").unwrap();
        s.append("Ideas", &[], None, &traced("idea1")).unwrap();
        s.logout().unwrap();
    }
    let b_loc = b.location();
    common::run::dsync(
        t.path(),
        Some(&a.location()),
        &["-m", "Ideas", "mirror", &b_loc],
    )
    .expect_ok();
    let (sa, sb) = (snapshot(&a.location()), snapshot(&b_loc));
    assert_eq!(only_place(&sa, "idea1").0, "Ideas");
    assert!(!has(&sb, "inboxA"), "-m Ideas synced INBOX: {sb:?}");
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    only_place(&s, "inboxA");
    only_place(&s, "idea1");
}

/// A renamed a folder (its directory) while B got new mail in it under
/// the old name: the mail follows the rename.
#[test]
fn rename_on_a_while_b_got_mail_in_the_folder() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::rename(a.dir_of("Archive"), a.dir_of("Old")).unwrap();
    {
        let mut s = imap_session(&b.location());
        s.append("Archive", &["\\Seen"], None, &traced("a3"))
            .unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Archive"), "{s:?}");
    assert_eq!(subjects(&s, "Old"), set(&["a1", "a2", "a3"]));
}

/// A side whose dovecot-uidlist was lost (removed after damage, as our
/// error message suggests, or never restored from a backup) gets a new
/// mailbox GUID and UIDVALIDITY: the run merges by message GUID, deletes
/// nothing, and keeps the other side's changes.
#[test]
fn a_lost_uidlist_on_b_loses_nothing() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    set_file_flags(&file_of(&a, "m3"), "F");
    a.inbox().put(&Msg::new(traced("m6")).mtime(1_700_000_100));
    for folder in ["INBOX", "Archive"] {
        fs::remove_file(b.dir_of(folder).join("dovecot-uidlist")).unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), 9, "{s:?}");
    assert_eq!(
        subjects(&s, "INBOX"),
        set(&["m1", "m2", "m3", "m4", "m5", "m6"])
    );
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Flagged"]));
    assert!(has(&s, "a1") && has(&s, "a2"), "{s:?}");
}

#[test]
fn folder_removed_on_a_is_deleted_on_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_dir_all(a.dir_of("Sent")).unwrap();
    fs::remove_dir_all(a.dir_of("Drafts")).unwrap();
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Sent"), "Sent came back: {s:?}");
    assert!(
        !s.mailboxes.contains_key("Drafts"),
        "Drafts came back: {s:?}"
    );
    assert!(!has(&s, "s1"));
    assert_eq!(s.message_count(), 7);
}

#[test]
fn imap_delete_on_b_is_deleted_on_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        s.delete("Archive").unwrap();
        s.delete("Drafts").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Archive"), "{s:?}");
    assert!(!s.mailboxes.contains_key("Drafts"), "{s:?}");
    assert!(!a.dir_of("Archive").exists());
    assert_eq!(s.message_count(), 6);
}

/// A folder deleted on A while B received new mail in it is not deleted:
/// the new message survives on both sides.
#[test]
fn folder_deleted_on_one_side_with_new_mail_on_the_other_survives() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_dir_all(a.dir_of("Archive")).unwrap();
    {
        let mut s = imap_session(&b.location());
        s.append("Archive", &[], None, &traced("late")).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(only_place(&s, "late").0, "Archive");
}

#[test]
fn imap_rename_on_b_is_renamed_on_a() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        s.rename("Archive", "Old/Archive").unwrap();
        s.rename("Drafts", "Entwürfe").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Archive"), "{s:?}");
    assert!(!s.mailboxes.contains_key("Drafts"), "{s:?}");
    assert_eq!(subjects(&s, "Old/Archive"), set(&["a1", "a2"]));
    assert!(s.mailbox("Entwürfe").messages.is_empty());
    assert_eq!(s.message_count(), 8);
}

/// B renamed a folder while A got new mail in it under the old name: the
/// folder is the same (same mailbox GUID), so the mail follows the rename.
#[test]
fn rename_on_b_while_a_got_mail_in_the_folder() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    a.folder("Archive")
        .put(&Msg::new(traced("a3")).flags("S").mtime(1_736_000_000));
    {
        let mut s = imap_session(&b.location());
        s.rename("Archive", "Old").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Archive"), "{s:?}");
    assert_eq!(subjects(&s, "Old"), set(&["a1", "a2", "a3"]));
}

#[test]
fn subscriptions_are_merged() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    Maildir::at(&a.root).subscribe(&["INBOX", "Archive"]);
    {
        let mut s = imap_session(&b.location());
        s.subscribe("Sent").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.subscriptions, set(&["INBOX", "Archive", "Sent"]));
}

/// A folder directory renamed on A (its dovecot-uidlist, and so its
/// mailbox GUID, goes with it): B ends up with the new name only.
#[test]
fn folder_directory_renamed_on_a_is_renamed_on_b() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::rename(a.dir_of("Archive"), a.dir_of("Old")).unwrap();
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!s.mailboxes.contains_key("Archive"), "{s:?}");
    assert_eq!(subjects(&s, "Old"), set(&["a1", "a2"]));
    assert_eq!(s.message_count(), 8);
}

/// The state a run leaves is the base of the next: changes made after
/// the second run merge as well as after the first.
#[test]
fn changes_across_several_runs() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_file(file_of(&a, "m1")).unwrap();
    {
        let mut s = imap_session(&b.location());
        s.append("INBOX", &[], None, &traced("round1B")).unwrap();
        s.logout().unwrap();
    }
    mirror_and_check(t.path(), &a, &b, &[]);

    set_file_flags(&file_of(&a, "round1B"), "F");
    a.inbox()
        .put(&Msg::new(traced("round2A")).in_new().mtime(1_745_000_000));
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m2");
        s.expunge_uids(&u.to_string()).unwrap();
        let u = uid_of(&mut s, "INBOX", "m3");
        s.store(&u.to_string(), "+FLAGS", &["\\Seen"]).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(
        subjects(&s, "INBOX"),
        set(&["m3", "m4", "m5", "round1B", "round2A"])
    );
    assert_eq!(flags_of(&s, "round1B"), strs(&["\\Flagged"]));
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Seen"]));

    // A third round, B only: an expunge of what came from A last time.
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "round2A");
        s.expunge_uids(&u.to_string()).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "round2A"), "{s:?}");
    assert_eq!(s.message_count(), 7);
}

/// A mirrors with two stores (say a server B and a laptop C); each pair
/// keeps its own sync state, so changes travel B → A → C and back.
#[test]
fn one_store_mirrored_with_two_others() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    let c = Maildir::at(t.path().join("c"));
    mirror_and_check(t.path(), &a, &c, &[]);

    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m1");
        s.expunge_uids(&u.to_string()).unwrap();
        s.append("INBOX", &[], None, &traced("fromB")).unwrap();
        s.logout().unwrap();
    }
    mirror_and_check(t.path(), &a, &b, &[]);
    let s = mirror_and_check(t.path(), &a, &c, &[]);
    assert!(!has(&s, "m1"), "{s:?}");
    only_place(&s, "fromB");

    set_file_flags(&file_of(&c, "m2"), "FS");
    fs::remove_file(file_of(&c, "a1")).unwrap();
    mirror_and_check(t.path(), &a, &c, &[]);
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(flags_of(&s, "m2"), strs(&["\\Flagged", "\\Seen"]));
    assert!(!has(&s, "a1"), "{s:?}");
    assert_eq!(s.message_count(), 7);
    assert_same(&s, &snapshot(&c.location()));
}

/// The pair can be mirrored from either end: run from B's side (B local,
/// A as LOCATION2), the history of the earlier runs still counts.
#[test]
fn mirror_run_from_the_other_side() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_file(file_of(&a, "m1")).unwrap();
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m2");
        s.expunge_uids(&u.to_string()).unwrap();
        let u = uid_of(&mut s, "INBOX", "m3");
        s.store(&u.to_string(), "+FLAGS", &["\\Flagged"]).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &b, &a, &[]);
    assert!(!has(&s, "m1") && !has(&s, "m2"), "{s:?}");
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Flagged"]));
    assert_eq!(s.message_count(), 6);
    // And back from A's side.
    set_file_flags(&file_of(&a, "m3"), "");
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(flags_of(&s, "m3"), Vec::<String>::new());
}

// ---- everything at once ----------------------------------------------------

/// Many kinds of change on both sides in one run.
#[test]
fn many_changes_on_both_sides() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // A, like a mail client: new delivery, flag, expunge, move, new folder.
    a.inbox()
        .put(&Msg::new(traced("deliveredA")).in_new().mtime(1_740_000_000));
    set_file_flags(&file_of(&a, "m3"), "RS");
    fs::remove_file(file_of(&a, "m5")).unwrap();
    move_file(&a, &file_of(&a, "a1"), "INBOX");
    a.folder("NewA")
        .put(&Msg::new(traced("inNewA")).flags("S").mtime(1_740_000_001));
    // B, through Dovecot: append, store, expunge, move, create.
    {
        let mut s = imap_session(&b.location());
        s.append("Sent", &["\\Seen"], None, &traced("sentB"))
            .unwrap();
        let u = uid_of(&mut s, "INBOX", "m1");
        s.store(&u.to_string(), "+FLAGS", &["\\Flagged"]).unwrap();
        let u = uid_of(&mut s, "INBOX", "m2");
        s.expunge_uids(&u.to_string()).unwrap();
        let u = uid_of(&mut s, "INBOX", "m4");
        s.move_uids(&u.to_string(), "Drafts").unwrap();
        s.create("NewB").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(
        subjects(&s, "INBOX"),
        set(&["m1", "m3", "a1", "deliveredA"])
    );
    assert_eq!(subjects(&s, "Archive"), set(&["a2"]));
    assert_eq!(subjects(&s, "Sent"), set(&["s1", "sentB"]));
    assert_eq!(subjects(&s, "Drafts"), set(&["m4"]));
    assert_eq!(subjects(&s, "NewA"), set(&["inNewA"]));
    assert!(s.mailbox("NewB").messages.is_empty());
    assert_eq!(flags_of(&s, "m1"), strs(&["\\Flagged", "\\Seen"]));
    assert_eq!(flags_of(&s, "m3"), strs(&["\\Answered", "\\Seen"]));
    assert_eq!(s.message_count(), 9);
}

// ---- -m ----------------------------------------------------------------------

#[test]
fn mailbox_option_limits_the_sync() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    a.inbox()
        .put(&Msg::new(traced("inboxA")).flags("S").mtime(1_750_000_000));
    a.folder("Sent")
        .put(&Msg::new(traced("sentA")).flags("S").mtime(1_750_000_001));
    {
        let mut s = imap_session(&b.location());
        s.append("INBOX", &[], None, &traced("inboxB")).unwrap();
        s.append("Sent", &[], None, &traced("sentB")).unwrap();
        s.logout().unwrap();
    }
    common::run::dsync(
        t.path(),
        Some(&a.location()),
        &["-m", "Sent", "mirror", &b.location()],
    )
    .expect_ok();
    let (sa, sb) = (snapshot(&a.location()), snapshot(&b.location()));
    assert_eq!(subjects(&sa, "Sent"), set(&["s1", "sentA", "sentB"]));
    assert_eq!(subjects(&sb, "Sent"), set(&["s1", "sentA", "sentB"]));
    assert!(!has(&sb, "inboxA"), "-m Sent synced INBOX: {sb:?}");
    assert!(!has(&sa, "inboxB"), "-m Sent synced INBOX: {sa:?}");
    // The INBOX changes were not lost: a full run carries them over.
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(
        subjects(&s, "INBOX"),
        set(&["m1", "m2", "m3", "m4", "m5", "inboxA", "inboxB"])
    );
}

// ---- safety ------------------------------------------------------------------

fn empty_all_folders(md: &Maildir) {
    for (path, e) in mail_listing(&md.root) {
        let parent = path.rsplit('/').nth(1).unwrap_or("");
        if e.kind == 'f' && (parent == "cur" || parent == "new") {
            fs::remove_file(md.root.join(path)).unwrap();
        }
    }
}

/// The run must refuse (exit 1, saying so and naming the option) and
/// leave the side that still has mail exactly as it was; the emptied side
/// gets no message files back.
#[track_caller]
fn expect_mass_delete_refusal(
    t: &Path,
    a: &Maildir,
    b: &Maildir,
    kept: &Maildir,
    emptied: &Maildir,
) {
    let kept_before = mail_listing(&kept.root);
    let emptied_before = message_files(&mail_listing(&emptied.root));
    let run = mirror(t, a, b, &[]);
    run.expect_code(1)
        .expect_stderr_contains("dsync_allow_mass_delete");
    assert!(
        run.stderr.to_lowercase().contains("refus"),
        "stderr should say the run was refused:\n{}",
        run.stderr
    );
    common::tree::assert_unchanged(
        "the side that kept its mail, after a refused mirror",
        &kept_before,
        &mail_listing(&kept.root),
    );
    common::tree::assert_unchanged(
        "the emptied side's messages, after a refused mirror",
        &emptied_before,
        &message_files(&mail_listing(&emptied.root)),
    );
}

#[test]
fn refuses_when_b_lost_all_its_mail() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    empty_all_folders(&b);
    expect_mass_delete_refusal(t.path(), &a, &b, &a, &b);
    assert_eq!(snapshot(&a.location()).message_count(), 8);
}

#[test]
fn refuses_when_a_lost_all_its_mail() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    empty_all_folders(&a);
    expect_mass_delete_refusal(t.path(), &a, &b, &b, &a);
    assert_eq!(snapshot(&b.location()).message_count(), 8);
}

/// A B replaced by a new empty Maildir (a wrong path, a disk not mounted)
/// is another store: it has none of the pair's state, so nothing is
/// deleted on A and B simply receives A's mail.
#[test]
fn an_empty_maildir_in_place_of_b_is_a_new_store_and_deletes_nothing() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    fs::remove_dir_all(&b.root).unwrap();
    Maildir::create(&b.root);
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), 8);
    assert_eq!(snapshot(&a.location()).message_count(), 8);
}

/// Expunging every message of one folder is an ordinary change, not a
/// mass delete: no refusal.
#[test]
fn emptying_one_folder_is_not_a_mass_delete() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&b.location());
        s.select("INBOX").unwrap();
        s.expunge_uids("1:*").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(s.mailbox("INBOX").messages.is_empty(), "{s:?}");
    assert_eq!(s.message_count(), 3);
}

/// A's sync state for the pair is lost (restored from an old backup,
/// deleted by hand): the run cannot tell expunges from new mail, so it
/// deletes nothing; what B expunged comes back rather than A losing mail.
#[test]
fn lost_sync_state_deletes_nothing() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    let mut removed = 0;
    for e in fs::read_dir(&a.root).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("dsync-state") {
            fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no dsync-state.* file at A's root to remove");
    fs::remove_file(file_of(&a, "m1")).unwrap();
    {
        let mut s = imap_session(&b.location());
        let u = uid_of(&mut s, "INBOX", "m2");
        s.expunge_uids(&u.to_string()).unwrap();
        s.append("INBOX", &[], None, &traced("newB")).unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    for id in ["m1", "m2", "m3", "m4", "m5", "a1", "a2", "s1", "newB"] {
        only_place(&s, id);
    }
    assert_eq!(s.message_count(), 9);
}

#[test]
fn mass_delete_goes_through_when_allowed() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    empty_all_folders(&b);
    let s = mirror_and_check(t.path(), &a, &b, &["-o", "dsync_allow_mass_delete=yes"]);
    assert_eq!(s.message_count(), 0, "{s:?}");
}

/// After a sync, unsubscribing on one side unsubscribes on both; a new
/// subscription on the other side is kept.
#[test]
fn unsubscribe_on_one_side_is_carried_over() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    {
        let mut s = imap_session(&a.location());
        s.subscribe("Archive").unwrap();
        s.subscribe("Sent").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(s.subscriptions.contains("Archive"), "{:?}", s.subscriptions);
    let gone = "Archive".to_string();
    {
        let mut s = imap_session(&b.location());
        s.unsubscribe(&gone).unwrap();
        s.logout().unwrap();
    }
    {
        let mut s = imap_session(&a.location());
        s.subscribe("INBOX").unwrap();
        s.logout().unwrap();
    }
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(
        !s.subscriptions.contains(&gone),
        "{gone} came back: {:?}",
        s.subscriptions
    );
    assert!(
        s.subscriptions.iter().any(|n| n == "INBOX"),
        "{:?}",
        s.subscriptions
    );
}

/// The state for the one peer at a side's root (main file plus journal,
/// `dsync-state.<peer>[.log]`), as its main file would hold it.
fn state_file(root: &Path) -> String {
    let mut found: Vec<String> = fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dsync-state.") && !n.ends_with(".log"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one dsync-state.* file in {}",
        root.display()
    );
    let name = found.pop().unwrap();
    let peer = name.strip_prefix("dsync-state.").unwrap();
    let st = dsync::state::load(root, peer).unwrap().unwrap();
    String::from_utf8(st.to_bytes().unwrap()).unwrap()
}

#[test]
fn both_sides_keep_the_same_state_when_only_changes_are_sent() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    assert_eq!(state_file(&a.root), state_file(&b.root));
    assert!(state_file(&a.root).contains("Drafts"));
    // Changes in some folders, a folder deleted, nothing in others: the
    // follower gets only the changed mailboxes and the deletion.
    a.folder("Archive")
        .put(&Msg::new(traced("filed")).flags("S").mtime(1_710_000_001));
    fs::remove_dir_all(a.dir_of("Drafts")).unwrap();
    mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(state_file(&a.root), state_file(&b.root));
    assert!(!state_file(&a.root).contains("Drafts"));
    // A run with nothing to do keeps both the same too.
    mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(state_file(&a.root), state_file(&b.root));
}

#[test]
fn mail_changed_during_the_run_exits_2_and_the_next_run_finishes() {
    require_dovecot!();
    let t = tempdir();
    let (a, b) = synced_pair(t.path());
    // New on A, so the run copies it to B: it vanishes (a client deleted
    // it) after the run read A and before it copied anything.
    let fleeting = a
        .inbox()
        .put(&Msg::new(traced("fleeting")).flags("S").mtime(1_710_000_000));
    a.folder("Archive")
        .put(&Msg::new(traced("steady")).mtime(1_710_000_001));
    let pause = t.path().join("pause");
    let conf = common::run::write_config(t.path(), Some(&a.location()));
    let child = std::process::Command::new(common::run::binary())
        .arg("-c")
        .arg(&conf)
        .args(["mirror", &b.location()])
        .current_dir(t.path())
        .env("HOME", t.path())
        .env("DSYNC_TEST_PAUSE", &pause)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !pause.exists() {
        assert!(start.elapsed().as_secs() < 30, "the run never paused");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    fs::remove_file(&fleeting).unwrap();
    fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("running dsync again will finish the job"),
        "stderr:\n{stderr}"
    );
    // Everything else was done, and the next run converges.
    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert!(!has(&s, "fleeting"));
    assert_eq!(only_place(&s, "steady").0, "Archive");
    assert_eq!(s.message_count(), 9);
}
