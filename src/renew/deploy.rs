//! Deploying a batch of new certificates: write the files (keeping the previous ones in the state dir), hand them to
//! HAProxy, prove on the wire that HAProxy serves them, and roll back any certificate that cannot be proven.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::core::config::{CertificateSpec, Config, FileOwner};
use crate::core::pem::{Bundle, CertFacts, serial_hex, sha1_hex};
use crate::core::state::Deploying;
use crate::core::verify::Verified;
use crate::edge::haproxy::{Applied, Haproxy, Update};
use crate::edge::probe::{self, ClientKind};
use crate::edge::store::{self, StateDir};

/// After a reload the new worker takes a moment to own the listeners; a served certificate is looked for this long.
const SERVED_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing new reached HAProxy: a pre hook, the preflight, the order, the CA, the check of what it issued, or the
    /// write of the file failed. The served certificate is untouched.
    NotDeployed,
    /// HAProxy refused the new files (its check, the reload or the hot update failed); the previous ones were put back.
    Refused,
    /// HAProxy took the new certificate but did not serve it on the wire; the previous one was put back.
    Unverified,
}

/// A verified certificate ready to replace what is on disk.
pub struct Change {
    pub spec: CertificateSpec,
    pub previous: Option<Previous>,
    pub new: Verified,
}

/// A file as it was before the run replaced it. A rollback puts all of it back: the operator may have given the file
/// an owner and mode of their own, which the configured ones must not overwrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub bytes: Vec<u8>,
    /// Permission bits only: set-id bits mean nothing on a PEM.
    pub mode: u32,
    pub owner: FileOwner,
}

impl Previous {
    /// Reads the whole file, with the mode and owner of the very file read (not of whatever the path names a moment
    /// later).
    pub fn read(path: &Path) -> std::io::Result<Previous> {
        let mut file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        Ok(Previous {
            bytes,
            mode: meta.mode() & 0o777,
            owner: FileOwner {
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
            },
        })
    }
}

/// What happened to one change.
pub enum Deployed {
    Verified { facts: CertFacts, how: Applied },
    Failed(DeployFailure),
}

/// A change that is not served, and what is served instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployFailure {
    /// `NotDeployed` when the new file could not be written (HAProxy was not asked), else what HAProxy did with it.
    pub kind: FailureKind,
    pub message: String,
    /// The serial an endpoint served instead of the new one, when a handshake showed one.
    pub served_serial: Option<String>,
}

impl DeployFailure {
    fn new(kind: FailureKind, message: String) -> DeployFailure {
        DeployFailure {
            kind,
            message,
            served_serial: None,
        }
    }
}

pub async fn deploy(config: &Config, owner: FileOwner, state: &StateDir, changes: Vec<Change>) -> Vec<Deployed> {
    let haproxy = Haproxy::new(&config.haproxy);
    let mut outcomes: Vec<Option<Deployed>> = changes.iter().map(|_| None).collect();

    tracing::info!(certificates = changes.len(), "writing the new certificate files");
    let mut written = Vec::new();
    for (index, (change, result)) in changes
        .iter()
        .zip(write_all(config, owner, state, &changes))
        .enumerate()
    {
        match result {
            Ok(()) => written.push(index),
            Err(err) => {
                tracing::error!(certificate = %change.spec.name, "{err:#}; the served certificate is untouched");
                outcomes[index] = Some(Deployed::Failed(DeployFailure::new(
                    FailureKind::NotDeployed,
                    format!("{err:#}"),
                )));
            }
        }
    }

    // This line and the one before the writes come once per batch: their timestamps split a large deploy into its
    // writes, HAProxy's part and the handshakes that prove it.
    tracing::info!(
        files = written.len(),
        "certificate files written; handing them to HAProxy"
    );
    let updates: Vec<Update> = written
        .iter()
        .map(|&i| {
            let update = Update::verified(changes[i].spec.file.value.clone(), &changes[i].new);
            match &changes[i].previous {
                Some(previous) => update.replacing(&sha1_hex(&leaf_of(&previous.bytes))),
                None => update,
            }
        })
        .collect();
    let managed: Vec<&Path> = config.certificates.iter().map(|c| c.file.value.as_path()).collect();
    haproxy.abort_interrupted_transaction(&managed).await;
    let how = match haproxy.apply(&updates).await {
        Ok(how) => how,
        Err(err) => {
            tracing::error!("{err}");
            for &index in &written {
                let what = restore_file(&changes[index]);
                tracing::error!(certificate = %changes[index].spec.name, "{what}");
                outcomes[index] = Some(Deployed::Failed(DeployFailure::new(
                    FailureKind::Refused,
                    format!("{err}; {what}; HAProxy was not reloaded by hapcert"),
                )));
            }
            return collect(outcomes);
        }
    };

    let mut to_roll_back = Vec::new();
    for &index in &written {
        let change = &changes[index];
        let (leaf, sha1) = (change.new.leaf_der(), change.new.sha1());
        match verify_served(config, &haproxy, &change.spec, leaf, sha1).await {
            Ok(()) => {
                tracing::info!(certificate = %change.spec.name, serial = %change.new.facts().serial, via = %how, "deployed and verified on the wire");
                outcomes[index] = Some(Deployed::Verified {
                    facts: change.new.facts().clone(),
                    how,
                });
            }
            Err(problem) => to_roll_back.push((index, problem)),
        }
    }
    if !to_roll_back.is_empty() {
        roll_back(config, &haproxy, &changes, to_roll_back, &mut outcomes).await;
    }
    collect(outcomes)
}

fn collect(outcomes: Vec<Option<Deployed>>) -> Vec<Deployed> {
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Deployed::Failed(DeployFailure::new(FailureKind::NotDeployed, "not deployed".into())))
        })
        .collect()
}

/// Writes the batch's files, one result per change: first the backups of every file about to be replaced, all durable
/// before any PEM is replaced (so that a crash can always put one back), then the new PEMs. A change whose backup failed
/// gets no new PEM. Each step is one `write_atomic_all`, which syncs each directory once for the whole batch.
fn write_all(config: &Config, owner: FileOwner, state: &StateDir, changes: &[Change]) -> Vec<anyhow::Result<()>> {
    let mut results: Vec<anyhow::Result<()>> = changes.iter().map(|_| Ok(())).collect();
    let backups: Vec<(usize, PathBuf, &[u8])> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            Some((
                i,
                state.backup_path(&c.spec.name),
                c.previous.as_ref()?.bytes.as_slice(),
            ))
        })
        .collect();
    let secrets: Vec<(&Path, &[u8])> = backups
        .iter()
        .map(|(_, path, bytes)| (path.as_path(), *bytes))
        .collect();
    for ((index, ..), result) in backups.iter().zip(state.write_secrets(&secrets)) {
        results[*index] = result;
    }
    let pems: Vec<usize> = (0..changes.len()).filter(|&i| results[i].is_ok()).collect();
    let wholes: Vec<store::Whole<'_>> = pems
        .iter()
        .map(|&i| store::Whole {
            path: &changes[i].spec.file.value,
            bytes: changes[i].new.pem().as_bytes(),
            mode: config.haproxy.mode,
            owner,
        })
        .collect();
    for (&index, result) in pems.iter().zip(store::write_atomic_all(&wholes)) {
        let file = &changes[index].spec.file.value;
        results[index] = result.with_context(|| format!("cannot write {}", file.display()));
    }
    results
}

/// Puts the previous file back, bytes, mode and owner (or removes a new one), and says what was done.
fn restore_file(change: &Change) -> String {
    restore(&change.spec.file.value, change.previous.as_ref())
}

fn restore(file: &Path, previous: Option<&Previous>) -> String {
    let Some(previous) = previous else {
        return match store::remove_durably(file) {
            Ok(()) => "the new PEM was removed".to_owned(),
            Err(e) => format!("REMOVING THE NEW PEM FAILED ({e}); check {} by hand", file.display()),
        };
    };
    let put_back = |owner| store::write_atomic(file, &previous.bytes, previous.mode, owner);
    let failed = |e| {
        format!(
            "PUTTING THE PREVIOUS PEM BACK FAILED ({e}); check {} by hand",
            file.display()
        )
    };
    match put_back(previous.owner) {
        Ok(()) => "the previous PEM was put back".to_owned(),
        // Without root, a file whose group this user is not in cannot be given that group again; the certificate
        // being served matters more than its owner.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => match put_back(FileOwner::default()) {
            Ok(()) => format!(
                "the previous PEM was put back, but not its owner {}:{} ({e}); chown it by hand",
                previous.owner.uid.unwrap_or_default(),
                previous.owner.gid.unwrap_or_default()
            ),
            Err(e) => failed(e),
        },
        Err(e) => failed(e),
    }
}

/// A deploy a crash interrupted: the certificate, and what the state recorded before its file was written.
#[derive(Clone)]
pub struct Interrupted {
    pub spec: CertificateSpec,
    pub deploying: Deploying,
}

/// How a run ended a deploy a crash interrupted.
#[derive(Debug)]
pub enum Resumed {
    /// The file holds the certificate that deploy wrote, and HAProxy now serves it: the deploy is done.
    Finished { facts: CertFacts, how: Applied },
    /// The crash came before the new file was in place (or after it was put back): HAProxy now serves the file there.
    Served { facts: CertFacts },
    /// The crash came before a first file was written: there is nothing to serve or undo.
    NothingWritten,
    /// The new certificate could not be served: the file it replaced is back, on disk and in HAProxy.
    Undone { facts: Option<CertFacts>, message: String },
    /// Not settled (HAProxy refused, or a file cannot be read): the next run tries again.
    Unsettled { message: String },
}

/// Finishes or undoes the deploys a crash interrupted: whatever each file holds is handed to HAProxy (one batch) and
/// must be seen served; a file holding the interrupted deploy's certificate that is not served is put back from its
/// backup, with the mode and owner recorded. Run at the start of a run, before anything is ordered.
pub async fn resume(config: &Config, state: &StateDir, interrupted: &[Interrupted]) -> Vec<Resumed> {
    let haproxy = Haproxy::new(&config.haproxy);
    let managed: Vec<&Path> = config.certificates.iter().map(|c| c.file.value.as_path()).collect();
    haproxy.abort_interrupted_transaction(&managed).await;

    let mut outcomes: Vec<Option<Resumed>> = interrupted.iter().map(|_| None).collect();
    let mut found = Vec::new();
    for (index, one) in interrupted.iter().enumerate() {
        match on_disk(&one.spec.file.value) {
            Ok(Some(file)) => found.push((index, file)),
            // The crash came before a new certificate's first file was written: there is nothing to serve or undo.
            Ok(None) => outcomes[index] = Some(Resumed::NothingWritten),
            Err(message) => outcomes[index] = Some(Resumed::Unsettled { message }),
        }
    }
    let updates: Vec<Update> = found.iter().map(|(_, f)| f.update()).collect();
    let applied = if updates.is_empty() {
        Ok(Applied::HotUpdated)
    } else {
        haproxy.apply(&updates).await
    };
    let mut to_undo = Vec::new();
    for (index, file) in found {
        let one = &interrupted[index];
        let served = match &applied {
            Ok(_) => verify_served(config, &haproxy, &one.spec, &file.leaf, &sha1_hex(&file.leaf))
                .await
                .map_err(|n| n.problem),
            Err(err) => Err(err.to_string()),
        };
        let ours = file.facts.serial == one.deploying.serial;
        outcomes[index] = Some(match (served, &applied) {
            (Ok(()), Ok(how)) if ours => Resumed::Finished {
                facts: file.facts,
                how: *how,
            },
            (Ok(()), _) => Resumed::Served { facts: file.facts },
            (Err(problem), _) if ours => {
                to_undo.push((index, problem));
                continue;
            }
            (Err(problem), _) => Resumed::Unsettled {
                message: format!(
                    "HAProxy does not serve {} (serial {}): {problem}",
                    one.spec.file.value.display(),
                    file.facts.serial
                ),
            },
        });
    }
    if !to_undo.is_empty() {
        undo(config, state, &haproxy, interrupted, to_undo, &mut outcomes).await;
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Resumed::Unsettled {
                message: "not looked at".into(),
            })
        })
        .collect()
}

/// Puts back the files the interrupted deploys replaced (or removes a first file), hands them to HAProxy, and checks
/// that each is served again.
async fn undo(
    config: &Config,
    state: &StateDir,
    haproxy: &Haproxy,
    interrupted: &[Interrupted],
    failed: Vec<(usize, String)>,
    outcomes: &mut [Option<Resumed>],
) {
    let mut back = Vec::new();
    for (index, problem) in failed {
        let one = &interrupted[index];
        let file = &one.spec.file.value;
        let previous = match one.deploying.replaces {
            None => None,
            Some(replaced) => match std::fs::read(state.backup_path(&one.spec.name)) {
                Ok(bytes) => Some(Previous {
                    bytes,
                    mode: replaced.mode,
                    owner: FileOwner {
                        uid: replaced.uid,
                        gid: replaced.gid,
                    },
                }),
                Err(err) => {
                    outcomes[index] = Some(Resumed::Unsettled {
                        message: format!(
                            "HAProxy does not serve the interrupted deploy's certificate ({problem}), and its backup {} \
                             cannot be read ({err}); put the previous PEM at {} by hand",
                            state.backup_path(&one.spec.name).display(),
                            file.display()
                        ),
                    });
                    continue;
                }
            },
        };
        let what = restore(file, previous.as_ref());
        tracing::warn!(certificate = %one.spec.name, "undoing the interrupted deploy: {problem}; {what}");
        back.push((index, problem, what, previous));
    }
    let updates: Result<Vec<Update>, _> = back
        .iter()
        .filter_map(|(index, _, _, previous)| {
            let pem = String::from_utf8_lossy(&previous.as_ref()?.bytes).into_owned();
            Some(Update::checked(interrupted[*index].spec.file.value.clone(), pem))
        })
        .collect();
    let reapplied = match updates {
        Ok(updates) if updates.is_empty() => Ok(Applied::HotUpdated),
        Ok(updates) => haproxy.apply(&updates).await,
        Err(err) => Err(err),
    };
    for (index, problem, what, previous) in back {
        let spec = &interrupted[index].spec;
        let Some(previous) = previous else {
            // `what` said the file is gone; HAProxy may hold it in memory as well.
            let forgotten = forget_new(haproxy, &spec.file.value).await;
            outcomes[index] = Some(Resumed::Undone {
                facts: None,
                message: format!("the interrupted deploy's certificate was not served ({problem}); {forgotten}"),
            });
            continue;
        };
        let facts = Bundle::parse(&previous.bytes).and_then(|b| b.facts()).ok();
        let old_leaf = leaf_of(&previous.bytes);
        let served = match &reapplied {
            Ok(_) => verify_served(config, haproxy, spec, &old_leaf, &sha1_hex(&old_leaf))
                .await
                .map_err(|n| n.problem),
            Err(err) => Err(err.to_string()),
        };
        outcomes[index] = Some(match served {
            Ok(()) => Resumed::Undone {
                facts,
                message: format!(
                    "the interrupted deploy's certificate was not served ({problem}); {what}, and HAProxy serves it, \
                     serial {}, again",
                    serial(&old_leaf)
                ),
            },
            Err(still) => Resumed::Unsettled {
                message: format!(
                    "the interrupted deploy's certificate was not served ({problem}); {what}, but it is not served \
                     either: {still}"
                ),
            },
        });
    }
}

/// A file as found after a crash: whole (the atomic writer leaves no half file), and checked before HAProxy gets it.
struct Found {
    pem: String,
    path: std::path::PathBuf,
    facts: CertFacts,
    leaf: Vec<u8>,
}

impl Found {
    fn update(&self) -> Update {
        Update::checked(self.path.clone(), self.pem.clone()).expect("checked when the file was read")
    }
}

fn on_disk(file: &Path) -> Result<Option<Found>, String> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot read {} ({err})", file.display())),
    };
    let pem = String::from_utf8_lossy(&bytes).into_owned();
    let invalid = |why: String| format!("{} cannot be served: {why}", file.display());
    Update::checked(file.to_owned(), pem.clone()).map_err(|e| invalid(e.to_string()))?;
    let bundle = Bundle::parse(&bytes).map_err(|e| invalid(e.to_string()))?;
    let facts = bundle.facts().map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Found {
        pem,
        path: file.to_owned(),
        facts,
        leaf: bundle.certs[0].to_vec(),
    }))
}

/// Why a leaf is not counted as served.
struct NotServed {
    problem: String,
    /// What an endpoint served instead, when it completed a handshake.
    served_serial: Option<String>,
}

/// The new leaf must be in use per the Runtime API (when there is one), and every verify endpoint must send it for every
/// name. A certificate with a sibling of the other key kind is asked for by a client of its own kind only.
async fn verify_served(
    config: &Config,
    haproxy: &Haproxy,
    spec: &CertificateSpec,
    leaf: &[u8],
    sha1: &str,
) -> Result<(), NotServed> {
    if let Some(Err(problem)) = haproxy.confirm_loaded(&spec.file.value, sha1).await {
        return Err(NotServed {
            problem,
            served_serial: None,
        });
    }
    let kind = ClientKind::for_certificate(config, spec);
    for endpoint in &spec.verify {
        for domain in &spec.domains {
            served_within(endpoint, domain.as_str(), kind, leaf).await?;
        }
    }
    Ok(())
}

async fn served_within(endpoint: &str, domain: &str, kind: ClientKind, leaf: &[u8]) -> Result<(), NotServed> {
    let deadline = tokio::time::Instant::now() + SERVED_WITHIN;
    loop {
        let (seen, served_serial) = match probe::served_leaf(endpoint, domain, kind).await {
            Ok(served) if served.as_ref() == leaf => return Ok(()),
            Ok(served) => {
                let served_serial = serial(&served);
                (format!("serves serial {served_serial}"), Some(served_serial))
            }
            Err(err) => (format!("{err:#}"), None),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(NotServed {
                problem: format!("{endpoint} (SNI {domain}) {seen}; expected serial {}", serial(leaf)),
                served_serial,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn roll_back(
    config: &Config,
    haproxy: &Haproxy,
    changes: &[Change],
    failed: Vec<(usize, NotServed)>,
    outcomes: &mut [Option<Deployed>],
) {
    // The previous files are not hapcert's fresh issue: each is checked before HAProxy gets it, and one that fails
    // the check keeps the whole batch from being sent.
    let mut back = Vec::new();
    for (index, _) in &failed {
        let change = &changes[*index];
        let what = restore_file(change);
        if let Some(previous) = &change.previous {
            let pem = String::from_utf8_lossy(&previous.bytes).into_owned();
            back.push(Update::checked(change.spec.file.value.clone(), pem).map(|u| u.replacing(change.new.sha1())));
        }
        tracing::warn!(certificate = %change.spec.name, "rolling back: {what}");
    }
    let reapplied = match back.into_iter().collect::<Result<Vec<Update>, _>>() {
        Ok(back) if back.is_empty() => Ok(Applied::HotUpdated),
        Ok(back) => haproxy.apply(&back).await,
        Err(err) => Err(err),
    };
    for (index, not_served) in failed {
        let change = &changes[index];
        let problem = &not_served.problem;
        let action = match (&reapplied, &change.previous) {
            (_, None) => forget_new(haproxy, &change.spec.file.value).await,
            (Err(err), Some(_)) => format!("the previous PEM is back on disk, but HAProxy refused it: {err}"),
            (Ok(how), Some(previous)) => {
                let old_leaf = leaf_of(&previous.bytes);
                match verify_served(config, haproxy, &change.spec, &old_leaf, &sha1_hex(&old_leaf)).await {
                    Ok(()) => format!(
                        "rolled back by {how}: HAProxy serves the previous certificate, serial {}, again",
                        serial(&old_leaf)
                    ),
                    Err(still) => format!(
                        "rolled back by {how}, but the previous certificate is not served either: {}",
                        still.problem
                    ),
                }
            }
        };
        tracing::error!(
            certificate = %change.spec.name,
            expected = %change.new.facts().serial,
            "HAProxy does not serve the new certificate: {problem}; {action}"
        );
        outcomes[index] = Some(Deployed::Failed(DeployFailure {
            kind: FailureKind::Unverified,
            message: format!(
                "deployed serial {} but could not verify it: {problem}; {action}",
                change.new.facts().serial
            ),
            served_serial: not_served.served_serial,
        }));
    }
}

/// A certificate HAProxy had never loaded before this deploy, whose file the rollback removed: `new ssl cert` and
/// `add ssl crt-list` (or the reload) put it in HAProxy's memory too, where it would stay served until the next reload.
/// It is taken out there as well, and what was done is said.
async fn forget_new(haproxy: &Haproxy, file: &Path) -> String {
    match haproxy.forget(file).await {
        Some(Ok(())) => "the new PEM was removed from disk and from HAProxy's memory".to_owned(),
        Some(Err(err)) => format!(
            "the new PEM was removed from disk, but HAProxy still holds it ({err}); it serves it until its next reload"
        ),
        None => {
            "the new PEM was removed from disk (without a Runtime API, HAProxy drops it at its next reload)".to_owned()
        }
    }
}

/// The leaf of a file hapcert is putting back: decoded here, since it was not issued by this run.
fn leaf_of(pem: &[u8]) -> Vec<u8> {
    Bundle::parse(pem).map(|b| b.certs[0].to_vec()).unwrap_or_default()
}

fn serial(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .map(|(_, c)| serial_hex(c.raw_serial()))
        .unwrap_or_else(|_| "(unparseable)".into())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn a_file_put_back_gets_its_bytes_mode_and_owner_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("www.pem");
        std::fs::write(&file, b"the operator's PEM\r\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (uid, gid) = (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        );
        // Another owner can only be given by root; anyone else checks the mode and their own ids.
        let (owner_uid, owner_gid) = if uid == 0 { (4321, 4322) } else { (uid, gid) };
        std::os::unix::fs::chown(&file, Some(owner_uid), Some(owner_gid)).unwrap();

        let previous = Previous::read(&file).unwrap();
        // What a deploy leaves before it is rolled back: new bytes with the configured mode and owner.
        store::write_atomic(&file, b"the new PEM", 0o600, FileOwner::default()).unwrap();

        assert_eq!(restore(&file, Some(&previous)), "the previous PEM was put back");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"the operator's PEM\r\n");
        assert_eq!(
            (meta.mode() & 0o777, meta.uid(), meta.gid()),
            (0o640, owner_uid, owner_gid)
        );

        assert_eq!(restore(&file, None), "the new PEM was removed");
        assert!(!file.exists());
    }
}
