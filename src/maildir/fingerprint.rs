//! A folder's fingerprint: the identity and modification times of what
//! any change to it must touch (`cur/`, `new/`, `dovecot-uidlist`,
//! `dovecot-keywords`). Delivering, expunging, renaming a file for its
//! flags, and every uidlist or keywords rewrite change one of them, so an
//! equal fingerprint means an unchanged folder and a rescan can be skipped.
//!
//! The one trap is timestamp granularity: a change in the same clock tick
//! as the last one leaves the mtime as it was. So a fingerprint is only
//! given when the directories' mtimes are older than the filesystem's
//! granularity allows to be ambiguous (`scan::settle_time`); otherwise the
//! caller must compare the folder fully. The two files need no such wait:
//! every writer replaces them by rename or appends (new inode or size).

use super::store::MaildirStore;
use crate::model::MailboxName;
use anyhow::Result;
use std::fmt::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl MaildirStore {
    /// The folder's fingerprint, or `None` when it cannot be trusted yet
    /// (changed a moment ago) or the folder is incomplete.
    pub fn fingerprint(&self, name: &MailboxName) -> Result<Option<String>> {
        let mail = self.opts.mail_dir(name)?;
        let ctl = self.opts.control_dir(name)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut out = String::new();
        // Directories change in place, so only an mtime older than a clock
        // tick proves nothing slipped in since; the two files are replaced
        // by rename or appended to by every writer (new inode or size).
        for (tag, path, required, settles) in [
            ('c', mail.join("cur"), true, true),
            ('n', mail.join("new"), true, true),
            ('u', ctl.join(super::uidlist::FILE_NAME), true, false),
            ('k', ctl.join(super::keywords::FILE_NAME), false, false),
        ] {
            match part(&path, now, settles)? {
                Part::Stamp(s) => {
                    let _ = write!(out, "{tag}{s};");
                }
                Part::Missing if !required => {
                    let _ = write!(out, "{tag}-;");
                }
                Part::Missing | Part::Unsettled => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// How long until every part of the folder's fingerprint has settled
    /// (zero when it already has), so a caller that just wrote the folder
    /// can wait that long instead of giving up its fingerprint.
    pub fn fingerprint_settles_in(&self, name: &MailboxName) -> Duration {
        let Ok(mail) = self.opts.mail_dir(name) else {
            return Duration::ZERO;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        [mail.join("cur"), mail.join("new")]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| {
                let (mtime, settle) = mtime_and_settle(&m);
                (mtime + settle).saturating_sub(now)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

pub(crate) enum Part {
    Stamp(String),
    Missing,
    Unsettled,
}

pub(crate) fn mtime_and_settle(m: &std::fs::Metadata) -> (Duration, Duration) {
    let mtime = Duration::new(
        m.mtime().max(0) as u64,
        m.mtime_nsec().clamp(0, 999_999_999) as u32,
    );
    (mtime, super::scan::settle_time(UNIX_EPOCH + mtime))
}

pub(crate) fn part(path: &Path, now: Duration, settles: bool) -> Result<Part> {
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Part::Missing),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("stat of {}", path.display()))),
    };
    let (mtime, settle) = mtime_and_settle(&m);
    if settles && now < mtime + settle {
        return Ok(Part::Unsettled);
    }
    Ok(Part::Stamp(format!(
        "{}.{}:{}:{}:{}",
        m.mtime(),
        m.mtime_nsec(),
        m.ino(),
        m.len(),
        m.ctime()
    )))
}

#[cfg(test)]
mod tests {
    use crate::maildir::{MaildirOptions, MaildirStore};
    use crate::model::MailboxName;
    use std::time::Duration;

    #[test]
    fn changes_change_it_and_fresh_changes_withhold_it() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MaildirStore::open(MaildirOptions::new(d.path().join("m")), true).unwrap();
        let inbox = MailboxName::inbox();
        s.snapshot(&inbox).unwrap();
        // Just written: not trusted yet.
        assert_eq!(s.fingerprint(&inbox).unwrap(), None);
        std::thread::sleep(s.fingerprint_settles_in(&inbox) + Duration::from_millis(5));
        let a = s.fingerprint(&inbox).unwrap().expect("settled");
        assert_eq!(s.fingerprint(&inbox).unwrap().as_deref(), Some(a.as_str()));
        std::fs::write(d.path().join("m/new/1.M1P1.h"), "x").unwrap();
        assert_eq!(s.fingerprint(&inbox).unwrap(), None);
        std::thread::sleep(s.fingerprint_settles_in(&inbox) + Duration::from_millis(5));
        assert_ne!(s.fingerprint(&inbox).unwrap().unwrap(), a);
    }
}
