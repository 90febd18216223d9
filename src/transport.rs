//! Byte streams between the two brains: an in-process pipe for a local
//! LOCATION2, or a child process (ssh, or any command) whose stdin/stdout
//! carry the protocol and whose stderr is relayed to ours.

use crate::protocol::connection::{BoxRead, BoxWrite};
use anyhow::{Context as _, Result};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, Command};

/// Capacity of the in-process pipe in each direction. Large enough that a
/// burst of pipelined commands never waits on the other task.
const DUPLEX_BUFFER: usize = 4 << 20;

/// A pair of in-process byte streams: what one end writes the other reads.
/// One whole pipe per direction, so dropping a writer (a side that failed)
/// is an end-of-stream its reader sees at once; the halves of one split
/// pipe would keep it open until both were gone.
pub fn in_process() -> ((BoxRead, BoxWrite), (BoxRead, BoxWrite)) {
    let (a_write, b_read) = tokio::io::duplex(DUPLEX_BUFFER);
    let (b_write, a_read) = tokio::io::duplex(DUPLEX_BUFFER);
    (
        (Box::new(a_read) as BoxRead, Box::new(a_write) as BoxWrite),
        (Box::new(b_read) as BoxRead, Box::new(b_write) as BoxWrite),
    )
}

/// A started remote side.
pub struct ChildTransport {
    pub read: BoxRead,
    pub write: BoxWrite,
    child: Child,
    /// The command line, for messages.
    command: String,
    stderr: Arc<Mutex<StderrRelay>>,
    /// Finishes when the child's stderr closes.
    stderr_done: tokio::task::JoinHandle<()>,
}

/// What the remote side printed on stderr. Until the handshake succeeds
/// its lines are held back: if the remote never starts they become the
/// error message (`bash: dsync: command not found`), printed once rather
/// than relayed and then repeated.
#[derive(Default)]
struct StderrRelay {
    mode: RelayMode,
    prefix: String,
    held: Vec<String>,
}

#[derive(Default, PartialEq, Eq)]
enum RelayMode {
    /// Before the handshake: kept for the error message.
    #[default]
    Held,
    /// Printed as it comes.
    Live,
    /// After the run failed here: the remote's complaints about our
    /// hang-up only echo our own error, so they go to the debug log.
    Quiet,
}

/// Lines of the remote's stderr kept for an error message at most (the last ones).
const HELD_LINES: usize = 20;

/// Starts `argv` with piped stdin/stdout. Its stderr lines are relayed to
/// ours prefixed with `prefix` once [`ChildTransport::started`] is called
/// (held until then), so remote problems are visible as they happen.
pub fn spawn(argv: &[String], prefix: &str) -> Result<ChildTransport> {
    let (prog, args) = argv
        .split_first()
        .context("empty command line for the remote side")?;
    let command = argv.join(" ");
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start the remote side: {command}"))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let relay = Arc::new(Mutex::new(StderrRelay {
        prefix: prefix.to_string(),
        ..Default::default()
    }));
    let task_relay = relay.clone();
    let stderr_done = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut r = task_relay.lock().unwrap_or_else(|e| e.into_inner());
            match r.mode {
                RelayMode::Live => eprintln!("{}{line}", r.prefix),
                RelayMode::Quiet => tracing::debug!("{}{line}", r.prefix),
                RelayMode::Held => {
                    // The last lines: that is where the reason usually is.
                    if r.held.len() == HELD_LINES {
                        r.held.remove(0);
                    }
                    r.held.push(line);
                }
            }
        }
    });
    Ok(ChildTransport {
        read: Box::new(stdout),
        write: Box::new(stdin),
        child,
        command,
        stderr: relay,
        stderr_done,
    })
}

impl ChildTransport {
    /// The handshake succeeded: relay what the remote printed so far and
    /// everything after.
    pub fn started(&self) {
        let mut r = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        for line in std::mem::take(&mut r.held) {
            eprintln!("{}{line}", r.prefix);
        }
        r.mode = RelayMode::Live;
    }

    /// The run failed on our side: stop relaying (see [`RelayMode::Quiet`]).
    pub fn quiet(&self) {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).mode = RelayMode::Quiet;
    }

    /// How the remote side ended, if it ends within `grace`; `None` while
    /// it is still running (so it did not cause a failure seen here).
    pub async fn ended_within(&mut self, grace: Duration) -> Option<Outcome> {
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(_)) => Some(self.outcome(Duration::ZERO).await),
            _ => None,
        }
    }

    /// Waits up to `grace` for the remote side to end: how it ended and
    /// what it printed that was not relayed yet. For the message of a
    /// failed run.
    pub async fn outcome(&mut self, grace: Duration) -> Outcome {
        let status = tokio::time::timeout(grace, self.child.wait()).await;
        if status.is_ok() {
            // Its last words may still be in the pipe; the pipe may also be
            // held open by the remote's own children, so not for long.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.stderr_done).await;
        }
        let held = {
            let mut r = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut r.held)
        };
        let (failed, status) = match status {
            Ok(Ok(s)) => (!s.success(), describe_status(s)),
            Ok(Err(e)) => (false, format!("could not be waited for: {e}")),
            Err(_) => (false, "did not exit".to_string()),
        };
        Outcome {
            failed,
            status,
            stderr: held
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" / "),
        }
    }

    /// The command line the remote side was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// After a clean QUIT: gives the remote side time to exit by itself.
    pub async fn wait(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stderr_done).await;
    }
}

/// How a remote side ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The process itself failed: a non-zero status or a signal.
    pub failed: bool,
    /// `exited with status 127`, `was killed by signal 9`.
    pub status: String,
    /// What it printed on stderr that was not relayed, on one line.
    pub stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.status)?;
        if !self.stderr.is_empty() {
            write!(f, ": {}", self.stderr)?;
        }
        Ok(())
    }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended ({s})"),
    }
}

/// Bytes that crossed a connection, counted below the framing.
#[derive(Clone, Default)]
pub struct Traffic {
    pub sent: Arc<AtomicU64>,
    pub received: Arc<AtomicU64>,
}

impl Traffic {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Wraps both halves of a connection so the bytes on the wire are counted.
pub fn counted(read: BoxRead, write: BoxWrite) -> (BoxRead, BoxWrite, Traffic) {
    let t = Traffic::default();
    (
        Box::new(Counted {
            inner: read,
            count: t.received.clone(),
        }),
        Box::new(Counted {
            inner: write,
            count: t.sent.clone(),
        }),
        t,
    )
}

struct Counted<T> {
    inner: T,
    count: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.count.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_both_ways() {
        let ((r1, w1), (mut r2, mut w2)) = in_process();
        let (mut r, mut w, t) = counted(r1, w1);
        w.write_all(b"hello").await.unwrap();
        w.flush().await.unwrap();
        let mut buf = [0u8; 5];
        r2.read_exact(&mut buf).await.unwrap();
        w2.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!((t.sent(), t.received()), (5, 3));
    }

    #[tokio::test]
    async fn a_remote_that_cannot_start_is_described_by_its_stderr() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "echo 'sh: dsync: command not found' >&2; exit 127",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut t = spawn(&argv, "remote: ").unwrap();
        let o = t.outcome(Duration::from_secs(5)).await;
        assert!(o.failed);
        assert_eq!(
            o.to_string(),
            "exited with status 127: sh: dsync: command not found"
        );
    }
}
