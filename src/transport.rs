//! Byte streams between the two brains: a child process (ssh, any command,
//! or this binary's own `dsync server` for a local LOCATION2) whose
//! stdin/stdout carry the protocol and whose stderr is relayed to ours.

use crate::protocol::connection::{BoxRead, BoxWrite};
use anyhow::{Context as _, Result};
use std::ffi::OsStr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, Command};

/// A started other side.
pub struct ChildTransport {
    pub read: BoxRead,
    pub write: BoxWrite,
    child: Child,
    /// The command line, for messages.
    command: String,
    /// What it is, for messages: "the remote side", "the LOCATION2 side".
    name: String,
    stderr: Arc<Mutex<StderrRelay>>,
    /// Finishes when the child's stderr closes; `None` once it has (a
    /// finished handle must not be awaited again).
    stderr_done: Option<tokio::task::JoinHandle<()>>,
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

/// How to start the other side.
pub struct Spawn<'a, S> {
    /// Its command line.
    pub argv: &'a [S],
    /// Put before each line it prints on stderr.
    pub prefix: &'a str,
    /// What it is, for messages: "the remote side".
    pub name: &'a str,
    /// Killed when we die, even by SIGKILL (Linux's parent-death signal),
    /// so that killing dsync stops the whole run at once, as it did when
    /// a local LOCATION2 was served in-process; without it the child only
    /// stops at the end of its input, after the commands already in the
    /// pipe. The signal is tied to the thread that spawns: call from a
    /// thread that lives as long as the run (the main thread, which runs
    /// the command's future).
    pub die_with_parent: bool,
}

/// Starts a command with piped stdin/stdout. Its stderr lines are relayed
/// to ours prefixed with `prefix` once [`ChildTransport::started`] is
/// called (held until then), so remote problems are visible as they happen.
pub fn spawn<S: AsRef<OsStr>>(how: Spawn<'_, S>) -> Result<ChildTransport> {
    let Spawn {
        argv,
        prefix,
        name,
        die_with_parent,
    } = how;
    let (prog, args) = argv
        .split_first()
        .with_context(|| format!("empty command line for {name}"))?;
    let command = argv
        .iter()
        .map(|a| a.as_ref().to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(prog);
    #[cfg(target_os = "linux")]
    if die_with_parent {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls, no
        // allocation (the error is a raw OS error).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died before the signal was set up.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = die_with_parent;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {name}: {command}"))?;
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
        name: name.to_string(),
        stderr: relay,
        stderr_done: Some(stderr_done),
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
            self.relay_finished(Duration::from_secs(1)).await;
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

    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// What it is: "the remote side", "the LOCATION2 side".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// After a clean QUIT (or after hanging up on a failed run): gives the
    /// remote side `grace` to exit by itself, so it is never killed in the
    /// middle of a write it could have finished. True if it exited (and
    /// was reaped: its resource use then counts in `RUSAGE_CHILDREN`).
    pub async fn wait(mut self, grace: Duration) -> bool {
        let exited = matches!(
            tokio::time::timeout(grace, self.child.wait()).await,
            Ok(Ok(_))
        );
        self.relay_finished(Duration::from_secs(1)).await;
        exited
    }

    /// Waits up to `grace` for the child's stderr to close and be relayed.
    async fn relay_finished(&mut self, grace: Duration) {
        if let Some(h) = &mut self.stderr_done {
            if tokio::time::timeout(grace, h).await.is_ok() {
                self.stderr_done = None;
            }
        }
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
        let (a, mut b) = tokio::io::duplex(64);
        let (r1, w1) = tokio::io::split(a);
        let (mut r, mut w, t) = counted(Box::new(r1), Box::new(w1));
        w.write_all(b"hello").await.unwrap();
        w.flush().await.unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        b.write_all(b"abc").await.unwrap();
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
        let mut t = spawn(Spawn {
            argv: &argv,
            prefix: "remote: ",
            name: "the remote side",
            die_with_parent: false,
        })
        .unwrap();
        let o = t.outcome(Duration::from_secs(5)).await;
        assert!(o.failed);
        assert_eq!(
            o.to_string(),
            "exited with status 127: sh: dsync: command not found"
        );
    }
}
