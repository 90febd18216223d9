//! `-C alt_char` (`dsync_alt_char`): a mailbox name the destination store
//! cannot hold (`a.b` under Maildir++, where `.` is the separator on disk)
//! is stored with the alternative character (`a_b`), reported once, and
//! matched to the original on every later run: no renames back and forth,
//! no duplicates, no deletes. Judged by Dovecot serving both sides.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::{binary, dsync, write_config, Run};
use common::snapshot::{assert_same, MailSnapshot};
use std::path::Path;

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// An fs-layout Maildir (where `.` is an ordinary character) holding,
/// through Dovecot: INBOX, `a.b` and `Top/c.d` with messages.
fn fs_store_with_dotted_names(path: &Path) -> String {
    std::fs::create_dir_all(path).unwrap();
    let loc = format!("maildir:{}:LAYOUT=fs", path.display());
    let mut s = imap_session(&loc);
    s.create("a.b").unwrap();
    s.create("Top").unwrap();
    s.create("Top/c.d").unwrap();
    s.subscribe("a.b").unwrap();
    for i in 0..3 {
        s.append("a.b", &["\\Seen"], None, &message(&format!("ab {i}")))
            .unwrap();
    }
    s.append("Top/c.d", &["\\Flagged"], None, &message("cd 0"))
        .unwrap();
    s.append("INBOX", &[], None, &message("inbox 0")).unwrap();
    s.logout().unwrap();
    loc
}

/// `snap` with mailboxes (and subscriptions) renamed as `names` says.
fn renamed(snap: &MailSnapshot, names: &[(&str, &str)]) -> MailSnapshot {
    let map = |n: &str| {
        names
            .iter()
            .find(|(from, _)| *from == n)
            .map_or(n.to_string(), |(_, to)| to.to_string())
    };
    let mut out = snap.clone();
    out.mailboxes = snap
        .mailboxes
        .iter()
        .map(|(n, m)| (map(n), m.clone()))
        .collect();
    out.subscriptions = snap.subscriptions.iter().map(|n| map(n)).collect();
    out
}

fn names(snap: &MailSnapshot) -> Vec<String> {
    snap.mailboxes.keys().cloned().collect()
}

fn append(loc: &str, mailbox: &str, subject: &str) {
    let mut s = imap_session(loc);
    s.append(mailbox, &[], None, &message(subject)).unwrap();
    s.logout().unwrap();
}

fn subjects(snap: &MailSnapshot, mailbox: &str) -> Vec<String> {
    let mut v: Vec<String> = snap
        .mailbox(mailbox)
        .messages
        .values()
        .map(|m| m.subject.clone())
        .collect();
    v.sort();
    v
}

/// How often the run warned that a mailbox is stored as `stored`.
fn warnings(run: &Run, stored: &str) -> usize {
    let needle = format!("stored there as {stored} ");
    run.stderr.lines().filter(|l| l.contains(&needle)).count()
}

const AB: &[(&str, &str)] = &[("a.b", "a_b"), ("Top/c.d", "Top/c_d")];

#[test]
fn backup_into_maildirpp_stores_alt_names_once() {
    require_dovecot!();
    let t = tempdir();
    let src = fs_store_with_dotted_names(&t.path().join("fs"));
    let dst = Maildir::at(t.path().join("dst")).location();
    let first = dsync(t.path(), Some(&src), &["-C", "_", "backup", &dst]);
    first.expect_ok();
    assert_eq!(warnings(&first, "a_b"), 1, "{}", first.stderr);
    assert_eq!(warnings(&first, "Top/c_d"), 1, "{}", first.stderr);
    let original = common::snapshot::snapshot(&src);
    let copy = common::snapshot::snapshot(&dst);
    assert_eq!(names(&copy), vec!["INBOX", "Top", "Top/c_d", "a_b"]);
    assert_same(&renamed(&original, AB), &copy);
    assert!(t.path().join("dst/.a_b/cur").is_dir());

    // A second run finds nothing to do and says nothing about names.
    let again = dsync(t.path(), Some(&src), &["-C", "_", "backup", &dst]);
    again.expect_ok();
    assert_eq!(warnings(&again, "a_b"), 0, "{}", again.stderr);
    assert_same(&copy, &common::snapshot::snapshot(&dst));

    // New mail in a.b reaches a_b.
    append(&src, "a.b", "ab new");
    dsync(t.path(), Some(&src), &["-C", "_", "backup", &dst]).expect_ok();
    let copy = common::snapshot::snapshot(&dst);
    assert_same(&renamed(&common::snapshot::snapshot(&src), AB), &copy);
    assert_eq!(subjects(&copy, "a_b").len(), 4);
}

#[test]
fn backup_pulled_into_a_local_maildirpp() {
    require_dovecot!();
    let t = tempdir();
    let fs = fs_store_with_dotted_names(&t.path().join("fs"));
    let local = Maildir::at(t.path().join("local")).location();
    // The local side (the leader) is the one that cannot hold the names.
    dsync(t.path(), Some(&local), &["-R", "backup", &fs]).expect_ok();
    let copy = common::snapshot::snapshot(&local);
    assert_same(&renamed(&common::snapshot::snapshot(&fs), AB), &copy);
    dsync(t.path(), Some(&local), &["-R", "backup", &fs]).expect_ok();
    assert_same(&copy, &common::snapshot::snapshot(&local));
}

#[test]
fn mirror_with_a_maildirpp_side_keeps_the_names_matched() {
    require_dovecot!();
    let t = tempdir();
    let fs = fs_store_with_dotted_names(&t.path().join("fs"));
    let pp = Maildir::at(t.path().join("pp")).location();
    // No -C: Dovecot's default dsync_alt_char is `_`.
    let first = dsync(t.path(), Some(&fs), &["mirror", &pp]);
    first.expect_ok();
    assert_eq!(warnings(&first, "a_b"), 1, "{}", first.stderr);
    let check = || {
        let (a, b) = (
            common::snapshot::snapshot(&fs),
            common::snapshot::snapshot(&pp),
        );
        assert_same(&renamed(&a, AB), &b);
        (a, b)
    };
    let (_, b) = check();
    assert_eq!(names(&b), vec!["INBOX", "Top", "Top/c_d", "a_b"]);

    let again = dsync(t.path(), Some(&fs), &["mirror", &pp]);
    again.expect_ok();
    assert_eq!(warnings(&again, "a_b"), 0, "{}", again.stderr);
    let (a, _) = check();
    assert_eq!(names(&a), vec!["INBOX", "Top", "Top/c.d", "a.b"]);

    // New mail on either side reaches the other.
    append(&pp, "a_b", "from pp");
    append(&fs, "Top/c.d", "from fs");
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    let (a, b) = check();
    assert!(subjects(&a, "a.b").contains(&"from pp".to_string()));
    assert!(subjects(&b, "Top/c_d").contains(&"from fs".to_string()));
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    check();

    // A real rename on either side still travels.
    {
        let mut s = imap_session(&fs);
        s.rename("a.b", "e.f").unwrap();
        s.logout().unwrap();
    }
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    let names_ef: &[(&str, &str)] = &[("e.f", "e_f"), ("Top/c.d", "Top/c_d")];
    let b = common::snapshot::snapshot(&pp);
    assert_same(&renamed(&common::snapshot::snapshot(&fs), names_ef), &b);
    assert_eq!(names(&b), vec!["INBOX", "Top", "Top/c_d", "e_f"]);
    {
        let mut s = imap_session(&pp);
        s.rename("e_f", "g").unwrap();
        s.logout().unwrap();
    }
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    let a = common::snapshot::snapshot(&fs);
    let names_g: &[(&str, &str)] = &[("Top/c.d", "Top/c_d")];
    assert_same(&renamed(&a, names_g), &common::snapshot::snapshot(&pp));
    assert_eq!(names(&a), vec!["INBOX", "Top", "Top/c.d", "g"]);
    assert_eq!(subjects(&a, "g").len(), 4);
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    assert_same(&a, &common::snapshot::snapshot(&fs));
}

#[test]
fn mirror_led_by_the_side_that_cannot_hold_the_names() {
    require_dovecot!();
    let t = tempdir();
    let fs = fs_store_with_dotted_names(&t.path().join("fs"));
    let pp = Maildir::at(t.path().join("pp")).location();
    dsync(t.path(), Some(&pp), &["mirror", &fs]).expect_ok();
    let check = || {
        let (a, b) = (
            common::snapshot::snapshot(&pp),
            common::snapshot::snapshot(&fs),
        );
        assert_same(&a, &renamed(&b, AB));
        (a, b)
    };
    check();
    dsync(t.path(), Some(&pp), &["mirror", &fs]).expect_ok();
    check();
    append(&pp, "a_b", "from pp");
    append(&fs, "a.b", "from fs");
    dsync(t.path(), Some(&pp), &["mirror", &fs]).expect_ok();
    let (a, b) = check();
    assert_eq!(subjects(&a, "a_b").len(), 5);
    assert_eq!(names(&b), vec!["INBOX", "Top", "Top/c.d", "a.b"]);
}

#[test]
fn another_alt_char_reaches_a_follower_with_its_own_config() {
    require_dovecot!();
    let t = tempdir();
    let src = fs_store_with_dotted_names(&t.path().join("fs"));
    let dst = Maildir::at(t.path().join("dst")).location();
    // The follower is a separate `dsync server` whose configuration says
    // nothing about dsync_alt_char: it takes the leader's (as Dovecot does).
    let remote_dir = t.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let conf2 = write_config(&remote_dir, Some(&dst));
    let bin = binary().display().to_string();
    let conf2 = conf2.display().to_string();
    let run = dsync(
        t.path(),
        Some(&src),
        &["-C", "+", "backup", &bin, "-c", &conf2, "server"],
    );
    run.expect_ok();
    let plus: &[(&str, &str)] = &[("a.b", "a+b"), ("Top/c.d", "Top/c+d")];
    let copy = common::snapshot::snapshot(&dst);
    assert_same(&renamed(&common::snapshot::snapshot(&src), plus), &copy);
    dsync(
        t.path(),
        Some(&src),
        &["-C", "+", "backup", &bin, "-c", &conf2, "server"],
    )
    .expect_ok();
    assert_same(&copy, &common::snapshot::snapshot(&dst));
}

#[test]
fn two_names_the_destination_would_store_alike_are_not_merged() {
    require_dovecot!();
    let t = tempdir();
    let src = fs_store_with_dotted_names(&t.path().join("fs"));
    {
        let mut s = imap_session(&src);
        s.create("a_b").unwrap();
        s.append("a_b", &[], None, &message("the real a_b"))
            .unwrap();
        s.logout().unwrap();
    }
    let dst = Maildir::at(t.path().join("dst")).location();
    // a.b would become a_b, which the source has as well: a_b keeps its
    // name, a.b is left out and reported (exit 2), nothing is mixed.
    dsync(t.path(), Some(&src), &["backup", &dst])
        .expect_code(2)
        .expect_stderr_contains("mailbox a.b is not backed up");
    let copy = common::snapshot::snapshot(&dst);
    assert_eq!(names(&copy), vec!["INBOX", "Top", "Top/c_d", "a_b"]);
    assert_eq!(subjects(&copy, "a_b"), vec!["the real a_b".to_string()]);
}

#[test]
fn a_folder_deleted_and_created_again_under_the_same_name_is_replaced() {
    require_dovecot!();
    let t = tempdir();
    let fs = fs_store_with_dotted_names(&t.path().join("fs"));
    let pp = Maildir::at(t.path().join("pp")).location();
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    {
        let mut s = imap_session(&fs);
        s.delete("a.b").unwrap();
        s.create("a.b").unwrap();
        s.append("a.b", &[], None, &message("new a.b")).unwrap();
        s.logout().unwrap();
    }
    // The old a_b goes (the state knew it), the new a.b takes its name.
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    let b = common::snapshot::snapshot(&pp);
    assert_same(&renamed(&common::snapshot::snapshot(&fs), AB), &b);
    assert_eq!(subjects(&b, "a_b"), vec!["new a.b".to_string()]);
    dsync(t.path(), Some(&fs), &["mirror", &pp]).expect_ok();
    assert_same(&b, &common::snapshot::snapshot(&pp));
}

/// Over ssh, the remote side (its own configuration) is the one that
/// cannot hold the names; the leader's `-C` is used there.
#[test]
fn mirror_over_ssh_with_the_remote_side_altering_names() {
    require_dovecot!();
    require_sshd!();
    use common::sshd::{Sshd, HOST};
    use std::os::unix::fs::PermissionsExt;
    let t = tempdir();
    let sshd = Sshd::start(t.path());
    let fs = fs_store_with_dotted_names(&t.path().join("fs"));
    let pp = Maildir::at(t.path().join("pp")).location();
    let rdir = t.path().join("remote");
    std::fs::create_dir_all(&rdir).unwrap();
    std::fs::set_permissions(&rdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rconf = write_config(&rdir, Some(&pp));
    let cmd = format!(
        "dsync_remote_cmd=ssh -F {} %{{host}} dsync -c {} -u %{{user}} server",
        sshd.ssh_config.display(),
        rconf.display()
    );
    let mirror = || {
        dsync(
            t.path(),
            Some(&fs),
            &["-C", "+", "-o", &cmd, "mirror", HOST],
        )
    };
    mirror().expect_ok();
    let plus: &[(&str, &str)] = &[("a.b", "a+b"), ("Top/c.d", "Top/c+d")];
    let check = || {
        let b = common::snapshot::snapshot(&pp);
        assert_same(&renamed(&common::snapshot::snapshot(&fs), plus), &b);
        b
    };
    check();
    mirror().expect_ok();
    append(&pp, "a+b", "far");
    append(&fs, "a.b", "near");
    mirror().expect_ok();
    let b = check();
    assert_eq!(subjects(&b, "a+b").len(), 5);
}

/// An mbox tree cannot hold a name ending like a lock file (`notes.lock`,
/// `plan.dsync`): mirrored from a Maildir, they get the alternative
/// character there and stay matched.
#[test]
fn mirror_into_mbox_alters_what_an_mbox_tree_cannot_hold() {
    require_dovecot!();
    let t = tempdir();
    std::fs::create_dir_all(t.path().join("md")).unwrap();
    let md = format!("maildir:{}:LAYOUT=fs", t.path().join("md").display());
    {
        let mut s = imap_session(&md);
        // Projects itself stays a directory (\Noselect): an mbox file
        // cannot have children.
        for (name, subject) in [("notes.lock", "notes"), ("Projects/plan.dsync", "plan")] {
            s.create(name).unwrap();
            s.append(name, &[], None, &message(subject)).unwrap();
        }
        s.logout().unwrap();
    }
    let mbox = format!(
        "mbox:{}:INBOX={}",
        t.path().join("mbox").display(),
        t.path().join("mbox/inbox").display()
    );
    let first = dsync(t.path(), Some(&md), &["mirror", &mbox]);
    first.expect_ok();
    assert_eq!(warnings(&first, "notes.lock_"), 1, "{}", first.stderr);
    let b = common::snapshot::snapshot(&mbox);
    let have: Vec<String> = names(&b);
    assert!(have.contains(&"notes.lock_".to_string()), "{have:?}");
    assert!(
        have.contains(&"Projects/plan.dsync_".to_string()),
        "{have:?}"
    );
    assert_eq!(
        subjects(&b, "Projects/plan.dsync_"),
        vec!["plan".to_string()]
    );
    dsync(t.path(), Some(&md), &["mirror", &mbox]).expect_ok();
    append(&mbox, "notes.lock_", "from mbox");
    dsync(t.path(), Some(&md), &["mirror", &mbox]).expect_ok();
    let a = common::snapshot::snapshot(&md);
    assert_eq!(subjects(&a, "notes.lock").len(), 2);
    assert_eq!(
        names(&a),
        vec!["INBOX", "Projects", "Projects/plan.dsync", "notes.lock"],
        "no duplicates on the Maildir side"
    );
    assert_eq!(names(&common::snapshot::snapshot(&mbox)), have);
}
