//! Executes a one-way sync: reads both sides, plans (see `plan`), and
//! applies the plan to whichever side is the destination, streaming bodies
//! across the protocol in the right direction.

use super::delta;
use super::fingerprints::{self, Fingerprints, SideNames};
use super::merge::{BaseMailbox, BaseMessage};
use super::names::{self, NameMap};
use super::pairstate::{self, BaseUpdate};
use super::plan::{self, Filter, MailboxPlan, Pairing, TreeOp};
use super::remote::{Listing, Remote};
use super::transfer;
use super::Report;
use crate::model::{MailboxDelta, MailboxGuid, MailboxName, MailboxSnapshot, MessageRecord, Uid};
use crate::protocol::{self, Command, Reply};
use crate::state::{self, SyncState as PairState};
use crate::store::Store;
use anyhow::{Context, Result};
use std::collections::HashSet;
use tokio::task::block_in_place;

/// What a backup does without a usable state (for the warnings).
const WITHOUT_STATE: &str = "comparing every mailbox in full this run";

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
    tracing::debug!("phase: both sides listed");
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

    // The pair's common state (shared with mirror): where both sides hold
    // it, each reports only what differs from it (`delta`).
    let local_id = block_in_place(|| local.store_id())?;
    let (remote_id, remote_token) = state_get(remote, &local_id).await?;
    // The tokens first: the bases are read only if a mailbox is.
    let local_token =
        match block_in_place(|| state::peek_sync_id(&local.control_root(), &remote_id)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("ignoring the sync state for this pair: {e:#}; {WITHOUT_STATE}");
                None
            }
        };
    let tokens_agree = local_token.is_some() && local_token == remote_token;
    if local_token.is_some() && !tokens_agree {
        tracing::warn!(
            "the two sides' sync states disagree (one was restored or lost); {WITHOUT_STATE}"
        );
    }
    tracing::debug!("phase: tree done, state tokens compared");

    // Mailboxes neither side touched since the last run are skipped unread.
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
    tracing::debug!("phase: fingerprints compared");

    // Nothing read and nothing changed in the tree: the state both sides
    // hold still describes them; it is neither read nor written.
    let keep_state = tokens_agree && ops.is_empty() && pairings.is_empty();

    // A pair may be read by delta when both sides hold the state and the
    // mailbox both sides list is the one the base (keyed by the source's
    // GUID) describes. The follower is asked at once, before the local
    // state is read (it reads its own meanwhile); a local base that turns
    // out to differ makes its answer `Stale`.
    let may_delta = |p: &Pairing| -> bool {
        let Some(dst) = &p.dst else { return false };
        tokens_agree
            && !full
            && remote.has_feature(protocol::FEATURE_DELTA)
            && dst.guid == p.src.guid
            && dst.uidvalidity == p.src.uidvalidity
    };
    let asked_delta: Vec<bool> = pairings.iter().map(may_delta).collect();

    // Ask for every remote mailbox at once (one round trip), then read
    // them all before any body moves, so replies arrive in request order.
    let remote_wanted: Vec<usize> = (0..pairings.len())
        .filter(|&i| dir == Direction::Pull || pairings[i].dst.is_some())
        .collect();
    for &i in &remote_wanted {
        let p = &pairings[i];
        remote.send(Command::Select(side_names(p, dir).1)).await?;
        if asked_delta[i] {
            remote.send(Command::Delta(p.src.guid)).await?;
        } else {
            remote.send(Command::Snapshot).await?;
        }
    }
    remote.flush().await?;

    let mut state = if tokens_agree && !keep_state {
        pairstate::agreed(
            block_in_place(|| local.load_state(&remote_id)),
            remote_token,
            WITHOUT_STATE,
        )
    } else {
        None
    };
    let had_state = state.is_some();
    // The bases of the pairs read by delta, taken out of the state (too
    // big to copy; the header stays there).
    let mut bases: Vec<Option<BaseMailbox>> = Vec::with_capacity(pairings.len());
    for (p, &asked) in pairings.iter().zip(&asked_delta) {
        let entry = state
            .as_mut()
            .and_then(|st| st.mailboxes.get_mut(&p.src.guid))
            .filter(|(_, b)| asked && b.guid == p.src.guid && b.uidvalidity == p.src.uidvalidity);
        bases.push(entry.map(|(_, b)| {
            let header = b.header_only();
            std::mem::replace(b, header)
        }));
    }
    tracing::debug!("phase: local state read");
    // While the follower works on those, read the local side: the two
    // stores are scanned at the same time.
    let mut local_views: Vec<Option<View>> = Vec::with_capacity(pairings.len());
    for (p, base) in pairings.iter().zip(&bases) {
        let wanted = match dir {
            Direction::Push => true,
            Direction::Pull => p.dst.is_some(),
        };
        if !wanted {
            local_views.push(None);
            continue;
        }
        let name = &side_names(p, dir).0;
        let view = block_in_place(|| -> Result<View> {
            Ok(match base {
                Some(b) => View::Delta(local.snapshot_delta(name, b)?),
                None => View::Full(local.snapshot(name)?),
            })
        })
        .with_context(|| format!("reading mailbox {name}"))?;
        local_views.push(Some(view));
    }
    tracing::debug!("phase: local mailboxes read");
    let mut remote_views: Vec<Option<View>> = (0..pairings.len()).map(|_| None).collect();
    for &i in &remote_wanted {
        let p = &pairings[i];
        let read = match (asked_delta[i], &bases[i]) {
            (true, base) => remote.read_delta().await.map(|l| match l {
                Listing::Full(s) => View::Full(s),
                Listing::Delta(digest, d)
                    if base
                        .as_ref()
                        .is_some_and(|b| digest == delta::base_digest(b)) =>
                {
                    View::Delta(d)
                }
                Listing::Delta(..) => {
                    tracing::info!(
                        "{}: {} holds another base for it; comparing it in full",
                        p.src.name,
                        remote.peer
                    );
                    View::Stale
                }
            }),
            (false, _) => remote.read_snapshot().await.map(View::Full),
        };
        let view = read.with_context(|| {
            format!(
                "reading mailbox {} on {}",
                side_names(p, dir).1,
                remote.peer
            )
        })?;
        remote_views[i] = Some(view);
    }
    tracing::debug!("phase: remote mailboxes read");

    let mut pending_commits = Vec::new();
    // Each mailbox changed, with the digest both sides must now have, and
    // whether the source was read by delta.
    let mut synced: Vec<(&Pairing, String, bool)> = Vec::new();
    // The pairs' new bases, and how the follower's copy of each changes.
    let mut new_bases: Vec<(MailboxGuid, MailboxName, BaseMailbox, BaseUpdate)> = Vec::new();
    for (i, p) in pairings.iter().enumerate() {
        let name = &p.src.name;
        let (src, dst) = match dir {
            Direction::Push => (local_views[i].take(), remote_views[i].take()),
            Direction::Pull => (remote_views[i].take(), local_views[i].take()),
        };
        let read = compare(local, remote, p, dir, (src, dst), bases[i].take()).await?;
        let plan = read.plan();
        if plan.is_empty() {
            // Both sides held the same state after the fingerprints taken
            // before reading them; any change since shows in them. A side
            // changed a moment before the run had none to give: it gets
            // one after the run, like a mailbox this run changed.
            let (base, update) = read.into_base(name);
            match before.get(&p.src.guid) {
                Some((Some(l), Some(r))) => {
                    fps.set(p.src.guid, Some(l.clone()), Some(r.clone()));
                }
                _ => synced.push((p, delta::base_digest(&base), is_edit(&update))),
            }
            new_bases.push((p.src.guid, name.clone(), base, update));
            continue;
        }
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
                let commits =
                    push_mailbox(local, remote, names, (plan, read.src()), &mut report).await?;
                pending_commits.extend(std::iter::repeat_n(remote_name.clone(), commits));
            }
            Direction::Pull => {
                pull_mailbox(local, remote, names, (plan, read.src()), &mut report).await?
            }
        }
        let (base, update) = read.into_base(name);
        synced.push((p, delta::base_digest(&base), is_edit(&update)));
        new_bases.push((p.src.guid, name.clone(), base, update));
    }
    for name in pending_commits {
        remote
            .expect_ok()
            .await
            .with_context(|| format!("committing mailbox {name} on {}", remote.peer))?;
    }
    tracing::debug!("phase: all changes committed");

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
    // source's state (each side checks its own against the digest). The
    // follower computes its own while the new state is saved here.
    let verify = report.incomplete.is_empty() && !synced.is_empty();
    let done: Vec<&Pairing> = synced.iter().map(|(p, ..)| *p).collect();
    let names: Vec<SideNames> = done.iter().map(|p| side_names(p, dir)).collect();
    // The destination proves its new state against the digest (a
    // re-read). The source was not written: if its fingerprint is the
    // one taken before it was read, it still holds what was read, so a
    // plain fingerprint compared with that one does (no re-read). A whole
    // read recorded the source's summary already; after a delta read the
    // digest records it (it needs no stat, only the listing read), so the
    // next run lists an unchanged source without reading it.
    let src_before = |p: &Pairing| -> Option<String> {
        let (l, r) = before.get(&p.src.guid)?;
        match dir {
            Direction::Push => l.clone(),
            Direction::Pull => r.clone(),
        }
    };
    let dst_digests: Vec<Option<String>> = synced.iter().map(|(_, d, _)| Some(d.clone())).collect();
    let src_digests: Vec<Option<String>> = synced
        .iter()
        .map(|(p, d, by_delta)| (*by_delta || src_before(p).is_none()).then(|| d.clone()))
        .collect();
    let (ld, rd) = match dir {
        Direction::Push => (&src_digests, &dst_digests),
        Direction::Pull => (&dst_digests, &src_digests),
    };
    let local_fps = if verify {
        fingerprints::ask_remote(remote, &names, rd).await?;
        fingerprints::local_side(local, &names, ld)
    } else {
        Vec::new()
    };

    // The new common state: both sides now hold the source's mailboxes.
    // Written only now that every change is made, under a fresh token; the
    // follower writes its copy while this side writes its own. If either
    // write fails, the two tokens differ and the next run reads in full.
    if !keep_state {
        let old_sync_id = state
            .as_ref()
            .filter(|_| had_state)
            .map(|s| s.sync_id.clone());
        let (new_state, updated, dropped) =
            next_state(state.unwrap_or_default(), new_bases, &unchanged, filter)?;
        let can_edit = remote.has_feature(protocol::FEATURE_DELTA);
        pairstate::send(
            remote,
            local_id,
            &new_state,
            (had_state, can_edit),
            &updated,
            &dropped,
        )
        .await?;
        remote.flush().await?;
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
        tracing::debug!("phase: state saved here, sent");
    }

    if verify {
        let remote_fps = fingerprints::remote_answers(remote, names.len()).await?;
        for ((p, l), r) in done.iter().zip(local_fps).zip(remote_fps) {
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
    tracing::debug!("phase: fingerprints taken");
    if let Err(e) = block_in_place(|| fps.save(&fp_path)) {
        tracing::warn!(
            "could not record fingerprints in {}: {e}",
            fp_path.display()
        );
    }
    Ok(report)
}

/// The state after a successful run: the old one (or an empty one) with
/// this run's bases; what the follower's copy needs (the mailboxes whose
/// base changed, the GUIDs it drops).
type NextState = (PairState, Vec<(MailboxGuid, BaseUpdate)>, Vec<MailboxGuid>);

fn next_state(
    mut new_state: PairState,
    new_bases: Vec<(MailboxGuid, MailboxName, BaseMailbox, BaseUpdate)>,
    skipped: &HashSet<MailboxGuid>,
    filter: &Filter,
) -> Result<NextState> {
    let old_guids: HashSet<MailboxGuid> = new_state.mailboxes.keys().copied().collect();
    if filter.0.is_empty() {
        // Only the mailboxes the destination now holds: skipped ones and
        // this run's (deleted and left-out ones lose their base).
        let read: HashSet<MailboxGuid> = new_bases.iter().map(|(g, ..)| *g).collect();
        new_state
            .mailboxes
            .retain(|g, _| skipped.contains(g) || read.contains(g));
    }
    new_state.sync_id = PairState::generate_sync_id()?;
    let mut updated: Vec<(MailboxGuid, BaseUpdate)> = Vec::new();
    for (guid, name, base, update) in new_bases {
        let same_name = new_state
            .mailboxes
            .get(&guid)
            .is_some_and(|(n, _)| *n == name);
        match update {
            BaseUpdate::Edit(e) if e.is_empty() && same_name => {
                let old = &new_state.mailboxes[&guid].1;
                if (old.uidvalidity, old.uidnext) != (base.uidvalidity, base.uidnext) {
                    updated.push((guid, BaseUpdate::Edit(e)));
                }
            }
            u => updated.push((guid, u)),
        }
        new_state.mailboxes.insert(guid, (name, base));
    }
    let dropped: Vec<MailboxGuid> = old_guids
        .iter()
        .filter(|g| !new_state.mailboxes.contains_key(g))
        .copied()
        .collect();
    Ok((new_state, updated, dropped))
}

/// A side of a pair as read.
enum View {
    Full(MailboxSnapshot),
    /// What differs from the pair's base.
    Delta(MailboxDelta),
    /// The follower compared with a base other than ours: read it whole.
    Stale,
}

/// One mailbox compared, and what the pair's base becomes once the plan
/// is carried out.
enum Compared {
    /// By delta: the plan covers only the UIDs a side changed.
    Delta {
        plan: MailboxPlan,
        old: BaseMailbox,
        /// The old base restricted to the touched UIDs, and the source.
        old_part: BaseMailbox,
        src: MailboxSnapshot,
        touched: Vec<Uid>,
    },
    Full {
        plan: MailboxPlan,
        src: MailboxSnapshot,
    },
}

impl Compared {
    fn plan(&self) -> &MailboxPlan {
        match self {
            Compared::Delta { plan, .. } | Compared::Full { plan, .. } => plan,
        }
    }

    /// The source records the plan's saves index.
    fn src(&self) -> &[MessageRecord] {
        match self {
            Compared::Delta { src, .. } | Compared::Full { src, .. } => &src.messages,
        }
    }

    /// The new base (the source as read: the destination now holds it
    /// too), and the follower's way to it.
    fn into_base(self, name: &MailboxName) -> (BaseMailbox, BaseUpdate) {
        match self {
            Compared::Delta {
                plan,
                old,
                old_part,
                src,
                touched,
            } => {
                drop(plan);
                let part = base_of(src);
                let edit = delta::edit(&old_part, &part);
                tracing::debug!(
                    "{name}: base edited in {} UIDs ({} set, {} dropped)",
                    touched.len(),
                    edit.set.len(),
                    edit.dropped.len()
                );
                (delta::splice(old, part, &touched), BaseUpdate::Edit(edit))
            }
            Compared::Full { plan, src } => {
                drop(plan);
                (base_of(src), BaseUpdate::Whole)
            }
        }
    }
}

fn is_edit(u: &BaseUpdate) -> bool {
    matches!(u, BaseUpdate::Edit(_))
}

/// A snapshot as a base (consumed: its strings move, none is copied).
fn base_of(s: MailboxSnapshot) -> BaseMailbox {
    BaseMailbox {
        guid: s.info.guid,
        uidvalidity: s.info.uidvalidity,
        uidnext: s.info.uidnext,
        messages: s
            .messages
            .into_iter()
            .map(|m| BaseMessage {
                uid: m.uid,
                guid: m.guid,
                flags: m.flags,
                keywords: m.keywords.into(),
            })
            .collect(),
    }
}

/// Plans one mailbox: from the two deltas where both sides reported one
/// against the pair's base, else (or when the plan would copy a message
/// known only by its base record) from whole snapshots, read again where
/// a side gave only a delta.
async fn compare(
    local: &mut Store,
    remote: &mut Remote,
    p: &Pairing,
    dir: Direction,
    (src, dst): (Option<View>, Option<View>),
    base: Option<BaseMailbox>,
) -> Result<Compared> {
    let name = &p.src.name;
    if let (Some(View::Delta(ds)), Some(View::Delta(dd)), Some(b)) = (&src, &dst, &base) {
        let usable = [&ds.info, &dd.info]
            .iter()
            .all(|m| m.guid == b.guid && m.uidvalidity == b.uidvalidity);
        if usable {
            let (Some(View::Delta(ds)), Some(View::Delta(dd)), Some(base)) = (src, dst, base)
            else {
                unreachable!("matched above")
            };
            let mut r = delta::restrict(&base, ds, dd);
            let plan = plan::plan_mailbox(&r.a, Some(&r.b));
            tracing::info!(
                "{name}: reading by delta: {} UIDs changed since the last run",
                r.touched.len()
            );
            if plan.needs_full_records(&r.a) {
                // The destination lost messages the source did not change:
                // the delta names them, their date and size come from the
                // source read whole.
                tracing::info!(
                    "{name}: the destination lost messages the source still holds; reading the source whole for them"
                );
                let (src, _) = whole(local, remote, p, dir, (Some(None), None)).await?;
                if !complete_saves(&plan, &mut r.a, &src) {
                    tracing::info!("{name}: the source changed meanwhile; comparing in full");
                    let (src, dst) =
                        whole(local, remote, p, dir, (Some(Some(src)), Some(None))).await?;
                    let plan = plan::plan_mailbox(&src, dst.as_ref());
                    return Ok(Compared::Full { plan, src });
                }
            }
            return Ok(Compared::Delta {
                plan,
                old: base,
                old_part: r.base,
                src: r.a,
                touched: r.touched,
            });
        }
    }
    let full = |v: Option<View>| match v {
        Some(View::Full(s)) => Some(Some(s)),
        Some(_) => Some(None),
        None => None,
    };
    let (src, dst) = whole(local, remote, p, dir, (full(src), full(dst))).await?;
    let plan = plan::plan_mailbox(&src, dst.as_ref());
    Ok(Compared::Full { plan, src })
}

/// Gives the saves (of `part`, the restricted source the plan was made
/// from) that stand for base records the date, size and POP3 fields of
/// the source's real records (`src` read whole); false when one of them
/// is no longer there or holds another message.
fn complete_saves(plan: &MailboxPlan, part: &mut MailboxSnapshot, src: &MailboxSnapshot) -> bool {
    for &i in &plan.saves {
        let rec = &mut part.messages[i];
        if !delta::is_from_base(rec) {
            continue;
        }
        let Ok(i) = src.messages.binary_search_by_key(&rec.uid, |m| m.uid) else {
            return false;
        };
        let real = &src.messages[i];
        if real.guid != rec.guid {
            return false;
        }
        // Flags and keywords as the base has them: the state recorded
        // after this run says so.
        *rec = MessageRecord {
            flags: rec.flags,
            keywords: std::mem::take(&mut rec.keywords),
            ..real.clone()
        };
    }
    true
}

/// The two sides' whole snapshots: `Some(Some(s))` as read, `Some(None)`
/// read again now, `None` no such mailbox (the destination's only).
async fn whole(
    local: &mut Store,
    remote: &mut Remote,
    p: &Pairing,
    dir: Direction,
    (src, dst): (
        Option<Option<MailboxSnapshot>>,
        Option<Option<MailboxSnapshot>>,
    ),
) -> Result<(MailboxSnapshot, Option<MailboxSnapshot>)> {
    let (local_name, remote_name) = side_names(p, dir);
    let (local_view, remote_view) = match dir {
        Direction::Push => (src, dst),
        Direction::Pull => (dst, src),
    };
    let local_snap = match local_view {
        Some(Some(s)) => Some(s),
        Some(None) => Some(
            block_in_place(|| local.snapshot(&local_name))
                .with_context(|| format!("reading mailbox {local_name}"))?,
        ),
        None => None,
    };
    let remote_snap = match remote_view {
        Some(Some(s)) => Some(s),
        Some(None) => {
            remote.send(Command::Select(remote_name.clone())).await?;
            remote.send(Command::Snapshot).await?;
            remote.flush().await?;
            Some(
                remote
                    .read_snapshot()
                    .await
                    .with_context(|| format!("reading mailbox {remote_name} on {}", remote.peer))?,
            )
        }
        None => None,
    };
    let (src, dst) = match dir {
        Direction::Push => (local_snap, remote_snap),
        Direction::Pull => (remote_snap, local_snap),
    };
    Ok((src.expect("the source is always read"), dst))
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

/// The follower's store ID (its sync-state key for us) and the token of
/// the state it holds for us, if any. The follower keeps that state for
/// the `DELTA`s and the `STATE-PUT` update that follow.
async fn state_get(remote: &mut Remote, local_id: &str) -> Result<(String, Option<String>)> {
    remote
        .send(Command::StateGet {
            peer: local_id.to_string(),
        })
        .await?;
    remote.flush().await?;
    match remote.reply().await? {
        Reply::State { store_id, sync_id } => Ok((store_id, sync_id)),
        Reply::Error { kind, text } => Err(super::remote::RemoteError { kind, text }.into()),
        other => anyhow::bail!(
            "{} answered STATE-GET with {:?}",
            remote.peer,
            other.to_fields()[0]
        ),
    }
}

type ListingPair = (Vec<crate::model::MailboxInfo>, Vec<MailboxName>);

fn list(store: &mut Store) -> Result<ListingPair> {
    Ok((store.list_mailboxes()?, store.subscriptions()?))
}

async fn remote_list(remote: &mut Remote) -> Result<ListingPair> {
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
    (plan, src): (&MailboxPlan, &[MessageRecord]),
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
    for rec in plan.saves.iter().map(|&i| &src[i]) {
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
    (plan, src): (&MailboxPlan, &[MessageRecord]),
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
    let wanted: Vec<(Uid, &MessageRecord)> =
        plan.saves.iter().map(|&i| (src[i].uid, &src[i])).collect();
    transfer::fetch_into(remote, &mut txn, names.remote, &wanted, report).await?;
    block_in_place(|| txn.commit()).with_context(|| format!("committing mailbox {name}"))
}
