//! Correctness at size: one INBOX of 50,000 messages is backed up, then
//! mirrored after changes on both sides, and Dovecot must serve both sides
//! identically (UIDs, flags, INTERNALDATEs, bodies). Larger sizes and the
//! timings live in `scripts/bench --single-mailbox N`.

mod common;

use common::fixtures::*;
use common::imap::*;
use common::pair::*;
use common::run::dsync;
use std::fs;

const N: usize = 50_000;

#[test]
fn fifty_thousand_messages_in_one_mailbox() {
    require_dovecot!();
    let t = tempdir();
    let a = Maildir::create(t.path().join("a"));
    let b = Maildir::at(t.path().join("b"));
    let inbox = a.inbox();
    let flags = ["", "S", "FS", "RS"];
    let paths: Vec<_> = (0..N)
        .map(|i| {
            inbox.put(
                &Msg::new(traced(&format!("m{i}")))
                    .flags(flags[i % flags.len()])
                    .mtime(1_700_000_000 + i as i64),
            )
        })
        .collect();

    dsync(t.path(), Some(&a.location()), &["backup", &b.location()]).expect_ok();
    let before = snapshot(&a.location());
    assert_eq!(before.message_count(), N);
    assert_same(&before, &snapshot(&b.location()));

    // The pair's common state, then changes on both sides: flags renamed
    // and files unlinked on A (as a mail client does), deliveries on B.
    mirror(t.path(), &a, &b, &[]).expect_ok();
    for p in paths.iter().step_by(83).take(500) {
        set_file_flags(p, "ST");
    }
    let gone: Vec<String> = (0..N)
        .skip(40)
        .step_by(166)
        .take(150)
        .map(|i| format!("m{i}"))
        .collect();
    for (i, p) in paths.iter().enumerate().skip(40).step_by(166).take(150) {
        assert!(i % 83 != 0, "a message both reflagged and unlinked");
        fs::remove_file(p).unwrap();
    }
    let b_inbox = b.inbox();
    for i in 0..300 {
        b_inbox.put(&Msg::new(traced(&format!("new{i}"))).mtime(1_710_000_000 + i));
    }

    let s = mirror_and_check(t.path(), &a, &b, &[]);
    assert_eq!(s.message_count(), N - gone.len() + 300);
    for id in &gone {
        assert!(!has(&s, id), "{id} was unlinked on A but is still there");
    }
    assert!(has(&s, "new299"));
    assert_eq!(flags_of(&s, "m83"), vec!["\\Deleted", "\\Seen"]);
}
