#![no_main]
use dsync::maildir::keywords::Keywords;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = Keywords::parse(data);
    assert_eq!(Keywords::parse(&k.to_bytes()), k);
});
