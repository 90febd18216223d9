//! Feeds arbitrary text to the Dovecot config parser. Includes are not
//! followed and the origin lies in a directory that does not exist, so a
//! run reads nothing from disk; `<file` values are never read because the
//! parser reads them lazily and this target does not ask for them.
#![no_main]

use std::path::Path;

use dsync::config::{Config, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/nonexistent-dsync-fuzz/dovecot.conf");
    let opts = ParseOptions {
        follow_includes: false,
    };
    if let Ok(config) = Config::parse_str_with(text, origin, opts) {
        let _ = config.get("mail_location");
        let _ = config.inbox_namespace();
        let _ = config.alt_char();
    }
});
