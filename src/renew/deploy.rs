//! Deploying a batch of new certificates: write the files (keeping the previous ones in the state dir), hand them to
//! HAProxy, prove on the wire that HAProxy serves them, and roll back any certificate that cannot be proven.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::core::config::{CertificateSpec, Config, FileOwner};
use crate::core::pem::{Bundle, CertFacts, serial_hex, sha1_hex};
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
    pub previous: Option<Vec<u8>>,
    pub new: Verified,
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

    let mut written = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        match write(config, owner, state, change) {
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

    let updates: Vec<Update> = written
        .iter()
        .map(|&i| Update::verified(changes[i].spec.file.value.clone(), &changes[i].new))
        .collect();
    let how = match haproxy.apply(&updates).await {
        Ok(how) => how,
        Err(err) => {
            tracing::error!("{err}");
            for &index in &written {
                let what = restore_file(config, owner, &changes[index]);
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
        roll_back(config, owner, &haproxy, &changes, to_roll_back, &mut outcomes).await;
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

fn write(config: &Config, owner: FileOwner, state: &StateDir, change: &Change) -> anyhow::Result<()> {
    if let Some(previous) = &change.previous {
        state.write_secret(&state.backup_path(&change.spec.name), previous)?;
    }
    let file = &change.spec.file.value;
    store::write_atomic(file, change.new.pem().as_bytes(), config.haproxy.mode, owner)
        .with_context(|| format!("cannot write {}", file.display()))
}

/// Puts the previous file back (or removes a new one) and says what was done.
fn restore_file(config: &Config, owner: FileOwner, change: &Change) -> String {
    let file: &PathBuf = &change.spec.file.value;
    let restored = match &change.previous {
        Some(bytes) => store::write_atomic(file, bytes, config.haproxy.mode, owner),
        None => store::remove_durably(file),
    };
    match (restored, change.previous.is_some()) {
        (Ok(()), true) => "the previous PEM was put back".to_owned(),
        (Ok(()), false) => "the new PEM was removed".to_owned(),
        (Err(e), _) => format!(
            "PUTTING THE PREVIOUS PEM BACK FAILED ({e}); check {} by hand",
            file.display()
        ),
    }
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
    owner: FileOwner,
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
        let what = restore_file(config, owner, change);
        if let Some(previous) = &change.previous {
            let pem = String::from_utf8_lossy(previous).into_owned();
            back.push(Update::checked(change.spec.file.value.clone(), pem));
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
            (_, None) => "the new PEM was removed from disk (HAProxy drops it at its next reload)".to_owned(),
            (Err(err), Some(_)) => format!("the previous PEM is back on disk, but HAProxy refused it: {err}"),
            (Ok(how), Some(previous)) => {
                let old_leaf = leaf_of(previous);
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

/// The leaf of a file hapcert is putting back: decoded here, since it was not issued by this run.
fn leaf_of(pem: &[u8]) -> Vec<u8> {
    Bundle::parse(pem).map(|b| b.certs[0].to_vec()).unwrap_or_default()
}

fn serial(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .map(|(_, c)| serial_hex(c.raw_serial()))
        .unwrap_or_else(|_| "(unparseable)".into())
}
