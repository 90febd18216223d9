//! Conversion between Maildir layouts with the ordinary commands, judged by
//! Dovecot serving each result: Maildir++ to `LAYOUT=fs` and back, by
//! backup and by mirror, with nothing an IMAP client could notice.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::run::dsync;

#[test]
fn maildirpp_to_fs_layout_and_back() {
    require_dovecot!();
    let t = tempdir();
    let src = typical_maildir(&t.path().join("src"), 21, 20);
    let fs_loc = format!("maildir:{}:LAYOUT=fs", t.path().join("fs").display());
    dsync(t.path(), Some(&src.location()), &["backup", &fs_loc]).expect_ok();
    let original = snapshot(&src.location());
    assert_same(&original, &snapshot(&fs_loc));
    assert!(
        t.path().join("fs/Archive/2024/cur").is_dir(),
        "fs layout: folders as real subdirectories"
    );

    // And back into a new Maildir++ tree, reversing the roles.
    let back = Maildir::at(t.path().join("back"));
    dsync(t.path(), Some(&fs_loc), &["backup", &back.location()]).expect_ok();
    assert_same(&original, &snapshot(&back.location()));
    // A rerun in either direction changes nothing.
    dsync(t.path(), Some(&fs_loc), &["backup", &back.location()]).expect_ok();
    assert_same(&original, &snapshot(&back.location()));
}

#[test]
fn mirror_between_layouts_keeps_both_in_step() {
    require_dovecot!();
    let t = tempdir();
    let a = typical_maildir(&t.path().join("a"), 22, 10);
    let fs_loc = format!("maildir:{}:LAYOUT=fs", t.path().join("fs").display());
    dsync(t.path(), Some(&a.location()), &["mirror", &fs_loc]).expect_ok();
    assert_same(&snapshot(&a.location()), &snapshot(&fs_loc));
    // A change on the fs side, through Dovecot, comes back to Maildir++.
    {
        let mut s = imap_session(&fs_loc);
        s.select("Sent").unwrap();
        s.store("1", "+FLAGS", &["\\Flagged"]).unwrap();
        s.logout().unwrap();
    }
    dsync(t.path(), Some(&a.location()), &["mirror", &fs_loc]).expect_ok();
    assert_same(&snapshot(&a.location()), &snapshot(&fs_loc));
}
