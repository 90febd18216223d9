#![no_main]
//! File names and folder directory names from a Maildir someone else wrote.
use dsync::maildir::filename::{
    check_name, fix_name, folder_rel_path, fs_dir_to_name, maildirpp_dir_to_name, Layout,
    MaildirFileName,
};
use dsync::maildir::mutf7;
use dsync::model::MailboxName;
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
    // Any name from the other side can be made storable here.
    let raw: Vec<String> = s.split('/').map(str::to_string).collect();
    if let Some(name) = MailboxName::from_parts(raw) {
        for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
            let fixed = fix_name(&name, layout, '_');
            assert!(check_name(&fixed, layout).is_ok());
            assert!(folder_rel_path(&fixed, layout).is_ok());
        }
    }
    let parts: Vec<&str> = s.split('/').collect();
    if let Some(name) = fs_dir_to_name(&parts) {
        let _ = folder_rel_path(&name, Layout::Fs);
    }
});
