//! Executes a one-way sync: reads both sides, plans (see `plan`), and
//! applies the plan to whichever side is the destination, streaming bodies
//! across the protocol in the right direction.

use super::fingerprints::{self, Fingerprints, SideNames};
use super::names::{self, NameMap};
use super::plan::{self, Filter, MailboxPlan, Pairing, TreeOp};
use super::remote::Remote;
use super::transfer;
use super::Report;
use crate::model::{Digest, MailboxGuid, MailboxName, MessageRecord, Uid};
use crate::protocol::Command;
use crate::store::Store;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::collections::VecDeque;
use tokio::task::block_in_place;

/// Which way the mail flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The local store is the source, the follower's the destination.
    Push,
    /// The follower's store is the source (`-R`).
    Pull,
}

/// The local store, opened only when the run gets to it: a backup reads
/// the source completely before it touches the destination, so a broken
/// source leaves the destination exactly as it was.
pub type LocalOpener<'a> = Box<dyn FnOnce(bool) -> Result<Store> + Send + 'a>;

pub async fn run(
    open_local: LocalOpener<'_>,
    remote: &mut Remote,
    dir: Direction,
    filter: &Filter,
    full: bool,
) -> Result<Report> {
    let mut report = Report::default();
    let (mut local, (src_boxes, src_subs), (dst_boxes, dst_subs)) = match dir {
        Direction::Push => {
            let mut local = block_in_place(|| open_local(false))?;
            let src = block_in_place(|| list(&mut local))?;
            remote
                .open(true)
                .await
                .context("opening the LOCATION2 mail store")?;
            let dst = remote_list(remote).await?;
            (local, src, dst)
        }
        Direction::Pull => {
            remote
                .open(false)
                .await
                .context("opening the LOCATION2 mail store")?;
            let src = remote_list(remote).await?;
            let mut local = block_in_place(|| open_local(true))?;
            let dst = block_in_place(|| list(&mut local))?;
            (local, src, dst)
        }
    };
    let local = &mut local;
    for name in &filter.0 {
        if !src_boxes.iter().any(|b| &b.name == name) {
            anyhow::bail!("mailbox {name} (given with -m) does not exist in the source");
        }
    }
    // The names the destination keeps the source's mailboxes under.
    let src_names = src_boxes.iter().map(|b| &b.name).chain(&src_subs);
    let dst_names = match dir {
        Direction::Push => NameMap::remote(remote, src_names).await?,
        Direction::Pull => NameMap::local(local, src_names),
    };
    let (src_boxes, left_out) = names::drop_collisions(&src_boxes, &dst_names);
    for (name, at) in left_out {
        tracing::warn!(
            "mailbox {name} is not backed up: the destination would store it as {at}, \
             which another mailbox of the source gets; rename one of them"
        );
        report.incomplete.push(format!(
            "{name}: its name collides with another mailbox's at the destination"
        ));
    }
    let (ops, pairings) = plan::plan_tree(&src_boxes, &dst_boxes, filter, &dst_names);
    let side = match dir {
        Direction::Push => remote.peer.clone(),
        Direction::Pull => "the local mail location".to_string(),
    };
    for p in &pairings {
        if p.dst.as_ref().map(|d| &d.name) != Some(&p.dst_name) {
            names::report_stored(&p.src.name, &p.dst_name, &side);
        }
    }
    for op in &ops {
        tracing::info!("{op:?}");
        match dir {
            Direction::Push => send_tree_op(remote, op).await?,
            Direction::Pull => block_in_place(|| apply_tree_op(local, op))?,
        }
    }

    // Mailboxes neither side touched since the last run are skipped unread.
    let local_id = block_in_place(|| local.store_id())?;
    let remote_id = remote_store_id(remote, &local_id).await?;
    let fp_path = fingerprints::path(&local.control_root(), &remote_id);
    let mut fps = if full {
        Fingerprints::default()
    } else {
        Fingerprints::load(&fp_path)
    };
    let candidates: Vec<(MailboxGuid, SideNames)> = pairings
        .iter()
        .filter(|p| p.dst.is_some())
        .map(|p| (p.src.guid, side_names(p, dir)))
        .collect();
    let (before, unchanged) =
        fingerprints::unchanged_since_last_run(local, remote, &fps, &candidates).await?;
    let pairings: Vec<Pairing> = pairings
        .into_iter()
        .filter(|p| !unchanged.contains(&p.src.guid))
        .collect();

    // Ask for every remote snapshot at once (one round trip), then read
    // them all before any body moves, so replies arrive in request order.
    let remote_wanted: Vec<&Pairing> = pairings
        .iter()
        .filter(|p| dir == Direction::Pull || p.dst.is_some())
        .collect();
    for p in &remote_wanted {
        remote.send(Command::Select(side_names(p, dir).1)).await?;
        remote.send(Command::Snapshot).await?;
    }
    remote.flush().await?;
    // While the follower works on those, read the local side: the two
    // stores are scanned at the same time.
    let mut local_snaps = VecDeque::new();
    for p in &pairings {
        let wanted = match dir {
            Direction::Push => true,
            Direction::Pull => p.dst.is_some(),
        };
        if wanted {
            let name = &side_names(p, dir).0;
            let snap = block_in_place(|| local.snapshot(name))
                .with_context(|| format!("reading mailbox {name}"))?;
            local_snaps.push_back(snap);
        }
    }
    let mut remote_snaps = VecDeque::new();
    for p in &remote_wanted {
        let snap = remote.read_snapshot().await.with_context(|| {
            format!(
                "reading mailbox {} on {}",
                side_names(p, dir).1,
                remote.peer
            )
        })?;
        remote_snaps.push_back(snap);
    }

    let mut pending_commits = Vec::new();
    // Each mailbox changed, with the digest both sides must now have.
    let mut synced: Vec<(&Pairing, String)> = Vec::new();
    for p in &pairings {
        let name = &p.src.name;
        let (src, dst) = match dir {
            Direction::Push => {
                let src = local_snaps
                    .pop_front()
                    .expect("one local snapshot per pairing");
                let dst = if p.dst.is_some() {
                    remote_snaps.pop_front()
                } else {
                    None
                };
                (src, dst)
            }
            Direction::Pull => {
                let src = remote_snaps.pop_front().expect("one snapshot per pairing");
                let dst = if p.dst.is_some() {
                    local_snaps.pop_front()
                } else {
                    None
                };
                (src, dst)
            }
        };
        let plan = plan::plan_mailbox(&src, dst.as_ref());
        if plan.is_empty() {
            // Both sides held the same state after the fingerprints taken
            // before reading them; any change since shows in them. A side
            // changed a moment before the run had none to give: it gets
            // one after the run, like a mailbox this run changed.
            match before.get(&p.src.guid) {
                Some((Some(l), Some(r))) => {
                    fps.set(p.src.guid, Some(l.clone()), Some(r.clone()));
                }
                _ => synced.push((p, Digest::of_snapshot(&src))),
            }
            continue;
        }
        synced.push((p, Digest::of_snapshot(&src)));
        tracing::info!(
            "{name}: {} to copy, {} to expunge, {} flag and {} date changes",
            plan.saves.len(),
            plan.expunge.len(),
            plan.flags.len(),
            plan.dates.len()
        );
        report.copied += plan.saves.len() as u64;
        report.expunged += plan.expunge.len() as u64;
        report.updated += (plan.flags.len() + plan.dates.len()) as u64;
        let (local_name, remote_name) = side_names(p, dir);
        let names = MailboxPair {
            local: &local_name,
            remote: &remote_name,
        };
        match dir {
            Direction::Push => {
                let commits = push_mailbox(local, remote, names, &plan, &mut report).await?;
                pending_commits.extend(std::iter::repeat_n(remote_name.clone(), commits));
            }
            Direction::Pull => pull_mailbox(local, remote, names, &plan, &mut report).await?,
        }
    }
    for name in pending_commits {
        remote
            .expect_ok()
            .await
            .with_context(|| format!("committing mailbox {name} on {}", remote.peer))?;
    }

    let subs = plan::plan_subscriptions(&src_subs, &dst_subs, filter, &dst_names);
    let mut current = dst_subs.clone();
    current.sort();
    current.dedup();
    if subs != current {
        match dir {
            Direction::Push => {
                for s in subs {
                    remote.send(Command::Sub(s)).await?;
                }
                remote.send(Command::SubsCommit).await?;
            }
            Direction::Pull => block_in_place(|| local.set_subscriptions(&subs))?,
        }
    }

    // Remember both sides' fingerprints where both now hold exactly the
    // source's state (each side checks its own against the digest).
    if report.incomplete.is_empty() && !synced.is_empty() {
        let done: Vec<&Pairing> = synced.iter().map(|(p, _)| *p).collect();
        let names: Vec<SideNames> = done.iter().map(|p| side_names(p, dir)).collect();
        // The destination proves its new state against the digest (a
        // re-read). The source was not written: if its fingerprint is the
        // one taken before it was read, it still holds what was read, so a
        // plain fingerprint compared with that one does (no re-read).
        let src_before = |p: &Pairing| -> Option<String> {
            let (l, r) = before.get(&p.src.guid)?;
            match dir {
                Direction::Push => l.clone(),
                Direction::Pull => r.clone(),
            }
        };
        let dst_digests: Vec<Option<String>> =
            synced.iter().map(|(_, d)| Some(d.clone())).collect();
        let src_digests: Vec<Option<String>> = synced
            .iter()
            .map(|(p, d)| src_before(p).is_none().then(|| d.clone()))
            .collect();
        let (ld, rd) = match dir {
            Direction::Push => (&src_digests, &dst_digests),
            Direction::Pull => (&dst_digests, &src_digests),
        };
        let (l, r) = fingerprints::both_sides_with(local, remote, &names, ld, rd).await?;
        for ((p, l), r) in done.iter().zip(l).zip(r) {
            let (mut l, mut r) = (l, r);
            if let Some(b) = src_before(p) {
                let src = match dir {
                    Direction::Push => &mut l,
                    Direction::Pull => &mut r,
                };
                if src.as_deref() != Some(b.as_str()) {
                    *src = None;
                }
            }
            fps.set(p.src.guid, l, r);
        }
    }
    let live: HashSet<MailboxGuid> = src_boxes.iter().map(|b| b.guid).collect();
    fps.retain(|g| live.contains(g));
    if let Err(e) = block_in_place(|| fps.save(&fp_path)) {
        tracing::warn!(
            "could not record fingerprints in {}: {e}",
            fp_path.display()
        );
    }
    Ok(report)
}

/// A pairing's mailbox names (local, follower) once the tree ops are done.
fn side_names(p: &Pairing, dir: Direction) -> SideNames {
    match dir {
        Direction::Push => (p.src.name.clone(), p.dst_name.clone()),
        Direction::Pull => (p.dst_name.clone(), p.src.name.clone()),
    }
}

/// One mailbox's name on each side.
#[derive(Clone, Copy)]
struct MailboxPair<'n> {
    local: &'n MailboxName,
    remote: &'n MailboxName,
}

/// The follower's store ID (its sync-state key for us).
async fn remote_store_id(remote: &mut Remote, local_id: &str) -> Result<String> {
    remote
        .send(Command::StateGet {
            peer: local_id.to_string(),
        })
        .await?;
    remote.flush().await?;
    match remote.reply().await? {
        crate::protocol::Reply::State { store_id, .. } => Ok(store_id),
        crate::protocol::Reply::Error { kind, text } => {
            Err(super::remote::RemoteError { kind, text }.into())
        }
        other => anyhow::bail!(
            "{} answered STATE-GET with {:?}",
            remote.peer,
            other.to_fields()[0]
        ),
    }
}

type Listing = (Vec<crate::model::MailboxInfo>, Vec<MailboxName>);

fn list(store: &mut Store) -> Result<Listing> {
    Ok((store.list_mailboxes()?, store.subscriptions()?))
}

async fn remote_list(remote: &mut Remote) -> Result<Listing> {
    remote.send(Command::List).await?;
    remote.flush().await?;
    remote
        .read_list()
        .await
        .with_context(|| format!("listing the mailboxes of {}", remote.peer))
}

async fn send_tree_op(remote: &mut Remote, op: &TreeOp) -> Result<()> {
    match op {
        TreeOp::Delete(name) => remote.send(Command::Delete(name.clone())).await,
        TreeOp::Rename { from, to } => {
            remote.send(Command::Select(from.clone())).await?;
            remote.send(Command::Rename(to.clone())).await
        }
        TreeOp::Create {
            name,
            guid,
            uidvalidity,
        } => {
            remote
                .send(Command::Create {
                    guid: *guid,
                    uidvalidity: *uidvalidity,
                    name: name.clone(),
                })
                .await
        }
    }
}

fn apply_tree_op(store: &mut Store, op: &TreeOp) -> Result<()> {
    match op {
        TreeOp::Delete(name) => store.delete_mailbox(name),
        TreeOp::Rename { from, to } => store.rename_mailbox(from, to),
        TreeOp::Create {
            name,
            guid,
            uidvalidity,
        } => store.create_mailbox(name, *guid, *uidvalidity),
    }
}

/// Sends one mailbox's changes to the follower. The COMMIT's answer is read
/// later, so mailboxes stream back to back without waiting.
async fn push_mailbox(
    local: &mut Store,
    remote: &mut Remote,
    names: MailboxPair<'_>,
    plan: &MailboxPlan,
    report: &mut super::Report,
) -> Result<usize> {
    remote.send(Command::Select(names.remote.clone())).await?;
    let mut batches = transfer::Batches::begin(remote, plan.saves.len(), plan.header).await?;
    for &uid in &plan.expunge {
        remote.send(Command::Expunge(uid)).await?;
    }
    for (uid, flags, keywords) in &plan.flags {
        remote
            .send(Command::Flags {
                uid: *uid,
                flags: *flags,
                keywords: keywords.clone(),
            })
            .await?;
    }
    for &(uid, secs) in &plan.dates {
        remote.send(Command::Date { uid, secs }).await?;
    }
    for rec in &plan.saves {
        batches.before_save(remote).await?;
        transfer::push_message(local, remote, names.local, rec.uid, rec, report).await?;
    }
    let commits = batches.commit(remote).await?;
    remote.flush().await?;
    Ok(commits)
}

/// Applies one mailbox's changes locally, fetching bodies from the
/// follower (pipelined, see `transfer::fetch_into`).
async fn pull_mailbox(
    local: &mut Store,
    remote: &mut Remote,
    names: MailboxPair<'_>,
    plan: &MailboxPlan,
    report: &mut super::Report,
) -> Result<()> {
    let name = names.local;
    let mut txn = block_in_place(|| local.update(name))
        .with_context(|| format!("opening mailbox {name} for writing"))?;
    if let Some((guid, uidvalidity, uidnext)) = plan.header {
        txn.set_header(guid, uidvalidity, uidnext);
    }
    for &uid in &plan.expunge {
        block_in_place(|| txn.expunge(uid))?;
    }
    for (uid, flags, keywords) in &plan.flags {
        block_in_place(|| txn.set_flags(*uid, *flags, keywords))?;
    }
    for &(uid, secs) in &plan.dates {
        txn.set_internal_date(uid, secs);
    }
    if !plan.saves.is_empty() {
        remote.send(Command::Select(names.remote.clone())).await?;
    }
    let wanted: Vec<(Uid, &MessageRecord)> = plan.saves.iter().map(|r| (r.uid, r)).collect();
    transfer::fetch_into(remote, &mut txn, names.remote, &wanted, report).await?;
    block_in_place(|| txn.commit()).with_context(|| format!("committing mailbox {name}"))
}
