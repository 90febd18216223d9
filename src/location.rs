//! Mail locations: Dovecot's `mail_location` syntax, and dsync's LOCATION2
//! argument (a location, an ssh host, or a command to run).
//!
//! `mail_location` is `FORMAT:ROOT[:KEY=VALUE]...`, e.g.
//! `maildir:~/Maildir:LAYOUT=fs:INDEX=MEMORY`. As in Dovecot, `::` stands
//! for a literal `:` inside a value, a trailing `/` on a path is dropped,
//! `%` variables are expanded (`%u` user, `%n` its local part, `%d` its
//! domain, `%h` home, `%%`, the `%{user}` long forms, `L`/`U` case and
//! `%N.Mu` substring modifiers), and `~/` (or `~user/`) at the start of a
//! path is the home directory.

use std::ffi::{CStr, CString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailLocation {
    Maildir(MaildirLocation),
    Mbox(MboxLocation),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaildirLayout {
    /// `.Parent.Child` folders beside INBOX's `cur/new/tmp` (the default).
    #[default]
    Maildirpp,
    /// `LAYOUT=fs`: folders as real subdirectories.
    Fs,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum IndexLocation {
    /// Beside the mail, as Dovecot does by default.
    #[default]
    Default,
    /// `INDEX=MEMORY`: no index files on disk.
    Memory,
    Path(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirLocation {
    pub root: PathBuf,
    pub layout: MaildirLayout,
    /// `INBOX=`: INBOX kept somewhere other than the root.
    pub inbox: Option<PathBuf>,
    /// `CONTROL=`: where dovecot-uidlist, dovecot-keywords and
    /// subscriptions live, when not beside the mail.
    pub control: Option<PathBuf>,
    pub index: IndexLocation,
    /// `UTF-8` (also accepted as `UTF8`): folder names on disk are UTF-8
    /// instead of modified UTF-7.
    pub utf8: bool,
    /// `DIRNAME=`: with LAYOUT=fs, the subdirectory holding each mailbox's
    /// own cur/new/tmp.
    pub dirname: Option<String>,
    /// Parameters dsync does not act on (`ALT=`, `SUBSCRIPTIONS=`, unknown
    /// ones, ...), kept as written (values expanded). Keys without `=`
    /// have an empty value.
    pub other: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MboxLocation {
    /// The directory holding the mbox files of folders.
    pub root: PathBuf,
    /// `INBOX=`: the INBOX mbox file (often /var/mail/%u).
    pub inbox: Option<PathBuf>,
    pub index: IndexLocation,
    pub control: Option<PathBuf>,
    pub utf8: bool,
    pub other: Vec<(String, String)>,
}

/// Values for `%` variables and `~` in locations.
#[derive(Clone, Copy, Debug)]
pub struct Expand<'a> {
    pub user: &'a str,
    /// The user's home; empty when unknown (then `~` is an error).
    pub home: &'a Path,
}

/// Splits at `:` the way Dovecot does: an empty piece means the `:` was
/// doubled and joins its neighbours with a literal `:`; a trailing `:` is
/// ignored.
fn split_colons(data: &str) -> Vec<String> {
    let parts: Vec<&str> = data.split(':').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let mut arg = parts[i].to_string();
        i += 1;
        while i < parts.len() && parts[i].is_empty() {
            i += 1;
            if i == parts.len() {
                break;
            }
            arg.push(':');
            arg.push_str(parts[i]);
            i += 1;
        }
        out.push(arg);
    }
    out
}

/// The `FORMAT` of `FORMAT:rest`, if the text starts with one (letters,
/// digits and `_` before the first `:`), and the rest.
fn split_format(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    if end == 0 || s.as_bytes()[end] != b':' {
        return None;
    }
    Some((&s[..end], &s[end + 1..]))
}

fn apply_width(value: &str, offset: Option<i64>, width: Option<usize>) -> String {
    let chars: Vec<char> = value.chars().collect();
    let len = chars.len() as i64;
    let start = match offset {
        Some(o) if o < 0 => (len + o).max(0),
        Some(o) => o.min(len),
        None => 0,
    } as usize;
    let end = match width {
        Some(w) => (start + w).min(chars.len()),
        None => chars.len(),
    };
    chars[start..end].iter().collect()
}

/// Expands Dovecot `%` variables in `s`. Supported: `%u`/`%{user}`,
/// `%n`/`%{username}` (the part of the user before `@`), `%d`/`%{domain}`
/// (the part after `@`, empty when none), `%h`/`%{home}`, `%%`; with the
/// modifiers `L` (lower case), `U` (upper case) and `[-]N[.M]` (substring:
/// `%1n` the first letter, `%-2.2u`...). Other variables are errors: dsync
/// has no session to take them from.
pub fn expand_vars(s: &str, ex: &Expand) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Modifiers: optional '-' and digits (offset or width), optional
        // ".digits" (width), then any of L/U.
        let mut negative = false;
        let mut first: Option<i64> = None;
        let mut second: Option<usize> = None;
        let mut lower = false;
        let mut upper = false;
        if let Some(&(_, '-')) = chars.peek() {
            negative = true;
            chars.next();
        }
        let mut digits = String::new();
        while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        if !digits.is_empty() {
            first =
                Some(digits.parse::<i64>().unwrap_or(i64::MAX / 2) * if negative { -1 } else { 1 });
        }
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                w.push(d);
                chars.next();
            }
            second = Some(w.parse::<usize>().unwrap_or(usize::MAX / 2));
        }
        while let Some(&(_, m)) = chars.peek().filter(|(_, m)| *m == 'L' || *m == 'U') {
            if m == 'L' {
                lower = true;
            } else {
                upper = true;
            }
            chars.next();
        }
        let name: String = match chars.next() {
            None => bail!("'%' at the end of {s:?}: write %% for a literal '%'"),
            Some((_, '{')) => {
                let mut n = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((_, ch)) => n.push(ch),
                        None => bail!("unterminated %{{...}} in {s:?}"),
                    }
                }
                n
            }
            Some((_, ch)) => ch.to_string(),
        };
        let (local, domain) = match ex.user.rsplit_once('@') {
            Some((l, d)) => (l, d),
            None => (ex.user, ""),
        };
        let home = ex.home.to_string_lossy();
        let value: &str = match name.as_str() {
            "%" if first.is_none() && second.is_none() && !lower && !upper => "%",
            "u" | "user" => ex.user,
            "n" | "username" => local,
            "d" | "domain" => domain,
            "h" | "home" => {
                if home.is_empty() {
                    bail!("%{name} in {s:?}: the home directory is not known");
                }
                &home
            }
            _ => {
                let end = chars.peek().map_or(s.len(), |&(i, _)| i);
                bail!(
                    "unknown variable {:?} in {s:?}: dsync knows %u, %n, %d, %h and %%",
                    &s[start..end]
                )
            }
        };
        // "%N.Mx": N is the offset and M the width; "%Nx": N is the width.
        let (offset, width) = match (first, second) {
            (Some(o), Some(w)) => (Some(o), Some(w)),
            (None, Some(w)) => (None, Some(w)),
            (Some(n), None) if n >= 0 => (None, Some(n as usize)),
            (Some(n), None) => (Some(n), None),
            (None, None) => (None, None),
        };
        let mut v = apply_width(value, offset, width);
        if lower {
            v = v.to_lowercase();
        }
        if upper {
            v = v.to_uppercase();
        }
        out.push_str(&v);
    }
    Ok(out)
}

/// A password database entry: (login name, home directory).
fn passwd_entry(by: PasswdKey) -> Option<(String, PathBuf)> {
    // SAFETY: a zeroed passwd is a valid out-parameter for getpw*_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = match by {
        PasswdKey::Name(name) => {
            let cname = CString::new(name).ok()?;
            // SAFETY: all pointers are valid for the call's duration.
            unsafe {
                libc::getpwnam_r(
                    cname.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            }
        }
        // SAFETY: as above.
        PasswdKey::Uid(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
        },
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success both fields point to NUL-terminated strings in
    // `buf`, which is still alive.
    let (name, dir) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        PathBuf::from(dir.to_string_lossy().into_owned()),
    ))
}

enum PasswdKey<'a> {
    Name(&'a str),
    Uid(libc::uid_t),
}

fn system_home(name: &str) -> Option<PathBuf> {
    passwd_entry(PasswdKey::Name(name)).map(|(_, home)| home)
}

/// A user and home directory, owning what [`Expand`] borrows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub home: PathBuf,
}

impl User {
    /// The user running this process, as Dovecot's dsync sees it without
    /// `-u`: `$USER` and `$HOME`, each falling back to the password entry
    /// of the real uid.
    pub fn current() -> Result<User> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (name, home) = (env("USER"), env("HOME"));
        if let (Some(name), Some(home)) = (&name, &home) {
            return Ok(User {
                name: name.clone(),
                home: PathBuf::from(home),
            });
        }
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let entry = passwd_entry(PasswdKey::Uid(uid));
        let name = name
            .or_else(|| entry.as_ref().map(|(n, _)| n.clone()))
            .with_context(|| format!("cannot tell who is running dsync: $USER is unset and uid {uid} has no password entry"))?;
        let home = home
            .map(PathBuf::from)
            .or(entry.map(|(_, h)| h))
            .unwrap_or_default();
        Ok(User { name, home })
    }

    /// A system user by login name (for `-u`), from the password database.
    pub fn system(name: &str) -> Result<User> {
        let (_, home) = passwd_entry(PasswdKey::Name(name)).with_context(|| {
            format!("no system user {name:?} (dsync looks users up in the password database)")
        })?;
        Ok(User {
            name: name.to_string(),
            home,
        })
    }

    pub fn expand(&self) -> Expand<'_> {
        Expand {
            user: &self.name,
            home: &self.home,
        }
    }
}

/// Expands `~`, `~/...` and `~user/...` at the start of a path.
pub fn expand_home(path: &str, ex: &Expand) -> Result<PathBuf> {
    let Some(after) = path.strip_prefix('~') else {
        return Ok(PathBuf::from(path));
    };
    let (name, rest) = match after.find('/') {
        Some(i) => (&after[..i], after[i + 1..].trim_start_matches('/')),
        None => (after, ""),
    };
    let home = if name.is_empty() {
        if ex.home.as_os_str().is_empty() {
            bail!("cannot expand ~ in {path:?}: the home directory is not known (set HOME or give an absolute path)");
        }
        ex.home.to_path_buf()
    } else {
        system_home(name)
            .with_context(|| format!("cannot expand {path:?}: no system user {name:?}"))?
    };
    Ok(if rest.is_empty() {
        home
    } else {
        home.join(rest)
    })
}

/// Expands variables and `~`, and drops a trailing `/`, as Dovecot does
/// for every path in a location.
fn expand_path(raw: &str, ex: &Expand) -> Result<PathBuf> {
    let mut s = expand_vars(raw, ex)?;
    if s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    expand_home(&s, ex)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Maildir,
    Mbox,
    /// No format given, or `auto`: decided by what is on disk.
    Detect,
}

/// Parameters common to both formats, before they are sorted into a
/// location.
#[derive(Default)]
struct Params {
    layout: Option<String>,
    inbox: Option<PathBuf>,
    control: Option<PathBuf>,
    index: IndexLocation,
    utf8: bool,
    dirname: Option<String>,
    other: Vec<(String, String)>,
}

/// Known Dovecot parameters that dsync accepts but does not act on.
const PASSIVE_PARAMS: &[&str] = &[
    "INDEXPVT",
    "INDEXCACHE",
    "ALT",
    "ALTNOCHECK",
    "SUBSCRIPTIONS",
    "MAILBOXDIR",
    "VOLATILEDIR",
    "LISTINDEX",
    "FULLDIRNAME",
    "BROKENCHAR",
    "ITERINDEX",
    "NO-NOSELECT",
    "NO-FS-VALIDATION",
];

fn parse_params(args: &[String], whole: &str, ex: &Expand) -> Result<Params> {
    let mut p = Params::default();
    for arg in args {
        if arg == "UTF-8" || arg == "UTF8" {
            p.utf8 = true;
            continue;
        }
        let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        let path =
            || expand_path(value, ex).with_context(|| format!("{key}= in mail location {whole:?}"));
        match key {
            "INBOX" => p.inbox = Some(path()?),
            "CONTROL" => p.control = Some(path()?),
            "INDEX" if value == "MEMORY" => p.index = IndexLocation::Memory,
            "INDEX" => p.index = IndexLocation::Path(path()?),
            "LAYOUT" => p.layout = Some(value.to_string()),
            "DIRNAME" => p.dirname = Some(expand_vars(value, ex)?),
            _ => {
                if PASSIVE_PARAMS.contains(&key) {
                    tracing::debug!("mail location {whole:?}: {key} is not used by dsync");
                } else {
                    tracing::warn!("mail location {whole:?}: unknown parameter {key:?} ignored");
                }
                p.other.push((key.to_string(), expand_vars(value, ex)?));
            }
        }
    }
    Ok(p)
}

fn maildir(root: PathBuf, p: Params, whole: &str) -> Result<MailLocation> {
    let layout = match p.layout.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("maildir++") => MaildirLayout::Maildirpp,
        Some("fs") => MaildirLayout::Fs,
        Some(other) => bail!(
            "mail location {whole:?}: LAYOUT={other} is not supported by dsync (use LAYOUT=fs or leave it out for Maildir++)"
        ),
    };
    Ok(MailLocation::Maildir(MaildirLocation {
        root,
        layout,
        inbox: p.inbox,
        control: p.control,
        index: p.index,
        utf8: p.utf8,
        dirname: p.dirname,
        other: p.other,
    }))
}

fn mbox(root: PathBuf, mut p: Params, whole: &str) -> Result<MailLocation> {
    if let Some(layout) = p.layout.take() {
        if !layout.eq_ignore_ascii_case("fs") {
            bail!("mail location {whole:?}: mbox supports only LAYOUT=fs, not LAYOUT={layout}");
        }
    }
    if let Some(d) = p.dirname.take() {
        p.other.push(("DIRNAME".to_string(), d));
    }
    Ok(MailLocation::Mbox(MboxLocation {
        root,
        inbox: p.inbox,
        index: p.index,
        control: p.control,
        utf8: p.utf8,
        other: p.other,
    }))
}

/// Dovecot's own search for an mbox root when only an INBOX file is given.
fn find_mbox_root(ex: &Expand) -> Option<PathBuf> {
    if ex.home.as_os_str().is_empty() {
        return None;
    }
    ["mail", "Mail"]
        .iter()
        .map(|d| ex.home.join(d))
        .find(|d| d.is_dir())
}

fn is_unsupported_format(f: &str) -> bool {
    [
        "sdbox", "dbox", "mdbox", "imapc", "pop3c", "raw", "shared", "fail", "cydir", "obox",
    ]
    .iter()
    .any(|u| u.eq_ignore_ascii_case(f))
}

/// Parses a `mail_location` value.
///
/// Without a `FORMAT:` prefix (or with `auto:`) the format is detected
/// from disk: a directory with `cur/` is a Maildir; a file is an mbox
/// INBOX (its folders then live in `~/mail` or `~/Mail`, as in Dovecot);
/// anything else is an error asking for an explicit `maildir:` or `mbox:`.
/// `maildir:` with an empty root means `~/Maildir`.
pub fn parse_mail_location(s: &str, ex: &Expand) -> Result<MailLocation> {
    let s_trim = s.trim();
    if s_trim.is_empty() {
        bail!("empty mail location: give one such as maildir:~/Maildir");
    }
    let (format, data) = match split_format(s_trim) {
        Some((f, rest)) if f.eq_ignore_ascii_case("maildir") => (Format::Maildir, rest),
        Some((f, rest)) if f.eq_ignore_ascii_case("mbox") => (Format::Mbox, rest),
        Some((f, rest)) if f.eq_ignore_ascii_case("auto") => (Format::Detect, rest),
        Some((f, _)) if is_unsupported_format(f) => bail!(
            "mail location {s_trim:?}: the {f} format is not supported by dsync, only maildir and mbox \
             (convert it with Dovecot's own `doveadm sync` first)"
        ),
        Some((f, _)) => bail!(
            "mail location {s_trim:?}: unknown mail format {f:?} (dsync knows maildir: and mbox:; \
             for an ssh host give host or user@host without ':')"
        ),
        None => (Format::Detect, s_trim),
    };
    let args = split_colons(data);
    let (root_raw, rest) = args
        .split_first()
        .expect("split_colons yields at least one piece");
    if root_raw.starts_with("INBOX=") {
        bail!("mail location {s_trim:?}: the root directory is missing before {root_raw}");
    }
    let params = parse_params(rest, s_trim, ex)?;
    let root = if root_raw.is_empty() {
        None
    } else {
        Some(
            expand_path(root_raw, ex)
                .with_context(|| format!("root of mail location {s_trim:?}"))?,
        )
    };
    match format {
        Format::Maildir => {
            let root = match root {
                Some(r) => r,
                None => expand_home("~/Maildir", ex).with_context(|| format!("mail location {s_trim:?}"))?,
            };
            maildir(root, params, s_trim)
        }
        Format::Mbox => match root {
            Some(r) => mbox(r, params, s_trim),
            None => bail!("mail location {s_trim:?}: mbox needs a root directory, e.g. mbox:~/mail:INBOX=/var/mail/%u"),
        },
        Format::Detect => {
            let Some(path) = root else {
                bail!("mail location {s_trim:?}: no path given");
            };
            if path.join("cur").is_dir() {
                return maildir(path, params, s_trim);
            }
            if path.is_file() {
                let mut params = params;
                if params.inbox.is_none() {
                    params.inbox = Some(path.clone());
                    let Some(root) = find_mbox_root(ex) else {
                        bail!(
                            "{} is an mbox file but there is no ~/mail or ~/Mail for its folders: \
                             write mbox:ROOT:INBOX={}",
                            path.display(),
                            path.display()
                        );
                    };
                    return mbox(root, params, s_trim);
                }
                bail!("mail location {s_trim:?}: {} is a file, not a directory", path.display());
            }
            bail!(
                "cannot tell the mailbox format of {}: it is neither a Maildir (a directory with cur/) \
                 nor an mbox file; write maildir:{} or mbox:{}",
                path.display(),
                root_raw,
                root_raw
            )
        }
    }
}

/// LOCATION2 as given on the command line (one or more words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location2 {
    Local(MailLocation),
    /// `host` or `user@host`: run dsync over ssh. The user goes to the
    /// remote dsync as `-u user`, never to ssh (the manual page's rule).
    Ssh {
        user: Option<String>,
        host: String,
    },
    /// A whole command line that starts the remote side.
    Command(Vec<String>),
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn check_ssh_word(what: &str, s: &str, word: &str) -> Result<()> {
    if s.is_empty() {
        bail!("LOCATION2 {word:?}: empty {what}");
    }
    // Never let a word reach ssh's argument list as an option.
    if s.starts_with('-') {
        bail!("LOCATION2 {word:?}: {what} must not start with '-'");
    }
    if s.chars().any(|c| c.is_control()) {
        bail!("LOCATION2 {word:?}: control character in {what}");
    }
    Ok(())
}

/// Parses LOCATION2, following the manual page with Dovecot's own
/// tie-breaks:
///
/// 1. Several words are a command line (`ssh -i key host dsync -u user`).
/// 2. One word starting with `FORMAT:` (letters, digits, `_` before the
///    first `:`) is a local mail location; `sdbox:`/`mdbox:` and other
///    formats dsync lacks are a clear error.
/// 3. One word containing whitespace is a command line given as one
///    string (Dovecot accepts this for old scripts); it is split at
///    whitespace.
/// 4. One word containing `/` (or starting with `~`) is a path: an
///    executable regular file is a command (a script that starts the
///    remote dsync); anything else is a local location whose format is
///    detected (see [`parse_mail_location`]). Dovecot would run any such
///    path; detecting a Maildir is kinder than a "permission denied".
/// 5. Otherwise it is `host` or `user@host`. The user is split at the
///    *last* `@`, so virtual users work: `jane@example.com@mailhost`.
///    A bare word that also names something in the current directory is
///    refused as ambiguous, rather than silently syncing with a host.
pub fn parse_location2(words: &[String], ex: &Expand) -> Result<Location2> {
    let word = match words {
        [] => bail!(
            "LOCATION2 is missing: give a mail location (maildir:PATH), [user@]host, or a command"
        ),
        [w] => w.as_str(),
        _ => {
            if words[0].is_empty() {
                bail!("LOCATION2: the command's first word is empty");
            }
            return Ok(Location2::Command(words.to_vec()));
        }
    };
    if word.trim().is_empty() {
        bail!("LOCATION2 is empty: give a mail location (maildir:PATH), [user@]host, or a command");
    }
    if split_format(word).is_some() {
        return Ok(Location2::Local(parse_mail_location(word, ex)?));
    }
    if word.contains(char::is_whitespace) {
        return Ok(Location2::Command(
            word.split_whitespace().map(str::to_string).collect(),
        ));
    }
    if word.contains('/') || word.starts_with('~') {
        let expanded = expand_home(word, ex)?;
        if is_executable_file(&expanded) {
            return Ok(Location2::Command(vec![word.to_string()]));
        }
        return Ok(Location2::Local(parse_mail_location(word, ex)?));
    }
    if Path::new(word).exists() {
        bail!(
            "LOCATION2 {word:?} is ambiguous: it names something in the current directory but reads as an ssh host; \
             write maildir:./{word} for the local Maildir, or `ssh {word} dsync` for the host"
        );
    }
    let (user, host) = match word.rsplit_once('@') {
        Some((u, h)) => {
            check_ssh_word("user", u, word)?;
            (Some(u.to_string()), h)
        }
        None => (None, word),
    };
    check_ssh_word("host", host, word)?;
    Ok(Location2::Ssh {
        user,
        host: host.to_string(),
    })
}

#[cfg(test)]
mod tests;
