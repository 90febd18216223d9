//! One dsync at a time per mail store: an advisory `flock` on a lock file
//! in the store's root, held for the whole run and released by the kernel
//! even if the process is killed.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name. Dovecot ignores files it does not know at the
/// root of a Maildir, and a name without a leading dot is never a folder.
pub const LOCK_FILE: &str = "dsync.lock";

#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock in `dir`, waiting up to `wait` for another run to finish.
pub fn acquire(dir: &Path, wait: Duration) -> Result<StoreLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    let start = Instant::now();
    loop {
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        if start.elapsed() >= wait {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another dsync (pid {}) is working on {}; waited {} s for it. Try again when it has finished",
                holder.split_whitespace().next().unwrap_or("unknown"),
                dir.display(),
                wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Record who holds it, for the message a waiting run prints.
    file.set_len(0)?;
    file.rewind()?;
    let _ = writeln!(file, "{}", std::process::id());
    Ok(StoreLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_then_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), Duration::from_secs(1)).unwrap();
        let e = acquire(dir.path(), Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another dsync"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        drop(held);
        acquire(dir.path(), Duration::from_millis(300)).unwrap();
    }
}
