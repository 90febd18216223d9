//! A connection: frames over a byte stream, with the I/O stall timeout.

use super::frame::{Frame, FrameCodec, FrameError};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Bytes a write buffer may hold before it is pushed to the stream.
const WRITE_BOUNDARY: usize = 256 * 1024;

/// The sending half of a split connection.
pub struct Sender {
    writer: FramedWrite<BoxWrite, FrameCodec>,
    pub peer: String,
    pub timeout: Duration,
}

/// The receiving half of a split connection.
pub struct Receiver {
    reader: FramedRead<BoxRead, FrameCodec>,
    pub peer: String,
    pub timeout: Duration,
}

/// Frames a byte stream in both directions and splits it into halves that
/// can be driven by different tasks (a leader reads replies while it is
/// still streaming commands).
pub fn connect(
    read: BoxRead,
    write: BoxWrite,
    peer: &str,
    timeout: Duration,
) -> (Sender, Receiver) {
    let mut writer = FramedWrite::new(write, FrameCodec::default());
    writer.set_backpressure_boundary(WRITE_BOUNDARY);
    (
        Sender {
            writer,
            peer: peer.to_string(),
            timeout,
        },
        Receiver {
            reader: FramedRead::with_capacity(read, FrameCodec::default(), 256 * 1024),
            peer: peer.to_string(),
            timeout,
        },
    )
}

impl Sender {
    pub async fn send_line(&mut self, fields: Vec<String>) -> Result<()> {
        send(
            &mut self.writer,
            &self.peer,
            self.timeout,
            Frame::Line(fields),
        )
        .await
    }

    pub async fn send_data(&mut self, data: Bytes) -> Result<()> {
        send(
            &mut self.writer,
            &self.peer,
            self.timeout,
            Frame::Data(data),
        )
        .await
    }

    pub async fn flush(&mut self) -> Result<()> {
        flush(&mut self.writer, &self.peer, self.timeout).await
    }
}

impl Receiver {
    pub async fn recv(&mut self) -> Result<Option<Frame>> {
        recv(&mut self.reader, &self.peer, self.timeout).await
    }
}

async fn send(
    w: &mut FramedWrite<BoxWrite, FrameCodec>,
    peer: &str,
    timeout: Duration,
    frame: Frame,
) -> Result<()> {
    match tokio::time::timeout(timeout, w.feed(frame)).await {
        Ok(r) => r.map_err(|e| lost(peer, e)),
        Err(_) => Err(stalled(peer, timeout)),
    }
}

async fn flush(
    w: &mut FramedWrite<BoxWrite, FrameCodec>,
    peer: &str,
    timeout: Duration,
) -> Result<()> {
    match tokio::time::timeout(timeout, w.flush()).await {
        Ok(r) => r.map_err(|e| lost(peer, e)),
        Err(_) => Err(stalled(peer, timeout)),
    }
}

async fn recv(
    r: &mut FramedRead<BoxRead, FrameCodec>,
    peer: &str,
    timeout: Duration,
) -> Result<Option<Frame>> {
    match tokio::time::timeout(timeout, r.next()).await {
        Ok(None) => Ok(None),
        Ok(Some(Ok(frame))) => Ok(Some(frame)),
        Ok(Some(Err(e))) => Err(lost(peer, e)),
        Err(_) => Err(stalled(peer, timeout)),
    }
}

fn lost(peer: &str, e: FrameError) -> anyhow::Error {
    match e {
        FrameError::Io(io) => anyhow!(io).context(format!("connection to {peer} lost")),
        other => anyhow!(other).context(format!("{peer} sent invalid data")),
    }
}

fn stalled(peer: &str, timeout: Duration) -> anyhow::Error {
    anyhow!(
        "no progress from {peer} for {} seconds; giving up (raise dsync_io_timeout if the link is this slow)",
        timeout.as_secs()
    )
}

/// Reads the next frame and requires it to be a line.
pub async fn expect_line(rx: &mut Receiver) -> Result<Vec<String>> {
    match rx.recv().await? {
        Some(Frame::Line(f)) => Ok(f),
        Some(Frame::Data(_)) => bail!("{} sent a data chunk where a line was expected", rx.peer),
        None => Err(anyhow!("{} closed the connection unexpectedly", rx.peer)),
    }
}

/// Reads the next frame and requires it to be a data chunk.
pub async fn expect_data(rx: &mut Receiver) -> Result<Bytes> {
    match rx.recv().await? {
        Some(Frame::Data(d)) => Ok(d),
        Some(Frame::Line(f)) => bail!(
            "{} sent a line ({}) where message data was expected",
            rx.peer,
            f.first().map(String::as_str).unwrap_or("")
        ),
        None => Err(anyhow!(
            "{} closed the connection in the middle of a message",
            rx.peer
        ))
        .context("the message was not saved"),
    }
}
