//! The INI dialect certbot writes its renewal confs in (Python's configobj): `key = value` lines, `[section]` headers
//! nested by the number of brackets (`[[webroot_map]]` sits inside the `[renewalparams]` before it), `#` comments, values
//! optionally quoted with `"` or `'`, and a value with an unquoted comma is a list (`webroot_path = /var/www,`). Pure.
//!
//! Only what certbot writes is accepted. Anything else (a line that is neither a key nor a header, an unclosed quote, a
//! value spread over several lines) is an error naming the file and line, because guessing would import a lineage wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// One `[section]` (or the top of the file, which has no header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub entries: Vec<Entry>,
    pub sections: Vec<Subsection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// 1-based, for messages about the value.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsection {
    pub name: String,
    pub line: usize,
    pub section: Section,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Single(String),
    List(Vec<String>),
}

impl Value {
    /// A list read back as one text, the way it would have been written without the commas meaning anything: certbot
    /// quotes a hook command that holds a comma, but a hand-edited conf may not.
    pub fn joined(&self) -> String {
        match self {
            Value::Single(text) => text.clone(),
            Value::List(items) => items.join(", "),
        }
    }

    pub fn items(&self) -> Vec<String> {
        match self {
            Value::Single(text) if text.is_empty() => Vec::new(),
            Value::Single(text) => vec![text.clone()],
            Value::List(items) => items.clone(),
        }
    }
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn section(&self, name: &str) -> Option<&Subsection> {
        self.sections.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Parses a whole file. `file` only names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<Section, ParseError> {
    let error = |line: usize, message: String| ParseError {
        file: file.to_owned(),
        line,
        message,
    };
    // The open sections, outermost first; the file's top level is depth 0.
    let mut open: Vec<Subsection> = vec![Subsection {
        name: String::new(),
        line: 0,
        section: Section::default(),
    }];
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            let (depth, name) = header(line).map_err(|m| error(number, m))?;
            let current = open.len() - 1;
            if depth > current + 1 {
                return Err(error(
                    number,
                    format!(
                        "section [{name}] is nested {depth} deep, but the section before it is only {current} deep"
                    ),
                ));
            }
            // Close the sections this header is not inside of.
            while open.len() > depth {
                close_innermost(&mut open);
            }
            let parent = &open.last().expect("the top level stays open").section;
            if let Some(other) = parent.section(&name) {
                return Err(error(
                    number,
                    format!("section [{name}] appears twice (first at line {})", other.line),
                ));
            }
            open.push(Subsection {
                name,
                line: number,
                section: Section::default(),
            });
            continue;
        }
        let (key, value) = key_value(line).map_err(|m| error(number, m))?;
        let section = &mut open.last_mut().expect("the top level stays open").section;
        if let Some(other) = section.get(&key) {
            return Err(error(
                number,
                format!("'{key}' is set twice in one section (first at line {})", other.line),
            ));
        }
        section.entries.push(Entry {
            key,
            value,
            line: number,
        });
    }
    while open.len() > 1 {
        close_innermost(&mut open);
    }
    Ok(open.pop().expect("the top level").section)
}

fn close_innermost(open: &mut Vec<Subsection>) {
    let done = open.pop().expect("only called with a section open");
    open.last_mut()
        .expect("the top level is never closed here")
        .section
        .sections
        .push(done);
}

/// `[name]` → (1, name); `[[name]]` → (2, name). The brackets must balance; a comment may follow.
fn header(line: &str) -> Result<(usize, String), String> {
    let depth = line.chars().take_while(|&c| c == '[').count();
    let rest = &line[depth..];
    let close = "]".repeat(depth);
    let Some(end) = rest.find(&close) else {
        return Err(format!("section header '{line}' is not closed with '{close}'"));
    };
    let (name, after) = (rest[..end].trim(), rest[end + depth..].trim());
    if name.contains(['[', ']']) || (!after.is_empty() && !after.starts_with('#')) {
        return Err(format!(
            "section header '{line}' has unbalanced brackets; write [name] or [[name]]"
        ));
    }
    let name = unquote_whole(name).unwrap_or(name);
    if name.is_empty() {
        return Err(format!("section header '{line}' has no name"));
    }
    Ok((depth, name.to_owned()))
}

fn key_value(line: &str) -> Result<(String, Value), String> {
    let (key, rest) = match line.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let end = line[1..]
                .find(quote)
                .ok_or_else(|| format!("the key in '{line}' opens a quote that is never closed"))?;
            let rest = line[end + 2..].trim_start();
            let rest = rest.strip_prefix('=').ok_or_else(|| not_a_line(line))?;
            (line[1..end + 1].to_owned(), rest)
        }
        _ => {
            let (key, rest) = line.split_once('=').ok_or_else(|| not_a_line(line))?;
            (key.trim().to_owned(), rest)
        }
    };
    if key.is_empty() {
        return Err(format!("'{line}' has no key before '='"));
    }
    let value = value(rest.trim()).map_err(|problem| format!("{key}: {problem}"))?;
    Ok((key, value))
}

fn not_a_line(line: &str) -> String {
    format!("'{line}' is neither 'key = value', a [section] header, nor a # comment")
}

/// The right-hand side: one item, or a comma-separated list; items quoted or not; a `#` outside quotes starts a comment.
fn value(text: &str) -> Result<Value, String> {
    for triple in ["\"\"\"", "'''"] {
        if let Some(inner) = text.strip_prefix(triple) {
            return match inner.find(triple) {
                Some(end) if inner[end + 3..].trim().is_empty() || inner[end + 3..].trim().starts_with('#') => {
                    Ok(Value::Single(inner[..end].to_owned()))
                }
                Some(_) => Err(format!("text after the closing {triple}")),
                None => Err(format!(
                    "a value opened with {triple} must close on the same line; values over several lines are not supported"
                )),
            };
        }
    }
    let mut items = Vec::new();
    let mut saw_comma = false;
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('#') {
            break;
        }
        let after = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let end = rest[1..]
                    .find(quote)
                    .ok_or_else(|| format!("the quote in {rest} is never closed"))?;
                items.push(rest[1..end + 1].to_owned());
                &rest[end + 2..]
            }
            _ => {
                let end = rest.find([',', '#']).unwrap_or(rest.len());
                // A lone comma is configobj's empty list: no item before it.
                if !rest[..end].trim_end().is_empty() {
                    items.push(rest[..end].trim_end().to_owned());
                }
                &rest[end..]
            }
        };
        let after = after.trim_start();
        if let Some(more) = after.strip_prefix(',') {
            saw_comma = true;
            rest = more;
        } else if after.is_empty() || after.starts_with('#') {
            break;
        } else {
            return Err(format!(
                "unexpected '{after}' after a quoted value; separate list items with commas"
            ));
        }
    }
    Ok(match (saw_comma, items.len()) {
        (false, 0) => Value::Single(String::new()),
        (false, _) => Value::Single(items.remove(0)),
        (true, _) => Value::List(items),
    })
}

/// `"name"` or `'name'` → `name`.
fn unquote_whole(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    text.strip_prefix(quote)?.strip_suffix(quote)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/letsencrypt/renewal/example.com.conf";

    fn parse_ok(text: &str) -> Section {
        parse(text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new(FILE)).unwrap_err().to_string()
    }

    fn single(section: &Section, key: &str) -> String {
        match &section.get(key).unwrap_or_else(|| panic!("no {key}")).value {
            Value::Single(text) => text.clone(),
            other => panic!("{key} is {other:?}"),
        }
    }

    /// What certbot 2.x writes for a webroot lineage, comments and all.
    const WEBROOT_CONF: &str = "\
# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
privkey = /etc/letsencrypt/live/example.com/privkey.pem
chain = /etc/letsencrypt/live/example.com/chain.pem
fullchain = /etc/letsencrypt/live/example.com/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef0123456789abcdef
authenticator = webroot
webroot_path = /var/www/html,
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
renew_hook = \"cat $RENEWED_LINEAGE/fullchain.pem, $RENEWED_LINEAGE/privkey.pem\"
pre_hook = systemctl stop \"my unit\"  # stop it first
[[webroot_map]]
example.com = /var/www/html
www.example.com = /var/www/html
";

    #[test]
    fn reads_a_certbot_webroot_conf() {
        let conf = parse_ok(WEBROOT_CONF);
        assert_eq!(single(&conf, "version"), "2.1.0");
        assert_eq!(
            single(&conf, "fullchain"),
            "/etc/letsencrypt/live/example.com/fullchain.pem"
        );
        let params = &conf.section("renewalparams").unwrap().section;
        assert_eq!(params.get("server").unwrap().line, 14);
        assert_eq!(
            params.get("webroot_path").unwrap().value,
            Value::List(vec!["/var/www/html".into()])
        );
        assert_eq!(
            single(params, "renew_hook"),
            "cat $RENEWED_LINEAGE/fullchain.pem, $RENEWED_LINEAGE/privkey.pem",
            "a quoted comma is part of the value"
        );
        assert_eq!(
            single(params, "pre_hook"),
            "systemctl stop \"my unit\"",
            "quotes inside an unquoted value stay, the comment goes"
        );
        let map = &params.section("webroot_map").unwrap().section;
        assert_eq!(single(map, "www.example.com"), "/var/www/html");
        assert!(
            conf.section("webroot_map").is_none(),
            "[[webroot_map]] is inside [renewalparams]"
        );
    }

    #[test]
    fn lists_quotes_and_empty_values() {
        let conf = parse_ok(
            "a = one, two ,three\nb = 'x # y'\nc =\nd = \"\"\"it's \"quoted\" here\"\"\"\ne = ,\n'odd key' = 1\n",
        );
        assert_eq!(
            conf.get("a").unwrap().value,
            Value::List(vec!["one".into(), "two".into(), "three".into()])
        );
        assert_eq!(single(&conf, "b"), "x # y");
        assert_eq!(single(&conf, "c"), "");
        assert_eq!(single(&conf, "d"), "it's \"quoted\" here");
        assert_eq!(conf.get("e").unwrap().value.items(), Vec::<String>::new());
        assert_eq!(single(&conf, "odd key"), "1");
    }

    #[test]
    fn a_header_closes_deeper_sections() {
        let conf = parse_ok("[a]\nx = 1\n[[b]]\ny = 2\n[c]\nz = 3\n");
        let a = &conf.section("a").unwrap().section;
        assert_eq!(single(&a.section("b").unwrap().section, "y"), "2");
        assert_eq!(single(&conf.section("c").unwrap().section, "z"), "3");
    }

    #[test]
    fn a_malformed_line_is_named_by_file_and_line() {
        let text = "version = 2.1.0\n\n[renewalparams]\nauthenticator standalone\n";
        assert_eq!(
            parse_err(text),
            format!(
                "{FILE}:4: 'authenticator standalone' is neither 'key = value', a [section] header, nor a # comment"
            )
        );
    }

    #[test]
    fn other_mistakes_name_their_line_too() {
        assert_eq!(
            parse_err("[renewalparams\n"),
            format!("{FILE}:1: section header '[renewalparams' is not closed with ']'")
        );
        assert!(parse_err("a = 1\n[[deep]]\n").starts_with(&format!("{FILE}:2: section [deep] is nested 2 deep")));
        assert_eq!(
            parse_err("a = 1\na = 2\n"),
            format!("{FILE}:2: 'a' is set twice in one section (first at line 1)")
        );
        assert_eq!(
            parse_err("[x]\n[x]\n"),
            format!("{FILE}:2: section [x] appears twice (first at line 1)")
        );
        assert!(parse_err("hook = \"echo hi\n").starts_with(&format!("{FILE}:1: hook: the quote")));
        assert!(parse_err("hook = '''one\ntwo'''\n").contains("values over several lines are not supported"));
        assert!(parse_err("hook = \"a\" b\n").contains("separate list items with commas"));
        assert!(parse_err("[[a]]]\n").contains("unbalanced brackets"));
    }
}
