//! What the leader remembers of each mailbox pair after a run: both sides'
//! fingerprints (see `maildir::fingerprint`) at a moment both held the same
//! state. When both fingerprints are unchanged at the next run, nothing
//! happened to the mailbox on either side and it is skipped without being
//! read: a run with nothing to do costs O(mailboxes), not O(messages).
//!
//! Kept in `dsync-fp.<peer store ID>` at the leader's control root, one
//! line per mailbox: `<mailbox GUID>\t<local>\t<remote>`. It is only an
//! optimisation: a damaged or missing file means "compare everything".

use super::remote::Remote;
use crate::model::{MailboxGuid, MailboxName};
use crate::protocol::{Command, Reply};
use crate::store::Store;
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::task::block_in_place;

#[derive(Default)]
pub struct Fingerprints {
    map: HashMap<MailboxGuid, (String, String)>,
}

pub fn path(control_root: &Path, peer: &str) -> PathBuf {
    control_root.join(format!("dsync-fp.{peer}"))
}

impl Fingerprints {
    pub fn load(path: &Path) -> Fingerprints {
        let Ok(text) = fs::read_to_string(path) else {
            return Fingerprints::default();
        };
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut it = line.split('\t');
            if let (Some(g), Some(l), Some(r), None) = (it.next(), it.next(), it.next(), it.next())
            {
                if let Some(g) = MailboxGuid::from_hex(g) {
                    map.insert(g, (l.to_string(), r.to_string()));
                }
            }
        }
        Fingerprints { map }
    }

    /// True when both sides still have the fingerprints recorded together.
    pub fn unchanged(&self, guid: &MailboxGuid, local: Option<&str>, remote: Option<&str>) -> bool {
        match (self.map.get(guid), local, remote) {
            (Some((l, r)), Some(a), Some(b)) => l == a && r == b,
            _ => false,
        }
    }

    pub fn set(&mut self, guid: MailboxGuid, local: Option<String>, remote: Option<String>) {
        match (local, remote) {
            (Some(l), Some(r)) => {
                self.map.insert(guid, (l, r));
            }
            _ => {
                self.map.remove(&guid);
            }
        }
    }

    pub fn retain(&mut self, keep: impl Fn(&MailboxGuid) -> bool) {
        self.map.retain(|g, _| keep(g));
    }

    /// Writes the file (temp file and rename; no fsync: losing it only
    /// costs one full comparison).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut out = Vec::new();
        for (g, (l, r)) in &self.map {
            writeln!(out, "{}\t{l}\t{r}", g.to_hex())?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        fs::write(&tmp, &out)?;
        fs::rename(&tmp, path)
    }
}

/// Both sides' fingerprints of these mailboxes (the follower's in one
/// round trip, computed while the local ones are), each only if that side
/// holds the state the matching digest describes (when one is given).
pub async fn both_sides(
    local: &mut Store,
    remote: &mut Remote,
    names: &[SideNames],
    digests: &[Option<String>],
) -> Result<(Vec<Option<String>>, Vec<Option<String>>)> {
    both_sides_with(local, remote, names, digests, digests).await
}

/// [`both_sides`] with a digest per side (a side this run did not write
/// can prove its state more cheaply, see `backup`).
pub async fn both_sides_with(
    local: &mut Store,
    remote: &mut Remote,
    names: &[SideNames],
    local_digests: &[Option<String>],
    remote_digests: &[Option<String>],
) -> Result<(Vec<Option<String>>, Vec<Option<String>>)> {
    ask_remote(remote, names, remote_digests).await?;
    let local_fps = local_side(local, names, local_digests);
    let remote_fps = remote_answers(remote, names.len()).await?;
    Ok((local_fps, remote_fps))
}

/// Asks the follower for its fingerprints (answered by [`remote_answers`]):
/// the caller may do other work while the follower computes them.
pub async fn ask_remote(
    remote: &mut Remote,
    names: &[SideNames],
    digests: &[Option<String>],
) -> Result<()> {
    for ((_, name), digest) in names.iter().zip(digests) {
        remote.send(Command::Select(name.clone())).await?;
        remote.send(Command::Fprint(digest.clone())).await?;
    }
    remote.flush().await
}

/// The local side's fingerprints (see [`both_sides`]).
pub fn local_side(
    local: &mut Store,
    names: &[SideNames],
    digests: &[Option<String>],
) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(names.len());
    for ((name, _), digest) in names.iter().zip(digests) {
        let fp = block_in_place(|| local.verified_fingerprint(name, digest.as_deref()))
            .unwrap_or_else(|e| {
                tracing::debug!("no fingerprint for {name}: {e:#}");
                None
            });
        out.push(fp);
    }
    out
}

/// The follower's answers to the `n` fingerprints [`ask_remote`] asked for.
pub async fn remote_answers(remote: &mut Remote, n: usize) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match remote.reply().await? {
            Reply::Fp(fp) => out.push(fp),
            Reply::Error { kind, text } => {
                return Err(super::remote::RemoteError { kind, text }.into())
            }
            other => bail!(
                "{} answered FPRINT with {:?}",
                remote.peer,
                other.to_fields()[0]
            ),
        }
    }
    Ok(out)
}

/// Both sides' fingerprints now (taken before anything is read), by
/// mailbox GUID, and the mailboxes whose fingerprints are as recorded on
/// both sides: unchanged since the last run, to be skipped.
pub async fn unchanged_since_last_run(
    local: &mut Store,
    remote: &mut Remote,
    recorded: &Fingerprints,
    candidates: &[(MailboxGuid, SideNames)],
) -> Result<(Taken, HashSet<MailboxGuid>)> {
    let names: Vec<SideNames> = candidates.iter().map(|(_, n)| n.clone()).collect();
    let (l, r) = both_sides(local, remote, &names, &vec![None; names.len()]).await?;
    let now: Taken = candidates
        .iter()
        .map(|(g, _)| *g)
        .zip(l.into_iter().zip(r))
        .collect();
    let unchanged: HashSet<MailboxGuid> = now
        .iter()
        .filter(|(g, (l, r))| recorded.unchanged(g, l.as_deref(), r.as_deref()))
        .map(|(g, _)| *g)
        .collect();
    if !unchanged.is_empty() {
        tracing::info!(
            "{} mailbox(es) unchanged on both sides since the last run",
            unchanged.len()
        );
    }
    Ok((now, unchanged))
}

/// A mailbox's name on the local side and on the follower (they differ
/// when one store cannot hold the other's name, see `names`).
pub type SideNames = (MailboxName, MailboxName);

/// Fingerprints of both sides (local, remote) by mailbox GUID.
pub type Taken = HashMap<MailboxGuid, (Option<String>, Option<String>)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_both_sides_must_match() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), "ab");
        let g = MailboxGuid([1; 16]);
        let mut f = Fingerprints::default();
        f.set(g, Some("x".into()), Some("y".into()));
        f.save(&p).unwrap();
        let f = Fingerprints::load(&p);
        assert!(f.unchanged(&g, Some("x"), Some("y")));
        assert!(!f.unchanged(&g, Some("x"), Some("z")));
        assert!(!f.unchanged(&g, None, Some("y")));
        assert!(!f.unchanged(&MailboxGuid([2; 16]), Some("x"), Some("y")));
    }
}
