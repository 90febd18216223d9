//! File-system helpers with Dovecot's conventions: dotlocks, atomic
//! replace, directory fsync, the root's dovecot-uidvalidity counter.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Dovecot overrides a uidlist lock older than this (seconds).
const LOCK_STALE: Duration = Duration::from_secs(120);
/// How long we wait for someone else's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);

pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).with_context(|| format!("opening directory {}", dir.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// `<path>.lock` held the way Dovecot's dotlocks are: created with
/// O_EXCL; the new content is written into the lock file itself and then
/// renamed over the target, so the lock's release and the update are one
/// atomic step. Dropped without `replace`, the lock is just removed.
pub struct DotLock {
    lock: PathBuf,
    target: PathBuf,
    file: Option<File>,
    touched: Instant,
}

impl DotLock {
    pub fn acquire(target: &Path) -> Result<DotLock> {
        let mut lock = target.as_os_str().to_owned();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let mode = fs::metadata(target)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o600);
        let start = Instant::now();
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&lock)
            {
                Ok(file) => {
                    mark_ours(&lock, &file);
                    return Ok(DotLock {
                        lock,
                        target: target.to_path_buf(),
                        file: Some(file),
                        touched: Instant::now(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if left_by_dead_dsync(&lock) {
                        tracing::warn!("removing {} left by an interrupted dsync", lock.display());
                        let _ = fs::remove_file(&lock);
                        let _ = fs::remove_file(owner_marker(&lock));
                        continue;
                    }
                    let stale = fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .map(|t| {
                            SystemTime::now()
                                .duration_since(t)
                                .is_ok_and(|age| age > LOCK_STALE)
                        })
                        .unwrap_or(false);
                    if stale {
                        tracing::warn!("overriding stale lock {}", lock.display());
                        let _ = fs::remove_file(&lock);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        bail!(
                            "{} is held by another process for over {} s (a Dovecot process \
                             or another dsync); try again later, or remove it if nothing is running",
                            lock.display(),
                            LOCK_WAIT.as_secs()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock {}", lock.display()))
                }
            }
        }
    }

    /// Keeps a long-held lock from looking stale to others (Dovecot
    /// overrides locks untouched for two minutes). Cheap to call often.
    pub fn keep_alive(&mut self) {
        if self.touched.elapsed() > Duration::from_secs(20) {
            if let Some(f) = &self.file {
                let _ = f.set_modified(SystemTime::now());
            }
            self.touched = Instant::now();
        }
    }

    /// The lock file, open for writing: a new content too large to hold in
    /// memory is written here piece by piece, then `replace(&[])` renames
    /// it over the target.
    pub fn file_mut(&mut self) -> &mut File {
        self.file.as_mut().expect("lock file open")
    }

    /// Writes `data` as the target's new content and releases the lock.
    pub fn replace(self, data: &[u8]) -> Result<()> {
        self.replace_with_mtime(data, None)
    }

    /// Like `replace`, with the new file's mtime raised to at least
    /// `min_mtime`, for readers that cache by mtime (Dovecot re-reads
    /// dovecot-keywords only when its mtime in seconds changes).
    pub fn replace_with_mtime(self, data: &[u8], min_mtime: Option<SystemTime>) -> Result<()> {
        self.replace_and_stat(data, min_mtime).map(drop)
    }

    /// Like `replace_with_mtime`, and tells what the new target is (taken
    /// from the written file before the rename, so no other writer's file
    /// can be mistaken for ours).
    pub fn replace_and_stat(
        mut self,
        data: &[u8],
        min_mtime: Option<SystemTime>,
    ) -> Result<fs::Metadata> {
        let mut f = self.file.take().expect("lock file open");
        let meta = f
            .write_all(data)
            .and_then(|_| match min_mtime {
                Some(min) if SystemTime::now() < min => f.set_modified(min),
                _ => Ok(()),
            })
            .and_then(|_| f.sync_data())
            .and_then(|_| f.metadata())
            .with_context(|| format!("writing {}", self.lock.display()))?;
        drop(f);
        fs::rename(&self.lock, &self.target).with_context(|| {
            format!(
                "renaming {} to {}",
                self.lock.display(),
                self.target.display()
            )
        })?;
        let _ = fs::remove_file(owner_marker(&self.lock));
        // The rename succeeded: nothing left for Drop to remove.
        self.lock = PathBuf::new();
        Ok(meta)
    }

    /// Appends `data` to the locked target in one write(2), durably, and
    /// releases the lock. A write that fails part way (disk full) is cut
    /// back to the old length, so readers never see a partial line; a
    /// reader that holds no lock sees the old content or the new one.
    /// Returns what the target is now.
    pub fn append(self, data: &[u8]) -> Result<fs::Metadata> {
        let ctx = || format!("appending to {}", self.target.display());
        let f = OpenOptions::new()
            .append(true)
            .open(&self.target)
            .with_context(ctx)?;
        let old_len = f.metadata().with_context(ctx)?.len();
        let written = (&f).write(data);
        match written {
            Ok(n) if n == data.len() => {}
            other => {
                let _ = f.set_len(old_len);
                let _ = f.sync_data();
                let e = match other {
                    Err(e) => e,
                    Ok(n) => std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        format!("only {n} of {} bytes written", data.len()),
                    ),
                };
                return Err(e).with_context(ctx);
            }
        }
        f.sync_data().with_context(ctx)?;
        let meta = f.metadata().with_context(ctx)?;
        drop(self);
        Ok(meta)
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if !self.lock.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.lock);
            let _ = fs::remove_file(owner_marker(&self.lock));
        }
    }
}

/// `<lock>.dsync`: who holds a dotlock we created, as `<pid> <inode>`.
/// A killed dsync leaves its dotlock behind; with this marker the next run
/// can tell its lock from a live Dovecot's and remove it at once instead of
/// waiting for it to go stale. Dovecot never looks at the marker.
fn owner_marker(lock: &Path) -> PathBuf {
    let mut m = lock.as_os_str().to_owned();
    m.push(".dsync");
    PathBuf::from(m)
}

fn mark_ours(lock: &Path, file: &File) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = file.metadata() {
        // Written whole or not at all: a kill in the middle must not leave
        // an empty marker that names no owner.
        let marker = owner_marker(lock);
        let mut tmp = marker.clone().into_os_string();
        tmp.push(format!(".{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        if fs::write(&tmp, format!("{} {}\n", std::process::id(), meta.ino())).is_ok()
            && fs::rename(&tmp, &marker).is_err()
        {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// True when `lock` is the very file (same inode) a dsync process that no
/// longer exists created.
fn left_by_dead_dsync(lock: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(marker) = fs::read_to_string(owner_marker(lock)) else {
        return false;
    };
    let mut it = marker.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(ino))) = (
        it.next().map(str::parse::<i32>),
        it.next().map(str::parse::<u64>),
    ) else {
        return false;
    };
    let same_file = fs::metadata(lock).is_ok_and(|m| m.ino() == ino);
    same_file && pid > 0 && process_is_gone(pid)
}

/// True when no running process has this PID. A killed process whose
/// parent died too stays a zombie wherever PID 1 does not reap orphans
/// (some containers): `kill(pid, 0)` still finds it, but it holds no lock
/// and will never release one, so it counts as gone.
fn process_is_gone(pid: i32) -> bool {
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and
    // parentheses, so the state is the field after the last ')'.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            let rest = &st[st.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(false)
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The next UIDVALIDITY from the root's `dovecot-uidvalidity` counter, the
/// way Dovecot allocates them (mailbox-uidvalidity.c): the file holds the
/// last value as 8 hex digits and a companion empty file
/// `dovecot-uidvalidity.<hex>` is renamed forward, which makes concurrent
/// allocations unique. Falls back to the current time.
pub fn next_uidvalidity(control_root: &Path) -> u32 {
    let path = control_root.join("dovecot-uidvalidity");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
        .max(1);
    let current = fs::File::open(&path).ok().and_then(|mut f| {
        let mut s = String::new();
        f.read_to_string(&mut s).ok()?;
        u32::from_str_radix(s.trim(), 16).ok().filter(|v| *v != 0)
    });
    let companion = |v: u32| control_root.join(format!("dovecot-uidvalidity.{v:08x}"));
    let write_main = |v: u32| {
        let _ = fs::write(&path, format!("{v:08x}"));
    };
    if let Some(mut cur) = current {
        for _ in 0..10 {
            let next = cur.wrapping_add(1).max(1);
            match fs::rename(companion(cur), companion(next)) {
                Ok(()) => {
                    write_main(next);
                    return next;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => cur = next,
                Err(_) => break,
            }
        }
    }
    // Rescan: take the highest companion file, or start one from the time.
    let mut max = 0u32;
    let mut min = u32::MAX;
    if let Ok(rd) = fs::read_dir(control_root) {
        for e in rd.flatten() {
            if let Some(hex) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("dovecot-uidvalidity."))
            {
                if let Ok(v) = u32::from_str_radix(hex, 16) {
                    max = max.max(v);
                    min = min.min(v);
                }
            }
        }
    }
    if max == 0 {
        let _ = fs::create_dir_all(control_root);
        let _ = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(companion(now));
        write_main(now);
        return now;
    }
    if min != max {
        let _ = fs::remove_file(companion(min));
    }
    let next = max.wrapping_add(1).max(1);
    if fs::rename(companion(max), companion(next)).is_ok() {
        write_main(next);
        next
    } else {
        now
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_zombie_counts_as_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(!process_is_gone(std::process::id() as i32));
        // Not yet waited for: once it has exited it is a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process_is_gone(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "exited child not seen as gone"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(process_is_gone(pid));
    }

    use super::*;

    #[test]
    fn uidvalidity_counter() {
        let d = tempfile::tempdir().unwrap();
        let a = next_uidvalidity(d.path());
        let b = next_uidvalidity(d.path());
        let c = next_uidvalidity(d.path());
        assert_eq!(b, a + 1);
        assert_eq!(c, b + 1);
        assert_eq!(
            fs::read_to_string(d.path().join("dovecot-uidvalidity")).unwrap(),
            format!("{c:08x}")
        );
        assert!(d
            .path()
            .join(format!("dovecot-uidvalidity.{c:08x}"))
            .exists());
        // A lost main file is rebuilt from the companion.
        fs::remove_file(d.path().join("dovecot-uidvalidity")).unwrap();
        assert_eq!(next_uidvalidity(d.path()), c + 1);
    }

    #[test]
    fn dotlock_replace_and_drop() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("dovecot-uidlist");
        let l = DotLock::acquire(&t).unwrap();
        assert!(d.path().join("dovecot-uidlist.lock").exists());
        l.replace(b"x\n").unwrap();
        let future = SystemTime::now() + Duration::from_secs(100);
        DotLock::acquire(&t)
            .unwrap()
            .replace_with_mtime(b"y\n", Some(future))
            .unwrap();
        assert_eq!(fs::metadata(&t).unwrap().modified().unwrap(), future);
        assert_eq!(fs::read(&t).unwrap(), b"y\n");
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
        let l = DotLock::acquire(&t).unwrap();
        drop(l);
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
        assert_eq!(fs::read(&t).unwrap(), b"y\n");
    }
}
