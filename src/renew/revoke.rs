//! `hapcert revoke NAME`: revokes the deployed certificate at the CA, and remembers it, so that the next `run` replaces
//! it (with a fresh key, as every issuance has) even though its lifetime is far from over.

use std::time::Duration;

use anyhow::bail;
use time::OffsetDateTime;

use crate::core::config::Config;
use crate::core::decision::Local;
use crate::core::pem::Bundle;
use crate::core::state::{LastResult, Outcome, StateStorage};
use crate::core::time::format_rfc3339;
use crate::edge::acme::{Acme, RevokeReason};
use crate::edge::store::StateDir;
use crate::edge::store::facts_cache::read_pem;

pub struct Revoked {
    pub name: String,
    pub serial: String,
}

pub async fn revoke(
    config: &Config,
    names: &[String],
    reason: RevokeReason,
    lock_timeout: Duration,
) -> anyhow::Result<Vec<Revoked>> {
    let store = StateDir::create(&config.state.dir.value)?;
    let _lock = store.lock(lock_timeout)?;
    let specs = config.select(names);
    // Every file is read and understood before the first revocation: all or nothing at the parsing stage.
    let mut leaves = Vec::new();
    for spec in specs {
        // Not from the facts cache: the leaf itself is sent to the CA.
        let disk = read_pem(&spec.file.value);
        let facts = match disk.local {
            Local::Present(facts) => facts,
            Local::Missing => bail!(
                "{}: there is no deployed certificate at {} to revoke",
                spec.name,
                spec.file.value.display()
            ),
            Local::Unreadable(why) | Local::Unparseable(why) => {
                bail!("{}: cannot use {}: {why}", spec.name, spec.file.value.display())
            }
        };
        let bundle = Bundle::parse(disk.bytes.as_deref().unwrap_or_default())?;
        leaves.push((spec.name.clone(), facts.serial, bundle.certs[0].clone().into_owned()));
    }

    let acme = Acme::existing(&config.acme, &store).await?;
    let mut state = store.load_state()?;
    let mut revoked = Vec::new();
    let mut failure = None;
    for (name, serial, leaf) in leaves {
        match acme.revoke(&leaf, reason).await {
            Ok(()) => {
                tracing::info!(certificate = %name, serial = %serial, ?reason, "revoked");
                let entry = state.certificates.entry(name.clone()).or_default();
                entry.revoked_serial = Some(serial.clone());
                entry.last = Some(LastResult {
                    at: format_rfc3339(OffsetDateTime::now_utc()),
                    outcome: Outcome::Revoked,
                    serial: Some(serial.clone()),
                    message: format!("revoked ({reason:?}); the next run replaces it"),
                    verified_serial: entry.last.as_ref().and_then(|l| l.verified_serial.clone()),
                });
                revoked.push(Revoked { name, serial });
            }
            Err(err) => {
                failure = Some(err.context(format!("{name}: serial {serial} was not revoked")));
                break;
            }
        }
    }
    store.save_state(&state)?;
    match failure {
        Some(err) => Err(err),
        None => Ok(revoked),
    }
}
