//! The temp files of [`write_atomic`](super::write_atomic) that a crash left behind. A crash between its write and its
//! rename leaves `.{name}.{random}.tmp` beside the target, holding the whole file: a PEM with its private key, an
//! account key. A run removes them, by their exact name and only for the files hapcert writes there, so that another
//! program's dot-file in the same directory is never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::StateDir;

/// How many random characters `write_atomic` puts in a temp file's name (tempfile's alphanumerics).
pub const RANDOM_LEN: usize = 6;

/// The file a temp file of `write_atomic` was to become, from the temp file's name: `.site.pem.Ab12Cd.tmp` is one of
/// `site.pem`. `None` for any other name.
pub fn temp_file_target(name: &str) -> Option<&str> {
    let middle = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, random) = middle.rsplit_once('.')?;
    let random_part = random.len() >= RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric());
    (random_part && !target.is_empty()).then_some(target)
}

/// Removes the leftover temp files of `targets` (each a file hapcert writes), one directory listing per directory.
/// Each removal is logged; a directory that cannot be read or a file that cannot be removed is logged and left.
pub fn remove_leftovers<'a>(targets: impl IntoIterator<Item = &'a Path>) {
    let mut by_dir: BTreeMap<&Path, BTreeSet<&str>> = BTreeMap::new();
    for target in targets {
        if let (Some(dir), Some(name)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) {
            by_dir.entry(dir).or_default().insert(name);
        }
    }
    for (dir, names) in by_dir {
        if let Err(err) = remove_in(dir, &names) {
            tracing::warn!(dir = %dir.display(), "cannot look for leftover temp files: {err}");
        }
    }
}

fn remove_in(dir: &Path, names: &BTreeSet<&str>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(temp_file_target)
            .is_some_and(|target| names.contains(target));
        if !ours || !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        match super::remove_durably(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a temp file an interrupted write left behind"),
            Err(err) => {
                tracing::warn!(path = %path.display(), "cannot remove a temp file an interrupted write left behind: {err}")
            }
        }
    }
    Ok(())
}

impl StateDir {
    /// The leftovers in the state dir: of `state.json`, the facts cache, the account file of `directory` and its pending
    /// rollover (the caller holds the run lock, which every writer of those holds), of each certificate's backup and kept
    /// issued certificate, and
    /// of `monitor.json`, under `monitor.lock`, which a check holds while it writes one.
    pub fn remove_leftovers<'a>(&self, certificates: impl IntoIterator<Item = &'a str>, directory: &str) {
        let mut targets: Vec<PathBuf> = vec![
            self.state_path(),
            self.account_path(directory),
            self.pending_account_path(directory),
            self.root().join(super::facts_cache::FILE_NAME),
        ];
        for name in certificates {
            targets.push(self.backup_path(name));
            targets.push(self.kept_issued_path(name));
        }
        remove_leftovers(targets.iter().map(PathBuf::as_path));
        match self.monitor_lock() {
            Ok(_lock) => remove_leftovers([self.monitor_path().as_path()]),
            Err(err) => tracing::warn!("leftover temp files of monitor.json are left for the next run: {err:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_atomic_writers_temp_files_give_their_target() {
        assert_eq!(temp_file_target(".site.pem.Ab12Cd.tmp"), Some("site.pem"));
        assert_eq!(temp_file_target(".site.pem.x9Y8z7W6.tmp"), Some("site.pem"));
        assert_eq!(temp_file_target(".state.json.000000.tmp"), Some("state.json"));
        assert_eq!(temp_file_target(".a.b.c.pem.AAAAAA.tmp"), Some("a.b.c.pem"));
    }

    #[test]
    fn other_names_give_none() {
        for name in [
            "site.pem.Ab12Cd.tmp",
            ".site.pem.Ab12Cd",
            ".site.pem.Ab12Cd.tmp.keep",
            ".site.pem.tmp",
            ".site.pem.Ab12C.tmp",
            ".site.pem.Ab-2Cd.tmp",
            "..Ab12Cd.tmp",
            ".Ab12Cd.tmp",
            ".editor.swp",
            ".tmp",
            "",
        ] {
            assert_eq!(temp_file_target(name), None, "{name:?}");
        }
    }

    #[test]
    fn only_the_temp_files_of_the_given_targets_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = [".site.pem.Ab12Cd.tmp", ".other.pem.Qwerty.tmp"];
        let theirs = [".unknown.pem.Ab12Cd.tmp", ".site.pem.tmp", ".editor.swp", "site.pem"];
        for name in ours.iter().chain(&theirs) {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".site.pem.Dir123.tmp")).unwrap();
        let targets = [dir.path().join("site.pem"), dir.path().join("other.pem")];
        remove_leftovers(targets.iter().map(PathBuf::as_path));
        for name in ours {
            assert!(!dir.path().join(name).exists(), "{name} is left");
        }
        for name in theirs {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(
            dir.path().join(".site.pem.Dir123.tmp").is_dir(),
            "a directory is never removed"
        );
    }

    #[test]
    fn a_missing_directory_is_nothing_to_clean() {
        let dir = tempfile::tempdir().unwrap();
        remove_leftovers([dir.path().join("gone").join("site.pem").as_path()]);
    }
}
