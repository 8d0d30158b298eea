//! Which names HAProxy's CLI knows a certificate file by, and which crt-list a new file goes into. Pure: the replies
//! are read by `runtime.rs`, and this decides from them, never from the string in hapcert's config.
//!
//! - A file loaded by a `crt` line or an `ssl-f-use crt` line is named by its path.
//! - 3.0 and later: a file loaded in a named crt-store is `@<store>/<alias>`. 3.2 and later say which file an alias
//!   holds (`Crt filename:`, relative to the store's `crt-base`); 3.0 does not, so there the alias is recognised by the
//!   certificate it serves: one whose SHA-1 is a leaf the file is known to have held.
//! - 3.2 and later: `ssl-f-use` lines put their certificates into an implicit crt-list named `@<frontend>`.

use std::path::Path;

use super::reply::CertInfo;

/// Where a certificate file is loaded, as far as the replies can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Under these names (its path, and any crt-store alias that holds it).
    As(Vec<String>),
    /// Not under its path, but HAProxy has crt-store aliases that may hold it without saying so (3.0). Only a reload,
    /// which reads every file again, can be sure to serve it.
    Unsure { aliases: Vec<String> },
    /// Nowhere.
    Not,
}

/// The names `path` is loaded under. `files` is `show ssl cert`; `aliases` is `show ssl cert <alias>` for each
/// `@`-name in it; `held` are SHA-1s (lower-case hex) of leaves the file may be serving now: what it held before this
/// run, and what it holds now.
pub fn loaded_as(path: &Path, files: &[String], aliases: &[CertInfo], held: &[String]) -> Loaded {
    let mut names: Vec<String> = files.iter().filter(|f| Path::new(f) == path).cloned().collect();
    let mut unsure = Vec::new();
    for alias in aliases {
        let serves_held = alias.sha1_fingerprint.as_ref().is_some_and(|sha1| held.contains(sha1));
        match &alias.crt_filename {
            // 3.2+: the file, relative to a crt-base this client cannot see; a suffix of whole components. Two aliases
            // with the same relative name in stores of different crt-bases are told apart by what they serve.
            Some(file) if path.ends_with(file) && (serves_held || !same_file_name_twice(aliases, file)) => {
                names.push(alias.filename.clone())
            }
            Some(_) => {}
            None if serves_held => names.push(alias.filename.clone()),
            None => unsure.push(alias.filename.clone()),
        }
    }
    match (names.is_empty(), unsure.is_empty()) {
        (false, _) => Loaded::As(names),
        (true, false) => Loaded::Unsure { aliases: unsure },
        (true, true) => Loaded::Not,
    }
}

fn same_file_name_twice(aliases: &[CertInfo], file: &str) -> bool {
    aliases
        .iter()
        .filter(|a| a.crt_filename.as_deref() == Some(file))
        .count()
        > 1
}

/// The crt-list a file HAProxy has never loaded is added to:
/// - `configured` (`[haproxy] crt_list`, by default the cert directory) when HAProxy has a crt-list of that name and
///   it is the file's own directory (a `crt <dir>/` bind) or a frontend's `@<name>`;
/// - else the one crt-list that already holds a file of the same directory, such as the `@<frontend>` list of
///   `ssl-f-use` lines.
///
/// `lists` are `show ssl crt-list` and, for each, `show ssl crt-list <list>`. Err names the lists when more than one
/// would do.
pub fn crt_list_for(
    path: &Path,
    configured: &str,
    lists: &[(String, Vec<String>)],
) -> Result<Option<String>, Vec<String>> {
    let configured = configured.trim_end_matches('/');
    let dir = path.parent().unwrap_or(Path::new("/"));
    let explicit = configured.starts_with('@') || survives_reload(configured, path);
    if explicit && lists.iter().any(|(name, _)| name == configured) {
        return Ok(Some(configured.to_owned()));
    }
    let siblings: Vec<&String> = lists
        .iter()
        .filter(|(_, files)| files.iter().any(|f| Path::new(f).parent() == Some(dir)))
        .map(|(name, _)| name)
        .collect();
    match siblings.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(many.iter().map(|s| (*s).clone()).collect()),
    }
}

/// Whether a crt-list is a directory HAProxy reads again at each reload, so that a file added to it at runtime stays
/// served after the next reload. An `@<frontend>` list or a crt-list file does not: the config must name the file.
pub fn survives_reload(list: &str, path: &Path) -> bool {
    path.parent() == Some(Path::new(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::haproxy::reply::CertStatus;

    fn alias(name: &str, crt_filename: Option<&str>, sha1: &str) -> CertInfo {
        CertInfo {
            filename: name.into(),
            status: CertStatus::Used,
            serial: None,
            sha1_fingerprint: Some(sha1.into()),
            not_after: None,
            not_before: None,
            subject: None,
            sans: vec![],
            algorithm: None,
            crt_filename: crt_filename.map(str::to_owned),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const A: &str = "/etc/haproxy/certs/a.pem";

    #[test]
    fn a_file_loaded_by_its_path_is_named_by_it() {
        let files = strings(&[A, "/etc/haproxy/certs/b.pem"]);
        assert_eq!(loaded_as(Path::new(A), &files, &[], &[]), Loaded::As(strings(&[A])));
        assert_eq!(
            loaded_as(Path::new("/etc/haproxy/c.pem"), &files, &[], &[]),
            Loaded::Not
        );
    }

    #[test]
    fn an_alias_on_3_2_is_found_by_its_crt_filename() {
        let files = strings(&["@web/site", "@web/other"]);
        let aliases = [
            alias("@web/site", Some("a.pem"), "11"),
            alias("@web/other", Some("b.pem"), "22"),
        ];
        assert_eq!(
            loaded_as(Path::new(A), &files, &aliases, &[]),
            Loaded::As(strings(&["@web/site"]))
        );
        // An absolute crt filename too (no crt-base).
        let aliases = [alias("@web/site", Some(A), "11")];
        assert_eq!(
            loaded_as(Path::new(A), &files, &aliases, &[]),
            Loaded::As(strings(&["@web/site"]))
        );
        // `xa.pem` is not a whole component of the path.
        let aliases = [alias("@web/site", Some("xa.pem"), "11")];
        assert_eq!(loaded_as(Path::new(A), &files, &aliases, &[]), Loaded::Not);
    }

    #[test]
    fn two_aliases_of_the_same_relative_name_are_told_apart_by_what_they_serve() {
        let aliases = [
            alias("@one/site", Some("a.pem"), "11"),
            alias("@two/site", Some("a.pem"), "22"),
        ];
        let files = strings(&["@one/site", "@two/site"]);
        assert_eq!(
            loaded_as(Path::new(A), &files, &aliases, &strings(&["22"])),
            Loaded::As(strings(&["@two/site"]))
        );
        assert_eq!(loaded_as(Path::new(A), &files, &aliases, &[]), Loaded::Not);
    }

    #[test]
    fn an_alias_on_3_0_is_found_by_the_leaf_it_serves_or_left_unsure() {
        let files = strings(&["@web/site", "@web/other"]);
        let aliases = [alias("@web/site", None, "11"), alias("@web/other", None, "22")];
        assert_eq!(
            loaded_as(Path::new(A), &files, &aliases, &strings(&["11", "33"])),
            Loaded::As(strings(&["@web/site"]))
        );
        assert_eq!(
            loaded_as(Path::new(A), &files, &aliases, &strings(&["33"])),
            Loaded::Unsure {
                aliases: strings(&["@web/site", "@web/other"])
            }
        );
    }

    #[test]
    fn a_new_file_goes_into_the_configured_list_or_the_one_holding_its_neighbours() {
        let dir_list = ("/etc/haproxy/certs".to_owned(), strings(&[A]));
        let frontend = (
            "@https".to_owned(),
            strings(&["/etc/haproxy/certs/b.pem", "/etc/haproxy/default.pem"]),
        );
        let new = Path::new("/etc/haproxy/certs/new.pem");
        assert_eq!(
            crt_list_for(new, "/etc/haproxy/certs/", std::slice::from_ref(&dir_list)),
            Ok(Some("/etc/haproxy/certs".into()))
        );
        assert_eq!(
            crt_list_for(new, "/etc/haproxy/certs", std::slice::from_ref(&frontend)),
            Ok(Some("@https".into()))
        );
        assert_eq!(
            crt_list_for(
                Path::new("/srv/x.pem"),
                "/etc/haproxy/certs",
                std::slice::from_ref(&frontend)
            ),
            Ok(None)
        );
        let other = ("@admin".to_owned(), strings(&["/etc/haproxy/certs/c.pem"]));
        assert_eq!(
            crt_list_for(new, "/etc/haproxy/certs", &[frontend.clone(), other.clone()]),
            Err(strings(&["@https", "@admin"]))
        );
        // Named explicitly, it wins.
        assert_eq!(
            crt_list_for(new, "@admin", &[frontend.clone(), other]),
            Ok(Some("@admin".into()))
        );
        // A directory list takes only files of that directory.
        assert_eq!(
            crt_list_for(Path::new("/srv/x.pem"), "/etc/haproxy/certs", &[dir_list]),
            Ok(None)
        );
    }

    #[test]
    fn only_a_directory_list_keeps_a_runtime_addition_across_reloads() {
        let new = Path::new("/etc/haproxy/certs/new.pem");
        assert!(survives_reload("/etc/haproxy/certs", new));
        assert!(!survives_reload("@https", new));
        assert!(!survives_reload("/etc/haproxy/list.txt", new));
    }
}
