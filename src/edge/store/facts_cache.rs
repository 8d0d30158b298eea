//! The facts of each deployed certificate, remembered between runs in `facts-cache.json` in the state dir, so that a
//! run with nothing due costs one `stat` per certificate instead of reading and parsing every PEM (an X.509 parse and
//! a check that the key belongs to the leaf, each: most of a no-op run with a thousand certificates).
//!
//! An entry is used only while the file's size, modification time (to the nanosecond), change time, inode and device
//! are all what they were when it was parsed ([`cached`], the rule, pure). A file replaced by a rename, as
//! `write_atomic`, certbot and most deploy tools do it, has a new inode; one rewritten in place has a new mtime, and
//! usually a new size. The change time catches the rest: a rewrite that puts the old mtime back (`cp -p`, `touch -r`,
//! tar), and a chmod or chown that leaves the file unreadable to hapcert. No program can set it.
//! A cache that is missing, damaged or of another version is rebuilt: never an error, only a slower run. Files that
//! cannot be read or parsed are not remembered, so what is wrong with them is said afresh every time.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::StateDir;
use crate::core::decision::Local;
use crate::core::pem::{Bundle, CertFacts};

pub(super) const FILE_NAME: &str = "facts-cache.json";

/// Bumped when the file's layout changes. With hapcert's version (a newer one may read facts differently) it decides
/// whether a cache on disk may be used.
const FORMAT: u32 = 2;
const HAPCERT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file modified this shortly before it was read may be modified again within the same timestamp tick (a few
/// milliseconds on ext4, up to 2 s on some filesystems), and its stat would not show it. Such a file is not
/// remembered; a later run reads it again.
const SETTLE: Duration = Duration::from_secs(2);

/// What one `stat` says of a file: enough to tell that its bytes are still the ones the facts were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// The inode's change time (nanoseconds since the epoch): set by the kernel on every write, chmod, chown and mtime
    /// change.
    pub ctime_ns: i128,
    pub inode: u64,
    pub dev: u64,
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    facts: CertFacts,
}

/// The hit rule: the remembered facts, if the file's stat now is the one they were read under.
fn cached<'a>(entry: Option<&'a Entry>, now: &Stamp) -> Option<&'a CertFacts> {
    entry.filter(|e| e.stamp == *now).map(|e| &e.facts)
}

/// Whether facts read at `read_at_ns` from a file stamped `stamp` may be remembered: only when the file had settled.
fn settled(stamp: &Stamp, read_at_ns: i128) -> bool {
    stamp.mtime_ns <= read_at_ns - SETTLE.as_nanos() as i128
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    hapcert: String,
    entries: HashMap<PathBuf, Entry>,
}

/// Only what tells whether the rest can be read: a cache of another version may not parse as this one's.
#[derive(Deserialize)]
struct Header {
    format: u32,
    hapcert: String,
}

/// A PEM file read and understood.
pub struct ReadPem {
    pub local: Local,
    /// `None` when the file could not be read.
    pub bytes: Option<Vec<u8>>,
    /// The stat of the very file read (from the open file: a file replaced meanwhile cannot lend it other bytes).
    pub stamp: Option<Stamp>,
}

/// Reads and parses the PEM at `path`, without the cache.
pub fn read_pem(path: &Path) -> ReadPem {
    let opened = File::open(path).and_then(|mut file| {
        let stamp = Stamp::of(&file.metadata()?);
        let mut bytes = Vec::with_capacity(stamp.size as usize);
        file.read_to_end(&mut bytes)?;
        Ok((bytes, stamp))
    });
    match opened {
        Err(err) if err.kind() == io::ErrorKind::NotFound => ReadPem {
            local: Local::Missing,
            bytes: None,
            stamp: None,
        },
        Err(err) => ReadPem {
            local: Local::Unreadable(err.to_string()),
            bytes: None,
            stamp: None,
        },
        Ok((bytes, stamp)) => ReadPem {
            local: match Bundle::parse(&bytes).and_then(|b| b.facts()) {
                Ok(facts) => Local::Present(facts),
                Err(err) => Local::Unparseable(err.to_string()),
            },
            bytes: Some(bytes),
            stamp: Some(stamp),
        },
    }
}

/// The cache as loaded, with what this process learnt since.
#[derive(Debug, Default)]
pub struct FactsCache {
    /// Hashed: ordered paths compare component by component, a cost that showed with a thousand certificates.
    entries: HashMap<PathBuf, Entry>,
    /// Differs from the file: worth writing back.
    changed: bool,
    /// Files read and parsed, rather than answered from the cache.
    parsed: usize,
}

impl FactsCache {
    /// The cache in `store`; an empty one when there is none that can be used.
    pub fn load(store: &StateDir) -> FactsCache {
        let path = store.root().join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                tracing::debug!("no {} yet; every certificate file is read", path.display());
                return FactsCache::default();
            }
            Err(err) => {
                tracing::debug!(
                    "cannot read {}: {err}; every certificate file is read afresh",
                    path.display()
                );
                return FactsCache::default();
            }
        };
        let why = match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(file) if file.format == FORMAT && file.hapcert == HAPCERT_VERSION => {
                return FactsCache {
                    entries: file.entries,
                    ..FactsCache::default()
                };
            }
            Ok(file) => format!(
                "is of another version (format {}, hapcert {})",
                file.format, file.hapcert
            ),
            Err(err) => match serde_json::from_slice::<Header>(&bytes) {
                Ok(header) if header.format != FORMAT || header.hapcert != HAPCERT_VERSION => format!(
                    "is of another version (format {}, hapcert {})",
                    header.format, header.hapcert
                ),
                _ => format!("is damaged ({err})"),
            },
        };
        tracing::debug!("{} {why}; it is rebuilt", path.display());
        // Replaced at the next save even if no file changed.
        FactsCache {
            changed: true,
            ..FactsCache::default()
        }
    }

    /// What the file at `path` holds: from the cache when its stat matches, else read, parsed and remembered.
    pub fn local(&mut self, path: &Path) -> Local {
        // A file that cannot be stat'ed is read anyway: the read says why, in the words it always did.
        if let Ok(meta) = fs::metadata(path)
            && let Some(facts) = cached(self.entries.get(path), &Stamp::of(&meta))
        {
            return Local::Present(facts.clone());
        }
        self.parsed += 1;
        let ReadPem { local, stamp, .. } = read_pem(path);
        match (&local, stamp) {
            (Local::Present(facts), Some(stamp)) if settled(&stamp, now_ns()) => {
                let entry = Entry {
                    stamp,
                    facts: facts.clone(),
                };
                self.entries.insert(path.to_owned(), entry);
                self.changed = true;
            }
            _ => self.changed |= self.entries.remove(path).is_some(),
        }
        local
    }

    /// How many files were read and parsed rather than answered from the cache.
    pub fn parsed(&self) -> usize {
        self.parsed
    }

    /// Forgets the files no longer `configured`, and writes the cache back if it changed. A failure is logged: without
    /// the cache the next run is only slower.
    pub fn save<'a>(&mut self, store: &StateDir, configured: impl IntoIterator<Item = &'a Path>) {
        let configured: HashSet<&Path> = configured.into_iter().collect();
        let before = self.entries.len();
        self.entries.retain(|path, _| configured.contains(path.as_path()));
        if !self.changed && self.entries.len() == before {
            return;
        }
        let file = CacheFile {
            format: FORMAT,
            hapcert: HAPCERT_VERSION.to_owned(),
            entries: std::mem::take(&mut self.entries),
        };
        let path = store.root().join(FILE_NAME);
        let written = serde_json::to_vec(&file)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| store.write_secret(&path, &bytes));
        self.entries = file.entries;
        match written {
            Ok(()) => self.changed = false,
            Err(err) => tracing::warn!("{err:#}; the next run reads every certificate file again"),
        }
    }
}

fn now_ns() -> i128 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;

    use super::*;
    use crate::core::config::KeyType;
    use crate::testing::TestCa;

    fn stamp(size: u64, mtime_ns: i128, inode: u64) -> Stamp {
        Stamp {
            size,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode,
            dev: 1,
        }
    }

    fn facts(serial: &str) -> CertFacts {
        let at = time::macros::datetime!(2026-01-01 00:00 UTC);
        CertFacts {
            serial: serial.into(),
            names: BTreeSet::from(["a.example".to_owned()]),
            not_before: at,
            not_after: at + time::Duration::days(90),
            key_type: Some(KeyType::EcdsaP256),
            key_matches: true,
            ari_id: Some("aki.serial".into()),
        }
    }

    #[test]
    fn the_facts_are_used_only_when_size_mtime_ctime_inode_and_device_all_match() {
        let entry = Entry {
            stamp: stamp(100, 5, 7),
            facts: facts("01"),
        };
        assert_eq!(
            cached(Some(&entry), &stamp(100, 5, 7)).map(|f| f.serial.as_str()),
            Some("01")
        );
        for other in [
            stamp(101, 5, 7),
            stamp(100, 6, 7),
            stamp(100, 5, 8),
            Stamp {
                ctime_ns: 6,
                ..entry.stamp
            },
            Stamp { dev: 2, ..entry.stamp },
        ] {
            assert!(cached(Some(&entry), &other).is_none(), "{other:?}");
        }
        assert!(cached(None, &entry.stamp).is_none());
    }

    #[test]
    fn a_file_modified_just_before_it_was_read_is_not_remembered() {
        let second = 1_000_000_000;
        assert!(settled(&stamp(1, 100 * second, 1), 102 * second));
        assert!(!settled(&stamp(1, 100 * second, 1), 101 * second));
        assert!(
            !settled(&stamp(1, 100 * second, 1), 99 * second),
            "a file from the future is not settled"
        );
    }

    /// A state dir and a PEM in a temp dir, with certificates of one CA.
    struct Setup {
        _dir: tempfile::TempDir,
        store: StateDir,
        pem: PathBuf,
        ca: TestCa,
        /// An hour ago: settled, so cached.
        then: SystemTime,
    }

    impl Setup {
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let store = StateDir::create(&dir.path().join("state")).unwrap();
            let pem = dir.path().join("www.pem");
            Setup {
                _dir: dir,
                store,
                pem,
                ca: TestCa::new(),
                then: SystemTime::now() - Duration::from_secs(3600),
            }
        }

        /// Two different certificates whose PEMs have the same size (padded with newlines, which a PEM parser skips).
        fn same_size_pair(&self) -> (String, String) {
            let one = self.ca.issue(&["www.example.com"], KeyType::EcdsaP256, 90);
            let two = self.ca.issue(&["www.example.com"], KeyType::EcdsaP256, 90);
            let len = one.len().max(two.len());
            let pad = |pem: String| format!("{pem}{}", "\n".repeat(len - pem.len()));
            (pad(one), pad(two))
        }

        /// Straight from `stat`, not through `Stamp`, so the preconditions hold whatever the key is made of.
        fn stat(&self) -> Stat {
            let meta = fs::metadata(&self.pem).unwrap();
            Stat {
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                inode: meta.ino(),
                dev: meta.dev(),
            }
        }

        /// Writes `pem` into the existing file (same inode), then sets its mtime to `at`.
        fn write_in_place(&self, pem: &str, at: SystemTime) {
            let mut file = File::options().write(true).truncate(true).open(&self.pem).unwrap();
            file.write_all(pem.as_bytes()).unwrap();
            file.set_modified(at).unwrap();
        }

        /// Writes `pem` to a new file with mtime `at`, renamed over the PEM: a new inode.
        fn replace(&self, pem: &str, at: SystemTime) {
            let temp = self.pem.with_extension("tmp");
            let mut file = File::create(&temp).unwrap();
            file.write_all(pem.as_bytes()).unwrap();
            file.set_modified(at).unwrap();
            fs::rename(&temp, &self.pem).unwrap();
        }

        /// A fresh cache from disk (as the next run loads it), asked for the PEM: its serial and whether it parsed.
        fn next_run(&self) -> (String, bool) {
            let mut cache = FactsCache::load(&self.store);
            let serial = cache.local(&self.pem).facts().expect("a certificate").serial.clone();
            cache.save(&self.store, [self.pem.as_path()]);
            (serial, cache.parsed() == 1)
        }
    }

    #[derive(Debug, PartialEq)]
    struct Stat {
        size: u64,
        mtime: (i64, i64),
        inode: u64,
        dev: u64,
    }

    fn serial_of(pem: &str) -> String {
        Bundle::parse(pem.as_bytes()).unwrap().facts().unwrap().serial
    }

    #[test]
    fn an_unchanged_file_is_answered_from_the_cache_without_being_read() {
        let setup = Setup::new();
        let (one, _) = setup.same_size_pair();
        setup.replace(&one, setup.then);
        assert_eq!(setup.next_run(), (serial_of(&one), true), "first run: parsed");
        assert_eq!(setup.next_run(), (serial_of(&one), false), "second run: from the cache");

        // Proof that the cache, not the file, answered: doctored facts come back.
        let path = setup.store.root().join(FILE_NAME);
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace(&serial_of(&one), "d0c7012ed");
        fs::write(&path, text).unwrap();
        assert_eq!(setup.next_run(), ("d0c7012ed".into(), false));
    }

    #[test]
    fn a_file_renamed_over_with_the_same_size_and_mtime_is_parsed_again_for_its_new_inode() {
        let setup = Setup::new();
        let (one, two) = setup.same_size_pair();
        setup.replace(&one, setup.then);
        setup.next_run();
        let before = setup.stat();

        setup.replace(&two, setup.then);
        let after = setup.stat();
        assert_eq!(
            (after.size, after.mtime, after.dev),
            (before.size, before.mtime, before.dev)
        );
        assert_ne!(after.inode, before.inode, "only the inode tells");
        assert_eq!(setup.next_run(), (serial_of(&two), true));
    }

    #[test]
    fn a_file_rewritten_in_place_with_the_same_size_is_parsed_again_for_its_new_mtime() {
        let setup = Setup::new();
        let (one, two) = setup.same_size_pair();
        setup.replace(&one, setup.then);
        setup.next_run();
        let before = setup.stat();

        setup.write_in_place(&two, setup.then + Duration::from_secs(1));
        let after = setup.stat();
        assert_eq!(
            (after.size, after.inode, after.dev),
            (before.size, before.inode, before.dev)
        );
        assert_eq!(setup.next_run(), (serial_of(&two), true));
    }

    #[test]
    fn a_file_rewritten_in_place_with_its_old_mtime_is_parsed_again_for_its_new_size() {
        let setup = Setup::new();
        let (one, two) = setup.same_size_pair();
        setup.replace(&one, setup.then);
        setup.next_run();
        let before = setup.stat();

        setup.write_in_place(&format!("{two}\n"), setup.then);
        let after = setup.stat();
        assert_eq!(
            (after.mtime, after.inode, after.dev),
            (before.mtime, before.inode, before.dev)
        );
        assert_ne!(after.size, before.size);
        assert_eq!(setup.next_run(), (serial_of(&two), true));
    }

    #[test]
    fn a_chmod_is_a_change_the_cache_sees() {
        // A file hapcert can no longer read must say so, not live on in the cache. Root reads it anyway, so the test
        // shows the re-read: size, mtime and inode stay, the change time moves.
        let setup = Setup::new();
        let (one, _) = setup.same_size_pair();
        setup.replace(&one, setup.then);
        assert_eq!(setup.next_run(), (serial_of(&one), true));
        let before = setup.stat();
        std::thread::sleep(Duration::from_millis(5));
        fs::set_permissions(&setup.pem, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
        assert_eq!(setup.stat(), before, "size, mtime, inode and device are unchanged");
        assert_eq!(setup.next_run(), (serial_of(&one), true), "parsed again");
    }

    #[test]
    fn cached_facts_are_the_parsed_facts_after_a_round_trip_through_the_file() {
        let setup = Setup::new();
        let pem = setup
            .ca
            .issue(&["b.example.com", "a.example.com"], KeyType::Rsa2048, 90);
        setup.replace(&pem, setup.then);
        let parsed = Bundle::parse(pem.as_bytes()).unwrap().facts().unwrap();
        setup.next_run();
        let mut cache = FactsCache::load(&setup.store);
        assert_eq!(cache.local(&setup.pem).facts(), Some(&parsed));
        assert_eq!(cache.parsed(), 0);
        let mode = fs::metadata(setup.store.root().join(FILE_NAME)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn a_fresh_file_and_a_broken_one_are_not_remembered_and_a_broken_one_keeps_its_message() {
        let setup = Setup::new();
        let pem = setup.ca.issue(&["www.example.com"], KeyType::EcdsaP256, 90);
        setup.replace(&pem, SystemTime::now());
        assert!(setup.next_run().1, "parsed");
        assert!(setup.next_run().1, "written a moment ago: read again");

        setup.replace("not a certificate\n", setup.then);
        let mut cache = FactsCache::load(&setup.store);
        let first = format!("{:?}", cache.local(&setup.pem));
        cache.save(&setup.store, [setup.pem.as_path()]);
        let mut cache = FactsCache::load(&setup.store);
        assert_eq!(format!("{:?}", cache.local(&setup.pem)), first);
        assert!(first.contains("holds no certificate"), "{first}");
        assert_eq!(cache.parsed(), 1);
    }

    #[test]
    fn a_damaged_cache_is_rebuilt_and_unconfigured_files_are_forgotten() {
        let setup = Setup::new();
        let pem = setup.ca.issue(&["www.example.com"], KeyType::EcdsaP256, 90);
        setup.replace(&pem, setup.then);
        let path = setup.store.root().join(FILE_NAME);
        for damage in ["{not json", r#"{"format": 0, "hapcert": "0.0.1", "entries": {"x": 1}}"#] {
            fs::write(&path, damage).unwrap();
            assert_eq!(setup.next_run(), (serial_of(&pem), true), "{damage}");
            assert_eq!(setup.next_run(), (serial_of(&pem), false), "rebuilt after {damage}");
        }

        let mut cache = FactsCache::load(&setup.store);
        cache.local(&setup.pem);
        cache.save(&setup.store, []);
        assert!(FactsCache::load(&setup.store).entries.is_empty());
    }

    #[test]
    fn an_unchanged_cache_is_not_written_again() {
        let setup = Setup::new();
        let pem = setup.ca.issue(&["www.example.com"], KeyType::EcdsaP256, 90);
        setup.replace(&pem, setup.then);
        setup.next_run();
        let path = setup.store.root().join(FILE_NAME);
        let inode = fs::metadata(&path).unwrap().ino();
        setup.next_run();
        assert_eq!(
            fs::metadata(&path).unwrap().ino(),
            inode,
            "write_atomic would have made a new inode"
        );
    }
}
