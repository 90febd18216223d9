//! A backup killed at any moment leaves both sides valid for Dovecot, and
//! the next run converges to an exact copy.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::{binary, dsync, write_config};
use common::snapshot::try_snapshot;
use std::process::Command;
use std::time::{Duration, Instant};

/// A source big enough that a backup takes a while: many small messages
/// plus some large ones, in several folders.
fn big_source(root: &std::path::Path) -> Maildir {
    let md = typical_maildir(root, 7, 400);
    let mut g = Gen::new(99);
    let big = md.folder("Big");
    for i in 0..6 {
        big.put(
            &Msg::new(g.message(3_000_000, Eol::Crlf))
                .flags("S")
                .mtime(1_650_000_000 + i),
        );
    }
    md
}

#[test]
fn killed_backups_leave_valid_sides_and_the_rerun_converges() {
    require_dovecot!();
    let t = tempdir();
    let src = big_source(&t.path().join("src"));
    let dst = Maildir::at(t.path().join("dest"));
    let conf = write_config(t.path(), Some(&src.location()));

    // Kill at several points of the run: early (tree, first saves), middle
    // (bodies streaming), late (commits).
    for delay_ms in [5u64, 30, 80, 150, 300] {
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .args(["backup", &dst.location()])
            .current_dir(t.path())
            .env("HOME", t.path())
            .spawn()
            .expect("start dsync");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        let _ = child.wait();

        // A kill inside a commit leaves dovecot-uidlist.lock behind, which
        // Dovecot waits out (two minutes) like a lock of a killed Dovecot.
        // It must carry dsync's owner marker, so the next run (the next
        // iteration, or the final one) removes it at once.
        let left = unmarked_locks_removed(&dst.root);
        // Otherwise both sides must be served by Dovecot without complaint.
        if left.is_empty() && dst.root.join("cur").is_dir() {
            let (_, log) = try_snapshot(&dst.location())
                .unwrap_or_else(|e| panic!("after a kill at {delay_ms} ms DEST is broken: {e}"));
            assert!(
                !log.contains("Error:"),
                "after a kill at {delay_ms} ms Dovecot complains about DEST:\n{log}"
            );
        }
        let src_left = unmarked_locks_removed(&src.root);
        if src_left.is_empty() {
            let (_, log) = try_snapshot(&src.location()).unwrap_or_else(|e| {
                panic!("after a kill at {delay_ms} ms the source is broken: {e}")
            });
            assert!(!log.contains("Error:"), "source log:\n{log}");
        }
    }

    dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &dst.location()],
    )
    .expect_ok();
    assert!(
        left_locks(&dst.root).is_empty(),
        "the rerun left locks behind"
    );
    assert_same(&snapshot(&src.location()), &snapshot(&dst.location()));
}

/// The dotlocks a killed run left under `root`, which must carry dsync's
/// owner marker so the next run removes them at once. A kill in the few
/// microseconds between creating a lock and marking it leaves an unmarked
/// one, which everybody (Dovecot included) waits out for two minutes as
/// after any crash; the test removes those, as that timeout would.
fn unmarked_locks_removed(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut marked = Vec::new();
    for lock in left_locks(root) {
        let mut marker = lock.clone().into_os_string();
        marker.push(".dsync");
        // A marker left by an earlier holder of the lock names another
        // inode: this lock was not marked yet when its dsync was killed.
        let names_this_lock = std::fs::read_to_string(&marker).is_ok_and(|m| {
            let ino = std::fs::metadata(&lock).map(|m| m.ino()).unwrap_or(0);
            m.split_whitespace().nth(1) == Some(ino.to_string().as_str())
        });
        if names_this_lock {
            marked.push(lock);
        } else {
            eprintln!(
                "unmarked lock {} (killed between create and mark)",
                lock.display()
            );
            let _ = std::fs::remove_file(&lock);
        }
    }
    marked
}

/// Every Dovecot dotlock (dovecot-uidlist.lock, dovecot-keywords.lock)
/// under `root`.
fn left_locks(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dovecot-") && n.ends_with(".lock"))
            {
                out.push(p);
            }
        }
    }
    out
}
