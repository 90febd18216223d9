//! `dovecot-keywords`: which keyword each Maildir file-name letter means.
//! One `<index> <name>` line per keyword; index 0–25 is the letter a–z.
//! Read like Dovecot reads it: lines it would ignore are ignored (a line
//! without a space, an index out of range, a name seen before), and a later
//! line for the same index wins.

pub const FILE_NAME: &str = "dovecot-keywords";
pub const MAX_KEYWORDS: usize = 26;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keywords {
    slots: Vec<Option<String>>,
}

/// Whether a keyword can be stored: IMAP atom characters only, so it can
/// never contain the space or newline that would break the file.
pub fn valid_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            (0x21..0x7f).contains(&b)
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

impl Keywords {
    pub fn parse(data: &[u8]) -> Keywords {
        let mut k = Keywords::default();
        for line in data.split(|b| *b == b'\n') {
            let Some(sp) = line.iter().position(|b| *b == b' ') else {
                continue;
            };
            let (idx, name) = (&line[..sp], &line[sp + 1..]);
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let idx = match std::str::from_utf8(idx).ok().and_then(|s| {
                if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse::<usize>().ok()
                } else {
                    None
                }
            }) {
                Some(i) if i < MAX_KEYWORDS => i,
                _ => continue,
            };
            if name.is_empty() || k.index_of(name).is_some() {
                continue;
            }
            if k.slots.len() <= idx {
                k.slots.resize(idx + 1, None);
            }
            k.slots[idx] = Some(name.to_string());
        }
        k
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(name) = s {
                out.extend_from_slice(format!("{i} {name}\n").as_bytes());
            }
        }
        out
    }

    pub fn name(&self, idx: usize) -> Option<&str> {
        self.slots.get(idx).and_then(|s| s.as_deref())
    }

    /// The name behind a file-name letter `a`–`z`.
    pub fn name_of_letter(&self, letter: char) -> Option<&str> {
        if letter.is_ascii_lowercase() {
            self.name(letter as usize - 'a' as usize)
        } else {
            None
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.as_deref() == Some(name))
    }

    /// The index for `name`, allocating the lowest free one. `None` when all
    /// 26 are taken (Maildir cannot store more keywords per folder).
    pub fn get_or_add(&mut self, name: &str) -> Option<usize> {
        self.get_or_add_avoiding(name, 0)
    }

    /// Like [`Keywords::get_or_add`], but a new keyword never gets a letter
    /// in `avoid`: letters files already carry without a name would
    /// otherwise suddenly mean this keyword.
    pub fn get_or_add_avoiding(&mut self, name: &str, avoid: u32) -> Option<usize> {
        if let Some(i) = self.index_of(name) {
            return Some(i);
        }
        let free = (0..MAX_KEYWORDS).find(|i| self.name(*i).is_none() && avoid & (1 << i) == 0)?;
        if self.slots.len() <= free {
            self.slots.resize(free + 1, None);
        }
        self.slots[free] = Some(name.to_string());
        Some(free)
    }

    /// Gives every letter in `mask` that has no name the name Dovecot gives
    /// it when it meets such a file (maildir-keywords.c): `unknown-<index>`,
    /// with `?` appended until the name is unused. Returns whether any
    /// name was added (the file then needs writing, as Dovecot does).
    pub fn name_orphans(&mut self, mask: u32) -> bool {
        let mut added = false;
        for i in 0..MAX_KEYWORDS {
            if mask & (1 << i) == 0 || self.name(i).is_some() {
                continue;
            }
            let mut name = format!("unknown-{i}");
            while self.index_of(&name).is_some() {
                name.push('?');
            }
            if self.slots.len() <= i {
                self.slots.resize(i + 1, None);
            }
            self.slots[i] = Some(name);
            added = true;
        }
        added
    }

    /// Bit i set when index i has a name.
    pub fn assigned_mask(&self) -> u32 {
        (0..MAX_KEYWORDS)
            .filter(|i| self.name(*i).is_some())
            .fold(0, |m, i| m | (1 << i))
    }

    /// Bitmask (bit i = letter 'a'+i) → sorted, deduplicated names. Letters
    /// with no name are reported separately so the caller can keep them.
    pub fn names_of_mask(&self, mask: u32) -> (Vec<String>, u32) {
        let mut names = Vec::new();
        let mut unknown = 0;
        for i in 0..MAX_KEYWORDS {
            if mask & (1 << i) != 0 {
                match self.name(i) {
                    Some(n) => names.push(n.to_string()),
                    None => unknown |= 1 << i,
                }
            }
        }
        names.sort();
        names.dedup();
        (names, unknown)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dovecot_file() {
        let k = Keywords::parse(b"0 $Junk\n1 foo\n");
        assert_eq!(k.name_of_letter('a'), Some("$Junk"));
        assert_eq!(k.name_of_letter('b'), Some("foo"));
        assert_eq!(k.to_bytes(), b"0 $Junk\n1 foo\n");
        let (names, unknown) = k.names_of_mask(0b111);
        assert_eq!(names, vec!["$Junk", "foo"]);
        assert_eq!(unknown, 0b100);
    }

    #[test]
    fn ignores_what_dovecot_ignores() {
        let k = Keywords::parse(b"garbage\n26 toohigh\nx bad\n3 dup\n4 dup\n2 \n3 later\n");
        assert_eq!(k.name(3), Some("later"));
        assert_eq!(k.name(4), None);
        assert_eq!(k.index_of("dup"), None);
    }

    #[test]
    fn allocation() {
        let mut k = Keywords::parse(b"1 b\n");
        assert_eq!(k.get_or_add("a"), Some(0));
        assert_eq!(k.get_or_add("c"), Some(2));
        assert_eq!(k.get_or_add("b"), Some(1));
        for i in 3..26 {
            assert_eq!(k.get_or_add(&format!("k{i}")), Some(i));
        }
        assert_eq!(k.get_or_add("full"), None);
        let mut k = Keywords::default();
        assert_eq!(k.get_or_add_avoiding("x", 0b101), Some(1));
        assert_eq!(k.get_or_add_avoiding("y", 0b101), Some(3));
        assert_eq!(k.assigned_mask(), 0b1010);
        assert!(valid_keyword("$Junk") && !valid_keyword("a b") && !valid_keyword(""));
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = Keywords::parse(&data);
            prop_assert_eq!(Keywords::parse(&k.to_bytes()), k);
        }

        #[test]
        fn roundtrip(names in proptest::collection::btree_set("[!-~&&[^ ]]{1,10}", 0..26)) {
            let mut k = Keywords::default();
            for n in &names {
                k.get_or_add(n).unwrap();
            }
            prop_assert_eq!(Keywords::parse(&k.to_bytes()), k);
        }
    }

    #[test]
    fn orphan_letters_get_dovecots_names() {
        let mut k = Keywords::parse(b"1 unknown-0\n");
        assert!(k.name_orphans(0b101));
        assert_eq!(k.name(0).unwrap(), "unknown-0?");
        assert_eq!(k.name(2).unwrap(), "unknown-2");
        assert!(!k.name_orphans(0b101));
    }
}
