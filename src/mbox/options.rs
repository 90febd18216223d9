//! Where an mbox store keeps what, as Dovecot lays out
//! `mbox:<root>:INBOX=<file>:INDEX=…:CONTROL=…`: a mailbox `a/b` is the
//! file `<root>/a/b` (names in modified UTF-7 unless `UTF-8`), a directory
//! holds children; Dovecot's index of `a/b` is `<root>/a/.imap/b/`
//! (INBOX's: `<root>/.imap/INBOX/`); subscriptions are
//! `<root>/.subscriptions`. Our own files go beside Dovecot's index: the
//! GUID side file per mailbox, and the store ID, sync states and run lock
//! in `<root>/.imap/` (a plain file in the root would be a mailbox).

use crate::location::{IndexLocation, MboxLocation};
use crate::maildir::mutf7;
use crate::model::MailboxName;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub const INDEX_DIR_NAME: &str = ".imap";
pub const SUBSCRIPTIONS_FILE: &str = ".subscriptions";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MboxOptions {
    pub root: PathBuf,
    /// `INBOX=`: the INBOX file (default `<root>/inbox`, where Dovecot 2.3
    /// puts it without `INBOX=`; checked).
    pub inbox: Option<PathBuf>,
    /// `INDEX=`: where Dovecot's index tree is (`None`: beside the mail;
    /// `INDEX=MEMORY` keeps ours beside the mail too).
    pub index: Option<PathBuf>,
    /// `CONTROL=`: where subscriptions and our side files go.
    pub control: Option<PathBuf>,
    /// `UTF-8`: names on disk are UTF-8, not modified UTF-7.
    pub utf8: bool,
    /// `dsync_alt_char`, for names this store cannot hold.
    pub alt_char: char,
}

impl MboxOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MboxOptions {
            root: root.into(),
            inbox: None,
            index: None,
            control: None,
            utf8: false,
            alt_char: '_',
        }
    }

    pub fn from_location(l: &MboxLocation, alt_char: char) -> Self {
        MboxOptions {
            root: l.root.clone(),
            inbox: l.inbox.clone(),
            index: match &l.index {
                IndexLocation::Path(p) => Some(p.clone()),
                IndexLocation::Default | IndexLocation::Memory => None,
            },
            control: l.control.clone(),
            utf8: l.utf8,
            alt_char,
        }
    }

    fn encode(&self, part: &str) -> String {
        if self.utf8 {
            part.to_string()
        } else {
            mutf7::encode(part)
        }
    }

    pub fn decode(&self, part: &str) -> Option<String> {
        if self.utf8 {
            Some(part.to_string())
        } else {
            mutf7::decode(part).ok()
        }
    }

    /// The mailbox's path below a root (not for INBOX).
    fn rel(&self, name: &MailboxName) -> Result<PathBuf> {
        check_name(name)?;
        Ok(name.parts().iter().map(|p| self.encode(p)).collect())
    }

    /// The mailbox's mbox file.
    pub fn mbox_path(&self, name: &MailboxName) -> Result<PathBuf> {
        if name.is_inbox() {
            return Ok(self
                .inbox
                .clone()
                .unwrap_or_else(|| self.root.join("inbox")));
        }
        Ok(self.root.join(self.rel(name)?))
    }

    /// `<tree>/a/.imap/b` for `a/b`, `<tree>/.imap/INBOX` for INBOX.
    fn side_dir(&self, tree: &Path, name: &MailboxName) -> Result<PathBuf> {
        if name.is_inbox() {
            return Ok(tree.join(INDEX_DIR_NAME).join("INBOX"));
        }
        let rel = self.rel(name)?;
        let file = rel.file_name().expect("a mailbox has a name").to_owned();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(tree.join(parent).join(INDEX_DIR_NAME).join(file))
    }

    /// Where Dovecot's index of the mailbox is.
    pub fn index_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        self.side_dir(self.index.as_deref().unwrap_or(&self.root), name)
    }

    /// Where our side file of the mailbox is.
    pub fn control_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        self.side_dir(self.control.as_deref().unwrap_or(&self.root), name)
    }

    /// Store-wide files of ours (store ID, sync states, run lock).
    pub fn control_root(&self) -> PathBuf {
        self.control
            .as_deref()
            .unwrap_or(&self.root)
            .join(INDEX_DIR_NAME)
    }

    /// Dovecot's mailbox list index directory.
    pub fn index_root(&self) -> PathBuf {
        self.index
            .as_deref()
            .unwrap_or(&self.root)
            .join(INDEX_DIR_NAME)
    }

    pub fn subscriptions_path(&self) -> PathBuf {
        self.control
            .as_deref()
            .unwrap_or(&self.root)
            .join(SUBSCRIPTIONS_FILE)
    }
}

/// A part we could not read back as the same name: hidden (leading dot),
/// a lock file's name, a path separator, control characters.
fn bad_part(p: &str) -> Option<&'static str> {
    if p.starts_with('.') {
        return Some("starts with '.' (hidden; Dovecot would not list it)");
    }
    if p.contains('/') || p.chars().any(char::is_control) {
        return Some("contains '/' or control characters");
    }
    if p.ends_with(".lock") || p.ends_with(".dsync") {
        return Some("ends like a lock file");
    }
    None
}

pub fn check_name(name: &MailboxName) -> Result<()> {
    if name.is_inbox() {
        return Ok(());
    }
    if name.parts()[0].eq_ignore_ascii_case("INBOX") && name.parts().len() == 1 {
        bail!("mailbox name {name:?}: INBOX must be spelled \"INBOX\"");
    }
    if name.parts()[0] == "INBOX" {
        bail!(
            "mailbox {name}: an mbox INBOX is a file and cannot have children (Dovecot's mbox \
             cannot either)"
        );
    }
    for p in name.parts() {
        if let Some(why) = bad_part(p) {
            bail!("mailbox name {name:?} cannot be an mbox file: part {p:?} {why}");
        }
    }
    Ok(())
}

/// `name` with every part this store cannot hold repaired with `alt`.
pub fn fix_name(name: &MailboxName, alt: char) -> MailboxName {
    if check_name(name).is_ok() {
        return name.clone();
    }
    let mut parts: Vec<String> = name
        .parts()
        .iter()
        .map(|p| {
            let mut q: String = p
                .chars()
                .map(|c| if c == '/' || c.is_control() { alt } else { c })
                .collect();
            if q.starts_with('.') {
                q.replace_range(0..1, &alt.to_string());
            }
            if bad_part(&q).is_some() {
                q.push(alt);
            }
            q
        })
        .collect();
    if parts[0].eq_ignore_ascii_case("INBOX") && !name.is_inbox() {
        parts[0] = format!("{}{alt}", parts[0]);
    }
    MailboxName::from_parts(parts).expect("parts stay non-empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mut o = MboxOptions::new("/m");
        let n = MailboxName::parse("a/Ä", '/').unwrap();
        assert_eq!(o.mbox_path(&n).unwrap(), PathBuf::from("/m/a/&AMQ-"));
        assert_eq!(o.index_dir(&n).unwrap(), PathBuf::from("/m/a/.imap/&AMQ-"));
        let top = MailboxName::parse("top", '/').unwrap();
        assert_eq!(o.index_dir(&top).unwrap(), PathBuf::from("/m/.imap/top"));
        let inbox = MailboxName::inbox();
        assert_eq!(o.mbox_path(&inbox).unwrap(), PathBuf::from("/m/inbox"));
        o.inbox = Some("/var/mail/u".into());
        o.control = Some("/c".into());
        assert_eq!(o.mbox_path(&inbox).unwrap(), PathBuf::from("/var/mail/u"));
        assert_eq!(
            o.index_dir(&inbox).unwrap(),
            PathBuf::from("/m/.imap/INBOX")
        );
        assert_eq!(
            o.control_dir(&inbox).unwrap(),
            PathBuf::from("/c/.imap/INBOX")
        );
        assert_eq!(o.subscriptions_path(), PathBuf::from("/c/.subscriptions"));
        assert_eq!(o.control_root(), PathBuf::from("/c/.imap"));
        o.utf8 = true;
        assert_eq!(o.mbox_path(&n).unwrap(), PathBuf::from("/m/a/Ä"));
    }

    #[test]
    fn names() {
        let bad = MailboxName::parse(".hidden/x.lock", '/').unwrap();
        assert!(check_name(&bad).is_err());
        let fixed = fix_name(&bad, '_');
        assert_eq!(fixed.join('/'), "_hidden/x.lock_");
        assert!(check_name(&fixed).is_ok());
        assert!(check_name(&MailboxName::parse("INBOX/x", '/').unwrap()).is_err());
        assert_eq!(
            fix_name(&MailboxName::parse("INBOX/x", '/').unwrap(), '_').join('/'),
            "INBOX_/x"
        );
    }
}
