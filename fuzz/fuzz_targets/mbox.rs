#![no_main]
//! The mbox reader on arbitrary files: it never panics, never loses or
//! overlaps bytes, and what it reads our writer writes back the same.
use dsync::mbox::{contents, from_line, layout, scan, write};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fn temp_file(tag: &str, data: &[u8]) -> (std::path::PathBuf, std::fs::File) {
    let p = std::env::temp_dir().join(format!("dsync-fuzz-mbox-{}-{tag}", std::process::id()));
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(data).unwrap();
    (p.clone(), std::fs::File::open(&p).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let (path, file) = temp_file("in", data);
    let mut s = scan::Scanner::new(&path, &file).unwrap();
    let mut msgs = Vec::new();
    while let Some(m) = s.next_message().unwrap() {
        msgs.push(m);
    }
    let len = data.len() as u64;
    let mut prev_end = 0u64;
    for m in &msgs {
        // In order, inside the file, never overlapping.
        assert!(m.from_offset >= prev_end && m.from_offset < m.hdr_offset);
        assert!(m.hdr_offset <= m.body_offset && m.body_offset <= m.end && m.end <= len);
        assert!(m.visible_size() <= m.end - m.hdr_offset);
        let line = &data[m.from_offset as usize..m.hdr_offset as usize];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(from_line::parse(&line[5..]).is_some());
        prev_end = m.end;
    }
    if let Ok(c) = contents::read(&path, &file) {
        assert!(c.entries.windows(2).all(|w| w[0].uid < w[1].uid));
        assert!(c.entries.iter().all(|e| e.uid < c.uidnext));
    }
    // Written back by our writer, every message with an empty line after
    // its header reads back with the same visible bytes.
    let mut out = write::Out::new(Vec::new());
    let mut kept = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let l = layout::layout(&file, &path, m.hdr_offset, m.end, false).unwrap();
        let src = write::Source {
            file: &file,
            path: &path,
            hdr: m.hdr_offset,
            end: m.end,
            layout: &l,
            strip_cr: false,
        };
        let meta = write::Meta {
            base: None,
            uid: i as u32 + 1,
            flags: Default::default(),
            recent: false,
            keywords: &[],
        };
        write::message(&mut out, &from_line::format(b"x", 0), &src, &meta).unwrap();
        let mut visible = Vec::new();
        let mut at = m.hdr_offset;
        for &(a, b) in &l.drop {
            visible.extend_from_slice(&data[at as usize..a as usize]);
            at = b;
        }
        visible.extend_from_slice(&data[at as usize..m.end as usize]);
        kept.push((l.eoh.is_some(), visible));
    }
    let (p2, f2) = temp_file("out", &out.w);
    let mut s2 = scan::Scanner::new(&p2, &f2).unwrap();
    let mut back = Vec::new();
    while let Some(m) = s2.next_message().unwrap() {
        let l = layout::layout(&f2, &p2, m.hdr_offset, m.end, false).unwrap();
        let mut visible = Vec::new();
        let mut at = m.hdr_offset;
        for &(a, b) in &l.drop {
            visible.extend_from_slice(&out.w[at as usize..a as usize]);
            at = b;
        }
        visible.extend_from_slice(&out.w[at as usize..m.end as usize]);
        back.push(visible);
    }
    assert_eq!(back.len(), kept.len(), "messages split or merged by a rewrite");
    for ((had_eoh, want), got) in kept.iter().zip(&back) {
        if *had_eoh {
            assert_eq!(want, got);
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&p2);
});
