use super::*;
use std::io::Write;

fn scan_bytes(data: &[u8]) -> (Vec<Message>, Option<(u64, u64)>, tempfile::NamedTempFile) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    let (v, pre) = scan_all(f.path()).unwrap();
    (v, pre, f)
}

fn bodies(data: &[u8]) -> Vec<Vec<u8>> {
    let (v, _, _) = scan_bytes(data);
    v.iter()
        .map(|m| data[m.hdr_offset as usize..m.end as usize].to_vec())
        .collect()
}

const F1: &str = "From a@b  Thu Nov 29 22:33:52 2001 +0000\n";
const F2: &str = "From MAILER-DAEMON Fri Nov 30 01:02:03 2001 +0000\n";

#[test]
fn two_messages_and_separators() {
    let data = format!("{F1}Subject: one\n\nbody 1\n\n{F2}Subject: two\n\nbody 2\n");
    assert_eq!(
        bodies(data.as_bytes()),
        vec![
            b"Subject: one\n\nbody 1\n".to_vec(),
            b"Subject: two\n\nbody 2".to_vec()
        ]
    );
    let (v, pre, _) = scan_bytes(data.as_bytes());
    assert_eq!(pre, None);
    assert_eq!(v[0].from.sender, b"a@b");
    assert_eq!(v[1].from.time - v[0].from.time, 2 * 3600 + 28 * 60 + 11);
    assert_eq!(v[0].body_offset - v[0].hdr_offset, 14);
}

#[test]
fn crlf_separators_and_missing_final_newline() {
    let data = format!("{F1}S: 1\r\n\r\nx\r\n\r\n{F2}S: 2\r\n\r\ny");
    assert_eq!(
        bodies(data.as_bytes()),
        vec![b"S: 1\r\n\r\nx\r\n".to_vec(), b"S: 2\r\n\r\ny".to_vec()]
    );
}

#[test]
fn invalid_from_lines_are_body_and_quoted_ones_stay() {
    let data = format!("{F1}S: 1\n\nFrom me to you\n>From a@b Thu Nov 29 22:33:52 2001\nend\n");
    assert_eq!(bodies(data.as_bytes()).len(), 1);
    assert!(bodies(data.as_bytes())[0].ends_with(b">From a@b Thu Nov 29 22:33:52 2001\nend"));
}

#[test]
fn content_length_keeps_a_from_line_in_the_body() {
    let body = format!("a\n{F2}b\n");
    let data = format!(
        "{F1}Content-Length: {}\n\n{body}\n{F2}S: 2\n\nz\n",
        body.len()
    );
    let b = bodies(data.as_bytes());
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(b[0].ends_with(body.as_bytes()));
    // Without the header the same text splits, as in Dovecot.
    let data = format!("{F1}S: 1\n\n{body}\n{F2}S: 2\n\nz\n");
    assert_eq!(bodies(data.as_bytes()).len(), 3);
    // A wrong length is ignored.
    let data = format!("{F1}Content-Length: 3\n\n{body}\n{F2}S: 2\n\nz\n");
    assert_eq!(bodies(data.as_bytes()).len(), 3);
    // At the end of the file.
    let data = format!("{F1}Content-Length: {}\n\n{body}\n", body.len());
    assert_eq!(bodies(data.as_bytes()).len(), 1);
}

#[test]
fn content_length_keeps_a_final_cr() {
    let data = format!("{F1}Content-Length: 2\n\na\r\n{F2}S: 2\n\nz\n");
    assert_eq!(bodies(data.as_bytes())[0], b"Content-Length: 2\n\na\r");
    let data = format!("{F1}S: 1\n\na\r\n{F2}S: 2\n\nz\n");
    assert_eq!(bodies(data.as_bytes())[0], b"S: 1\n\na");
}

#[test]
fn preamble_and_blank_lines() {
    let data = format!("\n\n{F1}S: 1\n\nx\n");
    let (v, pre, _) = scan_bytes(data.as_bytes());
    assert_eq!((v.len(), pre), (1, None));
    let data = format!("junk\nmore\n{F1}S: 1\n\nx\n");
    let (v, pre, _) = scan_bytes(data.as_bytes());
    assert_eq!((v.len(), pre), (1, Some((0, 10))));
    let (v, pre, _) = scan_bytes(b"not an mbox\n");
    assert_eq!((v.len(), pre), (0, Some((0, 12))));
    let (v, pre, _) = scan_bytes(b"");
    assert_eq!((v.len(), pre), (0, None));
}

#[test]
fn headers_without_body_and_empty_messages() {
    let data = format!("{F1}S: 1\n\n{F2}\n{F1}S: 3\n");
    let (v, _, _) = scan_bytes(data.as_bytes());
    assert_eq!(v.len(), 3);
    // "headers\n\nFrom": the empty line is the separator.
    assert_eq!(
        &data.as_bytes()[v[0].hdr_offset as usize..v[0].end as usize],
        b"S: 1\n"
    );
    assert_eq!(v[0].body_offset, v[0].end);
    // A message of one empty line, whose line break is the separator.
    assert_eq!(v[1].hdr_offset, v[1].end);
    assert_eq!(
        &data.as_bytes()[v[2].hdr_offset as usize..v[2].end as usize],
        b"S: 3"
    );
}

#[test]
fn the_first_line_is_never_a_separator() {
    let data = format!("{F1}{F2}S: 1\n\nx\n");
    assert_eq!(bodies(data.as_bytes()).len(), 1);
}

#[test]
fn metadata_headers() {
    let data = format!(
        "{F1}X-IMAPbase: 1234 0000000009 $Label1 work\nX-UID: 3\nStatus: RO\n\
         X-Status: AF\nX-Keywords: work\nContent-Length: 2\nSubject: s\n\nx\n\n\
         {F2}Subject: t\nX-UID: 7\n  \nStatus: O\n\ny\n"
    );
    let (v, _, _) = scan_bytes(data.as_bytes());
    let m = &v[0].meta;
    assert_eq!(m.base.as_ref().unwrap().uidvalidity, 1234);
    assert_eq!(m.base.as_ref().unwrap().last_uid, 9);
    assert_eq!((m.uid, m.uid_before_base), (Some(3), false));
    assert_eq!(m.flags.to_letters(), "FRS");
    assert!(m.old);
    assert_eq!(m.keywords, vec!["work"]);
    assert_eq!(m.content_length, Some(2));
    assert_eq!(v[0].visible_size(), b"Subject: s\n\nx\n".len() as u64);
    let m = &v[1].meta;
    // A folded X-UID: value "7\n  ".
    assert_eq!(m.uid, Some(7));
    assert_eq!(v[1].visible_size(), b"Subject: t\n\ny".len() as u64);
}

#[test]
fn header_md5_is_dovecots() {
    let data =
        format!("{F1}Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <a@b>\nSubject: s\n\nx\n");
    let (v, _, _) = scan_bytes(data.as_bytes());
    let mut m = crate::mbox::md5::Md5::new();
    m.update(b"Mon, 1 Jan 2024 00:00:00 +0000");
    m.update(b"<a@b>");
    assert_eq!(v[0].meta.md5, m.finish());
}

#[test]
fn truncated_content_length() {
    let data = format!("{F1}Content-Length: 100\n\nshort\n");
    let (v, _, _) = scan_bytes(data.as_bytes());
    assert_eq!(v.len(), 1);
    assert!(v[0].truncated);
    assert!(data.as_bytes()[..v[0].end as usize].ends_with(b"short"));
}

#[test]
fn long_lines_do_not_grow_memory_or_break_boundaries() {
    let long = "x".repeat(3 * READ_BUF + 17);
    let data = format!("{F1}S: 1\n\n{long}\n{long}\n{F2}S: 2\n\n{long}");
    let b = bodies(data.as_bytes());
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].len(), 6 + long.len());
}

#[test]
fn nul_padding_at_the_end_is_not_mail() {
    let data = format!("{F1}S: 1\n\nx\n\n\0\0\0\0");
    assert_eq!(bodies(data.as_bytes()), vec![b"S: 1\n\nx\n".to_vec()]);
    // NULs that end a line's text are the message's.
    let data = format!("{F1}S: 1\n\nx\0\0");
    assert_eq!(bodies(data.as_bytes()), vec![b"S: 1\n\nx\0\0".to_vec()]);
}

#[test]
fn a_hidden_last_line_loses_its_break_to_the_separator() {
    let data = format!("{F1}S: 1\nX-UID: 4\n{F2}S: 2\n");
    let (v, _, _) = scan_bytes(data.as_bytes());
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].visible_size(), 5);
}
