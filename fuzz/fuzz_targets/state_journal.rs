#![no_main]
//! The state journal (`dsync-state.<peer>.log`) is read from disk after
//! crashes and by hand edits: any bytes must give an error or a state that
//! still writes out and parses back, never a panic.
use dsync::state::{journal, SyncState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line names the token the journal must chain from; the rest
    // is the journal itself.
    let (token, log) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"t0"[..], data),
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    let _ = journal::frames(log, token.as_bytes());
    let mut st = SyncState::new(token.to_string());
    if journal::replay(&mut st, log).is_ok() {
        if let Ok(bytes) = st.to_bytes() {
            let again = SyncState::parse(&bytes).expect("a written state must parse");
            assert_eq!(again, st);
        }
    }
});
