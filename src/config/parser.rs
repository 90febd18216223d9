//! Reads configuration text into a [`Section`] tree: joins continuation
//! lines, follows `!include`, tracks open sections, and names file:line in
//! every error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};

use super::glob;
use super::line::{parse_line, strip_comment, Line, RawValue};
use super::tree::{Origin, Section, Value};

/// Includes nested deeper than this are refused: a cycle through a glob or
/// symlink that the path check misses must still end.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Sections nested deeper than this are refused. Real configs nest three
/// levels; the limit keeps the recursive tree code (drop, clone, debug)
/// safe from hostile input.
const MAX_SECTION_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug)]
pub struct ParseOptions {
    /// Follow `!include` and `!include_try`. When false they are skipped
    /// (with a debug log), so parsing reads nothing but the given text.
    pub follow_includes: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            follow_includes: true,
        }
    }
}

struct Frame {
    section: Section,
    /// Where the section sat in its parent when it was reopened.
    index: Option<usize>,
    opened: Origin,
}

pub(crate) struct Parser {
    opts: ParseOptions,
    root: Section,
    open: Vec<Frame>,
    /// Files being read, outermost first, to refuse recursive includes.
    reading: Vec<PathBuf>,
}

/// `path` resolved against the directory of the file that names it, as
/// Dovecot does for `!include` and `<file`.
fn relative_to(path: &str, including_file: &Path) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match including_file.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

impl Parser {
    pub(crate) fn new(opts: ParseOptions) -> Parser {
        Parser {
            opts,
            root: Section::default(),
            open: Vec::new(),
            reading: Vec::new(),
        }
    }

    fn current(&mut self) -> &mut Section {
        match self.open.last_mut() {
            Some(f) => &mut f.section,
            None => &mut self.root,
        }
    }

    /// Parses `text` as the content of `path` (used for error messages and
    /// to resolve relative includes).
    pub(crate) fn parse_text(&mut self, text: &str, path: &Path) -> Result<()> {
        self.reading.push(path.to_path_buf());
        let file: Arc<Path> = Arc::from(path);
        let mut pending = String::new();
        let mut pending_start = 0;
        let mut result = Ok(());
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let (stripped, ambiguous) = strip_comment(raw);
            if ambiguous {
                tracing::warn!(
                    "{}:{lineno}: '#' glued to a word starts a comment; put a space before it",
                    path.display()
                );
            }
            if let Some(head) = stripped.strip_suffix('\\') {
                // Continuation: Dovecot joins the pieces with one space.
                if pending.is_empty() {
                    pending_start = lineno;
                }
                let head = head.trim_end_matches([' ', '\t']);
                if !head.is_empty() {
                    pending.push_str(head);
                    pending.push(' ');
                }
                continue;
            }
            if stripped.is_empty() && !pending.is_empty() {
                // A blank or comment line ends a continuation. (Dovecot
                // silently drops the collected text then; keeping it is
                // the reading the writer more likely meant.)
                let origin = Origin {
                    file: file.clone(),
                    line: pending_start,
                };
                let logical = std::mem::take(&mut pending);
                if let Err(e) = self.apply(logical.trim_end(), origin, path) {
                    result = Err(e);
                    break;
                }
                continue;
            }
            let (logical, start) = if pending.is_empty() {
                (stripped.to_string(), lineno)
            } else {
                let mut joined = std::mem::take(&mut pending);
                joined.push_str(stripped);
                (joined, pending_start)
            };
            let origin = Origin {
                file: file.clone(),
                line: start,
            };
            if let Err(e) = self.apply(&logical, origin, path) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && !pending.is_empty() {
            // Text ending in a backslash: take what was collected.
            let origin = Origin {
                file: file.clone(),
                line: pending_start,
            };
            let logical = pending.trim_end().to_string();
            result = self.apply(&logical, origin, path);
        }
        self.reading.pop();
        result
    }

    fn apply(&mut self, logical: &str, origin: Origin, path: &Path) -> Result<()> {
        let line = match parse_line(logical) {
            Ok(l) => l,
            Err(msg) => bail!("{origin}: {msg}"),
        };
        match line {
            Line::Blank => {}
            Line::Setting { key, value } => {
                let value = match value {
                    RawValue::Quoted(s) => Value::Text(s),
                    RawValue::File(p) => Value::file(relative_to(p, path)),
                    RawValue::Plain(s) => Value::Text(self.expand_self_reference(key, s)),
                };
                self.current().set(key, value, Some(origin));
            }
            Line::SectionBegin { kind, name } => {
                if self.open.len() >= MAX_SECTION_DEPTH {
                    bail!("{origin}: sections nested more than {MAX_SECTION_DEPTH} deep");
                }
                let (section, index) = self.current().open_child(kind, &name, origin.clone());
                self.open.push(Frame {
                    section,
                    index,
                    opened: origin,
                });
            }
            Line::SectionEnd => match self.open.pop() {
                Some(frame) => self.current().close_child(frame.section, frame.index),
                None => bail!("{origin}: unexpected '}}': no section is open"),
            },
            Line::Include {
                pattern,
                must_exist,
            } => self.include(&pattern, must_exist, &origin, path)?,
        }
        Ok(())
    }

    /// `key = $key more`: Dovecot always expands a setting's reference to
    /// its own earlier value (the idiom `mail_plugins = $mail_plugins
    /// quota`). Other `$variables` are kept as written.
    fn expand_self_reference(&self, key: &str, raw: &str) -> String {
        let me = format!("${key}");
        if !raw.split([' ', '\t']).any(|t| t == me) {
            return raw.to_string();
        }
        let earlier = self
            .open
            .iter()
            .rev()
            .map(|f| &f.section)
            .chain(std::iter::once(&self.root))
            .find_map(|s| s.setting(key))
            .and_then(|s| s.value.text().ok())
            .unwrap_or("");
        let words: Vec<&str> = raw
            .split([' ', '\t'])
            .filter(|t| !t.is_empty())
            .map(|t| if t == me { earlier } else { t })
            .filter(|t| !t.is_empty())
            .collect();
        words.join(" ")
    }

    fn include(
        &mut self,
        pattern: &str,
        must_exist: bool,
        origin: &Origin,
        path: &Path,
    ) -> Result<()> {
        let directive = if must_exist {
            "!include"
        } else {
            "!include_try"
        };
        if !self.opts.follow_includes {
            tracing::debug!("{origin}: {directive} {pattern} not followed (includes disabled)");
            return Ok(());
        }
        let resolved = relative_to(pattern, path);
        let files = match glob::expand(&resolved) {
            Ok(f) => f,
            Err(msg) => bail!("{origin}: {msg}"),
        };
        if files.is_empty() {
            if must_exist {
                bail!(
                    "{origin}: {directive} {pattern}: no file matches {} (use !include_try for optional files)",
                    resolved.display()
                );
            }
            return Ok(());
        }
        for file in files {
            if self.reading.contains(&file) {
                bail!("{origin}: recursive include of {}", file.display());
            }
            if self.reading.len() > MAX_INCLUDE_DEPTH {
                bail!(
                    "{origin}: includes nested more than {MAX_INCLUDE_DEPTH} deep at {}",
                    file.display()
                );
            }
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) if must_exist => {
                    bail!("{origin}: cannot open include file {}: {e}", file.display())
                }
                Err(e) => {
                    tracing::debug!("{origin}: skipping {}: {e}", file.display());
                    continue;
                }
            };
            // Comments in old configs may be Latin-1; don't reject the file.
            let text = String::from_utf8_lossy(&bytes);
            self.parse_text(&text, &file)?;
        }
        Ok(())
    }

    /// Ends parsing: every section must be closed.
    pub(crate) fn finish(self) -> Result<Section> {
        if let Some(frame) = self.open.last() {
            let what = if frame.section.name.is_empty() {
                frame.section.kind.clone()
            } else {
                format!("{} {}", frame.section.kind, frame.section.name)
            };
            bail!(
                "{}: missing '}}': section {what} is never closed",
                frame.opened
            );
        }
        Ok(self.root)
    }
}
