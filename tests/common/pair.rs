//! Helpers for two-way (mirror) scenarios: a pair of Maildirs A (the local
//! side, `mail_location`) and B (LOCATION2), messages that can be traced by
//! a unique subject, edits made the way mail clients make them (renaming
//! and unlinking files on A; Dovecot IMAP on B), and the checks every
//! mirror run must pass.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::fixtures::{folder_dir_name, Maildir};
use super::imap::Session;
use super::run::{dsync, Run};
use super::snapshot::{assert_same, snapshot, MailSnapshot};
use super::tree::{self, Listing};

/// `dsync -c CONF -o mail_location=A OPTS… mirror B`.
pub fn mirror(t: &Path, a: &Maildir, b: &Maildir, opts: &[&str]) -> Run {
    let mut args: Vec<&str> = opts.to_vec();
    let b_loc = b.location();
    args.push("mirror");
    args.push(&b_loc);
    dsync(t, Some(&a.location()), &args)
}

pub use super::tree::is_engine_own;

/// [`tree::listing`] without dsync's own files.
pub fn mail_listing(root: &Path) -> Listing {
    tree::listing(root)
        .into_iter()
        .filter(|(p, _)| !is_engine_own(p))
        .collect()
}

/// Only the message files (in `cur/` and `new/`) of a listing.
pub fn message_files(l: &Listing) -> Listing {
    l.iter()
        .filter(|(p, e)| {
            e.kind == 'f' && {
                let parent = p.rsplit('/').nth(1).unwrap_or("");
                parent == "cur" || parent == "new"
            }
        })
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// A small CRLF message whose Subject (and Message-ID) is `id`: the
/// snapshot shows the subject, so a message can be followed across
/// folders, UIDs and sides.
pub fn traced(id: &str) -> Vec<u8> {
    format!(
        "From: tester@example.org\r\nTo: user@example.com\r\nSubject: {id}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{id}@dsync.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Body of {id}.\r\n"
    )
    .into_bytes()
}

/// Where each subject is on one side: subject → [(mailbox, uid)].
pub fn locations(s: &MailSnapshot) -> BTreeMap<String, Vec<(String, u32)>> {
    let mut out: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    for (name, mb) in &s.mailboxes {
        for (uid, m) in &mb.messages {
            out.entry(m.subject.clone())
                .or_default()
                .push((name.clone(), *uid));
        }
    }
    out
}

/// The one place where `subject` is; panics if it is missing or duplicated.
#[track_caller]
pub fn only_place(s: &MailSnapshot, subject: &str) -> (String, u32) {
    let l = locations(s);
    match l.get(subject).map(Vec::as_slice) {
        Some([one]) => one.clone(),
        other => panic!(
            "{subject:?} should be in exactly one place in {}, is in {other:?}\n{s:?}",
            s.location
        ),
    }
}

/// Whether `subject` is anywhere on this side.
pub fn has(s: &MailSnapshot, subject: &str) -> bool {
    locations(s).contains_key(subject)
}

/// The message file on a Maildir whose header says `Subject: <subject>`
/// (searching every folder); panics unless there is exactly one.
#[track_caller]
pub fn file_of(md: &Maildir, subject: &str) -> PathBuf {
    // Dovecot stores APPENDed mail with LF line ends.
    let needles = [
        format!("Subject: {subject}\r\n"),
        format!("Subject: {subject}\n"),
    ];
    let mut hits = Vec::new();
    super::imap::walk(&md.root, &mut |p, m| {
        let parent = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if m.is_file() && (parent == "cur" || parent == "new") {
            let b = fs::read(p)?;
            if needles
                .iter()
                .any(|n| b.windows(n.len()).any(|w| w == n.as_bytes()))
            {
                hits.push(p.to_path_buf());
            }
        }
        Ok(())
    })
    .unwrap();
    match hits.as_slice() {
        [one] => one.clone(),
        _ => panic!(
            "{subject:?}: expected exactly one file in {}, found {hits:?}",
            md.root.display()
        ),
    }
}

/// Renames a message file to carry exactly `flags` (letters, any order),
/// as a mail client does; a file in `new/` moves to `cur/`, as clients do
/// when they set flags. Returns the new path.
pub fn set_file_flags(path: &Path, flags: &str) -> PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap();
    let base = name.split(":2,").next().unwrap();
    let mut letters: Vec<char> = flags.chars().collect();
    letters.sort_unstable();
    letters.dedup();
    let letters: String = letters.into_iter().collect();
    let folder = path.parent().unwrap().parent().unwrap();
    let to = folder.join("cur").join(format!("{base}:2,{letters}"));
    fs::rename(path, &to).expect("rename for flags");
    to
}

/// The flag letters of a message file (empty for `new/` without `:2,`).
pub fn file_flags(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.split_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

/// Moves a message file into another folder's `cur/` (keeping its name),
/// as a mail client that moves mail by renaming does.
pub fn move_file(md: &Maildir, path: &Path, to_folder: &str) -> PathBuf {
    let name = path.file_name().unwrap();
    let mut name = name.to_str().unwrap().to_string();
    if !name.contains(":2,") {
        name.push_str(":2,");
    }
    md.folder(to_folder);
    let to = md
        .root
        .join(folder_dir_name(to_folder))
        .join("cur")
        .join(name);
    fs::rename(path, &to).expect("rename into another folder");
    to
}

/// The UID of the message with this subject in `mailbox` (selects it).
pub fn uid_of(s: &mut Session, mailbox: &str, subject: &str) -> u32 {
    s.select(mailbox).expect("SELECT");
    let lines = s
        .cmd(&format!(
            "UID SEARCH HEADER Message-ID \"<{subject}@dsync.test>\""
        ))
        .expect("UID SEARCH");
    let uids: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("* SEARCH"))
        .flat_map(|r| r.split_whitespace().filter_map(|u| u.parse().ok()))
        .collect();
    match uids.as_slice() {
        [one] => *one,
        _ => panic!("{subject:?} in {mailbox:?}: UID SEARCH found {uids:?}"),
    }
}

/// Both sides of a pair, listed without dsync's own files, to show that a
/// run changed nothing.
pub struct PairListing {
    a: Listing,
    b: Listing,
}

impl PairListing {
    pub fn new(a: &Maildir, b: &Maildir) -> PairListing {
        PairListing {
            a: mail_listing(&a.root),
            b: mail_listing(&b.root),
        }
    }
    #[track_caller]
    pub fn assert_unchanged(&self, what: &str, a: &Maildir, b: &Maildir) {
        tree::assert_unchanged(&format!("A ({what})"), &self.a, &mail_listing(&a.root));
        tree::assert_unchanged(&format!("B ({what})"), &self.b, &mail_listing(&b.root));
    }
}

/// What every successful mirror must give: exit 0; a second run right
/// after that exits 0 and changes nothing on disk on either side; both
/// sides identical through Dovecot (UIDs included). Returns A's snapshot.
#[track_caller]
pub fn mirror_and_check(t: &Path, a: &Maildir, b: &Maildir, opts: &[&str]) -> MailSnapshot {
    mirror(t, a, b, opts).expect_ok();
    settled(t, a, b, opts)
}

/// The checks of [`mirror_and_check`] after a first run already done
/// (whose exit code the caller judged).
#[track_caller]
pub fn settled(t: &Path, a: &Maildir, b: &Maildir, opts: &[&str]) -> MailSnapshot {
    let before = PairListing::new(a, b);
    mirror(t, a, b, opts).expect_ok();
    before.assert_unchanged("a second mirror right after the first", a, b);
    let sa = snapshot(&a.location());
    let sb = snapshot(&b.location());
    assert_same(&sa, &sb);

    // Dovecot has now indexed both sides, as live servers would: the next
    // run must still find nothing to do with the mail.
    let (ma, mb) = (
        message_files(&mail_listing(&a.root)),
        message_files(&mail_listing(&b.root)),
    );
    mirror(t, a, b, opts).expect_ok();
    tree::assert_unchanged(
        "A's messages after a mirror of a Dovecot-indexed, synced pair",
        &ma,
        &message_files(&mail_listing(&a.root)),
    );
    tree::assert_unchanged(
        "B's messages after a mirror of a Dovecot-indexed, synced pair",
        &mb,
        &message_files(&mail_listing(&b.root)),
    );
    sa
}

/// Flags and keywords of the one message with this subject, sorted.
#[track_caller]
pub fn flags_of(s: &MailSnapshot, subject: &str) -> Vec<String> {
    let (mb, uid) = only_place(s, subject);
    let m = &s.mailboxes[&mb].messages[&uid];
    m.flags.iter().chain(&m.keywords).cloned().collect()
}
