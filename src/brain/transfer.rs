//! Moving one message body between the sides, in either direction.

use super::remote::{Fetched, Remote};
use super::Report;
use crate::model::{MailboxName, MessageRecord, Uid};
use crate::protocol::{Command, CHUNK_SIZE, FEATURE_LOCAL_COPY};
use crate::store::{MessageSource, StoreUpdate};
use anyhow::{Context, Result};
use bytes::Bytes;
use std::io::Read;
use tokio::task::block_in_place;

/// Sends the local message `uid` of `name` to the follower, saved there as
/// `record`: by path when the follower shares this machine (`COPYFILE`),
/// else streamed in chunks (`SAVE`). A message that vanished meanwhile is
/// noted in `report` (the run ends with exit 2), not an error.
pub async fn push_message(
    local: &dyn MessageSource,
    remote: &mut Remote,
    name: &MailboxName,
    uid: Uid,
    record: &MessageRecord,
    report: &mut Report,
) -> Result<()> {
    if remote.has_feature(FEATURE_LOCAL_COPY) {
        match block_in_place(|| local.message_file(name, uid)) {
            Ok(Some(path)) => {
                return remote
                    .send(Command::CopyFile {
                        path: path.to_string_lossy().into_owned(),
                        record: record.clone(),
                    })
                    .await;
            }
            // No file of its own (mbox): stream it below.
            Ok(None) => {}
            Err(e) => {
                report.vanished(name, uid, &e);
                return Ok(());
            }
        }
    }
    let (mut file, _) = match block_in_place(|| local.open_message(name, uid)) {
        Ok(f) => f,
        Err(e) => {
            report.vanished(name, uid, &e);
            return Ok(());
        }
    };
    remote.send(Command::Save(record.clone())).await?;
    loop {
        let mut buf = vec![0u8; CHUNK_SIZE];
        let n = block_in_place(|| file.read(&mut buf))
            .with_context(|| format!("reading message UID {uid} in {name}"))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        remote.send_data(Bytes::from(buf)).await?;
    }
    remote.send_data(Bytes::new()).await
}

/// How many bodies may be requested ahead of the one being saved: enough
/// to hide the round trip, few enough that replies never pile up.
const FETCH_WINDOW: usize = 256;

/// Fetches the follower's messages of the selected mailbox and saves them
/// in `txn`: `wanted` pairs the UID on the follower with the record to
/// save, with up to [`FETCH_WINDOW`] requests in flight. A message that
/// vanished meanwhile is noted in `report`.
pub async fn fetch_into(
    remote: &mut Remote,
    txn: &mut StoreUpdate<'_>,
    name: &MailboxName,
    wanted: &[(Uid, &MessageRecord)],
    report: &mut Report,
) -> Result<()> {
    let mut requested = 0;
    for (done, (want, rec)) in wanted.iter().enumerate() {
        while requested < wanted.len() && requested < done + FETCH_WINDOW {
            remote.send(Command::Fetch(wanted[requested].0)).await?;
            requested += 1;
        }
        remote.flush().await?;
        match remote.read_fetched().await? {
            Fetched::Gone { uid, reason } => report.vanished(name, uid, &anyhow::anyhow!(reason)),
            Fetched::Body { uid, .. } => {
                anyhow::ensure!(
                    uid == *want,
                    "{} sent UID {uid} where {want} was expected",
                    remote.peer
                );
                receive_body(remote, txn, rec).await?;
            }
        }
    }
    Ok(())
}

/// Saves the body the follower is sending (after its BODY line) as
/// `record`, chunk by chunk.
pub async fn receive_body(
    remote: &mut Remote,
    txn: &mut StoreUpdate<'_>,
    record: &MessageRecord,
) -> Result<()> {
    let mut handle = block_in_place(|| txn.save_begin(record))?;
    loop {
        let chunk = remote.data().await?;
        if chunk.is_empty() {
            break;
        }
        block_in_place(|| txn.write_chunk(&mut handle, &chunk))?;
    }
    block_in_place(|| txn.save_finish(handle))
}
