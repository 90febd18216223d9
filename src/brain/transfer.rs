//! Moving one message body between the sides, in either direction.

use super::remote::{Fetched, Remote};
use super::Report;
use crate::model::{MailboxGuid, MailboxName, MessageRecord, Uid};
use crate::protocol::{Command, CHUNK_SIZE, FEATURE_COMMIT_BATCHES, FEATURE_LOCAL_COPY};
use crate::store::{MessageSource, StoreUpdate};
use anyhow::{Context, Result};
use bytes::Bytes;
use std::io::Read;
use tokio::task::block_in_place;

/// Saves per follower transaction in a large copy (feature
/// `commit-batches`). A follower holds every pending save of a transaction
/// until COMMIT; the first copy of a 200,000-message mailbox in one
/// transaction held them all. In parts, its memory stays bounded and a run
/// killed half-way keeps what it committed.
pub const SAVE_BATCH: usize = 25_000;

/// Opens the follower's transaction(s) for one mailbox and splits a long
/// run of saves into several. The header goes into the first transaction
/// (a new UIDVALIDITY must hold before any message is saved under it) but
/// with UIDNEXT 1 while more follow: a UIDNEXT above the later parts'
/// UIDs would make each of them rewrite the uidlist instead of appending.
/// The last transaction sets the real UIDNEXT.
pub struct Batches {
    size: usize,
    in_batch: usize,
    header: Option<(MailboxGuid, u32, Uid)>,
    several: bool,
    /// COMMITs sent: each is answered.
    pub commits: usize,
}

impl Batches {
    /// Sends BEGIN and the first header; `saves`: how many saves follow.
    pub async fn begin(
        remote: &mut Remote,
        saves: usize,
        header: Option<(MailboxGuid, u32, Uid)>,
    ) -> Result<Batches> {
        let size = if remote.has_feature(FEATURE_COMMIT_BATCHES) {
            SAVE_BATCH
        } else {
            usize::MAX
        };
        let several = saves > size;
        remote.send(Command::Begin).await?;
        if let Some((guid, uidvalidity, uidnext)) = header {
            let uidnext = if several { 1 } else { uidnext };
            send_header(remote, (guid, uidvalidity, uidnext)).await?;
        }
        Ok(Batches {
            size,
            in_batch: 0,
            header,
            several,
            commits: 0,
        })
    }

    /// Before each save: commits a full transaction and opens the next.
    pub async fn before_save(&mut self, remote: &mut Remote) -> Result<()> {
        if self.in_batch == self.size {
            remote.send(Command::Commit).await?;
            self.commits += 1;
            remote.send(Command::Begin).await?;
            self.in_batch = 0;
        }
        self.in_batch += 1;
        Ok(())
    }

    /// Commits the last transaction (with the real header when the saves
    /// came in several); returns the number of COMMITs sent.
    pub async fn commit(mut self, remote: &mut Remote) -> Result<usize> {
        if let (true, Some(header)) = (self.several, self.header) {
            send_header(remote, header).await?;
        }
        remote.send(Command::Commit).await?;
        self.commits += 1;
        Ok(self.commits)
    }
}

async fn send_header(
    remote: &mut Remote,
    (guid, uidvalidity, uidnext): (MailboxGuid, u32, Uid),
) -> Result<()> {
    remote
        .send(Command::Header {
            guid,
            uidvalidity,
            uidnext,
        })
        .await
}

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
