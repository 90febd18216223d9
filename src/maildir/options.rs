//! Where a Maildir store keeps what: mail, control files, index files.
//! Mirrors Dovecot's `maildir:<root>:LAYOUT=…:INBOX=…:CONTROL=…:INDEX=…`.

use super::filename::{folder_rel_path, Layout};
use crate::model::MailboxName;
use anyhow::{anyhow, Result};
use std::path::PathBuf;

/// Where Dovecot's own index files live (we never write them, but we
/// remove them when our uidlist would contradict them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexDir {
    /// Beside the mail, in each folder's directory.
    Default,
    /// `INDEX=MEMORY`: there are none.
    Memory,
    /// `INDEX=<path>`: the same tree shape under another root.
    Path(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirOptions {
    /// The mail root (Maildir++: also INBOX unless `inbox` says otherwise).
    pub root: PathBuf,
    pub layout: Layout,
    /// `INBOX=`: INBOX's own Maildir when it is not the root.
    pub inbox: Option<PathBuf>,
    /// `CONTROL=`: where dovecot-uidlist, dovecot-keywords, subscriptions
    /// and dovecot-uidvalidity live, in the same tree shape as the mail.
    pub control: Option<PathBuf>,
    pub index: IndexDir,
    /// `dsync_alt_char`: replaces characters a name cannot hold here (see
    /// [`super::filename::fix_name`]). Dovecot's default is `_`.
    pub alt_char: char,
}

impl MaildirOptions {
    /// The defaults for a root: Maildir++ with everything beside the mail.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MaildirOptions {
            root: root.into(),
            layout: Layout::MaildirPlusPlus,
            inbox: None,
            control: None,
            index: IndexDir::Default,
            alt_char: '_',
        }
    }

    fn rel(&self, name: &MailboxName) -> Result<Option<String>> {
        folder_rel_path(name, self.layout).map_err(|e| anyhow!(e))
    }

    /// A folder's place in a separate CONTROL or INDEX tree. Unlike in the
    /// mail tree, INBOX there is a folder like any other (`.INBOX` or
    /// `INBOX`), as Dovecot lays it out.
    fn rel_in_side_tree(&self, name: &MailboxName) -> Result<String> {
        Ok(match self.rel(name)? {
            Some(rel) => rel,
            None => match self.layout {
                Layout::MaildirPlusPlus => ".INBOX".to_string(),
                Layout::Fs => "INBOX".to_string(),
            },
        })
    }

    /// The folder's Maildir (the directory holding cur/ new/ tmp/).
    pub fn mail_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        Ok(match self.rel(name)? {
            None => self.inbox.clone().unwrap_or_else(|| self.root.clone()),
            Some(rel) => self.root.join(rel),
        })
    }

    /// Where the folder's dovecot-uidlist and dovecot-keywords live.
    pub fn control_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        match &self.control {
            None => self.mail_dir(name),
            Some(c) => Ok(c.join(self.rel_in_side_tree(name)?)),
        }
    }

    /// Where the folder's Dovecot index files live, if anywhere.
    pub fn index_dir(&self, name: &MailboxName) -> Result<Option<PathBuf>> {
        Ok(match &self.index {
            IndexDir::Memory => None,
            IndexDir::Default => Some(self.mail_dir(name)?),
            IndexDir::Path(p) => Some(p.join(self.rel_in_side_tree(name)?)),
        })
    }

    /// Where the root-level control files live (subscriptions,
    /// dovecot-uidvalidity).
    pub fn control_root(&self) -> PathBuf {
        self.control.clone().unwrap_or_else(|| self.root.clone())
    }

    /// Where the mailbox list index lives (dovecot.list.index*).
    pub fn index_root(&self) -> Option<PathBuf> {
        match &self.index {
            IndexDir::Memory => None,
            IndexDir::Default => Some(self.root.clone()),
            IndexDir::Path(p) => Some(p.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mut o = MaildirOptions::new("/m");
        let n = MailboxName::parse("a/b", '/').unwrap();
        assert_eq!(o.mail_dir(&n).unwrap(), PathBuf::from("/m/.a.b"));
        assert_eq!(
            o.control_dir(&MailboxName::inbox()).unwrap(),
            PathBuf::from("/m")
        );
        o.layout = Layout::Fs;
        o.control = Some("/c".into());
        o.index = IndexDir::Path("/i".into());
        o.inbox = Some("/in".into());
        assert_eq!(o.mail_dir(&n).unwrap(), PathBuf::from("/m/a/b"));
        assert_eq!(o.control_dir(&n).unwrap(), PathBuf::from("/c/a/b"));
        assert_eq!(o.index_dir(&n).unwrap(), Some(PathBuf::from("/i/a/b")));
        assert_eq!(
            o.mail_dir(&MailboxName::inbox()).unwrap(),
            PathBuf::from("/in")
        );
        let inbox = MailboxName::inbox();
        assert_eq!(o.control_dir(&inbox).unwrap(), PathBuf::from("/c/INBOX"));
        assert_eq!(
            o.index_dir(&inbox).unwrap(),
            Some(PathBuf::from("/i/INBOX"))
        );
        o.layout = Layout::MaildirPlusPlus;
        assert_eq!(o.control_dir(&inbox).unwrap(), PathBuf::from("/c/.INBOX"));
        o.index = IndexDir::Memory;
        assert_eq!(o.index_dir(&n).unwrap(), None);
    }
}
