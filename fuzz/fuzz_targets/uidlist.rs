#![no_main]
use dsync::maildir::uidlist::Uidlist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = Uidlist::parse(data) {
        let bytes = list.to_bytes();
        let again = Uidlist::parse(&bytes).expect("written uidlist must parse");
        if list.version == 3 {
            assert_eq!(again, list);
        }
    }
});
