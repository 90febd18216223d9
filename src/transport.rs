//! Byte streams between the two brains: an in-process pipe for a local
//! LOCATION2, or a child process (ssh, or any command) whose stdin/stdout
//! carry the protocol and whose stderr is relayed to ours.

use crate::protocol::connection::{BoxRead, BoxWrite};
use anyhow::{Context, Result};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
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
    pub child: Child,
    /// Finishes when the child's stderr closes; resolves to the last lines
    /// it printed, for error messages when the remote could not start.
    pub stderr_tail: tokio::task::JoinHandle<Vec<String>>,
}

/// Starts `argv` with piped stdin/stdout. Its stderr lines are relayed to
/// ours prefixed with `prefix`, so remote problems are visible as they happen.
pub fn spawn(argv: &[String], prefix: &str) -> Result<ChildTransport> {
    let (prog, args) = argv
        .split_first()
        .context("empty command line for the remote side")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start the remote side: {}", argv.join(" ")))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let prefix = prefix.to_string();
    let stderr_tail = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{prefix}{line}");
            if tail.len() == 5 {
                tail.remove(0);
            }
            tail.push(line);
        }
        tail
    });
    Ok(ChildTransport {
        read: Box::new(stdout),
        write: Box::new(stdin),
        child,
        stderr_tail,
    })
}
