//! Mailbox names a store cannot hold as they are (`-C alt_char`).
//!
//! A name from one side that the other side's store cannot hold (a `.`
//! inside a part under Maildir++, a reserved part under the fs layout) is
//! kept there under the name that store chooses (`Store::storable_name`:
//! the offending characters replaced by `dsync_alt_char`). The store that
//! holds the mailbox decides, so the leader asks the follower (`STORABLE`)
//! and its own store, and compares names only after mapping them: `a.b` on
//! one side and `a_b` on the other are the same name, not a rename.

use super::remote::Remote;
use crate::model::{MailboxInfo, MailboxName};
use crate::protocol::{self, Command, Reply};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};

/// The names one side gives the other side's names: only those it
/// changes are kept; every other name maps to itself.
#[derive(Clone, Debug, Default)]
pub struct NameMap(HashMap<MailboxName, MailboxName>);

impl NameMap {
    /// The name this side keeps a mailbox called `name` under.
    pub fn get(&self, name: &MailboxName) -> MailboxName {
        self.0.get(name).cloned().unwrap_or_else(|| name.clone())
    }

    fn insert(&mut self, from: MailboxName, to: MailboxName) {
        if from != to {
            self.0.insert(from, to);
        }
    }

    /// How the local store keeps these names.
    pub fn local<'n>(store: &Store, names: impl IntoIterator<Item = &'n MailboxName>) -> NameMap {
        let mut map = NameMap::default();
        for n in names {
            map.insert(n.clone(), store.storable_name(n));
        }
        map
    }

    /// How the follower's store keeps these names, in one round trip. A
    /// follower without the `storable` feature keeps every name as it is.
    pub async fn remote<'n>(
        remote: &mut Remote,
        names: impl IntoIterator<Item = &'n MailboxName>,
    ) -> Result<NameMap> {
        let mut map = NameMap::default();
        if !remote.has_feature(protocol::FEATURE_STORABLE) {
            return Ok(map);
        }
        let names: BTreeSet<&MailboxName> = names.into_iter().collect();
        for n in &names {
            remote.send(Command::Storable((*n).clone())).await?;
        }
        remote.flush().await?;
        for n in names {
            match remote
                .reply()
                .await
                .with_context(|| format!("asking {} how it stores {n}", remote.peer))?
            {
                Reply::Name(stored) => map.insert(n.clone(), stored),
                other => bail!(
                    "{} answered STORABLE with {:?}",
                    remote.peer,
                    other.to_fields()[0]
                ),
            }
        }
        Ok(map)
    }
}

/// Whether `a` on side A and `b` on side B are the same name as each side
/// stores it (`to_a`/`to_b`: how each side keeps the other's names).
pub fn same_name(a: &MailboxName, b: &MailboxName, to_a: &NameMap, to_b: &NameMap) -> bool {
    a == b || &to_b.get(a) == b || &to_a.get(b) == a
}

/// The name a pair's state remembers for two names that are the same (see
/// [`same_name`]): the one no store altered, so that each side's spelling
/// of it can be derived again.
pub fn original(a: &MailboxName, b: &MailboxName, to_a: &NameMap) -> MailboxName {
    if a != b && &to_a.get(b) == a {
        b.clone()
    } else {
        a.clone()
    }
}

/// Whether a side still holds the mailbox under the name the last sync
/// recorded (`base`), in that side's spelling of it.
pub fn keeps(base: &MailboxName, name: &MailboxName, to_side: &NameMap) -> bool {
    base == name || &to_side.get(base) == name
}

/// Says once, when a mailbox is first created or renamed under an altered
/// name, what it is called there.
pub fn report_stored(original: &MailboxName, stored: &MailboxName, side: &str) {
    if original != stored {
        tracing::warn!(
            "mailbox {original}: {side} cannot hold this name; stored there as {stored} \
             (dsync_alt_char), and matched to it on later runs"
        );
    }
}

/// Drops the source mailboxes whose name the destination would keep under
/// a name another of them already gets (`a.b` and `a_b` into Maildir++):
/// the first in the list with the unaltered name wins, else the first.
/// Returns the mailboxes kept and the names left out.
pub fn drop_collisions(
    boxes: &[MailboxInfo],
    to_dst: &NameMap,
) -> (Vec<MailboxInfo>, Vec<(MailboxName, MailboxName)>) {
    let mut owner: HashMap<MailboxName, usize> = HashMap::new();
    for (i, b) in boxes.iter().enumerate() {
        let at = to_dst.get(&b.name);
        let unaltered = at == b.name;
        match owner.get(&at) {
            Some(&j) if !(unaltered && boxes[j].name != at) => {}
            _ => {
                owner.insert(at, i);
            }
        }
    }
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    for (i, b) in boxes.iter().enumerate() {
        let at = to_dst.get(&b.name);
        if owner.get(&at) == Some(&i) {
            kept.push(b.clone());
        } else {
            left_out.push((b.name.clone(), at));
        }
    }
    (kept, left_out)
}

#[cfg(test)]
pub(crate) fn map_of(pairs: &[(&str, &str)]) -> NameMap {
    let mut m = NameMap::default();
    for (a, b) in pairs {
        m.insert(
            MailboxName::parse(a, '/').unwrap(),
            MailboxName::parse(b, '/').unwrap(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MailboxGuid;

    fn n(s: &str) -> MailboxName {
        MailboxName::parse(s, '/').unwrap()
    }

    #[test]
    fn names_are_compared_after_mapping() {
        // A is fs layout (holds "a.b"), B is Maildir++ (stores it as "a_b").
        let to_b = map_of(&[("a.b", "a_b"), ("x.y", "x_y")]);
        let to_a = NameMap::default();
        assert!(same_name(&n("a.b"), &n("a_b"), &to_a, &to_b));
        assert!(same_name(&n("a_b"), &n("a.b"), &to_b, &to_a));
        assert!(!same_name(&n("x.y"), &n("a_b"), &to_a, &to_b));
        assert_eq!(original(&n("a.b"), &n("a_b"), &to_a), n("a.b"));
        assert_eq!(original(&n("a_b"), &n("a.b"), &to_b), n("a.b"));
    }

    #[test]
    fn a_side_keeps_the_base_name_in_its_own_spelling() {
        let to_b = map_of(&[("a.b", "a_b")]);
        let to_a = NameMap::default();
        assert!(keeps(&n("a.b"), &n("a.b"), &to_a));
        assert!(keeps(&n("a.b"), &n("a_b"), &to_b));
        assert!(!keeps(&n("a.b"), &n("c_d"), &to_b));
    }

    #[test]
    fn colliding_names_keep_the_unaltered_one() {
        let info = |s: &str, g: u8| MailboxInfo {
            name: n(s),
            guid: MailboxGuid([g; 16]),
            uidvalidity: 1,
            uidnext: 1,
            messages: 0,
            highest_modseq: 0,
        };
        let to = map_of(&[("a.b", "a_b"), ("a.b.", "a_b_")]);
        let boxes = vec![info("a.b", 1), info("a_b", 2), info("c", 3)];
        let (kept, out) = drop_collisions(&boxes, &to);
        let kept: Vec<_> = kept.iter().map(|b| b.guid.0[0]).collect();
        assert_eq!(kept, vec![2, 3]);
        assert_eq!(out, vec![(n("a.b"), n("a_b"))]);
    }
}
