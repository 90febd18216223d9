//! Two runs on the same mail never overlap: the second waits a bounded
//! time for the first, then fails with a clear message, changing nothing.

mod common;

use common::fixtures::*;
use common::run::dsync;
use common::tree::listing;
use std::os::unix::io::AsRawFd;

#[test]
fn a_second_run_waits_then_fails_clearly() {
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 8, 5);
    let dst = Maildir::at(t.path().join("dest"));
    dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &dst.location()],
    )
    .expect_ok();
    let before = listing(&dst.root);

    // Another run holds the destination's lock.
    let held = std::fs::File::options()
        .read(true)
        .write(true)
        .open(dst.root.join("dsync.lock"))
        .unwrap();
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    src.inbox()
        .put(&Msg::new(Gen::new(1).message(500, Eol::Lf)).flags("S"));
    let start = std::time::Instant::now();
    let r = dsync(
        t.path(),
        Some(&src.location()),
        &["-o", "dsync_lock_timeout=1", "backup", &dst.location()],
    );
    r.expect_code(1).expect_stderr_contains("another dsync");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(listing(&dst.root), before, "the destination changed");

    drop(held);
    dsync(
        t.path(),
        Some(&src.location()),
        &["backup", &dst.location()],
    )
    .expect_ok();
}
