//! The filesystem: the one atomic writer every PEM and secret goes through, and the state directory (account, backups of
//! replaced PEMs, last results, the run lock, and in `facts_cache` what the deployed certificates hold).

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::core::config::FileOwner;
use crate::core::state::monitor::{MONITOR_FORMAT, Monitor};
use crate::core::state::{self, FormatError, STATE_FORMAT, State, StateStorage};

pub mod dns_records;
pub mod facts_cache;
pub mod leftovers;

/// Writes `bytes` to `path` so that a reader sees either the old file or the new one, whole, even across a crash: a
/// dot-prefixed temporary file in the same directory (HAProxy skips dot-files in a `crt` directory), the mode and owner set
/// before any byte is written, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: FileOwner) -> io::Result<()> {
    write_whole(path, bytes, mode, owner, true)
}

/// `write_atomic` for a file that must not exist yet: an existing `path` is left alone, and the error is
/// `AlreadyExists` (the rename refuses to replace, so a file made meanwhile is not overwritten either).
pub fn write_atomic_new(path: &Path, bytes: &[u8], mode: u32, owner: FileOwner) -> io::Result<()> {
    write_whole(path, bytes, mode, owner, false)
}

fn write_whole(path: &Path, bytes: &[u8], mode: u32, owner: FileOwner, replace: bool) -> io::Result<()> {
    let temp = synced_temp(path, bytes, mode, owner)?;
    if replace {
        temp.persist(path).map_err(|e| e.error)?;
    } else {
        temp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    File::open(parent_dir(path))?.sync_all()
}

/// One file of [`write_atomic_all`].
pub struct Whole<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub mode: u32,
    pub owner: FileOwner,
}

/// How many temp files [`write_atomic_all`] writes and syncs at once. The filesystem's journal commits the fsyncs that
/// wait together as one, so a few threads turn a thousand journal commits into a few hundred.
const PARALLEL_SYNCS: usize = 8;

/// [`write_atomic`] for a batch, with the same guarantee for each file, for the deploy of many certificates at once.
/// Every file's temp file is written and synced (several at a time), then each is renamed over its path in the order
/// given, then each directory is synced once, not once per file: a crash leaves every path holding its old file or
/// its new one, whole, and when this returns every rename is durable. One result per file, in order; a file whose temp
/// file failed is not renamed, and a failed directory sync fails every file renamed into that directory.
pub fn write_atomic_all(files: &[Whole<'_>]) -> Vec<io::Result<()>> {
    let chunk = files.len().div_ceil(PARALLEL_SYNCS).max(1);
    // Closed once synced (a `TempPath` keeps only the name): a batch of thousands must not hold a descriptor each.
    let temps: Vec<io::Result<tempfile::TempPath>> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|f| synced_temp(f.path, f.bytes, f.mode, f.owner).map(|t| t.into_temp_path()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a temp file writer panicked"))
            .collect()
    });
    let mut results: Vec<io::Result<()>> = files
        .iter()
        .zip(temps)
        .map(|(file, temp)| temp.and_then(|temp| temp.persist(file.path).map(|_| ()).map_err(|e| e.error)))
        .collect();
    let mut dirs: Vec<&Path> = files
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .map(|(file, _)| parent_dir(file.path))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
            for (file, result) in files.iter().zip(results.iter_mut()) {
                if result.is_ok() && parent_dir(file.path) == dir {
                    *result = Err(io::Error::new(err.kind(), format!("syncing {}: {err}", dir.display())));
                }
            }
        }
    }
    results
}

/// A dot-prefixed temp file beside `path` holding `bytes`, with its mode and owner, synced: ready to be renamed.
fn synced_temp(path: &Path, bytes: &[u8], mode: u32, owner: FileOwner) -> io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .rand_bytes(leftovers::RANDOM_LEN)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    // Set explicitly: the mode given at creation is filtered by the umask.
    temp.as_file().set_permissions(Permissions::from_mode(mode))?;
    if owner.uid.is_some() || owner.gid.is_some() {
        std::os::unix::fs::fchown(temp.as_file(), owner.uid, owner.gid)?;
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

/// Removes `path` durably; a missing file is fine.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => File::open(parent_dir(path))?.sync_all(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Renames `from` to `to` in the same directory, durably: the file is synced, then the directory after the rename.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    File::open(from)?.sync_all()?;
    fs::rename(from, to)?;
    File::open(parent_dir(to))?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// How long a check or a notification waits for `monitor.lock`.
const MONITOR_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// hapcert's own directory. Only root (or the user hapcert runs as) may look inside: it holds the account key.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// For commands that only read (`status`, `account show`): nothing is created.
    pub fn at(root: &Path) -> StateDir {
        StateDir { root: root.to_owned() }
    }

    /// Creates the directory (0700) if needed, and tightens its mode if someone loosened it.
    pub fn create(root: &Path) -> anyhow::Result<StateDir> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("cannot create the state directory {}", root.display()))?;
        fs::set_permissions(root, Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set mode 0700 on {}", root.display()))?;
        Ok(StateDir { root: root.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waits up to `timeout` for the run lock. Only one run at a time touches the CA, the files and HAProxy.
    pub fn lock(&self, timeout: Duration) -> anyhow::Result<RunLock> {
        // A check takes it too, for the moments it tries the challenge route through the side port.
        self.lock_file(
            "lock",
            "another hapcert run (or a check trying the challenge route)",
            timeout,
            "or raise --lock-timeout",
        )
    }

    /// The lock of `monitor.json`, held only while it is read, changed and written: a `check` never waits for a run.
    /// Its holders are quick, so the wait is short and fixed.
    pub fn monitor_lock(&self) -> anyhow::Result<RunLock> {
        self.lock_file(
            "monitor.lock",
            "another hapcert check or notification",
            MONITOR_LOCK_TIMEOUT,
            "and if it stays stuck, look for a hung `hapcert check`",
        )
    }

    /// The lock of `check`'s route check, taken only if free at once: one check at a time publishes probe records
    /// (and removes those an interrupted one left), and a check that finds it held leaves the routes to the holder.
    pub fn route_lock(&self) -> anyhow::Result<RunLock> {
        self.lock_file("route.lock", "another hapcert check", Duration::ZERO, "")
    }

    /// `holder` and `remedy` are for the messages: who else takes this lock, and what to do when it is held too long.
    fn lock_file(&self, name: &str, holder: &str, timeout: Duration, remedy: &str) -> anyhow::Result<RunLock> {
        let path = self.root.join(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        let deadline = Instant::now() + timeout;
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    if !announced {
                        tracing::info!(lock = %path.display(), "{holder} holds the lock; waiting up to {}", humantime::format_duration(timeout));
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                    "{holder} holds the lock {} and did not finish within {}; try again later, {remedy}",
                    path.display(),
                    humantime::format_duration(timeout)
                ),
                Err(fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
    }

    /// One account per CA directory, so switching between staging and production keeps both.
    pub fn account_path(&self, directory: &str) -> PathBuf {
        let slug: String = directory
            .trim_start_matches("https://")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("accounts").join(format!("{slug}.json"))
    }

    /// [`Self::write_secret`] for a batch, through [`write_atomic_all`]: one result per `(path, bytes)`, in order.
    pub fn write_secrets(&self, files: &[(&Path, &[u8])]) -> Vec<anyhow::Result<()>> {
        let mut dirs: Vec<&Path> = files.iter().filter_map(|(path, _)| path.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            if let Err(err) = DirBuilder::new().recursive(true).mode(0o700).create(dir) {
                let err = format!("cannot create {}: {err}", dir.display());
                return files.iter().map(|_| Err(anyhow::anyhow!("{err}"))).collect();
            }
        }
        let wholes: Vec<Whole<'_>> = files
            .iter()
            .map(|&(path, bytes)| Whole {
                path,
                bytes,
                mode: 0o600,
                owner: FileOwner::default(),
            })
            .collect();
        write_atomic_all(&wholes)
            .into_iter()
            .zip(files)
            .map(|(result, (path, _))| result.with_context(|| format!("cannot write {}", path.display())))
            .collect()
    }

    pub fn write_secret(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        write_atomic(path, bytes, 0o600, FileOwner::default())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Where `account rollover` keeps the account file with its new key from before the CA sees the key until the CA
    /// took it (then it replaces the account file, by one rename).
    pub fn pending_account_path(&self, directory: &str) -> PathBuf {
        self.account_path(directory).with_extension("json.rollover-pending")
    }

    /// Where a certificate that was issued and verified, but not deployed (its deploy failed or could not be proven),
    /// is kept for the next run to deploy without ordering again. Never in HAProxy's cert directory.
    pub fn kept_issued_path(&self, name: &str) -> PathBuf {
        self.root.join("issued").join(format!("{name}.pem"))
    }

    /// Where the PEM a deploy replaced is kept. Never in HAProxy's cert directory, which HAProxy may load whole.
    pub fn backup_path(&self, name: &str) -> PathBuf {
        self.root.join("backup").join(format!("{name}.pem"))
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    fn monitor_path(&self) -> PathBuf {
        self.root.join("monitor.json")
    }

    /// What `check` and the notifications remember; take `monitor_lock` around a load and save.
    pub fn load_monitor(&self) -> anyhow::Result<Monitor> {
        let path = self.monitor_path();
        load_versioned(&path, MONITOR_FORMAT, "the last check and which alerts were sent")
    }

    pub fn save_monitor(&self, monitor: &Monitor) -> anyhow::Result<()> {
        self.write_secret(&self.monitor_path(), &state::encode(monitor, MONITOR_FORMAT)?)
    }
}

impl StateStorage for StateDir {
    fn load_state(&self) -> anyhow::Result<State> {
        let path = self.state_path();
        load_versioned(&path, STATE_FORMAT, "failure counts and ARI windows, nothing else")
    }

    fn save_state(&self, state: &State) -> anyhow::Result<()> {
        self.write_secret(&self.state_path(), &state::encode(state, STATE_FORMAT)?)
    }
}

/// One of the state dir's versioned JSON files; a missing one is the default. `forgotten` is what removing a damaged
/// one costs. A file of a newer format is refused and left alone: an older hapcert must not overwrite what it cannot read.
fn load_versioned<T: DeserializeOwned + Default>(path: &Path, supported: u32, forgotten: &str) -> anyhow::Result<T> {
    let Some(bytes) = read_if_present(path)? else {
        return Ok(T::default());
    };
    state::decode(&bytes, supported).map_err(|err| match err {
        FormatError::Newer { .. } => anyhow::anyhow!("{}: {err}", path.display()),
        FormatError::Damaged(inner) => anyhow::anyhow!(
            "{} is damaged; remove it to start afresh (hapcert then forgets {forgotten}): {inner}",
            path.display()
        ),
    })
}

fn read_if_present(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Held for the whole run; the OS releases the lock when the process ends, however it ends.
pub struct RunLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schedule::Failures;
    use crate::core::state::{CertState, LastResult, Outcome};

    #[test]
    fn atomic_write_sets_mode_replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.pem");
        write_atomic(&path, b"one", 0o600, FileOwner::default()).unwrap();
        write_atomic(&path, b"two", 0o640, FileOwner::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["site.pem"]);
    }

    #[test]
    fn a_batch_writes_each_file_whole_and_one_that_fails_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..20).map(|i| dir.path().join(format!("site{i}.pem"))).collect();
        write_atomic(&paths[3], b"old", 0o600, FileOwner::default()).unwrap();
        let missing = dir.path().join("no-such-dir").join("x.pem");
        let bodies: Vec<String> = (0..20).map(|i| format!("new {i}")).collect();
        let mut files: Vec<Whole<'_>> = paths
            .iter()
            .zip(&bodies)
            .map(|(path, body)| Whole {
                path,
                bytes: body.as_bytes(),
                mode: 0o640,
                owner: FileOwner::default(),
            })
            .collect();
        files.insert(
            5,
            Whole {
                path: &missing,
                bytes: b"lost",
                mode: 0o600,
                owner: FileOwner::default(),
            },
        );
        let results = write_atomic_all(&files);
        assert_eq!(results.len(), 21);
        assert!(results[5].is_err());
        assert!(results.iter().enumerate().all(|(i, r)| i == 5 || r.is_ok()));
        for (path, body) in paths.iter().zip(&bodies) {
            assert_eq!(fs::read(path).unwrap(), body.as_bytes());
            assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o640);
        }
        let count = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 20, "no temp file is left");
    }

    #[test]
    fn a_durable_rename_moves_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.json"), dir.path().join("a.json.deactivated"));
        write_atomic(&from, b"secret", 0o600, FileOwner::default()).unwrap();
        rename_durably(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(fs::read(&to).unwrap(), b"secret");
        assert_eq!(fs::metadata(&to).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn state_dir_is_private_and_the_lock_times_out_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let state = StateDir::create(&root).unwrap();
        assert_eq!(fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
        let _held = state.lock(Duration::from_millis(10)).unwrap();
        let err = StateDir::at(&root)
            .lock(Duration::from_millis(200))
            .err()
            .expect("second lock must fail");
        assert!(
            err.to_string()
                .contains("another hapcert run (or a check trying the challenge route) holds the lock"),
            "{err}"
        );
    }

    #[test]
    fn state_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::create(dir.path()).unwrap();
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let mut state = State::default();
        let entry = CertState {
            last: Some(LastResult {
                at: "2026-01-01T00:00:00Z".into(),
                outcome: Outcome::Renewed,
                serial: Some("01".into()),
                message: "ok".into(),
                verified_serial: Some("01".into()),
            }),
            renewal_info: Some(crate::core::ari::record_not_offered(now)),
            failures: Failures::default().after_failure(now, None),
            revoked_serial: None,
            deploying: Some(crate::core::state::Deploying {
                serial: "02".into(),
                since: "2026-01-02T00:00:00Z".into(),
                replaces: Some(crate::core::state::ReplacedFile {
                    mode: 0o640,
                    uid: Some(0),
                    gid: None,
                }),
            }),
            issued_by: Some(crate::core::state::IssuedBy {
                directory: "https://acme.example/directory".into(),
                serial: "01".into(),
            }),
        };
        state.last_run_success = Some(now);
        state.renewals.insert("success".into(), 3);
        state.certificates.insert("www".into(), entry);
        state.failed_authorizations.record(&["www.example".into()], now);
        store.save_state(&state).unwrap();
        let loaded = store.load_state().unwrap();
        assert_eq!(
            loaded.certificates["www"].last.as_ref().unwrap().outcome,
            Outcome::Renewed
        );
        assert_eq!(loaded.certificates["www"].failures.consecutive, 1);
        assert_eq!(
            loaded.certificates["www"].renewal_info,
            state.certificates["www"].renewal_info
        );
        assert_eq!(loaded.failed_authorizations, state.failed_authorizations);
        assert_eq!(
            loaded.certificates["www"].deploying,
            state.certificates["www"].deploying
        );
        assert_eq!(loaded.last_run_success, Some(now));
        assert_eq!(loaded.renewals["success"], 3);
        let mode = fs::metadata(dir.path().join("state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
