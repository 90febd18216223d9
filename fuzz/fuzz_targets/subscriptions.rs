#![no_main]
use dsync::maildir::subscriptions::Subscriptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for sep in [b'.', b'/'] {
        let s = Subscriptions::parse(data, sep);
        let again = Subscriptions::parse(&Subscriptions::to_bytes(&s.names), sep);
        assert_eq!(again.names, s.names);
        assert!(again.invalid.is_empty());
    }
});
