//! What is on disk, independent of Dovecot: listings of a tree with inode
//! numbers, mtimes and content hashes, compared before and after a run.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::snapshot::hex;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// 'd' directory, 'f' regular file, 'l' symlink, '?' other.
    pub kind: char,
    pub ino: u64,
    /// Birth time where the filesystem records it: inode numbers are
    /// reused at once after a delete, so (ino, btime) tells a file that was
    /// re-created from one that was left alone.
    pub btime_ns: Option<i128>,
    pub mtime_ns: i128,
    pub size: u64,
    /// Files only.
    pub sha256: Option<String>,
}

/// Paths relative to the root ("" is the root itself), sorted.
pub type Listing = BTreeMap<String, Entry>;

/// dsync's own bookkeeping, not mail, so listings leave it out: at the
/// root the run lock (rewritten with the holder's pid on every run), the
/// store's ID and the per-peer sync state; in any folder the date cache
/// `dsync-dates` and its summary `dsync-summary`.
pub fn is_engine_own(rel: &str) -> bool {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    rel == "dsync.lock"
        || rel == "dsync-store-id"
        || rel.starts_with("dsync-state.")
        || rel.starts_with("dsync-fp.")
        || rel.starts_with("dsync-subs.")
        || file == "dsync-dates"
        || file == "dsync-summary"
}

/// Lists `root` recursively, hashing every regular file; leaves out
/// dsync's own files ([`is_engine_own`]).
pub fn listing(root: &Path) -> Listing {
    let mut out = Listing::new();
    super::imap::walk(root, &mut |p, m| {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if is_engine_own(&rel) {
            return Ok(());
        }
        let kind = if m.is_dir() {
            'd'
        } else if m.is_file() {
            'f'
        } else if m.file_type().is_symlink() {
            'l'
        } else {
            '?'
        };
        let sha256 = if kind == 'f' {
            Some(hex(&Sha256::digest(fs::read(p)?)))
        } else {
            None
        };
        out.insert(
            rel,
            Entry {
                kind,
                ino: m.ino(),
                btime_ns: m
                    .created()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as i128),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                size: m.len(),
                sha256,
            },
        );
        Ok(())
    })
    .unwrap_or_else(|e| panic!("listing {}: {e:#}", root.display()));
    out
}

fn name_of(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Whether a directory's mtime is part of "nothing changed": `cur/` and
/// `new/` change only when messages come, go or are renamed, and Dovecot
/// rescans on it; other directories may see a lock file come and go.
fn dir_mtime_matters(rel: &str) -> bool {
    matches!(name_of(rel), "cur" | "new")
}

/// One way a tree differs from how it was.
#[derive(Clone, Debug)]
pub struct Change {
    pub path: String,
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.path.is_empty() {
                "."
            } else {
                &self.path
            },
            self.what
        )
    }
}

/// Differences that mean "the tree was modified": entries added or removed,
/// files with another inode, mtime or content, `cur/`/`new/` dir mtimes.
pub fn changes(before: &Listing, after: &Listing) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |path: &str, what: String| {
        out.push(Change {
            path: path.to_string(),
            what,
        })
    };
    for (path, b) in before {
        match after.get(path) {
            None => push(path, "removed".into()),
            Some(a) => {
                if a.kind != b.kind {
                    push(path, format!("kind {} -> {}", b.kind, a.kind));
                } else if a.ino != b.ino || a.btime_ns != b.btime_ns {
                    push(path, format!("re-created (inode {} -> {})", b.ino, a.ino));
                } else if a.kind == 'f' && a.sha256 != b.sha256 {
                    push(
                        path,
                        format!("content changed ({} -> {} bytes)", b.size, a.size),
                    );
                } else if (a.kind == 'f' || dir_mtime_matters(path)) && a.mtime_ns != b.mtime_ns {
                    push(path, format!("mtime {} -> {}", b.mtime_ns, a.mtime_ns));
                }
            }
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            push(path, "added".into());
        }
    }
    out
}

#[track_caller]
pub fn assert_unchanged(what: &str, before: &Listing, after: &Listing) {
    let c: Vec<String> = changes(before, after)
        .iter()
        .map(Change::to_string)
        .collect();
    if !c.is_empty() {
        panic!(
            "{what} changed on disk ({} changes):\n  {}",
            c.len(),
            first(&c, 30).join("\n  ")
        );
    }
}

fn first(v: &[String], n: usize) -> Vec<String> {
    let mut out: Vec<String> = v.iter().take(n).cloned().collect();
    if v.len() > n {
        out.push(format!("… and {} more", v.len() - n));
    }
    out
}

/// Files the engine may write in a backup's source: it must give every
/// message a UID, which lives in dovecot-uidlist, and may pick new
/// UIDVALIDITYs the way Dovecot does, through dovecot-uidvalidity and its
/// `dovecot-uidvalidity.<hex>` marker.
pub const SOURCE_MAY_CHANGE: &[&str] = &["dovecot-uidlist", "dovecot-uidvalidity"];

fn source_may_change(name: &str) -> bool {
    SOURCE_MAY_CHANGE.contains(&name)
        || name
            .strip_prefix("dovecot-uidvalidity.")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The state of a backup's source before the run, to check afterwards that
/// the run left it alone.
pub struct SourceGuard {
    root: std::path::PathBuf,
    before: Listing,
    uidlists: BTreeMap<String, String>,
}

impl SourceGuard {
    pub fn new(root: &Path) -> SourceGuard {
        let before = listing(root);
        let uidlists = before
            .keys()
            .filter(|p| name_of(p) == "dovecot-uidlist")
            .map(|p| {
                (
                    p.clone(),
                    fs::read_to_string(root.join(p)).unwrap_or_default(),
                )
            })
            .collect();
        SourceGuard {
            root: root.to_path_buf(),
            before,
            uidlists,
        }
    }

    /// Every file keeps its name, mtime and bytes and nothing is added or
    /// removed, except [`SOURCE_MAY_CHANGE`]: dovecot-uidlist may appear or
    /// grow, but an existing one keeps its UIDVALIDITY and every UID it had.
    #[track_caller]
    pub fn assert_untouched(&self) {
        let after = listing(&self.root);
        let mut problems = Vec::new();
        for c in changes(&self.before, &after) {
            if source_may_change(name_of(&c.path)) && c.what != "removed" {
                continue;
            }
            // A directory's mtime moves when dovecot-uidlist appears.
            if after.get(&c.path).is_some_and(|e| e.kind == 'd') && c.what.starts_with("mtime") {
                continue;
            }
            problems.push(c.to_string());
        }
        for (path, old) in &self.uidlists {
            let new = fs::read_to_string(self.root.join(path)).unwrap_or_default();
            let (v_old, uids_old) = parse_uidlist(old);
            let (v_new, uids_new) = parse_uidlist(&new);
            if v_old != v_new {
                problems.push(format!("{path}: UIDVALIDITY {v_old:?} -> {v_new:?}"));
            }
            for (uid, name) in &uids_old {
                if uids_new.get(uid) != Some(name) {
                    problems.push(format!(
                        "{path}: uid {uid} was {name:?}, now {:?}",
                        uids_new.get(uid)
                    ));
                }
            }
        }
        if !problems.is_empty() {
            panic!(
                "source {} was modified ({} changes):\n  {}",
                self.root.display(),
                problems.len(),
                first(&problems, 30).join("\n  ")
            );
        }
    }
}

/// dovecot-uidlist's header UIDVALIDITY and its `uid → base name` lines.
pub fn parse_uidlist(text: &str) -> (Option<u32>, BTreeMap<u32, String>) {
    let mut lines = text.lines();
    let v = lines
        .next()
        .and_then(|h| h.split(' ').find_map(|f| f.strip_prefix('V')))
        .and_then(|v| v.parse().ok());
    let mut map = BTreeMap::new();
    for l in lines {
        let Some((head, name)) = l.split_once(" :").or_else(|| l.split_once(':')) else {
            continue;
        };
        if let Some(uid) = head.split(' ').next().and_then(|u| u.parse().ok()) {
            map.insert(uid, name.to_string());
        }
    }
    (v, map)
}

/// Message file contents per folder directory (relative path of the
/// folder → sorted content hashes): the bytes on disk, names aside.
pub fn message_contents(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, e) in listing(root) {
        let mut parts: Vec<&str> = path.split('/').collect();
        if e.kind != 'f' || parts.len() < 2 {
            continue;
        }
        let sub = parts[parts.len() - 2];
        if sub != "cur" && sub != "new" {
            continue;
        }
        parts.truncate(parts.len() - 2);
        out.entry(parts.join("/"))
            .or_default()
            .push(e.sha256.unwrap());
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}
