//! What is wrong with a config file, and where: `ConfigError` names the file, line, column and key of each problem.
//! Validation pushes into one `Errors` collector instead of stopping at the first problem, so all of a file's problems
//! are reported at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Located;

/// Where in the file: 1-based line, and column counted in characters (what an editor shows), not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub at: Option<Position>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a config file, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// toml's messages end in a newline and sometimes hold the whole table's keys; keep the first line.
pub(super) fn clean_toml_message(message: &str) -> String {
    let first = message.trim().lines().next().unwrap_or("invalid TOML").to_owned();
    if first.starts_with("unknown field") {
        format!("{first}; remove it or check its spelling")
    } else if first.starts_with("missing field") {
        format!("{first}; add it")
    } else {
        first
    }
}

/// The key of the value at byte `offset` of a TOML text that parses, in the form the other messages use
/// (`acme.eab_kid`, `certificate[0].domains[1]`); `None` when the offset is in no value (a key, a table header, a
/// table's braces). serde's type errors carry a span and no key: this names it.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut key = String::new();
    key_in_table(document.get_ref(), offset, &mut key).then_some(key)
}

fn key_in_table(table: &toml::de::DeTable<'_>, offset: usize, key: &mut String) -> bool {
    for (name, value) in table {
        let outer = key.len();
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(name.get_ref());
        if key_in_value(value, offset, key) {
            return true;
        }
        key.truncate(outer);
    }
    false
}

fn key_in_value(value: &Spanned<toml::de::DeValue<'_>>, offset: usize, key: &mut String) -> bool {
    use toml::de::DeValue;
    match value.get_ref() {
        // A table's span need not cover its entries (a header's table is spread over the file): each entry is searched.
        DeValue::Table(table) => key_in_table(table, offset, key),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let outer = key.len();
                key.push_str(&format!("[{index}]"));
                if key_in_value(item, offset, key) {
                    return true;
                }
                key.truncate(outer);
            }
            // In the array but in none of its elements: its brackets, or a comma.
            value.span().contains(&offset) && !items.iter().any(|item| matches!(item.get_ref(), DeValue::Table(_)))
        }
        _ => value.span().contains(&offset),
    }
}

/// Every problem found so far, with the text they point into: a span becomes a line and column only when reported.
pub(super) struct Errors<'a> {
    pub(super) text: &'a str,
    pub(super) lines: LineStarts,
    pub(super) file: &'a Path,
    pub(super) list: Vec<ConfigError>,
}

impl Errors<'_> {
    pub(super) fn push(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let at = span.map(|s| self.lines.position(self.text, s.start));
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            at,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn at<T>(&mut self, value: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.push(Some(value.span()), key, message);
    }

    /// A problem with a value checked after its span was turned into a place; a default (line 0) has no place.
    pub(super) fn at_located<T>(&mut self, value: &Located<T>, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            at: (value.at.line > 0).then_some(value.at),
            key: value.key.clone(),
            message: message.into(),
        });
    }

    pub(super) fn locate<T>(&self, value: T, span: Range<usize>, key: &str) -> Located<T> {
        Located {
            value,
            at: self.lines.position(self.text, span.start),
            key: key.to_owned(),
        }
    }
}

/// The byte offset where each line of a text starts. Every certificate's file is located (for the host checks' messages),
/// so finding a line must not scan the text from its start each time: with a thousand certificates that was most of a
/// run with nothing due.
pub(super) struct LineStarts(Vec<usize>);

impl LineStarts {
    pub(super) fn of(text: &str) -> LineStarts {
        LineStarts(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    /// 1-based line and column (in characters) of a byte offset into `text`, the text this was made of.
    pub(super) fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        // The lines that start at or before `offset`: the first always does.
        let line = self.0.partition_point(|&start| start <= offset);
        let line_start = self.0[line - 1];
        Position {
            line,
            column: text[line_start..offset].chars().count() + 1,
        }
    }
}
