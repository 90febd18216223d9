//! Maildir file names and folder directory names.
//!
//! A message file is `<base>[,S=<size>][,W=<vsize>]…[:2,<flags>]`. The part
//! before the first `:` is the base name: the uidlist key and, unless the
//! uidlist has a `G` field, the message GUID. The flags after `:2,` are the
//! system flags `D F R S T` and the keyword letters `a`–`z`, in ASCII order;
//! any other character is someone else's flag and is kept.

use super::mutf7;
use crate::model::{Flags, MailboxName};

/// The info part of a file name (after the last `:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Info {
    /// No `:` at all (typical in `new/`).
    None,
    /// `2,<flags>`.
    Standard {
        flags: Flags,
        /// Bit i = keyword letter `'a' + i`.
        keywords: u32,
        /// Characters of the first flag set that are neither system flags
        /// nor keyword letters, in file order.
        unknown: String,
        /// A further flag set (from its `,` on), kept verbatim.
        rest: String,
    },
    /// An info we do not understand (e.g. `1,…`); replaced when flags are
    /// set, as Dovecot does.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirFileName {
    /// Everything before the last `:` (the whole name if there is none).
    pub stem: String,
    pub info: Info,
}

fn flag_of_letter(c: char) -> Option<Flags> {
    Flags::MAILDIR_LETTERS
        .iter()
        .find(|(l, _)| *l == c)
        .map(|(_, f)| *f)
}

impl MaildirFileName {
    pub fn parse(name: &str) -> MaildirFileName {
        let Some(colon) = name.rfind(':') else {
            return MaildirFileName {
                stem: name.to_string(),
                info: Info::None,
            };
        };
        let stem = name[..colon].to_string();
        let info = &name[colon + 1..];
        let Some(set) = info.strip_prefix("2,") else {
            return MaildirFileName {
                stem,
                info: Info::Other(info.to_string()),
            };
        };
        let (first, rest) = match set.find(',') {
            Some(i) => (&set[..i], &set[i..]),
            None => (set, ""),
        };
        let mut flags = Flags::empty();
        let mut keywords = 0u32;
        let mut unknown = String::new();
        for c in first.chars() {
            if let Some(f) = flag_of_letter(c) {
                flags.insert(f);
            } else if c.is_ascii_lowercase() {
                keywords |= 1 << (c as u32 - 'a' as u32);
            } else {
                unknown.push(c);
            }
        }
        MaildirFileName {
            stem,
            info: Info::Standard {
                flags,
                keywords,
                unknown,
                rest: rest.to_string(),
            },
        }
    }

    /// The base name: up to the first `:`.
    pub fn base(&self) -> &str {
        match self.stem.find(':') {
            Some(i) => &self.stem[..i],
            None => &self.stem,
        }
    }

    pub fn size(&self) -> Option<u64> {
        size_field(self.base(), 'S')
    }

    pub fn vsize(&self) -> Option<u64> {
        size_field(self.base(), 'W')
    }

    pub fn flags(&self) -> Flags {
        match &self.info {
            Info::Standard { flags, .. } => *flags,
            _ => Flags::empty(),
        }
    }

    pub fn keyword_mask(&self) -> u32 {
        match &self.info {
            Info::Standard { keywords, .. } => *keywords,
            _ => 0,
        }
    }

    /// The same file with other flags: unknown flag characters stay where
    /// they were, the new letters go into ASCII order around them.
    pub fn with_flags(&self, flags: Flags, keywords: u32) -> MaildirFileName {
        let (unknown, rest) = match &self.info {
            Info::Standard { unknown, rest, .. } => (unknown.clone(), rest.clone()),
            _ => (String::new(), String::new()),
        };
        MaildirFileName {
            stem: self.stem.clone(),
            info: Info::Standard {
                flags,
                keywords,
                unknown,
                rest,
            },
        }
    }

    pub fn format(&self) -> String {
        let mut s = String::with_capacity(self.stem.len() + 12);
        s.push_str(&self.stem);
        match &self.info {
            Info::None => {}
            Info::Other(o) => {
                s.push(':');
                s.push_str(o);
            }
            Info::Standard {
                flags,
                keywords,
                unknown,
                rest,
            } => {
                s.push_str(":2,");
                push_flag_set(&mut s, *flags, *keywords, unknown);
                s.push_str(rest);
            }
        }
        s
    }
}

/// Merges the known letters into the unknown ones the way Dovecot does
/// (maildir-filename-flags.c): before each unknown character, emit every
/// pending known letter that sorts before it.
fn push_flag_set(s: &mut String, flags: Flags, keywords: u32, unknown: &str) {
    let mut left: Vec<char> = Flags::MAILDIR_LETTERS
        .iter()
        .filter(|(_, f)| flags.contains(*f))
        .map(|(c, _)| *c)
        .collect();
    left.extend(
        (0..26)
            .filter(|i| keywords & (1 << i) != 0)
            .map(|i| (b'a' + i as u8) as char),
    );
    let mut pending = left.into_iter().peekable();
    for u in unknown.chars() {
        while let Some(&c) = pending.peek() {
            if c < u {
                s.push(c);
                pending.next();
            } else {
                break;
            }
        }
        s.push(u);
    }
    s.extend(pending);
}

/// The flags and keyword letters of a file name, or of its part from the
/// end of the base name on, as [`MaildirFileName::parse`] reads them but
/// without building one (a snapshot of a huge folder does this per file).
pub fn flags_of(name: &str) -> (Flags, u32) {
    let Some(colon) = name.rfind(':') else {
        return (Flags::empty(), 0);
    };
    let Some(set) = name[colon + 1..].strip_prefix("2,") else {
        return (Flags::empty(), 0);
    };
    let first = set.split(',').next().unwrap_or("");
    let mut flags = Flags::empty();
    let mut keywords = 0u32;
    for c in first.chars() {
        if let Some(f) = flag_of_letter(c) {
            flags.insert(f);
        } else if c.is_ascii_lowercase() {
            keywords |= 1 << (c as u32 - 'a' as u32);
        }
    }
    (flags, keywords)
}

/// `,S=<n>` / `,W=<n>` in a base name, as Dovecot reads them: the digits
/// must end at `,`, `:` or the end of the name.
pub fn size_field(base: &str, key: char) -> Option<u64> {
    let pat = [',', key, '='];
    let b = base.as_bytes();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i] == pat[0] as u8 && b[i + 1] == pat[1] as u8 && b[i + 2] == pat[2] as u8 {
            let digits: &str = &base[i + 3..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            let after = digits[end..].chars().next();
            if end == 0 || !matches!(after, None | Some(',') | Some(':')) {
                return None;
            }
            return digits[..end].parse().ok();
        }
        i += 1;
    }
    None
}

/// Whether `s` can be used verbatim as a file's base name (a message GUID
/// that came from another store): printable ASCII without space, `/` or
/// `:`, not starting with `.`, and short enough for any filesystem once
/// flags are appended.
pub fn valid_base_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'/' && b != b':')
}

/// A new unique base name in Dovecot's style: `<secs>.M<usecs>P<pid>.<host>`.
/// `counter` disambiguates names made within one microsecond.
pub fn generate_base(secs: u64, usecs: u32, pid: u32, host: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| match c {
            '/' => '\\',
            ':' => '-',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    format!("{secs}.M{usecs}P{pid}.{host}")
}

/// The order in which Dovecot gives UIDs to new files: by the leading
/// timestamp, then by the microseconds in `.M<usecs>`, then by base name
/// (maildir-filename.c `maildir_filename_sort_cmp`).
pub fn dovecot_sort_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (u64, &str) {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let mut secs: u64 = 0;
        for d in s[..end].bytes() {
            secs = secs.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        }
        (secs, &s[end..])
    }
    fn usecs(s: &str) -> Option<u64> {
        let s = s.strip_prefix('.')?;
        let uniq_end = s.find(['.', ':']).unwrap_or(s.len());
        let uniq = &s[..uniq_end];
        let m = uniq.find('M')?;
        let digits = &uniq[m + 1..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        let mut v: u64 = 0;
        for d in digits[..end].bytes() {
            v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        }
        Some(v)
    }
    fn base(s: &str) -> &str {
        s.split(':').next().unwrap_or(s)
    }
    let (sa, ra) = split(a);
    let (sb, rb) = split(b);
    sa.cmp(&sb)
        .then_with(|| match (usecs(ra), usecs(rb)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => std::cmp::Ordering::Equal,
        })
        .then_with(|| base(ra).cmp(base(rb)))
}

/// Directory layouts for folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `.Parent.Child` directly under the root.
    MaildirPlusPlus,
    /// `Parent/Child` as real subdirectories.
    Fs,
}

/// Why a mailbox name cannot be stored in a layout.
pub fn check_name(name: &MailboxName, layout: Layout) -> Result<(), String> {
    let first = &name.parts()[0];
    if first.eq_ignore_ascii_case("INBOX") && first != "INBOX" {
        // Stored as `.inbox` it would never be found again (INBOX is
        // case-insensitive); callers normalise it to "INBOX".
        return Err(format!(
            "mailbox name {name:?}: INBOX must be spelled \"INBOX\""
        ));
    }
    for p in name.parts() {
        if p.contains('/') || p.contains('\0') {
            return Err(format!(
                "mailbox name {name:?}: '/' and NUL are not allowed in a part"
            ));
        }
        match layout {
            Layout::MaildirPlusPlus => {
                if p.contains('.') {
                    return Err(format!(
                        "mailbox name {name:?}: '.' is not allowed with the Maildir++ layout"
                    ));
                }
            }
            Layout::Fs => {
                let e = mutf7::encode(p);
                if e.starts_with('.') || matches!(e.as_str(), "cur" | "new" | "tmp") {
                    return Err(format!(
                        "mailbox name {name:?}: part {p:?} is reserved in the fs layout"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A name this layout can store, made from `name` the way Dovecot's dsync
/// fixes names from the other side (dsync-brain-mailbox-tree.c): control
/// characters, the layout's own separator (`.` for Maildir++) and `/`
/// become `alt_char`; a part that is still reserved (`cur`, `new`, `tmp`,
/// a leading `.` in the fs layout) gets a `_` in front. Valid names come
/// back unchanged.
pub fn fix_name(name: &MailboxName, layout: Layout, alt_char: char) -> MailboxName {
    if check_name(name, layout).is_ok()
        && !name.parts().iter().any(|p| p.chars().any(char::is_control))
    {
        return name.clone();
    }
    let parts = name
        .parts()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 && p.eq_ignore_ascii_case("INBOX") {
                return "INBOX".to_string();
            }
            let mut q: String = p
                .chars()
                .map(|c| {
                    let bad = c.is_control()
                        || c == '/'
                        || (layout == Layout::MaildirPlusPlus && c == '.');
                    if bad {
                        alt_char
                    } else {
                        c
                    }
                })
                .collect();
            let single = MailboxName::from_parts(vec![q.clone()]).expect("non-empty part");
            if check_name(&single, layout).is_err() {
                q.insert(0, '_');
            }
            q
        })
        .collect();
    MailboxName::from_parts(parts).expect("parts stay non-empty")
}

/// The path of a folder relative to the mail root; `None` for INBOX (the
/// root itself or the configured INBOX directory).
pub fn folder_rel_path(name: &MailboxName, layout: Layout) -> Result<Option<String>, String> {
    if name.is_inbox() {
        return Ok(None);
    }
    check_name(name, layout)?;
    let enc: Vec<String> = name.parts().iter().map(|p| mutf7::encode(p)).collect();
    Ok(Some(match layout {
        Layout::MaildirPlusPlus => format!(".{}", enc.join(".")),
        Layout::Fs => enc.join("/"),
    }))
}

/// Maildir++: the folder a root directory entry names, or `None` for
/// anything that is not a folder (`.`, `..`, `cur`, `.INBOX` itself, names
/// with empty parts or invalid mUTF-7).
pub fn maildirpp_dir_to_name(entry: &str) -> Option<MailboxName> {
    let rest = entry.strip_prefix('.')?;
    if rest.is_empty() || rest == "." {
        return None;
    }
    let mut parts = Vec::new();
    for p in rest.split('.') {
        if p.is_empty() {
            return None;
        }
        parts.push(mutf7::decode(p).ok()?);
    }
    if parts[0].eq_ignore_ascii_case("INBOX") {
        if parts.len() == 1 {
            return None;
        }
        parts[0] = "INBOX".to_string();
    }
    MailboxName::from_parts(parts)
}

/// fs layout: the name of a directory at `rel` (parts as on disk) or `None`
/// when a part is reserved or not valid mUTF-7.
pub fn fs_dir_to_name(rel: &[&str]) -> Option<MailboxName> {
    let mut parts = Vec::new();
    for p in rel {
        if p.is_empty() || p.starts_with('.') || matches!(*p, "cur" | "new" | "tmp") {
            return None;
        }
        parts.push(mutf7::decode(p).ok()?);
    }
    if parts.first()?.eq_ignore_ascii_case("INBOX") {
        if parts.len() == 1 {
            return None;
        }
        parts[0] = "INBOX".to_string();
    }
    MailboxName::from_parts(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dovecot_names() {
        let n = MaildirFileName::parse("1795888928.M260517P7962.vm,S=5,W=7:2,Sab");
        assert_eq!(n.base(), "1795888928.M260517P7962.vm,S=5,W=7");
        assert_eq!(n.size(), Some(5));
        assert_eq!(n.vsize(), Some(7));
        assert_eq!(n.flags(), Flags::SEEN);
        assert_eq!(n.keyword_mask(), 0b11);
        assert_eq!(n.format(), "1795888928.M260517P7962.vm,S=5,W=7:2,Sab");
        let m = n.with_flags(Flags::SEEN.union(Flags::DRAFT).union(Flags::DELETED), 0b100);
        assert_eq!(m.format(), "1795888928.M260517P7962.vm,S=5,W=7:2,DSTc");
    }

    #[test]
    fn unknown_flags_kept_in_place() {
        let n = MaildirFileName::parse("x:2,PS");
        assert_eq!(n.flags(), Flags::SEEN);
        let m = n.with_flags(Flags::DRAFT.union(Flags::SEEN).union(Flags::DELETED), 1);
        assert_eq!(m.format(), "x:2,DPSTa");
        let n = MaildirFileName::parse("x:2,S,foo");
        assert_eq!(n.with_flags(Flags::empty(), 0).format(), "x:2,,foo");
        let n = MaildirFileName::parse("x:1,whatever");
        assert_eq!(n.flags(), Flags::empty());
        assert_eq!(n.format(), "x:1,whatever");
        assert_eq!(n.with_flags(Flags::SEEN, 0).format(), "x:2,S");
        let n = MaildirFileName::parse("new-file");
        assert_eq!(n.info, Info::None);
        assert_eq!(n.base(), "new-file");
        assert_eq!(n.size(), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(size_field("a,S=12", 'S'), Some(12));
        assert_eq!(size_field("a,S=12,W=13", 'W'), Some(13));
        assert_eq!(size_field("a,S=12x", 'S'), None);
        assert_eq!(size_field("a,S=", 'S'), None);
        assert_eq!(size_field("a,S=99999999999999999999999", 'S'), None);
    }

    #[test]
    fn sort_order() {
        use std::cmp::Ordering::*;
        assert_eq!(dovecot_sort_cmp("9.M5P1.h", "10.M1P1.h"), Less);
        assert_eq!(dovecot_sort_cmp("10.M20P1.h", "10.M3P1.h"), Greater);
        assert_eq!(dovecot_sort_cmp("10.M3P1.a", "10.M3P1.b:2,S"), Less);
        assert_eq!(dovecot_sort_cmp("abc", "abd"), Less);
    }

    #[test]
    fn folder_names() {
        let n = MailboxName::parse("Ärger/sub", '/').unwrap();
        assert_eq!(
            folder_rel_path(&n, Layout::MaildirPlusPlus)
                .unwrap()
                .unwrap(),
            ".&AMQ-rger.sub"
        );
        assert_eq!(
            folder_rel_path(&n, Layout::Fs).unwrap().unwrap(),
            "&AMQ-rger/sub"
        );
        assert_eq!(maildirpp_dir_to_name(".&AMQ-rger.sub"), Some(n.clone()));
        assert_eq!(fs_dir_to_name(&["&AMQ-rger", "sub"]), Some(n));
        assert_eq!(
            folder_rel_path(&MailboxName::inbox(), Layout::Fs).unwrap(),
            None
        );
        for bad in [".", "..", "cur", ".a..b", ".&Ä", ".INBOX", "x", ".a."] {
            assert_eq!(maildirpp_dir_to_name(bad), None, "{bad}");
        }
        assert_eq!(
            maildirpp_dir_to_name(".inbox.x"),
            MailboxName::parse("INBOX/x", '/')
        );
        assert!(folder_rel_path(
            &MailboxName::parse("a.b", '/').unwrap(),
            Layout::MaildirPlusPlus
        )
        .is_err());
        assert!(folder_rel_path(&MailboxName::parse("a/cur", '/').unwrap(), Layout::Fs).is_err());
        assert_eq!(fs_dir_to_name(&["a", "new"]), None);
    }

    #[test]
    fn fixing_names() {
        let n = |s: &str| MailboxName::parse(s, '/').unwrap();
        let pp = Layout::MaildirPlusPlus;
        assert_eq!(fix_name(&n("a.b/c"), pp, '_'), n("a_b/c"));
        assert_eq!(fix_name(&n("ok/Ärger"), pp, '_'), n("ok/Ärger"));
        assert_eq!(fix_name(&n("a\tb"), pp, '-'), n("a-b"));
        assert_eq!(fix_name(&n("a.b/cur"), Layout::Fs, '_'), n("a.b/_cur"));
        assert_eq!(fix_name(&n(".hidden"), Layout::Fs, '_'), n("_.hidden"));
        let lower = MailboxName::from_parts(vec!["inbox".into(), "x".into()]).unwrap();
        assert!(check_name(&lower, pp).is_err());
        assert_eq!(fix_name(&lower, pp, '_'), n("INBOX/x"));
        let weird = MailboxName::from_parts(vec!["x/y".into(), "\0".into()]).unwrap();
        let fixed = fix_name(&weird, pp, '_');
        assert!(check_name(&fixed, pp).is_ok(), "{fixed:?}");
    }

    #[test]
    fn base_names() {
        assert!(valid_base_name("1795888928.M260517P7962.vm,S=5,W=5"));
        assert!(!valid_base_name(".hidden"));
        assert!(!valid_base_name("a:b"));
        assert!(!valid_base_name("a b"));
        assert!(!valid_base_name(""));
        assert_eq!(generate_base(1, 2, 3, "h/o:st"), "1.M2P3.h\\o-st");
    }

    proptest! {
        #[test]
        fn parse_format_roundtrip(s in "[!-~]{0,40}") {
            let n = MaildirFileName::parse(&s);
            let f = n.format();
            prop_assert_eq!(MaildirFileName::parse(&f), n.clone());
            prop_assert_eq!(flags_of(&s), (n.flags(), n.keyword_mask()));
            // A name whose flags are already in order is reproduced exactly.
            let canon = n.with_flags(n.flags(), n.keyword_mask()).format();
            let again = MaildirFileName::parse(&canon);
            prop_assert_eq!(again.with_flags(again.flags(), again.keyword_mask()).format(), canon);
        }

        #[test]
        fn flags_roundtrip(stem in "[A-Za-z0-9.,=]{1,20}", bits in 0u8..32, kw in 0u32..(1 << 26)) {
            let f = Flags::from_bits(bits).unwrap();
            let n = MaildirFileName { stem, info: Info::None }.with_flags(f, kw);
            let p = MaildirFileName::parse(&n.format());
            prop_assert_eq!(p.flags(), f);
            prop_assert_eq!(p.keyword_mask(), kw);
            let letters: Vec<char> = n.format().rsplit(':').next().unwrap()[2..].chars().collect();
            let mut sorted = letters.clone();
            sorted.sort();
            prop_assert_eq!(letters, sorted);
        }

        #[test]
        fn folder_roundtrip(parts in proptest::collection::vec("[^./]{1,8}", 1..4)) {
            let name = MailboxName::from_parts(parts).unwrap();
            if name.parts()[0].eq_ignore_ascii_case("INBOX") { return Ok(()); }
            let Ok(Some(rel)) = folder_rel_path(&name, Layout::MaildirPlusPlus) else {
                prop_assert!(name.parts().iter().any(|p| p.contains('\0')));
                return Ok(());
            };
            prop_assert_eq!(maildirpp_dir_to_name(&rel), Some(name.clone()));
            if let Ok(Some(rel)) = folder_rel_path(&name, Layout::Fs) {
                let v: Vec<&str> = rel.split('/').collect();
                prop_assert_eq!(fs_dir_to_name(&v), Some(name));
            }
        }

        #[test]
        fn fixed_names_are_storable(parts in proptest::collection::vec("\\PC{1,6}|[./\\x00-\\x1f]{1,3}|cur|tmp", 1..4)) {
            let name = MailboxName::from_parts(parts).unwrap();
            for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
                let fixed = fix_name(&name, layout, '_');
                prop_assert!(check_name(&fixed, layout).is_ok(), "{:?}", fixed);
                prop_assert_eq!(fix_name(&fixed, layout, '_'), fixed.clone());
            }
        }

        #[test]
        fn dir_names_never_panic(s in any::<String>()) {
            if let Some(n) = maildirpp_dir_to_name(&s) {
                if !n.parts().iter().any(|p| p.contains('/')) {
                    prop_assert_eq!(folder_rel_path(&n, Layout::MaildirPlusPlus).unwrap().unwrap().to_lowercase(), s.to_lowercase());
                }
            }
        }
    }
}
