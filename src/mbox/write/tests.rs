use super::*;
use crate::mbox::contents;
use crate::mbox::layout::layout;
use crate::mbox::reader::MessageReader;
use proptest::prelude::*;
use std::io::Read;

/// Writes `msgs` (raw message bytes, flags) as an mbox and reads it back:
/// (uid, flags, keywords, visible bytes) per message.
fn round_trip(msgs: &[(Vec<u8>, Flags, Vec<String>)]) -> Vec<(u32, Flags, Vec<String>, Vec<u8>)> {
    let d = tempfile::tempdir().unwrap();
    let src_path = d.path().join("src");
    let mut all = Vec::new();
    let mut ranges = Vec::new();
    for (m, _, _) in msgs {
        ranges.push((all.len() as u64, (all.len() + m.len()) as u64));
        all.extend_from_slice(m);
    }
    std::fs::write(&src_path, &all).unwrap();
    let src = File::open(&src_path).unwrap();
    let mut kws: Vec<String> = msgs.iter().flat_map(|m| m.2.clone()).collect();
    kws.sort();
    kws.dedup();
    let base = ImapBase {
        uidvalidity: 99,
        last_uid: msgs.len() as u32 + 5,
        keywords: kws,
    };
    let mbox = d.path().join("mbox");
    let mut out = Out::new(Vec::new());
    if msgs.is_empty() {
        pseudo(&mut out, &base, 1_000_000_000).unwrap();
    }
    for (i, ((_, flags, kw), (a, b))) in msgs.iter().zip(&ranges).enumerate() {
        let l = layout(&src, &src_path, *a, *b, true).unwrap();
        let from = from_line::format(b"x@y", 1_000_000_000 + i as i64);
        message(
            &mut out,
            &from,
            &Source {
                file: &src,
                path: &src_path,
                hdr: *a,
                end: *b,
                layout: &l,
                strip_cr: false,
            },
            &Meta {
                base: (i == 0).then_some(&base),
                uid: i as u32 + 2,
                flags: *flags,
                recent: i % 2 == 0,
                keywords: kw,
            },
        )
        .unwrap();
    }
    std::fs::write(&mbox, &out.w).unwrap();
    let f = File::open(&mbox).unwrap();
    let c = contents::read(&mbox, &f).unwrap();
    assert!(!c.needs_write);
    assert_eq!(c.uidvalidity, Some(99));
    assert_eq!(c.uidnext, msgs.len() as u32 + 6);
    assert_eq!(c.pseudo.is_some(), msgs.is_empty());
    c.entries
        .iter()
        .map(|e| {
            let l = layout(&f, &mbox, e.msg.hdr_offset, e.msg.end, false).unwrap();
            let mut r = MessageReader::new(
                File::open(&mbox).unwrap(),
                e.msg.hdr_offset,
                e.msg.end,
                &l.drop,
            );
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            assert_eq!(v.len() as u64, e.msg.visible_size());
            assert_eq!(e.msg.from.sender, b"x@y");
            (e.uid, e.flags, e.keywords.clone(), v)
        })
        .collect()
}

#[test]
fn plain_messages() {
    let msgs = vec![
        (
            b"Subject: a\n\nFrom me, hello\nFrom x Thu Nov 29 22:33:52 2001\n".to_vec(),
            Flags::SEEN,
            vec!["work".to_string()],
        ),
        (
            b"Subject: b\r\n\r\nbody\r\n".to_vec(),
            Flags::FLAGGED.union(Flags::DELETED),
            vec![],
        ),
        (
            b"Subject: c\n\nno final newline".to_vec(),
            Flags::empty(),
            vec![],
        ),
        (b"Subject: d".to_vec(), Flags::DRAFT, vec![]),
        (b"".to_vec(), Flags::ANSWERED, vec![]),
    ];
    let back = round_trip(&msgs);
    assert_eq!(back.len(), 5);
    assert_eq!(back[0].3, msgs[0].0);
    assert_eq!(back[0].2, vec!["work"]);
    assert_eq!(back[0].1, Flags::SEEN);
    assert_eq!(back[1].3, msgs[1].0);
    assert_eq!(back[1].1, Flags::FLAGGED.union(Flags::DELETED));
    assert_eq!(back[2].3, msgs[2].0);
    // No empty line after the header: one is added, as Dovecot does.
    assert_eq!(back[3].3, b"Subject: d\n\n");
    assert_eq!(back[4].3, b"\n");
    assert_eq!(
        back.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
}

#[test]
fn metadata_in_messages_is_replaced() {
    let msgs = vec![(
        b"X-UID: 77\nStatus: RO\nSubject: a\nX-Keywords: evil\nContent-Length: 1\n\nbody\n"
            .to_vec(),
        Flags::empty(),
        vec![],
    )];
    let back = round_trip(&msgs);
    assert_eq!(back[0].0, 2);
    assert_eq!(back[0].1, Flags::empty());
    assert_eq!(back[0].3, b"Subject: a\n\nbody\n");
}

#[test]
fn empty_mailbox_is_a_pseudo_message() {
    assert!(round_trip(&[]).is_empty());
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"From x Thu Nov 29 22:33:52 2001\n".to_vec()),
        Just(b">From x Thu Nov 29 22:33:52 2001\n".to_vec()),
        Just(b"From nobody\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"X-UID: 5\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
        "[a-zA-Z :]{0,30}\n".prop_map(|s| s.into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Any body, however many From_-like lines it has, comes back as it
    /// was written: never split, never merged, never changed.
    #[test]
    fn bodies_survive(bodies in proptest::collection::vec(
        proptest::collection::vec(line(), 0..8).prop_map(|v| v.concat()), 1..5))
    {
        let msgs: Vec<_> = bodies
            .iter()
            .map(|b| {
                let mut m = b"Subject: s\n\n".to_vec();
                m.extend_from_slice(b);
                (m, Flags::empty(), vec![])
            })
            .collect();
        let back = round_trip(&msgs);
        prop_assert_eq!(back.len(), msgs.len());
        for (m, b) in msgs.iter().zip(&back) {
            prop_assert_eq!(&m.0, &b.3);
        }
    }
}
