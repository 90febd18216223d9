//! The parsed configuration: a tree of sections holding settings.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where a setting or section was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A setting's value.
#[derive(Clone, Debug)]
pub enum Value {
    Text(String),
    /// `key = <path`. The file is read on first use, not while parsing:
    /// Debian's config names root-only key files (`ssl_key =
    /// </etc/dovecot/private/dovecot.key`) that dsync never needs, and
    /// reading them eagerly would make every non-root run fail. Dovecot
    /// itself only reads them when a process asks for the value.
    File {
        path: PathBuf,
        content: OnceLock<Result<String, String>>,
    },
}

impl Value {
    pub(crate) fn file(path: PathBuf) -> Value {
        Value::File {
            path,
            content: OnceLock::new(),
        }
    }

    /// The text of the value; for `<file` values the file's content with
    /// surrounding whitespace trimmed (read once, then cached).
    pub fn text(&self) -> Result<&str, &str> {
        match self {
            Value::Text(s) => Ok(s),
            Value::File { path, content } => content
                .get_or_init(|| {
                    std::fs::read_to_string(path)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))
                })
                .as_deref()
                .map_err(String::as_str),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::File { path: a, .. }, Value::File { path: b, .. }) => a == b,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    /// `None` for settings given with `-o`.
    pub origin: Option<Origin>,
}

/// A section (`namespace inbox { }`), a filter (`protocol imap { }`) or the
/// root of the file (empty kind and name).
///
/// Sections with the same kind and non-empty name are merged, as Dovecot
/// does: Debian opens `namespace inbox` both in 10-mail.conf and in
/// 15-mailboxes.conf. Unnamed sections (`plugin { }`, `passdb { }`) stay
/// separate; use [`Section::sections_of`] to see them all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) settings: Vec<Setting>,
    pub(crate) sections: Vec<Section>,
    pub(crate) origin: Option<Origin>,
}

impl Section {
    pub(crate) fn new(kind: &str, name: &str, origin: Option<Origin>) -> Section {
        Section {
            kind: kind.to_string(),
            name: name.to_string(),
            origin,
            ..Section::default()
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the section was first opened (`None` for the root and for
    /// sections made by `-o`).
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// Settings in the order first written; a later assignment replaces the
    /// value in place.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// The value of `key` in this section (not inherited). A `<file` value
    /// whose file cannot be read is logged and reported as absent; use
    /// [`Section::setting`] to see the error.
    pub fn get(&self, key: &str) -> Option<&str> {
        let setting = self.setting(key)?;
        match setting.value.text() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("setting {key}: {e}");
                None
            }
        }
    }

    /// The first child section of this kind and name.
    pub fn section(&self, kind: &str, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.kind == kind && s.name == name)
    }

    /// All child sections of this kind, in file order.
    pub fn sections_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    pub(crate) fn set(&mut self, key: &str, value: Value, origin: Option<Origin>) {
        match self.settings.iter_mut().find(|s| s.key == key) {
            Some(s) => {
                s.value = value;
                s.origin = origin;
            }
            None => self.settings.push(Setting {
                key: key.to_string(),
                value,
                origin,
            }),
        }
    }

    /// The child section to (re)open for `kind name`: an existing named one
    /// is taken out of `self` so that it can be extended, and its index is
    /// returned so that [`Section::close_child`] puts it back in place.
    pub(crate) fn open_child(
        &mut self,
        kind: &str,
        name: &str,
        origin: Origin,
    ) -> (Section, Option<usize>) {
        if !name.is_empty() {
            if let Some(i) = self
                .sections
                .iter()
                .position(|s| s.kind == kind && s.name == name)
            {
                return (self.sections.remove(i), Some(i));
            }
        }
        (Section::new(kind, name, Some(origin)), None)
    }

    pub(crate) fn close_child(&mut self, child: Section, index: Option<usize>) {
        match index {
            Some(i) => self.sections.insert(i, child),
            None => self.sections.push(child),
        }
    }

    /// The child `kind name`, created when missing (for `-o` paths).
    pub(crate) fn child_mut(&mut self, kind: &str, name: &str) -> &mut Section {
        let i = match self
            .sections
            .iter()
            .position(|s| s.kind == kind && s.name == name)
        {
            Some(i) => i,
            None => {
                self.sections.push(Section::new(kind, name, None));
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }
}
