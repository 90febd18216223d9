#![no_main]
//! File names and folder directory names from a Maildir someone else wrote.
use dsync::maildir::filename::{
    folder_rel_path, fs_dir_to_name, maildirpp_dir_to_name, Layout, MaildirFileName,
};
use dsync::maildir::mutf7;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let n = MaildirFileName::parse(s);
    assert_eq!(MaildirFileName::parse(&n.format()), n);
    let _ = (n.size(), n.vsize(), n.base());
    let _ = n.with_flags(n.flags(), n.keyword_mask()).format();

    if let Ok(d) = mutf7::decode(s) {
        assert_eq!(mutf7::encode(&d), s);
    }
    if let Some(name) = maildirpp_dir_to_name(s) {
        let _ = folder_rel_path(&name, Layout::MaildirPlusPlus);
    }
    let parts: Vec<&str> = s.split('/').collect();
    if let Some(name) = fs_dir_to_name(&parts) {
        let _ = folder_rel_path(&name, Layout::Fs);
    }
});
