//! File-name globbing for `!include` patterns such as `conf.d/*.conf`.
//!
//! Only the last path component may hold wildcards (`*` any run of
//! characters, `?` one character); that covers every include Dovecot ships
//! and keeps us off libc's glob. As with glob(3), a wildcard never matches a
//! leading `.`, so editor backups like `.10-mail.conf.swp` are skipped, and
//! matches are returned sorted bytewise, which is the order Dovecot reads
//! them in under the C locale.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(crate) fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Matches `name` against `pattern` (bytes; `*` and `?` wildcards).
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    // Iterative matcher with one backtrack point: linear in practice and
    // never recursive, so hostile patterns cannot blow the stack.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                n += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Expands `pattern` (an absolute or already-resolved path) to the sorted
/// list of existing paths it names. A pattern without wildcards is returned
/// as is, whether or not it exists: the caller reports a missing file.
pub(crate) fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    if !has_wildcards(&text) {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let file_pattern = match pattern.file_name() {
        Some(f) => f.as_bytes(),
        None => return Err(format!("include pattern {text} has no file name part")),
    };
    let dir = pattern.parent().unwrap_or(Path::new("."));
    if has_wildcards(&dir.to_string_lossy()) {
        return Err(format!(
            "include pattern {text}: wildcards are supported in the file name only"
        ));
    }
    let dir_for_read = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = match std::fs::read_dir(dir_for_read) {
        Ok(e) => e,
        // No directory means no matches, as with glob(3).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir_for_read.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name();
        if matches(file_pattern, name.as_bytes()) {
            found.push(dir.join(name));
        }
    }
    found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        matches(p.as_bytes(), n.as_bytes())
    }

    #[test]
    fn wildcard_matching() {
        assert!(m("*.conf", "10-mail.conf"));
        assert!(!m("*.conf", "10-mail.conf.ext"));
        assert!(m("*.conf*", "10-mail.conf.ext"));
        assert!(m("*", "x"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exactly"));
        assert!(m("**", "anything"));
        assert!(!m("*.conf", ".hidden.conf"));
        assert!(m(".*.conf", ".hidden.conf"));
        assert!(!m("?x", ".x"));
    }

    #[test]
    fn expand_sorted_and_filtered() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "20-b.conf",
            "10-a.conf",
            "99-z.conf.ext",
            ".x.conf",
            "15-c.conf",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let got = expand(&d.path().join("*.conf")).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a.conf", "15-c.conf", "20-b.conf"]);
        assert!(expand(&d.path().join("none/*.conf")).unwrap().is_empty());
        assert!(expand(&d.path().join("*/x.conf"))
            .unwrap_err()
            .contains("file name only"));
        let plain = d.path().join("missing.conf");
        assert_eq!(expand(&plain).unwrap(), vec![plain]);
    }
}
