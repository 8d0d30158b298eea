//! Convergence: this node serves what the fleet shares. A shared certificate newer than this node's file is opened,
//! verified as if the CA had just sent it (names, key, chain to a trusted root, validity), then deployed through the
//! same deploy as a renewal (atomic file, hot update or reload, proof on the wire, rollback), and acknowledged in the
//! store. Nothing is ever removed: a certificate the store does not have, or has older, stays as it is.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fleet::layout::SharedCert;
use std::sync::Arc;

use super::deploy::{self, Change, Deployed, Previous};
use crate::core::config::{CertificateSpec, Config, FileOwner};
use crate::core::decision::Local;
use crate::core::pem::{Bundle, CertFacts};
use crate::core::state::State;
use crate::core::state::StateStorage;
use crate::core::state::record::Attempt;
use crate::core::verify::verify_issued;
use crate::edge::store::StateDir;
use crate::fleet::Session;
use crate::fleet::orders::{LockedOrder, Taken};

/// A certificate another node ordered, now deployed here and proven on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub name: String,
    pub serial: String,
    pub ordered_by: String,
}

/// Whether the shared certificate should replace what this node has: another serial that expires no sooner (two
/// renewals moments apart may get the same notAfter; the store's wins the tie).
pub fn is_newer(shared: &SharedCert, local: Option<&CertFacts>) -> bool {
    match local {
        None => true,
        Some(facts) if facts.serial == shared.serial => false,
        Some(facts) => {
            OffsetDateTime::parse(&shared.not_after, &Rfc3339).is_ok_and(|shared_end| shared_end >= facts.not_after)
        }
    }
}

/// The other way round: a certificate this node serves (proven on the wire) that is newer than the fleet's (ordered
/// alone in an emergency, or before the fleet existed) is shared under its lock, so that the fleet settles on one.
async fn share_newer(
    config: &Config,
    state: &State,
    on_disk: &[Local],
    session: &Arc<Session>,
    shared: &[(String, SharedCert)],
) {
    for (spec, local) in config.certificates.iter().zip(on_disk) {
        let Some(facts) = local.facts() else {
            continue;
        };
        let verified = state
            .remembered(&spec.name)
            .last
            .as_ref()
            .and_then(|l| l.verified_serial.as_deref());
        let theirs = shared.iter().find(|(name, _)| *name == spec.name).map(|(_, c)| c);
        let newer = match theirs {
            Some(cert) => {
                cert.serial != facts.serial
                    && OffsetDateTime::parse(&cert.not_after, &Rfc3339).is_ok_and(|end| facts.not_after > end)
            }
            // Shared by `fleet init`, not here: a node that joins never pushes what it had before.
            None => false,
        };
        if !newer || verified != Some(facts.serial.as_str()) || !facts.key_matches {
            continue;
        }
        let Ok(Taken::Locked(order)) = LockedOrder::take(session, &spec.name).await else {
            continue;
        };
        let shared_now = match std::fs::read(&spec.file.value) {
            Ok(pem) => {
                session
                    .store
                    .publish(
                        &order.lock,
                        &spec.name,
                        &String::from_utf8_lossy(&pem),
                        facts,
                        OffsetDateTime::now_utc(),
                    )
                    .await
            }
            Err(err) => Err(err.into()),
        };
        match shared_now {
            Ok(()) => {
                tracing::warn!(certificate = %spec.name, serial = %facts.serial, "this node serves a newer certificate than the fleet's (ordered alone while the store was unreachable); shared it, so the fleet settles on it")
            }
            Err(err) => tracing::warn!(certificate = %spec.name, "cannot share this node's newer certificate: {err:#}"),
        }
        order.release().await;
    }
}

/// Deploys every shared certificate newer than this node's (of the configured ones, or only of `names` when given),
/// records each in the state and updates `on_disk`; a full convergence (no `names`) also shares back what this node
/// has newer ([`share_newer`]). Returns what it adopted. An unreachable store adopts nothing.
pub async fn converge(
    config: &Config,
    owner: FileOwner,
    store: &StateDir,
    state: &mut State,
    on_disk: &mut [Local],
    session: &Arc<Session>,
    names: Option<&[String]>,
) -> Vec<Adopted> {
    let shared = match session.store.shared_certs().await {
        Ok((shared, _)) => shared,
        Err(err) => {
            tracing::warn!("cannot read the fleet's certificates: {err}; serving what this node has");
            return Vec::new();
        }
    };
    let adopted = adopt(config, owner, store, state, on_disk, session, names, &shared).await;
    if names.is_none() {
        share_newer(config, state, on_disk, session, &shared).await;
    }
    adopted
}

#[allow(clippy::too_many_arguments)]
async fn adopt(
    config: &Config,
    owner: FileOwner,
    store: &StateDir,
    state: &mut State,
    on_disk: &mut [Local],
    session: &Session,
    names: Option<&[String]>,
    shared: &[(String, SharedCert)],
) -> Vec<Adopted> {
    let now = OffsetDateTime::now_utc();
    let acked = session.store.own_acks().await.unwrap_or_default();
    let mut wanted = Vec::new();
    for (index, spec) in config.certificates.iter().enumerate() {
        if names.is_some_and(|names| !names.contains(&spec.name)) {
            continue;
        }
        let Some((_, cert)) = shared.iter().find(|(name, _)| *name == spec.name) else {
            continue;
        };
        if is_newer(cert, on_disk[index].facts()) {
            wanted.push((index, spec, cert));
        } else if on_disk[index].facts().is_some_and(|f| f.serial == cert.serial)
            && !acked
                .iter()
                .any(|(name, serial)| *name == spec.name && *serial == cert.serial)
        {
            acknowledge_if_verified(session, state, spec, &cert.serial, now).await;
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }

    let loading = config.clone();
    let roots = match tokio::task::spawn_blocking(move || crate::edge::roots::load(&loading)).await {
        Ok(Ok(roots)) => roots,
        Ok(Err(why)) => {
            tracing::error!("cannot load the roots a shared certificate must lead to: {why}; nothing adopted");
            return Vec::new();
        }
        Err(err) => {
            tracing::error!("loading the trusted roots failed: {err}");
            return Vec::new();
        }
    };
    let mut changes = Vec::new();
    let mut placed = Vec::new();
    for (index, spec, cert) in wanted {
        match open_and_verify(session, spec, cert, &roots, now) {
            Ok(change) => {
                placed.push((index, spec, cert));
                changes.push(change);
            }
            Err(err) => tracing::error!(
                certificate = %spec.name,
                serial = %cert.serial,
                "the fleet's certificate is not deployed: {err:#}"
            ),
        }
    }
    if changes.is_empty() {
        return Vec::new();
    }
    if let Err(err) = super::record_deploys_under_way(store, state, &changes) {
        tracing::error!("cannot record the deploy in the state before writing the files ({err:#}); nothing adopted");
        return Vec::new();
    }
    let outcomes = deploy::deploy(config, owner, store, changes).await;
    let mut adopted = Vec::new();
    let now = OffsetDateTime::now_utc();
    for (outcome, (index, spec, cert)) in outcomes.into_iter().zip(placed) {
        match outcome {
            Deployed::Verified { facts, how } => {
                tracing::info!(certificate = %spec.name, serial = %facts.serial, via = %how, ordered_by = %cert.issued_by, "adopted the fleet's certificate: deployed and verified on the wire");
                state.record(
                    &[(
                        spec.name.as_str(),
                        Attempt::Adopted {
                            serial: &facts.serial,
                            from: &cert.issued_by,
                        },
                    )],
                    now,
                    false,
                );
                acknowledge(session, &spec.name, &facts.serial, now).await;
                adopted.push(Adopted {
                    name: spec.name.clone(),
                    serial: facts.serial.clone(),
                    ordered_by: cert.issued_by.clone(),
                });
                on_disk[index] = Local::Present(facts);
            }
            Deployed::Failed(failure) => {
                tracing::error!(certificate = %spec.name, serial = %cert.serial, "the fleet's certificate could not be deployed here: {}", failure.message);
                let message = format!("adopting the fleet's certificate failed: {}", failure.message);
                let failed_names = Vec::new();
                state.record(
                    &[(
                        spec.name.as_str(),
                        Attempt::Failed {
                            message: &message,
                            rate_limited_until: None,
                            failed_names: &failed_names,
                        },
                    )],
                    now,
                    false,
                );
            }
        }
    }
    if let Err(err) = store.save_state(state) {
        tracing::error!("cannot save the state after adopting: {err:#}");
    }
    adopted
}

fn open_and_verify(
    session: &Session,
    spec: &CertificateSpec,
    cert: &SharedCert,
    roots: &crate::core::trust::TrustRoots,
    now: OffsetDateTime,
) -> anyhow::Result<Change> {
    let pem = session.store.open_pem(&spec.name, cert)?;
    let bundle = Bundle::parse(&pem).map_err(|e| anyhow::anyhow!("the shared PEM does not parse: {e}"))?;
    let new = verify_issued(&bundle, &spec.domain_set(), roots, now)
        .map_err(|e| anyhow::anyhow!("the shared certificate fails verification for this node's config: {e}"))?;
    let previous = Previous::read(&spec.file.value).ok();
    Ok(Change {
        spec: spec.clone(),
        previous,
        new,
    })
}

/// Tells the fleet that this node serves `serial` of `name`, proven on the wire.
pub async fn acknowledge(session: &Session, name: &str, serial: &str, now: OffsetDateTime) {
    if let Err(err) = session.store.acknowledge(name, serial, now).await {
        tracing::warn!(
            certificate = name,
            "cannot acknowledge serial {serial} to the fleet: {err}"
        );
    }
}

/// The file already holds the shared serial: acknowledged once the state says it was proven served.
async fn acknowledge_if_verified(
    session: &Session,
    state: &State,
    spec: &CertificateSpec,
    serial: &str,
    now: OffsetDateTime,
) {
    let verified = state
        .remembered(&spec.name)
        .last
        .as_ref()
        .and_then(|l| l.verified_serial.as_deref());
    if verified == Some(serial) {
        acknowledge(session, &spec.name, serial, now).await;
    }
}

/// A convergence on its own (the daemon's, after the watch saw a change): under the run lock, with the state and the
/// files read afresh.
pub async fn sync(
    config: &Config,
    owner: FileOwner,
    lock_timeout: std::time::Duration,
    session: &Arc<Session>,
    names: Option<&[String]>,
) -> anyhow::Result<Vec<Adopted>> {
    let store = StateDir::create(&config.state.dir.value)?;
    let _lock = store.lock(lock_timeout)?;
    let mut state = store.load_state()?;
    let mut on_disk = super::read_certificates(config, &store)?;
    Ok(converge(config, owner, &store, &mut state, &mut on_disk, session, names).await)
}
