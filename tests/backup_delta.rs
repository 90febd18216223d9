//! `dsync backup` by deltas: after a first backup both sides hold the
//! pair's common state (the same state files mirror uses), and the next
//! backup reads only what differs from it. Judged by real Dovecot: the
//! destination must equal the source (messages, flags, keywords, UIDs)
//! whichever way the run read the mailboxes. `-v` says which way it did.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::pair::mirror;
use common::run::{dsync, Run};
use std::fs;
use std::path::Path;

const BY_DELTA: &str = "reading by delta";

/// `dsync -c CONF -o mail_location=SRC -v OPTS… backup DEST`.
fn backup(t: &Path, src: &Maildir, opts: &[&str], dst: &Maildir) -> Run {
    let mut args: Vec<&str> = vec!["-v"];
    args.extend_from_slice(opts);
    let d = dst.location();
    args.push("backup");
    args.push(&d);
    let run = dsync(t, Some(&src.location()), &args);
    run.expect_ok();
    run
}

fn pair(t: &Path) -> (Maildir, Maildir) {
    (Maildir::at(t.join("src")), Maildir::at(t.join("dest")))
}

/// New mail, flag and keyword changes and expunges in a Maildir's INBOX
/// and one other folder, through Dovecot as a client would make them.
fn change(md: &Maildir, tag: &str, uids: (&str, &str, &str)) {
    let (flag, unflag, expunge) = uids;
    let mut imap = imap_session(&md.location());
    imap.select("INBOX").unwrap();
    imap.store(flag, "+FLAGS", &["\\Flagged", &format!("${tag}")])
        .unwrap();
    imap.store(unflag, "-FLAGS", &["\\Seen"]).unwrap();
    imap.expunge_uids(expunge).unwrap();
    imap.append(
        "INBOX",
        &["\\Seen"],
        None,
        format!("Subject: new on {tag}\r\n\r\nbody\r\n").as_bytes(),
    )
    .unwrap();
    imap.select("Sent").unwrap();
    imap.store("1", "+FLAGS", &["\\Answered"]).unwrap();
    imap.logout().unwrap();
}

fn assert_equal(src: &Maildir, dst: &Maildir) {
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

/// The state files (`dsync-state.<peer>`) at a store's root.
fn state_files(md: &Maildir) -> Vec<std::path::PathBuf> {
    fs::read_dir(&md.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dsync-state.") && !n.ends_with(".log"))
        })
        .collect()
}

#[test]
fn second_backup_reads_by_delta_and_reverts_the_destination() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 301, 20);
    let first = backup(t.path(), &src, &[], &dst);
    assert!(!first.stderr.contains(BY_DELTA), "{}", first.stderr);
    assert_eq!(state_files(&src).len(), 1, "the source keeps the state");
    assert_eq!(state_files(&dst).len(), 1, "the destination keeps it too");
    assert_equal(&src, &dst);

    // Changes on both sides; the destination's are undone. UID 6 is
    // expunged on the destination only: it comes back from the source.
    change(&src, "src", ("1:2", "3", "4"));
    change(&dst, "dst", ("2,5", "7", "6,8"));
    let second = backup(t.path(), &src, &[], &dst);
    second
        .expect_stderr_contains(BY_DELTA)
        .expect_stderr_contains("the destination lost messages");
    assert_equal(&src, &dst);

    // Only the source changes: still by delta, still equal.
    change(&src, "again", ("9", "10", "11"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);
}

#[test]
fn lost_state_on_one_side_reads_in_full_and_stays_correct() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 302, 15);
    backup(t.path(), &src, &[], &dst);
    for f in state_files(&dst) {
        fs::remove_file(f).unwrap();
    }
    change(&src, "src", ("1", "2", "3"));
    change(&dst, "dst", ("4", "5", "6"));
    let run = backup(t.path(), &src, &[], &dst);
    assert!(!run.stderr.contains(BY_DELTA), "{}", run.stderr);
    run.expect_stderr_contains("disagree");
    assert_equal(&src, &dst);
    // That run stored the state again on both sides.
    change(&src, "later", ("7", "8", "9"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);
}

#[test]
fn full_sync_option_reads_in_full() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 303, 10);
    backup(t.path(), &src, &[], &dst);
    change(&src, "src", ("1", "2", "3"));
    change(&dst, "dst", ("4", "5", "6"));
    let run = backup(t.path(), &src, &["-f"], &dst);
    assert!(!run.stderr.contains(BY_DELTA), "{}", run.stderr);
    assert_equal(&src, &dst);
    change(&src, "later", ("7", "8", "9"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);
}

#[test]
fn pull_backup_reads_by_delta() {
    require_dovecot!();
    let t = tempdir();
    // With -R the LOCATION2 side (here `b`) is the source.
    let (a, b) = pair(t.path());
    typical_maildir(&b.root, 304, 15);
    backup(t.path(), &a, &["-R"], &b);
    assert_equal(&b, &a);
    change(&b, "src", ("1:2", "3", "4"));
    change(&a, "dst", ("5", "6", "7,8"));
    backup(t.path(), &a, &["-R"], &b).expect_stderr_contains(BY_DELTA);
    assert_equal(&b, &a);
}

#[test]
fn mirror_after_backup_and_backup_after_mirror_share_the_state() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 305, 15);
    backup(t.path(), &src, &[], &dst);

    // A mirror trusts the state the backup left: an expunge on one side
    // is carried to the other (without a state nothing is deleted).
    let mut imap = imap_session(&src.location());
    imap.select("INBOX").unwrap();
    imap.expunge_uids("2").unwrap();
    imap.logout().unwrap();
    let mut imap = imap_session(&dst.location());
    imap.select("INBOX").unwrap();
    imap.expunge_uids("3").unwrap();
    imap.logout().unwrap();
    let run = mirror(t.path(), &src, &dst, &["-v"]);
    run.expect_ok();
    assert!(!run.stderr.contains("disagree"), "{}", run.stderr);
    assert_equal(&src, &dst);
    let uids = |md: &Maildir| -> Vec<u32> {
        snapshot(&md.location())
            .mailbox("INBOX")
            .messages
            .keys()
            .copied()
            .collect()
    };
    let left = uids(&src);
    assert!(
        !left.contains(&2) && !left.contains(&3),
        "both expunges carried over: {left:?}"
    );

    // A backup uses the state the mirror left.
    change(&src, "src", ("1", "4", "5"));
    change(&dst, "dst", ("6", "7", "8"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);
}

#[test]
fn backup_over_ssh_reads_by_delta() {
    require_dovecot!();
    require_sshd!();
    let t = tempdir();
    let sshd = common::sshd::Sshd::start(t.path());
    let src = typical_maildir(&t.path().join("src"), 306, 15);
    let dst = Maildir::at(t.path().join("remote-copy"));
    // The remote side reads its own config, naming the copy.
    let rdir = t.path().join("remote");
    fs::create_dir_all(&rdir).unwrap();
    let rconf = common::run::write_config(&rdir, Some(&dst.location()));
    let cmd = format!(
        "dsync_remote_cmd=ssh -F {} %{{host}} dsync -c {} -u %{{user}} server",
        sshd.ssh_config.display(),
        rconf.display()
    );
    let run = || {
        let r = dsync(
            t.path(),
            Some(&src.location()),
            &["-v", "-o", &cmd, "backup", common::sshd::HOST],
        );
        r.expect_ok();
        r
    };
    let first = run();
    assert!(!first.stderr.contains(BY_DELTA), "{}", first.stderr);
    assert_equal(&src, &dst);
    change(&src, "src", ("1:2", "3", "4"));
    change(&dst, "dst", ("5", "6", "7,8"));
    run().expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);
}

/// A backup killed at any moment (before, during or after the state is
/// written on either side) leaves a state the next run may trust or
/// rejects: the run after it makes the destination equal to the source.
#[test]
fn killed_delta_backups_leave_no_state_that_loses_changes() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 307, 300);
    backup(t.path(), &src, &[], &dst);
    let conf = common::run::write_config(t.path(), Some(&src.location()));
    for (round, delay_ms) in [2u64, 10, 25, 50, 100, 200].into_iter().enumerate() {
        let u = |k: usize| (round * 20 + k + 1).to_string();
        let (a, b, c) = (u(1), u(2), u(3));
        change(&src, &format!("src{round}"), (&a, &b, &c));
        let (a, b, c) = (u(4), u(5), u(6));
        change(&dst, &format!("dst{round}"), (&a, &b, &c));
        let mut child = std::process::Command::new(common::run::binary())
            .arg("-c")
            .arg(&conf)
            .args(["backup", &dst.location()])
            .current_dir(t.path())
            .env("HOME", t.path())
            .spawn()
            .expect("start dsync");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // A kill inside a commit leaves a lock Dovecot would wait out;
        // the next dsync run takes it over (it carries dsync's marker).
        backup(t.path(), &src, &[], &dst);
        assert_equal(&src, &dst);
    }
}

/// A destination state damaged past its first line still carries the
/// token, so the run starts by delta; the follower then cannot use it.
/// The run must neither fail nor lose anything, and the next one compares
/// everything and stores a sound state again. The same holds for mirror.
#[test]
fn a_state_damaged_past_its_first_line_fails_no_run() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = pair(t.path());
    typical_maildir(&src.root, 306, 12);
    backup(t.path(), &src, &[], &dst);
    let damage = |md: &Maildir| {
        for f in state_files(md) {
            let text = fs::read_to_string(&f).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines[2] = "garbage here";
            fs::write(&f, lines.join("\n") + "\n").unwrap();
        }
    };
    damage(&dst);
    change(&src, "src", ("1", "2", "3"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains("the next run compares everything");
    assert_equal(&src, &dst);
    change(&src, "again", ("4", "5", "6"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains("disagree");
    assert_equal(&src, &dst);
    change(&src, "third", ("7", "8", "9"));
    backup(t.path(), &src, &[], &dst).expect_stderr_contains(BY_DELTA);
    assert_equal(&src, &dst);

    // Mirror, the same way.
    damage(&dst);
    change(&src, "m1", ("1", "2", "10"));
    let loc = dst.location();
    dsync(t.path(), Some(&src.location()), &["-v", "mirror", &loc])
        .expect_ok()
        .expect_stderr_contains("the next run compares everything");
    assert_equal(&src, &dst);
    dsync(t.path(), Some(&src.location()), &["-v", "mirror", &loc])
        .expect_ok()
        .expect_stderr_contains("disagree");
    assert_equal(&src, &dst);
}
