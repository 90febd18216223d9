//! Dovecot's configuration: the file syntax (`dovecot.conf` and what it
//! includes), `-o key=value` overrides, and the few settings dsync needs.
//!
//! Unknown settings are not errors: the tree keeps everything, and dsync
//! asks only for what it uses. Values are looked up the way a Dovecot
//! `doveadm` process sees them: `-o` overrides first, then settings inside
//! `protocol doveadm { }` (or `protocol !other { }`) filters, then the
//! top level. `local`/`remote`/`local_name` filters never apply (dsync has
//! no client connection).
//!
//! Syntax follows Dovecot 2.3 (`config-parser.c`), with these choices:
//! - `!include`/`!include_try` paths are relative to the including file;
//!   wildcards (`*`, `?`) are allowed in the file name only (no `{a,b}`,
//!   no `[...]`); matches are read in byte order, hidden files skipped.
//! - `key = <file` is read when first asked for, and trimmed (see
//!   [`Value::File`]).
//! - `key = $key more` expands the setting's own earlier value; every other
//!   `$var`, and all `%var`/`%{var}`, stay as written.
//! - A line ending in `\` continues on the next; a blank or comment line
//!   ends the continuation.
//! - Sections of one kind and name merge; `namespace inbox{` without a
//!   space is accepted.

mod glob;
mod line;
mod parser;
mod tree;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use parser::ParseOptions;
pub use tree::{Origin, Section, Setting, Value};

/// Where Dovecot keeps its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dovecot/dovecot.conf";

/// Used when `mail_location` is unset or empty. Dovecot would autodetect;
/// dsync prefers a definite, common answer.
pub const DEFAULT_MAIL_LOCATION: &str = "maildir:~/Maildir";

/// The protocol name Dovecot's dsync runs under (`protocol doveadm { }`).
const PROTOCOL: &str = "doveadm";

#[derive(Clone, Debug, Default)]
pub struct Config {
    root: Section,
    overrides: Vec<(String, String)>,
    source: Option<PathBuf>,
}

/// The namespace holding INBOX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// Hierarchy separator. When the config leaves it unset or empty,
    /// Dovecot picks the storage's own separator ('.' for Maildir++); dsync
    /// uses '/' instead, so that mailbox names read the same whatever the
    /// layout (names are kept as lists of parts, see `model::MailboxName`).
    pub separator: char,
    pub prefix: String,
    /// The namespace's own `location`, when set and not empty.
    pub location: Option<String>,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            name: "inbox".to_string(),
            separator: '/',
            prefix: String::new(),
            location: None,
        }
    }
}

/// Splits one `-o key=value` argument. The value is taken verbatim (no
/// quote removal), as Dovecot does.
pub fn parse_override(s: &str) -> Result<(String, String)> {
    let Some((key, value)) = s.split_once('=') else {
        bail!("invalid -o {s:?}: expected setting=value, e.g. -o mail_location=maildir:~/Maildir");
    };
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("invalid -o {s:?}: the setting name before '=' must be one word");
    }
    if key.split('/').any(str::is_empty) {
        bail!("invalid -o {s:?}: empty part in setting path {key:?}");
    }
    Ok((key.to_string(), value.to_string()))
}

/// Splits an override key into the sections it names and the setting:
/// `namespace/inbox/separator` → ([("namespace", "inbox")], "separator");
/// `plugin/quota` → ([("plugin", "")], "quota"). Paths of even length
/// above two are ambiguous (which parts are names?) and are refused.
fn override_path(key: &str) -> Result<(Vec<(&str, &str)>, &str)> {
    let parts: Vec<&str> = key.split('/').collect();
    let (last, sections) = parts.split_last().expect("split yields at least one part");
    let path = match sections.len() {
        0 => Vec::new(),
        1 => vec![(sections[0], "")],
        n if n % 2 == 0 => sections.chunks(2).map(|c| (c[0], c[1])).collect(),
        _ => bail!(
            "-o {key}: cannot tell section names from kinds; write kind/name/…/setting, e.g. namespace/inbox/separator"
        ),
    };
    Ok((path, last))
}

/// `setting` inside the sections `path` names. Unnamed sections of one
/// kind (Debian has four `plugin { }` blocks) are searched last to first,
/// so the value written last wins.
fn lookup_path<'a>(section: &'a Section, path: &[(&str, &str)], setting: &str) -> Option<&'a str> {
    let Some(((kind, name), rest)) = path.split_first() else {
        return section.get(setting);
    };
    section
        .sections()
        .iter()
        .rev()
        .filter(|s| s.kind() == *kind && s.name() == *name)
        .find_map(|s| lookup_path(s, rest, setting))
}

fn protocol_filter_applies(name: &str) -> bool {
    match name.strip_prefix('!') {
        Some(not) => not != PROTOCOL,
        None => name == PROTOCOL,
    }
}

fn is_yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "y" | "true" | "1"
    )
}

impl Config {
    /// Loads the configuration at `path`, or when `None` the system's
    /// (`/etc/dovecot/dovecot.conf`) if it exists, else built-in defaults;
    /// then applies `overrides` (from `-o`).
    pub fn load(path: Option<&Path>, overrides: &[(String, String)]) -> Result<Config> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                default.exists().then_some(default)
            }
        };
        let mut config = match &path {
            Some(p) => {
                let bytes = std::fs::read(p).with_context(|| {
                    format!(
                        "cannot read Dovecot config {} (give another with -c, or override settings with -o)",
                        p.display()
                    )
                })?;
                let text = String::from_utf8_lossy(&bytes);
                let mut c = Config::parse_str_with(&text, p, ParseOptions::default())?;
                c.source = Some(p.clone());
                c
            }
            None => {
                tracing::debug!("no {DEFAULT_CONFIG_PATH}: using built-in defaults");
                Config::default()
            }
        };
        for (k, v) in overrides {
            config.set_override(k, v)?;
        }
        Ok(config)
    }

    /// Parses configuration text as if read from `origin` (which names it
    /// in errors; relative includes are looked up beside it).
    pub fn parse_str(text: &str, origin: &Path) -> Result<Config> {
        Config::parse_str_with(text, origin, ParseOptions::default())
    }

    /// [`Config::parse_str`] with options (e.g. includes disabled, for
    /// fuzzing or for text that must not reach the filesystem).
    pub fn parse_str_with(text: &str, origin: &Path, opts: ParseOptions) -> Result<Config> {
        let mut p = parser::Parser::new(opts);
        p.parse_text(text, origin)?;
        Ok(Config {
            root: p.finish()?,
            overrides: Vec::new(),
            source: None,
        })
    }

    /// Applies one `-o` override. A plain key wins over every other value of
    /// that setting; a path key (`namespace/inbox/separator`) sets the
    /// setting inside the named section, creating it if needed.
    pub fn set_override(&mut self, key: &str, value: &str) -> Result<()> {
        let (path, setting) = override_path(key)?;
        let mut section = &mut self.root;
        for (kind, name) in path {
            section = section.child_mut(kind, name);
        }
        section.set(setting, Value::Text(value.to_string()), None);
        self.overrides.push((key.to_string(), value.to_string()));
        Ok(())
    }

    /// The file the configuration was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The whole tree, for settings this module has no accessor for.
    pub fn root(&self) -> &Section {
        &self.root
    }

    /// A setting's value as dsync sees it (see the module doc for the
    /// order). `key` may be a path such as `namespace/inbox/separator`.
    pub fn get(&self, key: &str) -> Option<&str> {
        if let Some((_, v)) = self.overrides.iter().rev().find(|(k, _)| k == key) {
            return Some(v);
        }
        if key.contains('/') {
            let (path, setting) = override_path(key).ok()?;
            return lookup_path(&self.root, &path, setting);
        }
        let filtered = self
            .root
            .sections_of("protocol")
            .filter(|s| protocol_filter_applies(&s.name))
            .filter_map(|s| s.setting(key))
            .last();
        match filtered {
            Some(s) => s.value.text().ok(),
            None => self.root.get(key),
        }
    }

    /// `mail_location`, or [`DEFAULT_MAIL_LOCATION`] when unset or empty.
    pub fn mail_location(&self) -> &str {
        match self.get("mail_location") {
            Some(v) if !v.trim().is_empty() => v,
            _ => DEFAULT_MAIL_LOCATION,
        }
    }

    /// The location of INBOX's namespace: its own `location` when set,
    /// else [`Config::mail_location`] (Dovecot's rule for namespaces).
    pub fn inbox_mail_location(&self) -> String {
        self.inbox_namespace()
            .location
            .unwrap_or_else(|| self.mail_location().to_string())
    }

    /// Says where the value [`Config::get`] returns for `key` comes from,
    /// for error messages: `-o mail_location`, `/etc/dovecot/conf.d/10-mail.conf:30`,
    /// or `not set`.
    pub fn where_set(&self, key: &str) -> String {
        if self.overrides.iter().any(|(k, _)| k == key) {
            return format!("-o {key}");
        }
        let setting = if key.contains('/') {
            None
        } else {
            self.root
                .sections_of("protocol")
                .filter(|s| protocol_filter_applies(&s.name))
                .filter_map(|s| s.setting(key))
                .last()
                .or_else(|| self.root.setting(key))
        };
        match setting.and_then(|s| s.origin.as_ref()) {
            Some(origin) => origin.to_string(),
            None if self.get(key).is_some() => format!("setting {key}"),
            None => "not set".to_string(),
        }
    }

    /// The namespace with `inbox = yes` (the first, if several claim it),
    /// else one named `inbox`, else a default one (see [`Namespace`]).
    pub fn inbox_namespace(&self) -> Namespace {
        // A namespace named "inbox" without `inbox = yes` is taken as a
        // fallback: `-o namespace/inbox/separator=.` alone creates one.
        let namespaces = || self.root.sections_of("namespace");
        let Some(ns) = namespaces()
            .find(|s| s.get("inbox").is_some_and(is_yes))
            .or_else(|| namespaces().find(|s| s.name == "inbox"))
        else {
            return Namespace::default();
        };
        let separator = match ns.get("separator").map(str::trim) {
            None | Some("") => '/',
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => {
                        tracing::warn!(
                            "namespace {}: separator {s:?} is not one character; using '/'",
                            ns.name
                        );
                        '/'
                    }
                }
            }
        };
        Namespace {
            name: if ns.name.is_empty() {
                "inbox".to_string()
            } else {
                ns.name.clone()
            },
            separator,
            prefix: ns.get("prefix").unwrap_or("").to_string(),
            location: ns
                .get("location")
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        }
    }

    /// `dsync_alt_char`: replaces characters a mailbox name cannot hold on
    /// the other side. Default '_'.
    pub fn alt_char(&self) -> char {
        self.get("dsync_alt_char")
            .and_then(|v| v.chars().next())
            .unwrap_or('_')
    }
}

#[cfg(test)]
mod tests;
