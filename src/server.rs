//! The follower: serves one mail store over the protocol (`dsync server`,
//! started over ssh, or by the leader itself for a local LOCATION2). It
//! decides nothing; it reports its state and applies what the leader
//! sends, in order.

use crate::brain::delta::BaseEdit;
use crate::brain::merge::{BaseMailbox, BaseMessage};
use crate::lock::StoreLock;
use crate::model::{MailboxGuid, MailboxName};
use crate::protocol::connection::{expect_data, BoxRead, BoxWrite, Receiver, Sender};
use crate::protocol::{self, Command, ErrorKind, Frame, Reply, CHUNK_SIZE};
use crate::state::SyncState as PairState;
use crate::store::{MessageSource, Store, StoreUpdate};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;
use tokio::task::block_in_place;

pub struct ServerOptions {
    /// Offer the `local-copy` feature (the leader may name files to copy).
    pub local_copy: bool,
    /// Offer `commit-batches` (the store commits in time proportional to
    /// the transaction: Maildir).
    pub batch_commits: bool,
    pub timeout: Duration,
}

/// Opens the store once the leader says whether a missing one may be created.
/// It returns the store with its run lock, held until the server ends.
pub type StoreOpener = Box<dyn FnOnce(bool) -> Result<(Store, StoreLock)> + Send>;

struct Server {
    tx: Sender,
    rx: Receiver,
    opener: Option<StoreOpener>,
    store: Option<Store>,
    _lock: Option<StoreLock>,
    selected: Option<MailboxName>,
    /// The leader asked for a full sync (`-f`): trust no cached dates.
    full_scan: bool,
    /// The leader's `dsync_alt_char`, which the store uses instead of its own.
    alt_char: Option<char>,
    /// Mailbox GUID → name, from the last LIST and later creates/renames,
    /// for commands that name a mailbox by GUID (COPYLOCAL).
    names: HashMap<MailboxGuid, MailboxName>,
    /// The first failure of a command that has no reply of its own; it is
    /// reported instead of the next reply, so the leader learns of it at
    /// its next synchronisation point.
    deferred: Option<String>,
    /// The state for the peer named by the last STATE-GET, read at the
    /// first DELTA after it: DELTA answers against its bases, an update
    /// STATE-PUT edits it.
    state: Option<(String, PairState)>,
    /// The peer and token the last STATE-GET answered with, until its
    /// state is read (a run that reads no mailbox never reads it).
    state_token: Option<(String, String)>,
}

/// Runs the follower until the leader says QUIT or closes the stream.
pub async fn serve(
    read: BoxRead,
    write: BoxWrite,
    opener: StoreOpener,
    opts: ServerOptions,
) -> Result<()> {
    let (tx, rx) = protocol::connect(read, write, "the local dsync", opts.timeout);
    let mut s = Server {
        tx,
        rx,
        opener: Some(opener),
        store: None,
        _lock: None,
        selected: None,
        full_scan: false,
        alt_char: None,
        names: HashMap::new(),
        deferred: None,
        state: None,
        state_token: None,
    };
    s.handshake(&opts).await?;
    loop {
        let Some(frame) = s.rx.recv().await? else {
            // The leader went away without QUIT: nothing half-done is
            // committed, so the store is as valid as before.
            bail!("the local dsync closed the connection before the sync finished");
        };
        let cmd = match frame {
            Frame::Line(fields) => Command::parse(&fields)?,
            Frame::Data(_) => bail!("unexpected message data outside of a SAVE"),
        };
        if cmd == Command::Quit {
            // A failed change with no reply of its own is reported here.
            s.deferred_error().await?;
            s.reply(Reply::Bye).await?;
            s.tx.flush().await?;
            return Ok(());
        }
        s.dispatch(cmd).await?;
    }
}

impl Server {
    async fn handshake(&mut self, opts: &ServerOptions) -> Result<()> {
        let fields = protocol::connection::expect_line(&mut self.rx).await?;
        let (min, max) = match Command::parse(&fields) {
            Ok(Command::Hello { min, max, features }) => {
                self.full_scan = features.iter().any(|f| f == protocol::FEATURE_FULL_SCAN);
                self.alt_char = features.iter().find_map(|f| {
                    let v = f.strip_prefix(protocol::FEATURE_ALT_CHAR)?;
                    let mut chars = v.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(c),
                        _ => None,
                    }
                });
                (min, max)
            }
            _ => bail!("the peer did not start with a dsync-rs HELLO; is it a dsync of this kind?"),
        };
        let version = max.min(protocol::MAX_VERSION);
        if version < min.max(protocol::MIN_VERSION) {
            let text = format!(
                "protocol version mismatch: local dsync speaks versions {min}..{max}, remote dsync speaks {}..{}",
                protocol::MIN_VERSION,
                protocol::MAX_VERSION
            );
            self.reply(Reply::Error {
                kind: ErrorKind::Fail,
                text: text.clone(),
            })
            .await?;
            self.tx.flush().await?;
            bail!(text);
        }
        let mut features = vec![
            protocol::FEATURE_STORABLE.to_string(),
            protocol::FEATURE_DELTA.to_string(),
        ];
        if opts.local_copy {
            features.push(protocol::FEATURE_LOCAL_COPY.to_string());
        }
        if opts.batch_commits {
            features.push(protocol::FEATURE_COMMIT_BATCHES.to_string());
        }
        self.reply(Reply::Hello { version, features }).await?;
        self.tx.flush().await
    }

    async fn reply(&mut self, r: Reply) -> Result<()> {
        self.tx.send_line(r.to_fields()).await
    }

    /// Sends the deferred error in place of a reply, if there is one.
    async fn deferred_error(&mut self) -> Result<bool> {
        if let Some(text) = self.deferred.take() {
            self.reply(Reply::Error {
                kind: ErrorKind::Fail,
                text,
            })
            .await?;
            self.tx.flush().await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn defer(&mut self, e: anyhow::Error) {
        tracing::debug!("deferred error: {e:#}");
        self.deferred.get_or_insert_with(|| format!("{e:#}"));
    }

    fn store(&mut self) -> Result<&mut Store> {
        self.store
            .as_mut()
            .ok_or_else(|| anyhow!("protocol error: the store was not opened"))
    }

    fn selected(&self) -> Result<&MailboxName> {
        self.selected
            .as_ref()
            .ok_or_else(|| anyhow!("protocol error: no mailbox selected"))
    }

    async fn dispatch(&mut self, cmd: Command) -> Result<()> {
        match cmd {
            Command::Open { create } => {
                let opener = self
                    .opener
                    .take()
                    .ok_or_else(|| anyhow!("protocol error: OPEN sent twice"))?;
                let alt_char = self.alt_char;
                let opened = block_in_place(|| -> Result<_> {
                    let (mut store, lock) = opener(create)?;
                    if let Some(c) = alt_char {
                        store
                            .set_alt_char(c)
                            .context("the leader's dsync_alt_char")?;
                    }
                    Ok((store, lock))
                });
                match opened {
                    Ok((mut store, lock)) => {
                        store.set_full_scan(self.full_scan);
                        self.store = Some(store);
                        self._lock = Some(lock);
                        self.reply(Reply::Ok).await?;
                    }
                    Err(e) => self.reply(fail(e)).await?,
                }
                self.tx.flush().await?;
            }
            Command::List => {
                if self.deferred_error().await? {
                    return Ok(());
                }
                match block_in_place(|| -> Result<_> {
                    let store = self.store()?;
                    Ok((store.list_mailboxes()?, store.subscriptions()?))
                }) {
                    Ok((boxes, subs)) => {
                        self.names = boxes.iter().map(|b| (b.guid, b.name.clone())).collect();
                        for b in boxes {
                            self.reply(Reply::Box(b)).await?;
                        }
                        for s in subs {
                            self.reply(Reply::Sub(s)).await?;
                        }
                        self.reply(Reply::End).await?;
                    }
                    Err(e) => self.reply(fail(e)).await?,
                }
                self.tx.flush().await?;
            }
            Command::Select(name) => self.selected = Some(name),
            cmd @ (Command::Snapshot | Command::Delta(_)) => {
                if self.deferred_error().await? {
                    return Ok(());
                }
                let name = self.selected()?.clone();
                // DELTA against a base this side holds; otherwise (and for
                // SNAPSHOT) the whole mailbox.
                if matches!(cmd, Command::Delta(_)) {
                    self.load_state();
                }
                let base = match cmd {
                    Command::Delta(guid) => self
                        .state
                        .as_ref()
                        .and_then(|(_, st)| st.get(&guid))
                        .map(|(_, b)| b),
                    _ => None,
                };
                let answer = match base {
                    Some(base) => {
                        let digest = crate::brain::delta::base_digest(base);
                        let store = self.store.as_mut().ok_or_else(|| {
                            anyhow!("protocol error: DELTA before the store was opened")
                        })?;
                        block_in_place(|| store.snapshot_delta(&name, base))
                            .map(|d| (Some(digest), d.info, d.changed, d.gone))
                    }
                    None => block_in_place(|| self.store()?.snapshot(&name))
                        .map(|s| (None, s.info, s.messages, Vec::new())),
                };
                match answer {
                    Ok((digest, info, messages, gone)) => {
                        self.reply(Reply::Box(info)).await?;
                        if let Some(d) = digest {
                            self.reply(Reply::DeltaOf(d)).await?;
                        }
                        for uid in gone {
                            self.reply(Reply::Gone(uid)).await?;
                        }
                        for m in messages {
                            self.reply(Reply::Msg(m)).await?;
                        }
                        self.reply(Reply::End).await?;
                    }
                    Err(e) => self.reply(fail(e)).await?,
                }
                self.tx.flush().await?;
            }
            Command::Fprint(digest) => {
                if self.deferred_error().await? {
                    return Ok(());
                }
                let name = self.selected()?.clone();
                let fp =
                    block_in_place(|| self.store()?.verified_fingerprint(&name, digest.as_deref()));
                let reply = match fp {
                    Ok(fp) => Reply::Fp(fp),
                    Err(e) => {
                        tracing::debug!("no fingerprint for {name}: {e:#}");
                        Reply::Fp(None)
                    }
                };
                self.reply(reply).await?;
                self.tx.flush().await?;
            }
            Command::Fetch(uid) => {
                let name = self.selected()?.clone();
                self.send_body(&name, uid).await?;
            }
            Command::Create {
                guid,
                uidvalidity,
                name,
            } => match block_in_place(|| self.store()?.create_mailbox(&name, guid, uidvalidity)) {
                Ok(()) => {
                    self.names.insert(guid, name);
                }
                Err(e) => self.defer(e),
            },
            Command::Delete(name) => {
                if let Err(e) = block_in_place(|| self.store()?.delete_mailbox(&name)) {
                    self.defer(e);
                }
            }
            Command::Rename(to) => {
                let from = self.selected()?.clone();
                match block_in_place(|| self.store()?.rename_mailbox(&from, &to)) {
                    Ok(()) => {
                        rename_names(&mut self.names, &from, &to);
                        self.selected = Some(to);
                    }
                    Err(e) => self.defer(e),
                }
            }
            Command::Sub(_) | Command::SubsCommit => self.subscriptions(cmd).await?,
            Command::Storable(name) => {
                let stored = self.store()?.storable_name(&name);
                self.reply(Reply::Name(stored)).await?;
                self.tx.flush().await?;
            }
            Command::StateGet { peer } => {
                let answer = block_in_place(|| -> Result<Reply> {
                    let store = self.store()?;
                    let store_id = store.store_id()?;
                    // Only the token now: the bases are read when a DELTA
                    // needs them.
                    let sync_id = match crate::state::peek_sync_id(&store.control_root(), &peer) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!("ignoring the sync state for {peer}: {e:#}");
                            None
                        }
                    };
                    self.state = None;
                    self.state_token = sync_id.clone().map(|t| (peer.clone(), t));
                    Ok(Reply::State { store_id, sync_id })
                });
                let reply = answer.unwrap_or_else(fail);
                self.reply(reply).await?;
                self.tx.flush().await?;
            }
            Command::StatePut {
                peer,
                sync_id,
                full,
            } => self.state_put(peer, sync_id, full).await?,
            Command::Begin => self.transaction().await?,
            Command::Hello { .. } => bail!("protocol error: HELLO sent twice"),
            other => bail!(
                "protocol error: {} outside of a BEGIN..COMMIT transaction",
                other.to_fields()[0]
            ),
        }
        Ok(())
    }

    /// Reads the state the last STATE-GET announced, once: kept only if it
    /// still carries the token announced (else DELTA answers whole
    /// mailboxes, and an update STATE-PUT fails as for a missing state).
    fn load_state(&mut self) {
        let Some((peer, token)) = self.state_token.take() else {
            return;
        };
        let loaded = block_in_place(|| self.store()?.load_state(&peer));
        match loaded {
            Ok(Some(st)) if st.sync_id == token => self.state = Some((peer, st)),
            Ok(_) => tracing::warn!("the sync state for {peer} changed since STATE-GET"),
            Err(e) => tracing::warn!("ignoring the sync state for {peer}: {e:#}"),
        }
    }

    /// BASE/B lines until STATE-END are the pair's new common state; in an
    /// update, BASE-EDIT/B/B-DROP lines edit a mailbox's stored base.
    async fn state_put(&mut self, peer: String, sync_id: String, full: bool) -> Result<()> {
        // An update edits the state this side holds for the peer: the one
        // read at STATE-GET (the leader checked its sync ID), else the file.
        self.state_token = None;
        let old = match self.state.take() {
            Some((p, st)) if p == peer => Some(st),
            _ => None,
        };
        let mut state = PairState {
            sync_id,
            mailboxes: HashMap::new(),
        };
        let mut current: Option<Pending> = None;
        let mut dropped: Vec<MailboxGuid> = Vec::new();
        let mut edits: Vec<(MailboxName, BaseMailbox, BaseEdit)> = Vec::new();
        let mut whole: Vec<MailboxGuid> = Vec::new();
        let mut finish = |p: Option<Pending>, state: &mut PairState| match p {
            Some(Pending::Whole(n, b)) => {
                whole.push(b.guid);
                state.mailboxes.insert(b.guid, (n, b));
            }
            Some(Pending::Edit(n, b, e)) => edits.push((n, b, e)),
            None => {}
        };
        loop {
            let cmd = Command::parse(&protocol::connection::expect_line(&mut self.rx).await?)?;
            match cmd {
                Command::Base {
                    guid,
                    uidvalidity,
                    uidnext,
                    name,
                } => {
                    finish(current.take(), &mut state);
                    current = Some(Pending::Whole(
                        name,
                        BaseMailbox {
                            guid,
                            uidvalidity,
                            uidnext,
                            messages: Vec::new(),
                        },
                    ));
                }
                Command::BaseEdit {
                    guid,
                    uidvalidity,
                    uidnext,
                    name,
                } if !full => {
                    finish(current.take(), &mut state);
                    current = Some(Pending::Edit(
                        name,
                        BaseMailbox {
                            guid,
                            uidvalidity,
                            uidnext,
                            messages: Vec::new(),
                        },
                        BaseEdit {
                            dropped: Vec::new(),
                            set: Vec::new(),
                        },
                    ));
                }
                Command::BaseMsg {
                    uid,
                    flags,
                    guid,
                    keywords,
                } => {
                    let m = BaseMessage {
                        uid,
                        flags,
                        guid,
                        keywords: keywords.into(),
                    };
                    match current.as_mut() {
                        Some(Pending::Whole(_, b)) => b.messages.push(m),
                        Some(Pending::Edit(_, _, e)) => e.set.push(m),
                        None => bail!("protocol error: B before BASE in a STATE-PUT"),
                    }
                }
                Command::BaseDrop(uid) => match current.as_mut() {
                    Some(Pending::Edit(_, _, e)) => e.dropped.push(uid),
                    _ => bail!("protocol error: B-DROP outside of a BASE-EDIT"),
                },
                Command::Unbase(guid) if !full => dropped.push(guid),
                Command::StateEnd => break,
                other => bail!(
                    "protocol error: {} inside a STATE-PUT",
                    other.to_fields()[0]
                ),
            }
        }
        finish(current.take(), &mut state);
        let result = block_in_place(|| -> Result<()> {
            let store = self.store()?;
            if !full {
                // The leader checked that this state is the one it holds
                // (same sync ID) before it sent only the differences.
                let loaded = match old {
                    Some(st) => Ok(Some(st)),
                    None => store.load_state(&peer),
                };
                // Without the state the edits apply to (damaged past its
                // first line, or gone since STATE-GET) nothing is written:
                // the mail is synced, and the stale token makes the next
                // run compare everything and send a whole new state. An
                // error here would fail a run that lost nothing.
                let old = match loaded {
                    Ok(Some(st)) => st,
                    Ok(None) => {
                        tracing::warn!(
                            "no sync state for {peer} to update; the next run compares everything"
                        );
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(
                            "sync state for {peer} not updated: {e:#}; the next run compares everything"
                        );
                        return Ok(());
                    }
                };
                let old_sync_id = old.sync_id;
                let mut old_boxes = old.mailboxes;
                // What this side's journal entry records: the edits as
                // received (those that applied), the whole mailboxes, the
                // dropped ones.
                let mut applied: Vec<(MailboxGuid, BaseEdit)> = Vec::new();
                for (name, header, edit) in edits {
                    match old_boxes.remove(&header.guid) {
                        Some((_, mut base)) => {
                            base.uidvalidity = header.uidvalidity;
                            base.uidnext = header.uidnext;
                            applied.push((
                                header.guid,
                                BaseEdit {
                                    dropped: edit.dropped.clone(),
                                    set: edit.set.clone(),
                                },
                            ));
                            crate::brain::delta::apply(&mut base, edit);
                            state.mailboxes.insert(header.guid, (name, base));
                        }
                        // Without the old base the edit means nothing: the
                        // mailbox has no base here, and the next run
                        // compares it whole (nothing is deleted for it).
                        None => tracing::warn!(
                            "sync state for {peer}: no base for mailbox {} to update; it will be compared in full next time",
                            header.guid
                        ),
                    }
                }
                for (g, v) in old_boxes {
                    if !dropped.contains(&g) {
                        state.mailboxes.entry(g).or_insert(v);
                    }
                }
                use crate::state::journal::{BoxChange, Change};
                let change = Change {
                    old_sync_id: &old_sync_id,
                    mailboxes: applied
                        .iter()
                        .map(|(g, e)| (*g, BoxChange::Edit(e)))
                        .chain(whole.iter().map(|g| (*g, BoxChange::Whole)))
                        .collect(),
                    dropped,
                };
                return store.save_state_change(&peer, &state, &change);
            }
            store.save_state(&peer, &state)
        });
        if let Err(e) = result {
            self.defer(e);
        }
        Ok(())
    }

    /// SUB lines accumulate the complete new set; SUBS-COMMIT writes it.
    async fn subscriptions(&mut self, first: Command) -> Result<()> {
        let mut names = Vec::new();
        let mut cmd = first;
        loop {
            match cmd {
                Command::Sub(name) => names.push(name),
                Command::SubsCommit => break,
                other => bail!(
                    "protocol error: {:?} inside a subscription list",
                    other.to_fields()[0]
                ),
            }
            cmd = Command::parse(&protocol::connection::expect_line(&mut self.rx).await?)?;
        }
        if let Err(e) = block_in_place(|| self.store()?.set_subscriptions(&names)) {
            self.defer(e);
        }
        Ok(())
    }

    async fn send_body(&mut self, name: &MailboxName, uid: u32) -> Result<()> {
        let opened = block_in_place(|| self.store()?.open_message(name, uid));
        let (mut file, size) = match opened {
            Ok(f) => f,
            Err(e) => {
                // Expunged or moved by someone else since the snapshot: the
                // leader skips it and reports that a rerun is needed.
                self.reply(Reply::NoBody {
                    uid,
                    reason: format!("{e:#}"),
                })
                .await?;
                return self.tx.flush().await;
            }
        };
        self.reply(Reply::Body { uid, size }).await?;
        let mut sent = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK_SIZE];
            let n = block_in_place(|| file.read(&mut buf))
                .with_context(|| format!("reading message UID {uid} in {name}"))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            sent += n as u64;
            self.tx.send_data(Bytes::from(buf)).await?;
        }
        if sent != size {
            tracing::warn!("message UID {uid} in {name} changed size while being read");
        }
        self.tx.send_data(Bytes::new()).await?;
        // The leader waits for this body before it asks for more than its
        // window, so it must not sit in our buffer.
        self.tx.flush().await
    }

    /// BEGIN … COMMIT on the selected mailbox. Errors inside poison the
    /// transaction: the rest is read and discarded, COMMIT answers ERROR and
    /// nothing of it is committed.
    async fn transaction(&mut self) -> Result<()> {
        let name = self.selected()?.clone();
        let mut deferred = self.deferred.take();
        let Server {
            rx, store, names, ..
        } = self;
        let mut txn: Option<StoreUpdate<'_>> = None;
        if deferred.is_none() {
            let opened = match store.as_mut() {
                Some(store) => block_in_place(|| store.update(&name)),
                None => Err(anyhow!("protocol error: the store was not opened")),
            };
            match opened {
                Ok(t) => txn = Some(t),
                Err(e) => deferred = Some(format!("{e:#}")),
            }
        }
        loop {
            let fields = protocol::connection::expect_line(rx).await?;
            let cmd = Command::parse(&fields)?;
            if cmd == Command::Commit {
                break;
            }
            let result = apply(rx, txn.as_mut().filter(|_| deferred.is_none()), names, cmd).await?;
            if let Err(e) = result {
                deferred.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        let outcome = match (deferred, txn) {
            (Some(text), _) => Err((ErrorKind::Fail, text)),
            (None, Some(t)) => {
                block_in_place(|| t.commit()).map_err(|e| (kind_of(&e), format!("{e:#}")))
            }
            (None, None) => Err((ErrorKind::Fail, "transaction without a mailbox".to_string())),
        };
        let reply = match outcome {
            Ok(()) => Reply::Ok,
            Err((kind, text)) => Reply::Error {
                kind,
                text: format!("{name}: {text}"),
            },
        };
        self.reply(reply).await?;
        self.tx.flush().await
    }
}

/// Keeps the GUID → name map in step with a rename (children move too).
fn rename_names(
    names: &mut HashMap<MailboxGuid, MailboxName>,
    from: &MailboxName,
    to: &MailboxName,
) {
    for name in names.values_mut() {
        if let Some(n) = name.renamed(from, to) {
            *name = n;
        }
    }
}

fn fail(e: anyhow::Error) -> Reply {
    Reply::Error {
        kind: kind_of(&e),
        text: format!("{e:#}"),
    }
}

/// `Temp` for failures caused by the mail changing under us (running again
/// fixes them: exit 2 on the leader), `Fail` for the rest.
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    if e.chain()
        .any(|c| c.is::<crate::maildir::ChangedMeanwhile>())
    {
        ErrorKind::Temp
    } else {
        ErrorKind::Fail
    }
}

/// Applies one transaction command. The outer `Result` is a broken
/// connection (fatal); the inner one a failure of this change (deferred).
/// With `txn == None` (poisoned) the command's data is consumed and dropped.
async fn apply(
    rx: &mut Receiver,
    txn: Option<&mut StoreUpdate<'_>>,
    names: &HashMap<MailboxGuid, MailboxName>,
    cmd: Command,
) -> Result<Result<()>> {
    let Some(txn) = txn else {
        if let Command::Save(_) = cmd {
            while !expect_data(rx).await?.is_empty() {}
        }
        return Ok(Ok(()));
    };
    Ok(match cmd {
        Command::Save(rec) => {
            let mut handle = match block_in_place(|| txn.save_begin(&rec)) {
                Ok(h) => h,
                Err(e) => {
                    while !expect_data(rx).await?.is_empty() {}
                    return Ok(Err(e));
                }
            };
            // After a failed write the rest of the body is still read, so
            // the stream stays in step; the message is then dropped.
            let mut result = Ok(());
            loop {
                let chunk = expect_data(rx).await?;
                if chunk.is_empty() {
                    break;
                }
                if result.is_ok() {
                    result = block_in_place(|| txn.write_chunk(&mut handle, &chunk));
                }
            }
            match result {
                Ok(()) => block_in_place(|| txn.save_finish(handle)),
                Err(e) => {
                    txn.save_abort(handle);
                    Err(e)
                }
            }
        }
        Command::CopyFile { path, record } => {
            block_in_place(|| txn.save_copy_of(&record, std::path::Path::new(&path)))
        }
        Command::Flags {
            uid,
            flags,
            keywords,
        } => block_in_place(|| txn.set_flags(uid, flags, &keywords)),
        Command::Date { uid, secs } => {
            txn.set_internal_date(uid, secs);
            Ok(())
        }
        Command::Expunge(uid) => block_in_place(|| txn.expunge(uid)),
        Command::Relabel { old, new } => block_in_place(|| txn.relabel(old, new)),
        Command::CopyLocal {
            mailbox,
            uid,
            record,
        } => match names.get(&mailbox) {
            Some(name) => block_in_place(|| txn.copy_local(&record, name, uid)),
            None => Err(anyhow!("COPYLOCAL from an unknown mailbox {mailbox}")),
        },
        Command::Header {
            guid,
            uidvalidity,
            uidnext,
        } => {
            txn.set_header(guid, uidvalidity, uidnext);
            Ok(())
        }
        other => Err(anyhow!(
            "protocol error: {} inside a transaction",
            other.to_fields()[0]
        )),
    })
}

/// The mailbox a STATE-PUT is receiving: a whole base, or an edit of the
/// stored one (the header given, the changes collected).
enum Pending {
    Whole(MailboxName, BaseMailbox),
    Edit(MailboxName, BaseMailbox, BaseEdit),
}
