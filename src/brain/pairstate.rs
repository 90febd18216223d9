//! The pair's common state (`state::SyncState`) as both run kinds use it:
//! whether the two sides' copies may be trusted this run, and how the new
//! one reaches the follower once a run has succeeded. Mirror and backup
//! keep the same state files with the same meaning (after a successful
//! run, both sides hold what the base records), so either run kind can
//! use what the other left.

use super::delta::BaseEdit;
use super::merge::{BaseMailbox, BaseMessage};
use super::remote::Remote;
use crate::model::{MailboxGuid, MailboxName};
use crate::protocol::Command;
use crate::state::{journal, SyncState};
use anyhow::Result;

/// The local copy of the state, kept only when the follower's copy carries
/// the same token: a run that died half-way (one side saved, the other
/// not) or a store restored from a backup has the other's token or none.
/// `without` says what the run does instead, for the warnings.
pub fn agreed(
    stored: Result<Option<SyncState>>,
    remote_token: Option<String>,
    without: &str,
) -> Option<SyncState> {
    let stored = match stored {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("ignoring the sync state for this pair: {e:#}; {without}");
            return None;
        }
    };
    match (stored, remote_token) {
        (Some(s), Some(t)) if s.sync_id == t => Some(s),
        (Some(_), _) => {
            tracing::warn!(
                "the two sides' sync states disagree (one was restored or lost); {without}"
            );
            None
        }
        _ => None,
    }
}

/// How the follower's copy of a mailbox's base is brought up to date.
pub enum BaseUpdate {
    /// It holds the old base: only the changes (a delta run, or a rename).
    Edit(BaseEdit),
    Whole,
}

/// Sends the new state to the follower (the leader has saved its own copy
/// already). With `had_state` (both sides held the old state under the
/// same token) only the mailboxes in `updated` and the GUIDs in `dropped`
/// are sent, as edits where `can_edit` (the follower has feature `delta`);
/// otherwise the whole state.
pub async fn send(
    remote: &mut Remote,
    local_id: String,
    state: &SyncState,
    (had_state, can_edit): (bool, bool),
    updated: &[(MailboxGuid, BaseUpdate)],
    dropped: &[MailboxGuid],
) -> Result<()> {
    remote
        .send(Command::StatePut {
            peer: local_id,
            sync_id: state.sync_id.clone(),
            full: !had_state,
        })
        .await?;
    let all: Vec<(MailboxGuid, BaseUpdate)>;
    let send: &[(MailboxGuid, BaseUpdate)] = if had_state {
        for g in dropped {
            remote.send(Command::Unbase(*g)).await?;
        }
        updated
    } else {
        all = state
            .mailboxes
            .keys()
            .map(|g| (*g, BaseUpdate::Whole))
            .collect();
        &all
    };
    for (guid, update) in send {
        let Some((name, base)) = state.mailboxes.get(guid) else {
            continue;
        };
        match update {
            BaseUpdate::Edit(edit) if can_edit => send_base_edit(remote, name, base, edit).await?,
            _ => send_base(remote, name, base).await?,
        }
    }
    remote.send(Command::StateEnd).await
}

/// What the leader's own save records: the change from the state under
/// `old_sync_id` (the one both sides held) to the new one, so that its
/// file gets a journal entry instead of a rewrite.
pub fn journal_change<'a>(
    old_sync_id: &'a str,
    updated: &'a [(MailboxGuid, BaseUpdate)],
    dropped: &[MailboxGuid],
) -> journal::Change<'a> {
    journal::Change {
        old_sync_id,
        mailboxes: updated
            .iter()
            .map(|(g, u)| {
                let c = match u {
                    BaseUpdate::Edit(e) => journal::BoxChange::Edit(e),
                    BaseUpdate::Whole => journal::BoxChange::Whole,
                };
                (*g, c)
            })
            .collect(),
        dropped: dropped.to_vec(),
    }
}

/// Saves the leader's copy: as a journal entry when both sides held the
/// old state (`old_sync_id`), else whole.
pub fn save_local(
    local: &crate::store::Store,
    peer: &str,
    state: &SyncState,
    old_sync_id: Option<&str>,
    updated: &[(MailboxGuid, BaseUpdate)],
    dropped: &[MailboxGuid],
) -> Result<()> {
    match old_sync_id {
        Some(old) => local.save_state_change(peer, state, &journal_change(old, updated, dropped)),
        None => local.save_state(peer, state),
    }
}

/// A mailbox's whole base, for the follower's copy of the state.
async fn send_base(remote: &mut Remote, name: &MailboxName, base: &BaseMailbox) -> Result<()> {
    remote
        .send(Command::Base {
            guid: base.guid,
            uidvalidity: base.uidvalidity,
            uidnext: base.uidnext,
            name: name.clone(),
        })
        .await?;
    for m in &base.messages {
        send_base_message(remote, m).await?;
    }
    Ok(())
}

/// The change to a mailbox's base the follower holds.
async fn send_base_edit(
    remote: &mut Remote,
    name: &MailboxName,
    base: &BaseMailbox,
    edit: &BaseEdit,
) -> Result<()> {
    remote
        .send(Command::BaseEdit {
            guid: base.guid,
            uidvalidity: base.uidvalidity,
            uidnext: base.uidnext,
            name: name.clone(),
        })
        .await?;
    for uid in &edit.dropped {
        remote.send(Command::BaseDrop(*uid)).await?;
    }
    for m in &edit.set {
        send_base_message(remote, m).await?;
    }
    Ok(())
}

async fn send_base_message(remote: &mut Remote, m: &BaseMessage) -> Result<()> {
    remote
        .send(Command::BaseMsg {
            uid: m.uid,
            flags: m.flags,
            guid: m.guid.clone(),
            keywords: m.keywords.to_vec(),
        })
        .await
}
