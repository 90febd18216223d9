//! The leader's handle on the follower: typed requests over the protocol,
//! with a reader task so replies are drained while the leader is still
//! streaming commands (a pipelined peer must never block both ways).

use crate::model::{MailboxDelta, MailboxInfo, MailboxName, MailboxSnapshot, Uid};
use crate::protocol::connection::{Receiver, Sender};
use crate::protocol::{self, Command, ErrorKind, Frame, Reply};
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use tokio::sync::mpsc;

pub struct Remote {
    tx: Sender,
    replies: mpsc::UnboundedReceiver<Result<Frame>>,
    pub peer: String,
    pub features: Vec<String>,
}

/// A mailbox as the follower answered DELTA.
pub enum Listing {
    Full(MailboxSnapshot),
    /// The difference from the follower's base with this digest.
    Delta(String, MailboxDelta),
}

/// A failure the follower reported for one request.
#[derive(Debug)]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub text: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for RemoteError {}

/// What a FETCH produced.
pub enum Fetched {
    Body { uid: Uid, size: u64 },
    Gone { uid: Uid, reason: String },
}

impl Remote {
    /// Performs the handshake and starts draining replies.
    pub async fn handshake(
        mut tx: Sender,
        mut rx: Receiver,
        features: Vec<String>,
    ) -> Result<Remote> {
        let peer = rx.peer.clone();
        let hello = Command::Hello {
            min: protocol::MIN_VERSION,
            max: protocol::MAX_VERSION,
            features,
        };
        let sent = async {
            tx.send_line(hello.to_fields()).await?;
            tx.flush().await
        }
        .await;
        // A peer that is not a dsync may have printed something and gone
        // before our HELLO arrived: what it printed explains more than the
        // broken pipe does, so read it before giving up.
        let answer = rx.recv().await;
        let fields = match (answer, sent) {
            (Ok(Some(Frame::Line(f))), _) => f,
            (Ok(Some(Frame::Data(_))), _) => bail!("{peer} answered the handshake with data; is it a dsync of this kind?"),
            (_, Err(e)) => return Err(e),
            (Err(e), Ok(())) => return Err(e),
            (Ok(None), Ok(())) => bail!("{peer} closed the connection during the handshake (did it start? see its messages above)"),
        };
        let features = match Reply::parse(&fields) {
            Ok(Reply::Hello { version, features }) => {
                // The follower must pick from our range; anything else is a
                // dsync we cannot talk to, however well it answered.
                if !(protocol::MIN_VERSION..=protocol::MAX_VERSION).contains(&version) {
                    bail!(
                        "protocol version mismatch: {peer} chose version {version}, \
                         but this dsync speaks versions {}..{}; install the same dsync version on both sides",
                        protocol::MIN_VERSION,
                        protocol::MAX_VERSION
                    );
                }
                tracing::debug!("{peer} speaks protocol version {version}");
                features
            }
            Ok(Reply::Error { text, .. }) => bail!("{peer} refused the session: {text}"),
            // Dovecot's own dsync greets with `VERSION dsync 3 6`: a common
            // mix-up when its `dsync` comes first on the remote PATH.
            _ if fields.len() >= 4 && fields[0] == "VERSION" && fields[1] == "dsync" => bail!(
                "{peer} is Dovecot's dsync (its protocol {}.{}), not this dsync; \
                 install this dsync on the remote host or name it in dsync_remote_cmd",
                fields[2],
                fields[3]
            ),
            _ => bail!(
                "{peer} did not answer with a dsync-rs HELLO (got {:?}); is the remote command a dsync of this kind?",
                fields.first().map(String::as_str).unwrap_or("")
            ),
        };
        let (send, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let item = match rx.recv().await {
                    Ok(Some(frame)) => Ok(frame),
                    Ok(None) => Err(anyhow!("{} closed the connection unexpectedly", rx.peer)),
                    Err(e) => Err(e),
                };
                let stop = item.is_err();
                if send.send(item).is_err() || stop {
                    break;
                }
            }
        });
        Ok(Remote {
            tx,
            replies,
            peer,
            features,
        })
    }

    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }

    pub async fn send(&mut self, cmd: Command) -> Result<()> {
        self.tx.send_line(cmd.to_fields()).await
    }

    pub async fn send_data(&mut self, data: Bytes) -> Result<()> {
        self.tx.send_data(data).await
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.tx.flush().await
    }

    async fn next_frame(&mut self) -> Result<Frame> {
        match self.replies.recv().await {
            Some(r) => r,
            None => Err(anyhow!("{} closed the connection unexpectedly", self.peer)),
        }
    }

    pub async fn reply(&mut self) -> Result<Reply> {
        match self.next_frame().await? {
            Frame::Line(f) => Ok(Reply::parse(&f)?),
            Frame::Data(_) => bail!("{} sent message data where a reply was expected", self.peer),
        }
    }

    pub async fn data(&mut self) -> Result<Bytes> {
        match self.next_frame().await? {
            Frame::Data(d) => Ok(d),
            Frame::Line(_) => bail!("{} sent a line in the middle of a message body", self.peer),
        }
    }

    /// Waits for a plain OK; an ERROR becomes a [`RemoteError`].
    pub async fn expect_ok(&mut self) -> Result<()> {
        match self.reply().await? {
            Reply::Ok => Ok(()),
            Reply::Error { kind, text } => Err(RemoteError { kind, text }.into()),
            other => bail!(
                "{} sent {:?} where OK was expected",
                self.peer,
                other.to_fields()[0]
            ),
        }
    }

    pub async fn open(&mut self, create: bool) -> Result<()> {
        self.send(Command::Open { create }).await?;
        self.flush().await?;
        self.expect_ok().await
    }

    /// Reads the answer to LIST.
    pub async fn read_list(&mut self) -> Result<(Vec<MailboxInfo>, Vec<MailboxName>)> {
        let (mut boxes, mut subs) = (Vec::new(), Vec::new());
        loop {
            match self.reply().await? {
                Reply::Box(b) => boxes.push(b),
                Reply::Sub(s) => subs.push(s),
                Reply::End => return Ok((boxes, subs)),
                Reply::Error { kind, text } => return Err(RemoteError { kind, text }.into()),
                other => bail!(
                    "{} sent {:?} inside a mailbox list",
                    self.peer,
                    other.to_fields()[0]
                ),
            }
        }
    }

    /// Reads the answer to SNAPSHOT.
    pub async fn read_snapshot(&mut self) -> Result<MailboxSnapshot> {
        match self.read_delta().await? {
            Listing::Full(s) => Ok(s),
            Listing::Delta(..) => bail!("{} answered SNAPSHOT with a DELTA", self.peer),
        }
    }

    /// Reads the answer to DELTA: a difference from the base whose digest
    /// it names, or (no base there) the whole mailbox.
    pub async fn read_delta(&mut self) -> Result<Listing> {
        let info = match self.reply().await? {
            Reply::Box(b) => b,
            Reply::Error { kind, text } => return Err(RemoteError { kind, text }.into()),
            other => bail!(
                "{} sent {:?} where a mailbox was expected",
                self.peer,
                other.to_fields()[0]
            ),
        };
        let mut digest = None;
        let mut messages = Vec::new();
        let mut gone = Vec::new();
        loop {
            match self.reply().await? {
                Reply::DeltaOf(d) if digest.is_none() && messages.is_empty() && gone.is_empty() => {
                    digest = Some(d)
                }
                Reply::Gone(uid) if digest.is_some() => gone.push(uid),
                Reply::Msg(m) => {
                    if messages.is_empty() && digest.is_none() {
                        // A whole mailbox: its size is known.
                        messages.reserve(info.messages as usize);
                    }
                    messages.push(m)
                }
                Reply::End => break,
                other => bail!(
                    "{} sent {:?} inside a message list",
                    self.peer,
                    other.to_fields()[0]
                ),
            }
        }
        Ok(match digest {
            Some(digest) => Listing::Delta(
                digest,
                MailboxDelta {
                    info,
                    changed: messages,
                    gone,
                },
            ),
            None => Listing::Full(MailboxSnapshot { info, messages }),
        })
    }

    /// Reads the head of the answer to FETCH; the body's chunks follow.
    pub async fn read_fetched(&mut self) -> Result<Fetched> {
        match self.reply().await? {
            Reply::Body { uid, size } => Ok(Fetched::Body { uid, size }),
            Reply::NoBody { uid, reason } => Ok(Fetched::Gone { uid, reason }),
            Reply::Error { kind, text } => Err(RemoteError { kind, text }.into()),
            other => bail!(
                "{} sent {:?} where a message was expected",
                self.peer,
                other.to_fields()[0]
            ),
        }
    }

    pub async fn quit(&mut self) -> Result<()> {
        self.send(Command::Quit).await?;
        self.flush().await?;
        match self.reply().await? {
            Reply::Bye => Ok(()),
            Reply::Error { kind, text } => Err(RemoteError { kind, text }.into()),
            other => bail!(
                "{} sent {:?} instead of BYE",
                self.peer,
                other.to_fields()[0]
            ),
        }
    }
}
