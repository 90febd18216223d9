#![no_main]
use dsync::state::SyncState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = SyncState::parse(data) {
        let bytes = st.to_bytes().expect("a parsed state must be writable");
        let again = SyncState::parse(&bytes).expect("a written state must parse");
        assert_eq!(again, st);
        assert_eq!(again.to_bytes().unwrap(), bytes);
    }
});
