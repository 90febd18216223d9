//! The pair's state is kept as a main file plus a journal: a run that
//! changed a few messages appends a few lines to `dsync-state.<peer>.log`
//! on both sides instead of rewriting `dsync-state.<peer>`, and the next
//! run reads the state through the journal (still by delta).

mod common;

use common::fixtures::*;
use common::imap::*;
use common::pair::mirror;
use common::run::{dsync, Run};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const BY_DELTA: &str = "reading by delta";

fn backup(t: &Path, src: &Maildir, dst: &Maildir) -> Run {
    let d = dst.location();
    let run = dsync(t, Some(&src.location()), &["-v", "backup", &d]);
    run.expect_ok();
    run
}

/// A few flag changes, an expunge and a new message in INBOX.
fn change(md: &Maildir, tag: &str, uids: (&str, &str)) {
    let mut imap = imap_session(&md.location());
    imap.select("INBOX").unwrap();
    imap.store(uids.0, "+FLAGS", &["\\Flagged", &format!("${tag}")])
        .unwrap();
    imap.expunge_uids(uids.1).unwrap();
    imap.append(
        "INBOX",
        &["\\Seen"],
        None,
        format!("Subject: new on {tag}\r\n\r\nbody\r\n").as_bytes(),
    )
    .unwrap();
    imap.logout().unwrap();
}

/// The main state file at a side's root and its peer's ID.
fn main_file(md: &Maildir) -> (PathBuf, String) {
    let mut found: Vec<(PathBuf, String)> = fs::read_dir(&md.root)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let peer = n.strip_prefix("dsync-state.")?.to_string();
            (!peer.ends_with(".log")).then(|| (e.path(), peer))
        })
        .collect();
    assert_eq!(found.len(), 1, "one state file in {}", md.root.display());
    found.pop().unwrap()
}

/// The main file's identity (inode, mtime) and the journal's size.
fn files(md: &Maildir) -> ((u64, i64, i64), u64) {
    let (main, _) = main_file(md);
    let m = fs::metadata(&main).unwrap();
    let mut log = main.into_os_string();
    log.push(".log");
    let j = fs::metadata(PathBuf::from(log)).map_or(0, |m| m.len());
    ((m.ino(), m.mtime(), m.mtime_nsec()), j)
}

fn loaded(md: &Maildir) -> dsync::state::SyncState {
    let (_, peer) = main_file(md);
    dsync::state::load(&md.root, &peer).unwrap().unwrap()
}

fn assert_same_state(a: &Maildir, b: &Maildir) {
    let (sa, sb) = (loaded(a), loaded(b));
    assert_eq!(sa.sync_id, sb.sync_id, "both sides hold the same token");
    assert_eq!(sa.mailboxes, sb.mailboxes, "both sides hold the same state");
}

#[test]
fn a_few_changes_append_to_the_journal_and_the_next_run_reads_by_delta() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = (
        Maildir::at(t.path().join("src")),
        Maildir::at(t.path().join("dest")),
    );
    typical_maildir(&src.root, 401, 150);
    backup(t.path(), &src, &dst);
    let (src0, j0) = files(&src);
    let (dst0, k0) = files(&dst);
    assert_eq!((j0, k0), (0, 0), "a first run writes the main files only");

    change(&src, "one", ("1:2", "3"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    let (src1, j1) = files(&src);
    let (dst1, k1) = files(&dst);
    assert_eq!(src1, src0, "the leader's main file was not rewritten");
    assert_eq!(dst1, dst0, "the follower's main file was not rewritten");
    assert!(j1 > 0 && k1 > 0, "both journals hold the run: {j1} {k1}");
    assert_same_state(&src, &dst);

    // The next backup reads the journaled state, by delta.
    change(&src, "two", ("4", "5"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    let (src2, j2) = files(&src);
    let (dst2, k2) = files(&dst);
    assert_eq!((src2, dst2), (src0, dst0), "main files untouched");
    assert!(
        j2 > j1 && k2 > k1,
        "the journals grew: {j1}->{j2}, {k1}->{k2}"
    );
    assert_same_state(&src, &dst);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));

    // A mirror trusts the journaled state (no disagreement, no base
    // mismatch) and appends too.
    change(&dst, "three", ("6", "7"));
    let run = mirror(t.path(), &src, &dst, &["-v"]);
    run.expect_ok();
    assert!(!run.stderr.contains("disagree"), "{}", run.stderr);
    assert!(!run.stderr.contains("holds another base"), "{}", run.stderr);
    let (src3, j3) = files(&src);
    let (dst3, k3) = files(&dst);
    assert_eq!((src3, dst3), (src0, dst0), "main files untouched");
    assert!(
        j3 > j2 && k3 > k2,
        "the journals grew: {j2}->{j3}, {k2}->{k3}"
    );
    assert_same_state(&src, &dst);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
    let inbox = snapshot(&src.location()).mailbox("INBOX").messages.len();
    assert!(
        !snapshot(&src.location())
            .mailbox("INBOX")
            .messages
            .contains_key(&7),
        "{inbox}"
    );

    // And a backup after it still reads by delta.
    change(&src, "four", ("8", "9"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    assert_same_state(&src, &dst);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

#[test]
fn a_large_change_compacts_the_journal_into_the_main_file() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = (
        Maildir::at(t.path().join("src")),
        Maildir::at(t.path().join("dest")),
    );
    typical_maildir(&src.root, 402, 20);
    backup(t.path(), &src, &dst);
    let (src0, _) = files(&src);
    // Most of INBOX changes: the entry would outgrow a quarter of the
    // main file, so the main file is written anew and the journal goes.
    change(&src, "many", ("1:20", "3"));
    backup(t.path(), &src, &dst);
    let (src1, j1) = files(&src);
    let (_, k1) = files(&dst);
    assert_ne!(src1, src0, "the main file was rewritten");
    assert_eq!((j1, k1), (0, 0), "no journal after a compaction");
    assert_same_state(&src, &dst);
    change(&src, "later", ("4", "5"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    assert_same_state(&src, &dst);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

/// A crash while the follower appended (its last entry torn): the
/// follower holds the old token, the leader the new one; the next run
/// compares everything, deletes nothing wrongly, and both sides end with
/// the same state again.
#[test]
fn a_torn_journal_entry_makes_the_next_run_compare_everything() {
    require_dovecot!();
    let t = tempdir();
    let (src, dst) = (
        Maildir::at(t.path().join("src")),
        Maildir::at(t.path().join("dest")),
    );
    typical_maildir(&src.root, 403, 150);
    backup(t.path(), &src, &dst);
    change(&src, "one", ("1:2", "3"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    let before = loaded(&dst).sync_id;
    let (main, _) = main_file(&dst);
    let mut log = main.into_os_string();
    log.push(".log");
    let log = PathBuf::from(log);
    let len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let after = loaded(&dst).sync_id;
    assert_ne!(before, after, "the torn entry is ignored");
    change(&src, "two", ("4", "5"));
    change(&dst, "dst", ("6", "7"));
    let run = backup(t.path(), &src, &dst);
    run.expect_stderr_contains("disagree");
    assert!(!run.stderr.contains(BY_DELTA), "{}", run.stderr);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
    assert_same_state(&src, &dst);
    change(&src, "three", ("8", "9"));
    backup(t.path(), &src, &dst).expect_stderr_contains(BY_DELTA);
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
    assert_same_state(&src, &dst);
}
