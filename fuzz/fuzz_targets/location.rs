//! Feeds arbitrary text to the mail_location and LOCATION2 parsers. The
//! home lies in a directory that does not exist, so format detection finds
//! nothing on disk.
#![no_main]

use std::path::Path;

use dsync::location::{expand_vars, parse_location2, parse_mail_location, Expand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ex = Expand {
        user: "fuzz@example.com",
        home: Path::new("/nonexistent-dsync-fuzz/home"),
    };
    let _ = expand_vars(text, &ex);
    let _ = parse_mail_location(text, &ex);
    let words: Vec<String> = text.split('\n').map(str::to_string).collect();
    let _ = parse_location2(&words, &ex);
    let _ = parse_location2(&[text.to_string()], &ex);
});
