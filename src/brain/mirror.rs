//! Executes a two-way sync (mirror): both sides are read, each mailbox is
//! merged against the last common state (see `merge`), and each side gets
//! the changes it lacks. Bodies cross the wire only for messages the other
//! side does not hold anywhere; a message that moved between folders is
//! copied within its side.

use super::backup::LocalOpener;
use super::delta;
use super::fingerprints::{self, Fingerprints, SideNames};
use super::merge::{self, BaseMailbox, MergePlan, Origin, SidePlan};
use super::names::{self, NameMap};
use super::pairstate::{self, BaseUpdate};
use super::plan::Filter;
use super::remote::{Listing, Remote};
use super::subscriptions;
use super::transfer;
use super::Report;
use crate::model::{
    Digest, MailboxDelta, MailboxGuid, MailboxInfo, MailboxName, MailboxSnapshot, MessageRecord,
    Uid,
};
use crate::protocol::{self, Command, Reply};
use crate::store::{MessageSource, Store, StoreUpdate};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tokio::task::block_in_place;

/// The common state of the pair after their last successful sync.
pub use crate::state::SyncState as PairState;

/// One mailbox as the two sides hold it, after the tree is merged.
struct Pair {
    /// The name the pair's state records: the one no store altered.
    name: MailboxName,
    /// Its name on the local side and on the follower after the tree is
    /// merged (they differ where one store cannot hold the name, `names`).
    a_name: MailboxName,
    b_name: MailboxName,
    a: Option<MailboxInfo>,
    b: Option<MailboxInfo>,
    base: Option<BaseMailbox>,
}

pub struct MirrorOptions {
    pub filter: Filter,
    /// Let a run delete everything on one side because the other side is
    /// empty (normally refused: it is what a wrong path looks like).
    pub allow_mass_delete: bool,
    /// `-f`: compare every mailbox, even those whose fingerprints say
    /// neither side changed.
    pub full: bool,
}

pub async fn run(
    open_local: LocalOpener<'_>,
    remote: &mut Remote,
    opts: &MirrorOptions,
) -> Result<Report> {
    let mut report = Report::default();
    let mut local = block_in_place(|| open_local(true))?;
    let local = &mut local;
    remote
        .open(true)
        .await
        .context("opening the LOCATION2 mail store")?;
    let local_id = block_in_place(|| local.store_id())?;
    tracing::debug!("phase: both stores open");
    remote
        .send(Command::StateGet {
            peer: local_id.clone(),
        })
        .await?;
    remote.send(Command::List).await?;
    remote.flush().await?;
    // The local side lists while the follower does.
    let (a_boxes, a_subs) =
        block_in_place(|| -> Result<_> { Ok((local.list_mailboxes()?, local.subscriptions()?)) })?;
    let (remote_id, remote_token) = match remote.reply().await? {
        Reply::State { store_id, sync_id } => (store_id, sync_id),
        Reply::Error { text, .. } => bail!("{} could not read its sync state: {text}", remote.peer),
        other => bail!(
            "{} answered STATE-GET with {:?}",
            remote.peer,
            other.to_fields()[0]
        ),
    };
    if remote_id == local_id {
        tracing::warn!(
            "both sides carry the same store ID {local_id} (one was copied from the other, dsync-store-id included); \
             syncing them as an unrelated pair"
        );
    }
    let (b_boxes, b_subs) = remote
        .read_list()
        .await
        .context("listing the LOCATION2 mailboxes")?;
    let mut state = pairstate::agreed(
        block_in_place(|| local.load_state(&remote_id)),
        remote_token,
        "merging without it, so nothing is deleted this run",
    );
    if let Some(state) = &state {
        check_mass_delete(
            state,
            &a_boxes,
            &b_boxes,
            opts.allow_mass_delete,
            &remote.peer,
        )?;
    }

    tracing::debug!("phase: listed both sides");
    // How each side keeps the other's names (and the state's).
    let base_names: Vec<&MailboxName> = state
        .iter()
        .flat_map(|s| s.mailboxes.values().map(|(n, _)| n))
        .collect();
    let to_b = NameMap::remote(
        remote,
        a_boxes
            .iter()
            .map(|b| &b.name)
            .chain(&a_subs)
            .chain(&opts.filter.0)
            .chain(base_names.iter().copied()),
    )
    .await?;
    let to_a = NameMap::local(
        local,
        b_boxes
            .iter()
            .map(|b| &b.name)
            .chain(&b_subs)
            .chain(base_names.iter().copied()),
    );
    let maps = Maps {
        to_a: &to_a,
        to_b: &to_b,
    };
    let (pairs, deleted) = merge_tree(
        local,
        remote,
        (&a_boxes, &b_boxes),
        state.as_ref(),
        &opts.filter,
        maps,
        &mut report,
    )
    .await?;
    let sub_names = SubNames::new(&pairs, &b_subs, maps);

    // Mailboxes neither side touched since the last run are skipped
    // unread; their common state carries over.
    let fp_path = fingerprints::path(&local.control_root(), &remote_id);
    let mut fps = match &state {
        Some(_) if !opts.full => Fingerprints::load(&fp_path),
        _ => Fingerprints::default(),
    };
    let candidates: Vec<(MailboxGuid, SideNames)> = pairs
        .iter()
        .filter(|p| p.b.is_some())
        .filter(|p| {
            p.a.as_ref()
                .is_some_and(|a| state.as_ref().is_some_and(|s| s.get(&a.guid).is_some()))
        })
        .filter_map(|p| Some((p.a.as_ref()?.guid, (p.a_name.clone(), p.b_name.clone()))))
        .collect();
    let (before, skipped) =
        fingerprints::unchanged_since_last_run(local, remote, &fps, &candidates).await?;
    // A skipped mailbox may still have been renamed: its state keeps the
    // new name, or the rename would look undone at the next run.
    let mut skipped_names: Vec<(MailboxGuid, MailboxName)> = Vec::new();
    let mut pairs: Vec<Pair> = pairs
        .into_iter()
        .filter(|p| match p.a.as_ref() {
            Some(a) if skipped.contains(&a.guid) => {
                skipped_names.push((a.guid, p.name.clone()));
                false
            }
            _ => true,
        })
        .collect();

    tracing::debug!(
        "phase: fingerprints compared, {} mailbox(es) to read",
        pairs.len()
    );
    // Each pair read takes its base's messages out of the state (too big
    // to copy); the header and name stay there for the comparisons below.
    if let Some(st) = state.as_mut() {
        for p in pairs.iter_mut().filter(|p| p.b.is_some()) {
            let Some(a) = &p.a else { continue };
            if let Some((_, bm)) = st.mailboxes.get_mut(&a.guid) {
                let header = bm.header_only();
                p.base = Some(std::mem::replace(bm, header));
            }
        }
    }
    // Where both sides hold the pair's base, each reports only what
    // differs from it (`delta`); otherwise its whole mailbox.
    let by_delta = |p: &Pair| -> bool {
        let (Some(a), Some(b), Some(base)) = (&p.a, &p.b, &p.base) else {
            return false;
        };
        !opts.full
            && remote.has_feature(protocol::FEATURE_DELTA)
            && [a, b]
                .iter()
                .all(|m| m.guid == base.guid && m.uidvalidity == base.uidvalidity)
    };
    let deltas: HashSet<usize> = (0..pairs.len()).filter(|&i| by_delta(&pairs[i])).collect();
    // Every remote mailbox in one round trip.
    let wanted: Vec<usize> = (0..pairs.len()).filter(|&i| pairs[i].b.is_some()).collect();
    for &i in &wanted {
        remote
            .send(Command::Select(pairs[i].b_name.clone()))
            .await?;
        match &pairs[i].base {
            Some(base) if deltas.contains(&i) => remote.send(Command::Delta(base.guid)).await?,
            _ => remote.send(Command::Snapshot).await?,
        }
    }
    remote.flush().await?;
    // The local side reads while the follower does.
    let mut a_views: HashMap<usize, View> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        if p.a.is_none() {
            continue;
        }
        let view = block_in_place(|| -> Result<View> {
            Ok(match &p.base {
                Some(base) if deltas.contains(&i) => {
                    View::Delta(local.snapshot_delta(&p.a_name, base)?)
                }
                _ => View::Full(local.snapshot(&p.a_name)?),
            })
        })
        .with_context(|| format!("reading mailbox {}", p.a_name))?;
        a_views.insert(i, view);
    }
    tracing::debug!("phase: local mailboxes read");
    let mut b_views: HashMap<usize, View> = HashMap::new();
    for &i in &wanted {
        let read = if deltas.contains(&i) {
            remote.read_delta().await.map(|l| match l {
                Listing::Full(s) => View::Full(s),
                Listing::Delta(digest, d) => {
                    let base = pairs[i].base.as_ref().expect("a delta pair has a base");
                    if digest == delta::base_digest(base) {
                        View::Delta(d)
                    } else {
                        tracing::info!(
                            "{}: {} holds another base for it; comparing it in full",
                            pairs[i].name,
                            remote.peer
                        );
                        View::Stale
                    }
                }
            })
        } else {
            remote.read_snapshot().await.map(View::Full)
        };
        let view = read
            .with_context(|| format!("reading mailbox {} on {}", pairs[i].b_name, remote.peer))?;
        b_views.insert(i, view);
    }
    tracing::debug!("phase: remote mailboxes read");
    // What the merges left of the snapshots they used (whole, or
    // restricted to the UIDs a side changed, with `touched` and the old
    // base restricted to them): the records no save took.
    let mut a_snaps: Left = HashMap::new();
    let mut b_snaps: Left = HashMap::new();
    let mut restricted: HashMap<usize, (Vec<Uid>, BaseMailbox)> = HashMap::new();
    let mut plans: Vec<(usize, MergePlan)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let (a_view, b_view) = (a_views.remove(&i), b_views.remove(&i));
        if let (Some(View::Delta(da)), Some(View::Delta(db)), Some(base)) =
            (&a_view, &b_view, &p.base)
        {
            let usable = [&da.info, &db.info]
                .iter()
                .all(|m| m.guid == base.guid && m.uidvalidity == base.uidvalidity);
            if usable {
                let (Some(View::Delta(da)), Some(View::Delta(db))) = (a_view, b_view) else {
                    unreachable!("matched above")
                };
                let r = delta::restrict(base, da, db);
                // Small: the base keeps its own GUIDs (the edits below
                // compare it before the saves are made).
                let (plan, left) =
                    merge::merge_owned(Some(&r.base), r.a, r.b, merge::BaseGuids::Copied);
                if !delta::needs_full_records(&plan) {
                    report_plan(&p.name, &plan, &mut report);
                    a_snaps.insert(i, left.a);
                    b_snaps.insert(i, left.b);
                    restricted.insert(i, (r.touched, r.base));
                    plans.push((i, plan));
                    continue;
                }
                tracing::debug!(
                    "{}: the changes need whole records; comparing in full",
                    p.name
                );
                let a = block_in_place(|| local.snapshot(&p.a_name))
                    .with_context(|| format!("reading mailbox {}", p.a_name))?;
                let b = remote_snapshot(remote, &p.b_name).await?;
                let snaps = (i, &mut a_snaps, &mut b_snaps);
                plans.push((i, merge_full(p, (Some(a), Some(b)), snaps, &mut report)));
                continue;
            }
        }
        let a = match a_view {
            Some(View::Full(s)) => Some(s),
            Some(_) => Some(
                block_in_place(|| local.snapshot(&p.a_name))
                    .with_context(|| format!("reading mailbox {}", p.a_name))?,
            ),
            None => None,
        };
        let b = match b_view {
            Some(View::Full(s)) => Some(s),
            Some(_) => Some(remote_snapshot(remote, &p.b_name).await?),
            None => None,
        };
        let snaps = (i, &mut a_snaps, &mut b_snaps);
        plans.push((i, merge_full(p, (a, b), snaps, &mut report)));
    }

    // Where each message new to a side lives on that side already (moved
    // or copied between folders), so it is copied there, not sent.
    // Each side looks only for what it receives: in a first copy the
    // receiving side holds nothing, and the sender's own messages need no
    // lookup.
    let wanted = |side: fn(&MergePlan) -> &SidePlan| -> HashSet<&str> {
        plans
            .iter()
            .flat_map(|(_, p)| &side(p).saves)
            .filter(|s| matches!(s.origin, Origin::Other(_)))
            .map(|s| s.record.guid.as_str())
            .collect()
    };
    let (wanted_a, wanted_b) = (wanted(|p| &p.a), wanted(|p| &p.b));
    let mut old_bases: HashMap<usize, BaseMailbox> = pairs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.base.take()?)))
        .collect();
    let read = Read {
        restricted: &restricted,
        bases: &old_bases,
    };
    let held = Holdings {
        a: locate(&pairs, (&plans, &a_snaps), read, &wanted_a, SideOf::A),
        b: locate(&pairs, (&plans, &b_snaps), read, &wanted_b, SideOf::B),
        pairs: &pairs,
    };
    drop((wanted_a, wanted_b));
    // The plans hold all that is needed from here on.
    drop(a_snaps);
    drop(b_snaps);
    // A delta merge's base covers the UIDs it touched: the rest of the old
    // base carries over. What changed is what the follower's copy of the
    // state needs (`edits`).
    let mut edits: HashMap<MailboxGuid, delta::BaseEdit> = HashMap::new();
    for (i, plan) in plans.iter_mut() {
        let Some((touched, old_part)) = restricted.remove(i) else {
            continue;
        };
        let old = old_bases.remove(i).expect("a delta merge had a base");
        edits.insert(plan.base.guid, delta::edit(&old_part, &plan.base));
        let part = std::mem::replace(&mut plan.base, old_part);
        plan.base = delta::splice(old, part, &touched);
    }

    // A message one folder copies from another folder on the same side
    // (a move) must still be there when the copy is made: its expunge waits
    // for pass 2. Every other change is made in pass 1, one transaction per
    // folder and side.
    let mut later_a: HashSet<(usize, Uid)> = HashSet::new();
    let mut later_b: HashSet<(usize, Uid)> = HashSet::new();
    for (_, plan) in &plans {
        for (side_plan, map, later) in [
            (&plan.a, &held.a, &mut later_a),
            (&plan.b, &held.b, &mut later_b),
        ] {
            for s in &side_plan.saves {
                if let (Origin::Other(_), Some(&at)) = (&s.origin, map.get(&s.record.guid)) {
                    later.insert(at);
                }
            }
        }
    }
    // A plan's expunges become those made now (a relabelled message's old
    // UID goes with its relabel); the ones that wait are returned. The
    // plan is edited in place: a copy of a large copy's saves is too big.
    let split = |plan: &mut SidePlan, i: usize, later: &HashSet<(usize, Uid)>| {
        let (wait, now): (Vec<Uid>, Vec<Uid>) = real_expunges(plan)
            .into_iter()
            .partition(|u| later.contains(&(i, *u)));
        plan.expunge = now;
        wait
    };
    // Which plans change nothing (for the fingerprints below), before
    // their expunges are split.
    let unchanged: HashSet<usize> = plans
        .iter()
        .filter(|(_, p)| p.a.is_empty() && p.b.is_empty())
        .map(|(i, _)| *i)
        .collect();
    block_in_place(super::pause_for_tests);
    // Pass 1. Per mailbox: the local side fetches the bodies it needs, the
    // follower gets its changes and COMMIT, and the local side commits
    // while the follower does: the two commits (the slow part, fsyncs and
    // renames) run at the same time. The follower's changes go out before
    // the local commit, so every local path they name is still valid.
    let mut pass2: Vec<(usize, Vec<Uid>, Vec<Uid>)> = Vec::new();
    let mut pending = 0usize;
    for (i, plan) in plans.iter_mut() {
        let b_wait = split(&mut plan.b, *i, &later_b);
        let a_wait = split(&mut plan.a, *i, &later_a);
        if !a_wait.is_empty() || !b_wait.is_empty() {
            pass2.push((*i, a_wait, b_wait));
        }
        let p = &pairs[*i];
        let (a_now, b_now) = (&plan.a, &plan.b);
        if a_now.is_empty() {
            if !b_now.is_empty() {
                pending += push_side(&*local, remote, &held, p, b_now, a_now, &mut report).await?;
            }
        } else {
            let progress = Progress {
                pending: &mut pending,
                report: &mut report,
            };
            let txn = pull_side(local, remote, &held, p, (a_now, b_now), progress).await?;
            if !b_now.is_empty() {
                pending += push_side(&txn, remote, &held, p, b_now, a_now, &mut report).await?;
            }
            remote.flush().await?;
            block_in_place(|| txn.commit())
                .with_context(|| format!("committing mailbox {}", p.a_name))?;
        }
        // Done with: only the new base is needed from here on.
        plan.reclaim_guids();
        plan.a = SidePlan::default();
        plan.b = SidePlan::default();
    }
    // Pass 2: the expunges of messages moved to other folders.
    for (i, a_exp, b_exp) in pass2 {
        let p = &pairs[i];
        if !b_exp.is_empty() {
            remote.send(Command::Select(p.b_name.clone())).await?;
            remote.send(Command::Begin).await?;
            for uid in b_exp {
                remote.send(Command::Expunge(uid)).await?;
            }
            remote.send(Command::Commit).await?;
            pending += 1;
        }
        if !a_exp.is_empty() {
            block_in_place(|| -> Result<()> {
                let mut txn = local.update(&p.a_name)?;
                for uid in a_exp {
                    txn.expunge(uid)?;
                }
                txn.commit()
            })
            .with_context(|| format!("expunging in mailbox {}", p.a_name))?;
        }
    }
    remote.flush().await?;
    for _ in 0..pending {
        remote
            .expect_ok()
            .await
            .with_context(|| format!("committing changes on {}", remote.peer))?;
    }

    tracing::debug!("phase: all changes committed");
    // Subscriptions: merged against the set both had after the last run.
    let subs_path = subscriptions::path(&local.control_root(), &remote_id);
    // `-m` names are the local side's; the follower's spelling of them
    // counts there too.
    let on_b = |n: &MailboxName| opts.filter.covers_as(n, &to_b);
    let on_a = |n: &MailboxName| opts.filter.covers(n);
    let covered = |v: &[MailboxName], covers: &dyn Fn(&MailboxName) -> bool| {
        v.iter()
            .filter(|n| covers(n))
            .cloned()
            .collect::<BTreeSet<MailboxName>>()
    };
    // Merged in the local side's spelling (the recorded set is in it too),
    // written to the follower in its own.
    let (a_set, b_set) = (covered(&a_subs, &on_a), covered(&b_subs, &on_b));
    let b_set_as_a: BTreeSet<MailboxName> = b_set.iter().map(|n| sub_names.on_a(n)).collect();
    let old_subs = state.as_ref().and_then(|_| subscriptions::load(&subs_path));
    let merged = subscriptions::merge(&a_set, &b_set_as_a, old_subs.as_ref());
    let merged_on_b: BTreeSet<MailboxName> = merged.iter().map(|n| sub_names.on_b(n)).collect();
    let uncovered = |v: &[MailboxName], covers: &dyn Fn(&MailboxName) -> bool| {
        v.iter()
            .filter(|n| !covers(n))
            .cloned()
            .collect::<Vec<MailboxName>>()
    };
    if a_set != merged {
        let all: Vec<MailboxName> = merged
            .iter()
            .cloned()
            .chain(uncovered(&a_subs, &on_a))
            .collect();
        block_in_place(|| local.set_subscriptions(&all))?;
    }
    if b_set != merged_on_b {
        for s in merged_on_b.into_iter().chain(uncovered(&b_subs, &on_b)) {
            remote.send(Command::Sub(s)).await?;
        }
        remote.send(Command::SubsCommit).await?;
    }
    let mut new_subs = merged;
    if let Some(old) = &old_subs {
        new_subs.extend(old.iter().filter(|n| !opts.filter.covers(n)).cloned());
    }
    if let Err(e) = block_in_place(|| subscriptions::save(&subs_path, &new_subs)) {
        tracing::warn!(
            "could not record subscriptions in {}: {e}",
            subs_path.display()
        );
    }

    // The new common state, on both sides, under a fresh token. Mailboxes
    // outside -m keep their old base.
    // With a common state both sides hold, the follower gets only what
    // changed; otherwise the whole state.
    let had_state = state.is_some();
    let mut new_state = state.unwrap_or_default();
    let old_guids: HashSet<MailboxGuid> = new_state.mailboxes.keys().copied().collect();
    if opts.filter.0.is_empty() {
        // Only mailboxes that still exist: skipped ones and this run's.
        let planned: HashSet<MailboxGuid> = plans.iter().map(|(_, p)| p.base.guid).collect();
        new_state
            .mailboxes
            .retain(|g, _| skipped.contains(g) || planned.contains(g));
    }
    // The leader's file gets a journal entry when it holds this state.
    let old_sync_id = had_state.then(|| new_state.sync_id.clone());
    new_state.sync_id = PairState::generate_sync_id()?;
    for g in &deleted {
        new_state.mailboxes.remove(g);
    }
    // Fingerprints: unchanged mailboxes keep the ones taken before they
    // were read; changed ones get new ones where each side confirms it now
    // holds exactly the merged state.
    let mut changed: Vec<(MailboxGuid, SideNames, Option<String>)> = Vec::new();
    for (i, plan) in &plans {
        let guid = plan.base.guid;
        if unchanged.contains(i) {
            // A side changed a moment before the run had no fingerprint to
            // give: it gets one now, like a mailbox this run changed.
            if let Some((Some(l), Some(r))) = before.get(&guid) {
                fps.set(guid, Some(l.clone()), Some(r.clone()));
                continue;
            }
        }
        fps.set(guid, None, None);
        let mut d = Digest::new(&guid, plan.base.uidvalidity, plan.base.uidnext);
        for m in &plan.base.messages {
            d.message(m.uid, &m.guid, m.flags, &m.keywords);
        }
        let p = &pairs[*i];
        changed.push((guid, (p.a_name.clone(), p.b_name.clone()), Some(d.finish())));
    }
    tracing::debug!("phase: subscriptions done");
    if report.incomplete.is_empty() && !changed.is_empty() {
        let names: Vec<SideNames> = changed.iter().map(|(_, n, _)| n.clone()).collect();
        let digests: Vec<Option<String>> = changed.iter().map(|(_, _, d)| d.clone()).collect();
        let (l, r) = fingerprints::both_sides(local, remote, &names, &digests).await?;
        for (((g, _, _), l), r) in changed.iter().zip(l).zip(r) {
            fps.set(*g, l, r);
        }
    }
    fps.retain(|g| {
        new_state.mailboxes.contains_key(g) || plans.iter().any(|(_, p)| p.base.guid == *g)
    });
    // What the follower's copy of the state needs, per mailbox that
    // changed: an edit where it holds the old base (a delta merge, or only
    // the name changed), else the whole base.
    let can_edit = had_state && remote.has_feature(protocol::FEATURE_DELTA);
    let mut updated: Vec<(MailboxGuid, BaseUpdate)> = Vec::new();
    for (guid, name) in skipped_names {
        if let Some(entry) = new_state.mailboxes.get_mut(&guid) {
            if entry.0 != name {
                entry.0 = name;
                updated.push((guid, BaseUpdate::Edit(delta::BaseEdit::default())));
            }
        }
    }
    for (i, plan) in plans {
        let guid = plan.base.guid;
        let name = pairs[i].name.clone();
        // The old entry: a header only when its messages went to the pair.
        let old = new_state.mailboxes.get(&guid);
        let same_header = old.is_some_and(|(n, b)| {
            *n == name && (b.uidvalidity, b.uidnext) == (plan.base.uidvalidity, plan.base.uidnext)
        });
        let change = match edits.remove(&guid) {
            Some(e) if e.is_empty() && same_header => None,
            Some(e) => Some(BaseUpdate::Edit(e)),
            None => {
                let old_messages = old_bases
                    .get(&i)
                    .map(|b| &b.messages)
                    .or(old.map(|(_, b)| &b.messages));
                (!same_header || old_messages != Some(&plan.base.messages))
                    .then_some(BaseUpdate::Whole)
            }
        };
        if let Some(c) = change {
            updated.push((guid, c));
        }
        new_state.mailboxes.insert(guid, (name, plan.base));
    }
    let dropped: Vec<MailboxGuid> = old_guids
        .iter()
        .filter(|g| !new_state.mailboxes.contains_key(g))
        .copied()
        .collect();
    tracing::debug!("phase: fingerprints taken");
    block_in_place(|| {
        pairstate::save_local(
            local,
            &remote_id,
            &new_state,
            old_sync_id.as_deref(),
            &updated,
            &dropped,
        )
    })?;
    if let Err(e) = block_in_place(|| fps.save(&fp_path)) {
        tracing::warn!(
            "could not record fingerprints in {}: {e}",
            fp_path.display()
        );
    }
    pairstate::send(
        remote,
        local_id,
        &new_state,
        (had_state, can_edit),
        &updated,
        &dropped,
    )
    .await?;
    tracing::debug!("phase: state saved here, sent");
    Ok(report)
}

/// Refuses to mirror a side that has lost everything the last sync saw:
/// that is what a wrong path or an unmounted disk looks like, and mirroring
/// it would delete all mail on the other side.
fn check_mass_delete(
    state: &PairState,
    a: &[MailboxInfo],
    b: &[MailboxInfo],
    allow: bool,
    peer: &str,
) -> Result<()> {
    let had: u64 = state
        .mailboxes
        .values()
        .map(|(_, m)| m.messages.len() as u64)
        .sum();
    if had == 0 || allow {
        return Ok(());
    }
    for (side, boxes) in [("the local mail location", a), (peer, b)] {
        let now: u64 = boxes.iter().map(|m| m.messages as u64).sum();
        if now == 0 {
            bail!(
                "{side} has no messages at all, but held {had} at the last sync: refusing to delete them on the other side. \
                 If the mail really was deleted, run again with -o dsync_allow_mass_delete=yes; if the path is wrong, fix it"
            );
        }
    }
    Ok(())
}

fn empty_like(other: Option<&MailboxSnapshot>) -> MailboxSnapshot {
    let info = other
        .map(|s| s.info.clone())
        .expect("a pair has at least one side");
    MailboxSnapshot {
        info: MailboxInfo {
            uidnext: 1,
            messages: 0,
            highest_modseq: 0,
            ..info
        },
        messages: Vec::new(),
    }
}

/// What a delta merge read of a pair besides its restricted snapshots:
/// the UIDs it touched and the old base (whose other messages both sides
/// hold unchanged).
#[derive(Clone, Copy)]
struct Read<'r> {
    restricted: &'r HashMap<usize, (Vec<Uid>, BaseMailbox)>,
    bases: &'r HashMap<usize, BaseMailbox>,
}

/// Per pair index: the records of one side's snapshot that its merge
/// left (no save took them).
type Left = HashMap<usize, Vec<MessageRecord>>;

/// One side of the pair, for `locate`.
#[derive(Clone, Copy)]
enum SideOf {
    A,
    B,
}

/// Message GUID → (mailbox index, UID) on one side, as the side held its
/// messages when it was read: what the merges left of its snapshots,
/// the records they moved into the plans (this side's renumberings and
/// the other side's copies from here) and, for delta merges, the old
/// base's untouched messages.
fn locate(
    pairs: &[Pair],
    (plans, left): (&[(usize, MergePlan)], &Left),
    read: Read<'_>,
    wanted: &HashSet<&str>,
    side: SideOf,
) -> HashMap<String, (usize, Uid)> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return out;
    }
    let mut found = |guid: &str, at: (usize, Uid)| {
        if wanted.contains(guid) && !out.contains_key(guid) {
            out.insert(guid.to_string(), at);
        }
    };
    for (i, plan) in plans {
        let i = *i;
        let p = &pairs[i];
        let (present, mine, theirs) = match side {
            SideOf::A => (p.a.is_some(), &plan.a, &plan.b),
            SideOf::B => (p.b.is_some(), &plan.b, &plan.a),
        };
        if !present {
            continue;
        }
        for m in left.get(&i).into_iter().flatten() {
            found(&m.guid, (i, m.uid));
        }
        for s in &mine.saves {
            if let Origin::Own(old) = s.origin {
                found(&s.record.guid, (i, old));
            }
        }
        let disk = on_disk_uids(mine);
        for s in &theirs.saves {
            if let Origin::Other(uid) = s.origin {
                found(&s.record.guid, (i, disk.get(&uid).copied().unwrap_or(uid)));
            }
        }
        if let (Some((touched, _)), Some(base)) = (read.restricted.get(&i), read.bases.get(&i)) {
            for m in &base.messages {
                if touched.binary_search(&m.uid).is_err() {
                    found(&m.guid, (i, m.uid));
                }
            }
        }
    }
    out
}

/// A side of a pair as read.
enum View {
    Full(MailboxSnapshot),
    /// What differs from the pair's base.
    Delta(MailboxDelta),
    /// The follower compared with a base other than ours: read it whole.
    Stale,
}

/// The follower's whole mailbox, asked for on its own.
async fn remote_snapshot(remote: &mut Remote, name: &MailboxName) -> Result<MailboxSnapshot> {
    remote.send(Command::Select(name.clone())).await?;
    remote.send(Command::Snapshot).await?;
    remote.flush().await?;
    remote
        .read_snapshot()
        .await
        .with_context(|| format!("reading mailbox {name} on {}", remote.peer))
}

/// Merges a pair from whole snapshots (a missing side is an empty
/// mailbox), keeping what the merge left of them for `locate`.
fn merge_full(
    p: &Pair,
    (a, b): (Option<MailboxSnapshot>, Option<MailboxSnapshot>),
    (i, a_snaps, b_snaps): (usize, &mut Left, &mut Left),
    report: &mut Report,
) -> MergePlan {
    let a = a.unwrap_or_else(|| empty_like(b.as_ref()));
    let b = b.unwrap_or_else(|| empty_like(Some(&a)));
    // The base's GUIDs come back from the saves once they are made.
    let (plan, left) = merge::merge_owned(p.base.as_ref(), a, b, merge::BaseGuids::Lent);
    report_plan(&p.name, &plan, report);
    if p.a.is_some() {
        a_snaps.insert(i, left.a);
    }
    if p.b.is_some() {
        b_snaps.insert(i, left.b);
    }
    plan
}

fn report_plan(name: &MailboxName, plan: &MergePlan, report: &mut Report) {
    tracing::info!(
        "{}: leader side {} new, {} expunged, {} flag changes; other side {} new, {} expunged, {} flag changes",
        name,
        plan.a.saves.len(),
        plan.a.expunge.len(),
        plan.a.flags.len(),
        plan.b.saves.len(),
        plan.b.expunge.len(),
        plan.b.flags.len()
    );
    for side in [&plan.a, &plan.b] {
        report.copied += side
            .saves
            .iter()
            .filter(|s| matches!(s.origin, Origin::Other(_)))
            .count() as u64;
        report.expunged += side.expunge.len() as u64;
        report.updated += side.flags.len() as u64;
    }
}

/// Expunges that are not the old UID of a relabelled message.
fn real_expunges(p: &SidePlan) -> Vec<Uid> {
    let relabelled: HashSet<Uid> = p
        .saves
        .iter()
        .filter_map(|s| match s.origin {
            Origin::Own(u) => Some(u),
            Origin::Other(_) => None,
        })
        .collect();
    p.expunge
        .iter()
        .copied()
        .filter(|u| !relabelled.contains(u))
        .collect()
}

/// For saves whose body is the other side's message `uid` (already
/// renumbered there): the UID each has on that side *before* this run's
/// changes are committed there (only renumbered ones are listed).
fn on_disk_uids(other_plan: &SidePlan) -> HashMap<Uid, Uid> {
    other_plan
        .saves
        .iter()
        .filter_map(|s| match s.origin {
            Origin::Own(old) => Some((s.record.uid, old)),
            _ => None,
        })
        .collect()
}

/// Where each message (by GUID) lives on each side at the start of the
/// run, so a message one side needs and already holds elsewhere is copied
/// there instead of crossing the wire.
struct Holdings<'p> {
    pairs: &'p [Pair],
    a: HashMap<String, (usize, Uid)>,
    b: HashMap<String, (usize, Uid)>,
}

impl Holdings<'_> {
    /// The local mailbox name and UID holding `guid`.
    fn on_a(&self, guid: &str) -> Option<(MailboxName, Uid)> {
        let &(i, uid) = self.a.get(guid)?;
        let p = &self.pairs[i];
        p.a.as_ref()?;
        Some((p.a_name.clone(), uid))
    }

    /// The follower's mailbox GUID (as it listed it) and UID holding `guid`.
    fn on_b(&self, guid: &str) -> Option<(MailboxGuid, Uid)> {
        let &(i, uid) = self.b.get(guid)?;
        Some((self.pairs[i].b.as_ref()?.guid, uid))
    }
}

/// Commits sent to the follower but not yet answered, and the run's report.
struct Progress<'r> {
    pending: &'r mut usize,
    report: &'r mut Report,
}

/// Sends the follower's changes for one mailbox (expunges of move
/// sources excepted: the plan given holds only those that need not wait);
/// returns the number of COMMITs sent (a large copy is sent in parts).
async fn push_side(
    local: &dyn MessageSource,
    remote: &mut Remote,
    held: &Holdings<'_>,
    p: &Pair,
    plan: &SidePlan,
    a_plan: &SidePlan,
    report: &mut Report,
) -> Result<usize> {
    remote.send(Command::Select(p.b_name.clone())).await?;
    let copies = plan
        .saves
        .iter()
        .filter(|s| matches!(s.origin, Origin::Other(_)))
        .count();
    let mut batches = transfer::Batches::begin(remote, copies, plan.header).await?;
    for s in &plan.saves {
        if let Origin::Own(old) = s.origin {
            remote
                .send(Command::Relabel {
                    old,
                    new: s.record.uid,
                })
                .await?;
            // A renumbered message takes the merged flags (when the two
            // sides had different UIDVALIDITYs, the leader's).
            remote
                .send(Command::Flags {
                    uid: s.record.uid,
                    flags: s.record.flags,
                    keywords: s.record.keywords.clone(),
                })
                .await?;
        }
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
    for &uid in &plan.expunge {
        remote.send(Command::Expunge(uid)).await?;
    }
    let a_disk = on_disk_uids(a_plan);
    for s in &plan.saves {
        let Origin::Other(uid) = s.origin else {
            continue;
        };
        batches.before_save(remote).await?;
        if let Some((mailbox, held_uid)) = held.on_b(&s.record.guid) {
            // The follower already holds this message (it moved or was
            // copied between folders there): copy it, no body on the wire.
            remote
                .send(Command::CopyLocal {
                    mailbox,
                    uid: held_uid,
                    record: s.record.clone(),
                })
                .await?;
            continue;
        }
        let src_uid = a_disk.get(&uid).copied().unwrap_or(uid);
        transfer::push_message(local, remote, &p.a_name, src_uid, &s.record, report).await?;
    }
    batches.commit(remote).await
}

/// Prepares the leader's changes for one mailbox (expunges of move sources
/// excepted), fetching bodies the local side does not hold; the caller
/// commits the transaction returned.
async fn pull_side<'s>(
    local: &'s mut Store,
    remote: &mut Remote,
    held: &Holdings<'_>,
    p: &Pair,
    (plan, b_plan): (&SidePlan, &SidePlan),
    progress: Progress<'_>,
) -> Result<StoreUpdate<'s>> {
    let Progress { pending, report } = progress;
    // Messages held in another local folder are copied, not fetched.
    let held_here = |s: &merge::Save| held.on_a(&s.record.guid);
    let fetches: Vec<&merge::Save> = plan
        .saves
        .iter()
        .filter(|s| matches!(s.origin, Origin::Other(_)) && held_here(s).is_none())
        .collect();
    if !fetches.is_empty() {
        // The follower answers in order: its commits come before any body
        // asked for below.
        remote.flush().await?;
        while *pending > 0 {
            remote
                .expect_ok()
                .await
                .with_context(|| format!("committing changes on {}", remote.peer))?;
            *pending -= 1;
        }
        remote.send(Command::Select(p.b_name.clone())).await?;
    }
    let mut txn = block_in_place(|| local.update(&p.a_name))
        .with_context(|| format!("opening mailbox {} for writing", p.a_name))?;
    if let Some((guid, uidvalidity, uidnext)) = plan.header {
        txn.set_header(guid, uidvalidity, uidnext);
    }
    for s in &plan.saves {
        if let Origin::Own(old) = s.origin {
            block_in_place(|| txn.relabel(old, s.record.uid))?;
            block_in_place(|| txn.set_flags(s.record.uid, s.record.flags, &s.record.keywords))?;
        }
    }
    for s in &plan.saves {
        if let (Origin::Other(_), Some((name, uid))) = (&s.origin, held_here(s)) {
            block_in_place(|| txn.copy_local(&s.record, &name, uid))?;
        }
    }
    for (uid, flags, keywords) in &plan.flags {
        block_in_place(|| txn.set_flags(*uid, *flags, keywords))?;
    }
    for &uid in &plan.expunge {
        block_in_place(|| txn.expunge(uid))?;
    }
    // The follower commits its own relabels after these fetches: ask for
    // its messages by the UIDs they have there now.
    let b_disk = on_disk_uids(b_plan);
    let wanted: Vec<(Uid, &MessageRecord)> = fetches
        .iter()
        .filter_map(|s| match s.origin {
            Origin::Other(uid) => Some((b_disk.get(&uid).copied().unwrap_or(uid), &s.record)),
            Origin::Own(_) => None,
        })
        .collect();
    transfer::fetch_into(remote, &mut txn, &p.b_name, &wanted, report).await?;
    Ok(txn)
}

/// How each side keeps the other side's names (see `names`).
#[derive(Clone, Copy)]
struct Maps<'m> {
    to_a: &'m NameMap,
    to_b: &'m NameMap,
}

/// Subscribed names in each side's spelling: a mailbox's own names where
/// the pair has them, else as each store would keep the name.
struct SubNames<'m> {
    a_to_b: HashMap<MailboxName, MailboxName>,
    b_to_a: HashMap<MailboxName, MailboxName>,
    maps: Maps<'m>,
}

impl<'m> SubNames<'m> {
    fn new(pairs: &[Pair], b_subs: &[MailboxName], maps: Maps<'m>) -> Self {
        let mut s = SubNames {
            a_to_b: HashMap::new(),
            b_to_a: HashMap::new(),
            maps,
        };
        for p in pairs {
            s.a_to_b.insert(p.a_name.clone(), p.b_name.clone());
            s.b_to_a.insert(p.b_name.clone(), p.a_name.clone());
        }
        // A follower's subscription to no mailbox keeps its spelling there.
        for b in b_subs {
            if !s.b_to_a.contains_key(b) {
                let a = maps.to_a.get(b);
                s.a_to_b.entry(a.clone()).or_insert_with(|| b.clone());
                s.b_to_a.insert(b.clone(), a);
            }
        }
        s
    }

    /// The local spelling of a follower's subscription.
    fn on_a(&self, b: &MailboxName) -> MailboxName {
        self.b_to_a
            .get(b)
            .cloned()
            .unwrap_or_else(|| self.maps.to_a.get(b))
    }

    /// The follower's spelling of a local-spelled subscription (one that
    /// came from the follower maps back to its own spelling).
    fn on_b(&self, a: &MailboxName) -> MailboxName {
        self.a_to_b
            .get(a)
            .cloned()
            .unwrap_or_else(|| self.maps.to_b.get(a))
    }
}

/// Matches the two trees: by GUID, then by name. Mailboxes on one side
/// only are created on the other, unless the last sync saw them on both
/// and the other side deleted them (and nothing new arrived in them since).
/// Names are compared as each side stores them (`maps`): `a.b` here and
/// `a_b` on a side that cannot hold `a.b` are one name, not a rename.
async fn merge_tree(
    local: &mut Store,
    remote: &mut Remote,
    (a, b): (&[MailboxInfo], &[MailboxInfo]),
    state: Option<&PairState>,
    filter: &Filter,
    maps: Maps<'_>,
    report: &mut Report,
) -> Result<(Vec<Pair>, Vec<MailboxGuid>)> {
    let Maps { to_a, to_b } = maps;
    let mut deleted = Vec::new();
    let a: Vec<&MailboxInfo> = a.iter().filter(|m| filter.covers(&m.name)).collect();
    let b: Vec<&MailboxInfo> = b
        .iter()
        .filter(|m| filter.covers_as(&m.name, to_b))
        .collect();
    let b_by_guid: HashMap<MailboxGuid, usize> =
        b.iter().enumerate().map(|(i, m)| (m.guid, i)).collect();
    let mut b_used = vec![false; b.len()];
    let mut pairs: Vec<Pair> = Vec::new();
    let mut a_left = Vec::new();
    let pair = |a: Option<&MailboxInfo>, b: Option<&MailboxInfo>| {
        let (a_name, b_name) = match (a, b) {
            (Some(a), Some(b)) => (a.name.clone(), b.name.clone()),
            (Some(a), None) => (a.name.clone(), to_b.get(&a.name)),
            (None, Some(b)) => (to_a.get(&b.name), b.name.clone()),
            (None, None) => unreachable!("a pair has at least one side"),
        };
        Pair {
            name: names::original(&a_name, &b_name, to_a),
            a_name,
            b_name,
            a: a.cloned(),
            b: b.cloned(),
            base: None,
        }
    };
    for m in &a {
        match b_by_guid.get(&m.guid) {
            Some(&j) => {
                b_used[j] = true;
                pairs.push(pair(Some(m), Some(b[j])));
            }
            None => a_left.push(*m),
        }
    }
    // Unmatched follower mailboxes by their name there and by the local
    // spelling of it.
    let mut b_by_name: BTreeMap<MailboxName, usize> = BTreeMap::new();
    let mut b_by_a_name: BTreeMap<MailboxName, usize> = BTreeMap::new();
    for (j, m) in b.iter().enumerate() {
        if !b_used[j] {
            b_by_name.insert(m.name.clone(), j);
            b_by_a_name.insert(to_a.get(&m.name), j);
        }
    }
    let known = |g: &MailboxGuid| state.and_then(|s| s.mailboxes.get(g));
    for m in a_left {
        let same = b_by_name
            .get(&to_b.get(&m.name))
            .or_else(|| b_by_a_name.get(&m.name))
            .copied()
            .filter(|&j| !b_used[j]);
        if let Some(j) = same {
            let one = match (known(&m.guid), known(&b[j].guid)) {
                // The same name on both, never synced: one mailbox.
                (None, None) => true,
                // One side's mailbox is new to the last sync. Deleted and
                // created again (it holds none of the old messages), it
                // replaces the old one; but a side that lost its index (a
                // new dovecot-uidlist: new GUID and UIDVALIDITY) still
                // holds them, and it is the same mailbox, merged by
                // message GUID: nothing deleted.
                (Some((_, base)), None) => {
                    let snap = remote_snapshot(remote, &b[j].name).await?;
                    holds_any(base, &snap)
                }
                (None, Some((_, base))) => {
                    let snap = block_in_place(|| local.snapshot(&m.name))
                        .with_context(|| format!("reading mailbox {}", m.name))?;
                    holds_any(base, &snap)
                }
                (Some(_), Some(_)) => false,
            };
            if one {
                b_used[j] = true;
                pairs.push(pair(Some(m), Some(b[j])));
                continue;
            }
        }
        pairs.push(pair(Some(m), None));
    }
    for (j, m) in b.iter().enumerate() {
        if !b_used[j] {
            pairs.push(pair(None, Some(m)));
        }
    }
    // Names each side holds, so a create never lands on a taken one.
    let mut a_taken: HashSet<MailboxName> = a.iter().map(|m| m.name.clone()).collect();
    let mut b_taken: HashSet<MailboxName> = b.iter().map(|m| m.name.clone()).collect();
    let mut out = Vec::new();
    // Parents before children for creates; deletes before everything, so
    // the names they free can be taken again in the same run.
    pairs.sort_by(|x, y| {
        x.name
            .parts()
            .len()
            .cmp(&y.name.parts().len())
            .then(x.name.cmp(&y.name))
    });
    let is_delete = |p: &Pair| {
        let (m, guid) = match (&p.a, &p.b) {
            (Some(m), None) | (None, Some(m)) => (m, m.guid),
            _ => return false,
        };
        known(&guid).is_some_and(|(_, bm)| m.uidnext <= bm.uidnext)
    };
    pairs.sort_by_key(|p| !is_delete(p));
    for mut p in pairs {
        let guid =
            p.a.as_ref()
                .or(p.b.as_ref())
                .map(|m| m.guid)
                .expect("one side");
        // The base itself is moved into the pair by the caller (a whole
        // mailbox's base is too big to copy).
        let base = known(&guid);
        match (&p.a, &p.b) {
            (Some(a), Some(b)) => {
                if !names::same_name(&a.name, &b.name, to_a, to_b) {
                    // Renamed on one side: the side whose name differs from
                    // the last sync's renamed it; if both did, the leader wins.
                    let a_kept = base.is_some_and(|(n, _)| names::keeps(n, &a.name, to_a));
                    if a_kept {
                        let to = to_a.get(&b.name);
                        block_in_place(|| local.rename_mailbox(&a.name, &to))?;
                        names::report_stored(&b.name, &to, "the local mail location");
                        a_taken.insert(to.clone());
                        p.a_name = to;
                    } else {
                        let to = to_b.get(&a.name);
                        remote.send(Command::Select(b.name.clone())).await?;
                        remote.send(Command::Rename(to.clone())).await?;
                        names::report_stored(&a.name, &to, &remote.peer);
                        b_taken.insert(to.clone());
                        p.b_name = to;
                    }
                    p.name = names::original(&p.a_name, &p.b_name, to_a);
                }
                out.push(p);
            }
            (Some(a), None) => {
                if let Some((_, bm)) = base {
                    if a.uidnext <= bm.uidnext {
                        // Deleted on the other side, nothing new here since.
                        tracing::info!("{}: deleted on {}, deleting here", a.name, remote.peer);
                        block_in_place(|| local.delete_mailbox(&a.name))?;
                        a_taken.remove(&a.name);
                        deleted.push(a.guid);
                        continue;
                    }
                }
                if !b_taken.insert(p.b_name.clone()) {
                    name_collision(report, &a.name, &p.b_name, &remote.peer);
                    continue;
                }
                names::report_stored(&a.name, &p.b_name, &remote.peer);
                remote
                    .send(Command::Create {
                        guid: a.guid,
                        uidvalidity: a.uidvalidity,
                        name: p.b_name.clone(),
                    })
                    .await?;
                out.push(p);
            }
            (None, Some(b)) => {
                if let Some((_, bm)) = base {
                    if b.uidnext <= bm.uidnext {
                        tracing::info!("{}: deleted locally, deleting on {}", b.name, remote.peer);
                        remote.send(Command::Delete(b.name.clone())).await?;
                        b_taken.remove(&b.name);
                        deleted.push(b.guid);
                        continue;
                    }
                }
                if !a_taken.insert(p.a_name.clone()) {
                    name_collision(report, &b.name, &p.a_name, "the local mail location");
                    continue;
                }
                names::report_stored(&b.name, &p.a_name, "the local mail location");
                block_in_place(|| local.create_mailbox(&p.a_name, b.guid, b.uidvalidity))?;
                out.push(p);
            }
            (None, None) => unreachable!(),
        }
    }
    Ok((out, deleted))
}

/// Whether a mailbox holds any message of a base (by message GUID).
fn holds_any(base: &BaseMailbox, snap: &MailboxSnapshot) -> bool {
    let old: HashSet<&str> = base.messages.iter().map(|m| m.guid.as_str()).collect();
    snap.messages.iter().any(|m| old.contains(m.guid.as_str()))
}

/// A mailbox that cannot be created on a side because the name that side
/// would give it is taken by another mailbox there.
fn name_collision(report: &mut Report, name: &MailboxName, at: &MailboxName, side: &str) {
    tracing::warn!(
        "mailbox {name} is not synced: {side} would store it as {at}, which another mailbox \
         there already has; rename one of them"
    );
    report.incomplete.push(format!(
        "{name}: its name collides with another mailbox's on {side}"
    ));
}
