//! Merging two sides' subscriptions against the set both had after the
//! last run: a name subscribed or unsubscribed on one side since then is
//! subscribed or unsubscribed on both. Without that set (first run, or the
//! leader changed), the union is kept: nothing is unsubscribed.
//!
//! The set is kept by the leader in `dsync-subs.<peer store ID>` at its
//! control root, one name a line, its hierarchy parts as escaped
//! protocol fields (so any name round-trips).

use crate::model::MailboxName;
use crate::protocol::frame::{escape_into, parse_line};
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub fn path(control_root: &Path, peer: &str) -> PathBuf {
    control_root.join(format!("dsync-subs.{peer}"))
}

pub fn load(path: &Path) -> Option<BTreeSet<MailboxName>> {
    let data = std::fs::read(path).ok()?;
    let mut out = BTreeSet::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let name = MailboxName::from_parts(parse_line(line).ok()?)?;
        out.insert(name);
    }
    Some(out)
}

pub fn save(path: &Path, set: &BTreeSet<MailboxName>) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    for name in set {
        for (i, part) in name.parts().iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\t");
            }
            escape_into(part, &mut out);
        }
        out.extend_from_slice(b"\n");
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    std::fs::write(&tmp, &out)?;
    std::fs::rename(&tmp, path)
}

/// The merged set from both sides' current sets and the last common one.
pub fn merge(
    a: &BTreeSet<MailboxName>,
    b: &BTreeSet<MailboxName>,
    base: Option<&BTreeSet<MailboxName>>,
) -> BTreeSet<MailboxName> {
    a.union(b)
        .filter(|n| match base {
            // Present on one side only: kept if it is new there, dropped if
            // the other side unsubscribed it.
            Some(base) => (a.contains(*n) && b.contains(*n)) || !base.contains(*n),
            None => true,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<MailboxName> {
        names
            .iter()
            .map(|n| MailboxName::parse(n, '/').unwrap())
            .collect()
    }

    #[test]
    fn changes_on_either_side_win_and_no_base_means_union() {
        let base = set(&["INBOX", "Old", "Kept"]);
        let a = set(&["INBOX", "Kept", "NewA"]); // A unsubscribed Old
        let b = set(&["INBOX", "Old", "Kept", "NewB"]);
        assert_eq!(
            merge(&a, &b, Some(&base)),
            set(&["INBOX", "Kept", "NewA", "NewB"])
        );
        assert_eq!(
            merge(&a, &b, None),
            set(&["INBOX", "Old", "Kept", "NewA", "NewB"])
        );
    }

    #[test]
    fn round_trip_any_name() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), "ab");
        let names: BTreeSet<MailboxName> = [
            MailboxName::from_parts(vec!["a\tb".into(), "c\\d".into()]).unwrap(),
            MailboxName::inbox(),
        ]
        .into();
        save(&p, &names).unwrap();
        assert_eq!(load(&p), Some(names));
    }
}
