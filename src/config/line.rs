//! One logical line of Dovecot's configuration syntax.
//!
//! Dovecot's grammar is line based: after comments are cut and
//! continuation lines joined (see [`strip_comment`] and the reader in
//! `parser.rs`), every line is one of
//!
//! - `key = value` (the value may be quoted, `<file` or contain `$var`),
//! - `kind [name] {` opening a section or filter,
//! - `}` closing one,
//! - `!include PATH` / `!include_try PATH`.

use nom::{
    bytes::complete::{take_till1, take_while},
    character::complete::{char, space0},
    combinator::{eof, rest},
    sequence::{preceded, terminated},
    IResult,
};

/// A parsed logical line. Borrowed parts point into the line text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Blank,
    Setting { key: &'a str, value: RawValue<'a> },
    SectionBegin { kind: &'a str, name: String },
    SectionEnd,
    Include { pattern: String, must_exist: bool },
}

/// A setting's value as written, before files or variables are resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawValue<'a> {
    /// Unquoted text; may hold `$key` references (see `parser.rs`).
    Plain(&'a str),
    /// A quoted value with its quotes removed and escapes resolved.
    Quoted(String),
    /// `key = <path`: the value is the content of a file.
    File(&'a str),
}

fn is_white(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Cuts a `#` comment from a physical line and trims both ends.
///
/// As in Dovecot, `#` inside single or double quotes does not start a
/// comment; anywhere else it does, even glued to a word. The second value is
/// true for such a glued `#` (Dovecot warns about it: `a#b` is probably not
/// what the writer meant).
pub(crate) fn strip_comment(line: &str) -> (&str, bool) {
    let line = line.trim_start_matches(is_white);
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut end = bytes.len();
    let mut ambiguous = false;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    // An unterminated quote runs to the end of the line.
                    break;
                }
            }
            b'#' => {
                ambiguous = i > 0 && !matches!(bytes[i - 1], b' ' | b'\t');
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    (line[..end].trim_end_matches(is_white), ambiguous)
}

/// Removes backslash escapes the way Dovecot does: a backslash keeps the
/// next character literally (`\"` → `"`, `\\` → `\`, `\n` → `n`).
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => out.push(n),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The key: everything up to whitespace or `=`.
fn key(input: &str) -> IResult<&str, &str> {
    take_till1(|c| is_white(c) || c == '=')(input)
}

/// `= value` after the key, with whitespace around `=` skipped.
fn assignment(input: &str) -> IResult<&str, &str> {
    preceded(terminated(char('='), space0), rest)(input)
}

/// A lone `{` ending the line.
fn open_brace(input: &str) -> IResult<&str, char> {
    terminated(char('{'), eof)(input)
}

/// A double-quoted section name (`mailbox "Sent Messages" {`), returned
/// unescaped, with the rest of the line.
fn quoted_name(input: &str) -> Option<(String, &str)> {
    let body = input.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((unescape(&body[..i]), &body[i + 1..])),
            _ => {}
        }
    }
    None
}

fn value(text: &str) -> RawValue<'_> {
    if let Some(path) = text.strip_prefix('<') {
        return RawValue::File(path.trim_start_matches(is_white));
    }
    let quoted = text.len() >= 2
        && ((text.starts_with('"') && text.ends_with('"'))
            || (text.starts_with('\'') && text.ends_with('\'')));
    if quoted {
        RawValue::Quoted(unescape(&text[1..text.len() - 1]))
    } else {
        RawValue::Plain(text)
    }
}

/// Include paths may be quoted; Dovecot takes them verbatim, we also
/// accept quotes since a path with spaces cannot be written otherwise.
fn include_pattern(text: &str) -> String {
    match value(text) {
        RawValue::Quoted(s) => s,
        _ => text.to_string(),
    }
}

/// Parses one logical line, already stripped of its comment and trimmed.
/// The error is a message without position; the caller adds file:line.
pub(crate) fn parse_line(line: &str) -> Result<Line<'_>, String> {
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    let (after_key, k) =
        key(line).map_err(|_| format!("expected a setting name, found {line:?}"))?;
    let (after_key, _) =
        space0::<_, nom::error::Error<&str>>(after_key).expect("space0 cannot fail on &str");

    match k {
        "!include" | "!include_try" => {
            if after_key.is_empty() {
                return Err(format!("{k} needs a file name or pattern"));
            }
            return Ok(Line::Include {
                pattern: include_pattern(after_key),
                must_exist: k == "!include",
            });
        }
        "}" if after_key.is_empty() => return Ok(Line::SectionEnd),
        _ => {}
    }
    if let Ok((_, v)) = assignment(after_key) {
        return Ok(Line::Setting {
            key: k,
            value: value(v),
        });
    }
    if k.contains('{') || k.contains('}') {
        return Err(format!(
            "unexpected {k:?}: '{{' and '}}' must stand apart, '}}' alone on its line"
        ));
    }
    if open_brace(after_key).is_ok() {
        return Ok(Line::SectionBegin {
            kind: k,
            name: String::new(),
        });
    }
    if after_key.is_empty() {
        return Err(format!("expected '=' or '{{' after {k:?}"));
    }
    if after_key.starts_with('{') {
        return Err(format!(
            "garbage after '{{' in section {k}: put settings on their own lines"
        ));
    }
    let (name, after_name) = match quoted_name(after_key) {
        Some(pair) => pair,
        None if after_key.starts_with('"') => {
            return Err(format!("unterminated quoted section name after {k:?}"))
        }
        None => {
            let (r, n): (&str, &str) =
                take_while::<_, _, nom::error::Error<&str>>(|c| !is_white(c) && c != '{')(
                    after_key,
                )
                .expect("take_while cannot fail on &str");
            (n.to_string(), r)
        }
    };
    let after_name = after_name.trim_start_matches(is_white);
    if after_name.is_empty() {
        return Err(format!("expected '=' or '{{' after {k:?}"));
    }
    match open_brace(after_name) {
        Ok(_) => Ok(Line::SectionBegin { kind: k, name }),
        Err(_) if after_name.starts_with('{') => Err(format!(
            "garbage after '{{' in section {k} {name}: put settings on their own lines"
        )),
        Err(_) => Err(format!(
            "expected '{{' after section {k} {name}, found {after_name:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Line<'_>, String> {
        parse_line(strip_comment(s).0)
    }

    #[test]
    fn comments() {
        assert_eq!(strip_comment("  # all comment"), ("", false));
        assert_eq!(strip_comment("a = b # c"), ("a = b", false));
        assert_eq!(strip_comment("a = b#c"), ("a = b", true));
        assert_eq!(strip_comment("a = \"b # c\" # d"), ("a = \"b # c\"", false));
        assert_eq!(strip_comment("a = 'b # c'"), ("a = 'b # c'", false));
        assert_eq!(
            strip_comment("a = \"b \\\" # c\""),
            ("a = \"b \\\" # c\"", false)
        );
        assert_eq!(strip_comment("a = \"open # c"), ("a = \"open # c", false));
        assert_eq!(strip_comment("\t x = y \t"), ("x = y", false));
    }

    #[test]
    fn settings() {
        assert_eq!(
            p("a = b"),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Plain("b")
            })
        );
        assert_eq!(
            p("a=b"),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Plain("b")
            })
        );
        assert_eq!(
            p("a ="),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Plain("")
            })
        );
        assert_eq!(
            p("a = b c  d"),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Plain("b c  d")
            })
        );
        assert_eq!(
            p("a = \"x \\\"y\\\\\""),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Quoted("x \"y\\".into())
            })
        );
        assert_eq!(
            p("a = 'it''s'"),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Quoted("it''s".into())
            })
        );
        assert_eq!(
            p("a = \""),
            Ok(Line::Setting {
                key: "a",
                value: RawValue::Plain("\"")
            })
        );
        assert_eq!(
            p("ssl_key = </etc/k.pem"),
            Ok(Line::Setting {
                key: "ssl_key",
                value: RawValue::File("/etc/k.pem")
            })
        );
        assert_eq!(
            p("ssl_key = <  k.pem"),
            Ok(Line::Setting {
                key: "ssl_key",
                value: RawValue::File("k.pem")
            })
        );
        assert_eq!(
            p("special_use = \\Sent"),
            Ok(Line::Setting {
                key: "special_use",
                value: RawValue::Plain("\\Sent")
            })
        );
        assert_eq!(
            p("x = a { b"),
            Ok(Line::Setting {
                key: "x",
                value: RawValue::Plain("a { b")
            })
        );
    }

    #[test]
    fn sections() {
        assert_eq!(
            p("plugin {"),
            Ok(Line::SectionBegin {
                kind: "plugin",
                name: "".into()
            })
        );
        assert_eq!(
            p("namespace inbox {"),
            Ok(Line::SectionBegin {
                kind: "namespace",
                name: "inbox".into()
            })
        );
        assert_eq!(
            p("protocol !indexer-worker {"),
            Ok(Line::SectionBegin {
                kind: "protocol",
                name: "!indexer-worker".into()
            })
        );
        assert_eq!(
            p("remote 10.0.0.0/8 {"),
            Ok(Line::SectionBegin {
                kind: "remote",
                name: "10.0.0.0/8".into()
            })
        );
        assert_eq!(
            p("mailbox \"Sent Messages\" {"),
            Ok(Line::SectionBegin {
                kind: "mailbox",
                name: "Sent Messages".into()
            })
        );
        assert_eq!(
            p("mailbox \"a\\\"b\"{"),
            Ok(Line::SectionBegin {
                kind: "mailbox",
                name: "a\"b".into()
            })
        );
        // Dovecot wants a space before '{'; accepting it costs nothing.
        assert_eq!(
            p("namespace inbox{"),
            Ok(Line::SectionBegin {
                kind: "namespace",
                name: "inbox".into()
            })
        );
        assert_eq!(p("}"), Ok(Line::SectionEnd));
        assert_eq!(p("  }  # end"), Ok(Line::SectionEnd));
    }

    #[test]
    fn includes() {
        assert_eq!(
            p("!include conf.d/*.conf"),
            Ok(Line::Include {
                pattern: "conf.d/*.conf".into(),
                must_exist: true
            })
        );
        assert_eq!(
            p("!include_try \"/a b/local.conf\""),
            Ok(Line::Include {
                pattern: "/a b/local.conf".into(),
                must_exist: false
            })
        );
        assert!(p("!include").unwrap_err().contains("needs a file"));
    }

    #[test]
    fn errors() {
        assert_eq!(p("foo").unwrap_err(), "expected '=' or '{' after \"foo\"");
        assert_eq!(
            p("foo bar").unwrap_err(),
            "expected '=' or '{' after \"foo\""
        );
        assert!(p("foo bar baz {").unwrap_err().contains("expected '{'"));
        assert!(p("protocol imap pop3 {")
            .unwrap_err()
            .contains("expected '{'"));
        assert!(p("plugin { quota = x }")
            .unwrap_err()
            .contains("garbage after '{'"));
        assert!(p("} x").unwrap_err().contains("stand apart"));
        assert!(p("mailbox \"Sent {").unwrap_err().contains("unterminated"));
        assert!(p("=x").unwrap_err().contains("setting name"));
    }
}
