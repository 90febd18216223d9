//! Locking an mbox file the way Dovecot does by default, so delivery
//! agents and Dovecot wait for us and we for them: reading takes an fcntl
//! read lock (`mbox_read_locks = fcntl`); writing takes the dotlock
//! `<mbox>.lock` and then an fcntl write lock (`mbox_write_locks = dotlock
//! fcntl`). Every wait is bounded; a lock held too long is a clear error.

use crate::maildir::fsutil::DotLock;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long we wait for another program's fcntl lock (Dovecot's
/// `mbox_lock_timeout` is 5 minutes; a sync should not hang that long).
pub const FCNTL_WAIT: Duration = Duration::from_secs(60);

fn fcntl_lock(file: &File, kind: libc::c_short, path: &Path, wait: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        // SAFETY: an all-zero flock is valid; we set the fields we need.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: the fd is open for the duration of the call; fl is valid.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => {}
            Some(libc::EINTR) => continue,
            // Filesystems without fcntl locks (some NFS setups): the
            // dotlock still protects writers, as Dovecot's fallback does.
            Some(libc::ENOLCK | libc::EOPNOTSUPP) => {
                tracing::debug!(
                    "{}: no fcntl locks here ({e}); relying on the dotlock",
                    path.display()
                );
                return Ok(());
            }
            _ => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        if start.elapsed() > wait {
            bail!(
                "mbox {} is locked by another program (fcntl lock held for over {} s); \
                 try again when it is done",
                path.display(),
                wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An mbox opened for reading under an fcntl read lock (released when
/// dropped, or when any other descriptor of this process on the same file
/// is closed: fcntl locks are per process).
pub struct ReadLocked {
    pub file: File,
}

pub fn lock_read(path: &Path) -> Result<ReadLocked> {
    let file = File::open(path).with_context(|| format!("opening mbox {}", path.display()))?;
    fcntl_lock(&file, libc::F_RDLCK as libc::c_short, path, FCNTL_WAIT)?;
    Ok(ReadLocked { file })
}

/// An mbox held for writing: its dotlock and an fcntl write lock on it.
/// The dotlock file doubles as the file a rewrite is written to (renamed
/// over the mbox at the end), so no half-written mbox is ever visible.
pub struct WriteLocked {
    pub file: File,
    pub dot: DotLock,
}

/// Takes the dotlock, then opens the mbox (creating it when `create`) and
/// takes the fcntl write lock.
pub fn lock_write(path: &Path, create: bool) -> Result<WriteLocked> {
    let dot = DotLock::acquire(path).with_context(|| {
        format!(
            "taking the dotlock of mbox {} (the directory must be writable, as for any \
             mail program delivering there)",
            path.display()
        )
    })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening mbox {}", path.display()))?;
    fcntl_lock(&file, libc::F_WRLCK as libc::c_short, path, FCNTL_WAIT)?;
    Ok(WriteLocked { file, dot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_lock_blocks_a_second_dotlock_and_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box");
        let w = lock_write(&p, true).unwrap();
        assert!(d.path().join("box.lock").exists());
        drop(w);
        assert!(!d.path().join("box.lock").exists());
        let r = lock_read(&p).unwrap();
        drop(r);
    }

    #[test]
    fn fcntl_conflict_times_out_clearly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box");
        std::fs::write(&p, b"").unwrap();
        // fcntl locks do not conflict within one process: hold it in a child.
        let held = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time;f=open(sys.argv[1],'r+');fcntl.lockf(f,fcntl.LOCK_EX);print('x',flush=True);time.sleep(5)",
            ])
            .arg(&p)
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut held) = held else { return };
        let mut line = [0u8; 2];
        use std::io::Read;
        held.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
        let f = File::open(&p).unwrap();
        let e = fcntl_lock(
            &f,
            libc::F_RDLCK as libc::c_short,
            &p,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("locked by another program"),
            "{e:#}"
        );
        let _ = held.kill();
        let _ = held.wait();
    }
}
