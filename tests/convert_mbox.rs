//! Conversion between Maildir and mbox with the ordinary commands, judged
//! by Dovecot serving both sides: UIDs, UIDVALIDITY, flags, keywords,
//! INTERNALDATE, bodies, sizes and subscriptions identical, and a round
//! trip creates no duplicates.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::dsync;

/// An mbox tree with INBOX inside it (the judge needs to write the INBOX
/// file's directory for its dotlocks, and owns only the location's trees).
fn mbox_loc(t: &std::path::Path, name: &str) -> String {
    format!(
        "mbox:{}:INBOX={}",
        t.join(name).display(),
        t.join(name).join("inbox").display()
    )
}

/// The snapshot without the LIST attributes that tell a file from a
/// directory: an mbox mailbox is a file and so `\NoInferiors`, where a
/// Maildir folder is `\HasNoChildren`. That is the one difference the
/// formats themselves show to clients; everything else must be equal.
fn judged(location: &str) -> common::snapshot::MailSnapshot {
    let mut s = snapshot(location);
    for m in s.mailboxes.values_mut() {
        m.attributes.retain(|a| {
            !a.eq_ignore_ascii_case("\\NoInferiors") && !a.eq_ignore_ascii_case("\\HasNoChildren")
        });
    }
    s
}

fn total_messages(s: &common::snapshot::MailSnapshot) -> usize {
    s.mailboxes.values().map(|m| m.messages.len()).sum()
}

#[test]
fn maildir_to_mbox_and_back_by_backup() {
    require_dovecot!();
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 31, 20);
    let mbox = mbox_loc(t.path(), "mbox");
    dsync(t.path(), Some(&src.location()), &["backup", &mbox]).expect_ok();
    let original = judged(&src.location());
    assert_same(&original, &judged(&mbox));
    assert!(
        t.path().join("mbox/Archive/2024").is_file(),
        "folders are mbox files"
    );

    // And back into a new Maildir, reversing the roles.
    let back = Maildir::at(t.path().join("back"));
    dsync(t.path(), Some(&mbox), &["backup", &back.location()]).expect_ok();
    assert_same(&original, &judged(&back.location()));
    // Reruns in either direction change nothing.
    dsync(t.path(), Some(&mbox), &["backup", &back.location()]).expect_ok();
    dsync(t.path(), Some(&src.location()), &["backup", &mbox]).expect_ok();
    let again = judged(&mbox);
    assert_same(&original, &again);
    assert_eq!(total_messages(&again), total_messages(&original));
}

#[test]
fn mirror_between_maildir_and_mbox_keeps_both_in_step() {
    require_dovecot!();
    let t = tempdir();
    let a = typical_maildir(&t.path().join("a"), 32, 12);
    let mbox = mbox_loc(t.path(), "mbox");
    dsync(t.path(), Some(&a.location()), &["mirror", &mbox]).expect_ok();
    assert_same(&judged(&a.location()), &judged(&mbox));
    // Changes on the mbox side, through Dovecot, come back to the Maildir.
    {
        let mut s = imap_session(&mbox);
        s.select("Sent").unwrap();
        s.store("1", "+FLAGS", &["\\Flagged", "urgent"]).unwrap();
        s.select("INBOX").unwrap();
        s.store("2", "+FLAGS", &["\\Deleted"]).unwrap();
        s.expunge_uids("2").unwrap();
        s.logout().unwrap();
    }
    // And on the Maildir side, through Dovecot, go to the mbox.
    {
        let mut s = imap_session(&a.location());
        s.select("INBOX").unwrap();
        s.store("3", "+FLAGS", &["\\Answered"]).unwrap();
        s.move_uids("4", "Sent").unwrap();
        s.logout().unwrap();
    }
    dsync(t.path(), Some(&a.location()), &["mirror", &mbox]).expect_ok();
    let left = judged(&a.location());
    assert_same(&left, &judged(&mbox));
    // Each side's changes really arrived (not just lost on both).
    let sent1 = &left.mailboxes["Sent"].messages[&1];
    assert!(sent1.flags.contains("\\Flagged"), "{:?}", sent1.flags);
    assert!(sent1.keywords.contains("urgent"), "{:?}", sent1.keywords);
    let inbox = &left.mailboxes["INBOX"].messages;
    assert!(!inbox.contains_key(&2) && !inbox.contains_key(&4));
    assert!(inbox[&3].flags.contains("\\Answered"));
    assert_eq!(left.mailboxes["Sent"].messages.len(), 4);
    let before = total_messages(&left);
    // Mirroring again (and back the other way) changes nothing.
    dsync(t.path(), Some(&mbox), &["mirror", &a.location()]).expect_ok();
    let after = judged(&mbox);
    assert_same(&left, &after);
    assert_eq!(total_messages(&after), before);
}

#[test]
fn mbox_written_by_others_converts_to_maildir() {
    require_dovecot!();
    let t = tempdir();
    // An mbox as mail programs leave it: no Dovecot headers at all,
    // ">From " quoting, a body line that looks like a From_ line.
    write_mbox(
        &t.path().join("old/inbox"),
        &[
            (
                1_500_000_000,
                b"Subject: one\n\nhello\nFrom here on\n".to_vec(),
            ),
            (
                1_500_003_600,
                b"Subject: two\nMessage-ID: <2@x>\n\nbye\n".to_vec(),
            ),
        ],
    );
    write_mbox(
        &t.path().join("old/Saved"),
        &[(1_400_000_000, b"Subject: saved\n\nkept\n".to_vec())],
    );
    let mbox = mbox_loc(t.path(), "old");
    let dst = Maildir::at(t.path().join("new"));
    dsync(t.path(), Some(&mbox), &["backup", &dst.location()]).expect_ok();
    let from_mbox = judged(&mbox);
    assert_same(&from_mbox, &judged(&dst.location()));
    assert_eq!(total_messages(&from_mbox), 3);
}

#[test]
fn bad_mbox_input_is_a_clear_error_and_changes_nothing() {
    require_dovecot!();
    let t = tempdir();
    // Text before the first From_ line: Dovecot cannot open it either.
    std::fs::create_dir_all(t.path().join("bad")).unwrap();
    std::fs::write(
        t.path().join("bad/inbox"),
        "this is not mail\nFrom a@b Thu Nov 29 22:33:52 2001\nSubject: x\n\nbody\n",
    )
    .unwrap();
    let before = std::fs::read(t.path().join("bad/inbox")).unwrap();
    let bad = mbox_loc(t.path(), "bad");
    let dst = Maildir::at(t.path().join("dst"));
    let run = dsync(t.path(), Some(&bad), &["backup", &dst.location()]);
    assert_ne!(run.code, 0);
    run.expect_stderr_contains("does not start with a \"From \" line")
        .expect_stderr_contains("at byte 0");
    assert_eq!(std::fs::read(t.path().join("bad/inbox")).unwrap(), before);

    // A truncated mbox (Content-Length beyond the end) and one without a
    // final newline: every message arrives whole, none is lost.
    std::fs::write(
        t.path().join("bad/inbox"),
        "From a@b Thu Nov 29 22:33:52 2001\nSubject: 1\n\none\n\n\
         From a@b Thu Nov 29 22:33:53 2001\nSubject: 2\nContent-Length: 500\n\ncut sh",
    )
    .unwrap();
    dsync(t.path(), Some(&bad), &["backup", &dst.location()]).expect_ok();
    let got = judged(&dst.location());
    assert_eq!(got.mailboxes["INBOX"].messages.len(), 2);
    assert_same(&judged(&bad), &got);
}
