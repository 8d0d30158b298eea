//! The one ACME account a fleet shares: one set of rate limits, and the same key thumbprint on every node (which is
//! what makes the stateless HTTP-01 rule right everywhere). The first node that needs it and finds none creates it
//! under the account lock and shares it, sealed; every other node copies it into its state dir before ordering.

use std::time::{Duration, Instant};

use anyhow::Context;
use time::OffsetDateTime;

use super::session::Session;
use super::store::Claim;
use crate::core::config::Config;
use crate::edge::acme::Acme;
use crate::edge::store::StateDir;

/// How long a node waits for another one that is creating the account.
const WAIT_FOR_CREATOR: Duration = Duration::from_secs(60);

/// Makes this node's account file the fleet's, creating and sharing the account if the fleet has none yet.
pub async fn ensure(config: &Config, store: &StateDir, session: &Session) -> anyhow::Result<()> {
    let path = store.account_path(&config.acme.directory);
    let started = Instant::now();
    loop {
        if let Some(shared) = session.store.account().await? {
            return adopt(store, &path, &shared);
        }
        let lock_key = session.store.layout().account_lock();
        match session
            .store
            .try_lock(&lock_key, session.lease(), OffsetDateTime::now_utc())
            .await?
        {
            Claim::Held(lock) => {
                let outcome = create_and_share(config, store, session, &path).await;
                session.store.unlock(&lock).await;
                return outcome;
            }
            Claim::Busy { holder } if started.elapsed() < WAIT_FOR_CREATOR => {
                tracing::info!("{holder} is creating the fleet's ACME account; waiting for it");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Claim::Busy { holder } => anyhow::bail!(
                "{holder} has held the fleet's account lock for over {}s without sharing an account; check that node",
                WAIT_FOR_CREATOR.as_secs()
            ),
        }
    }
}

/// Before a command outside a run uses the account (`haproxy-config`, `preflight`): with `[fleet]`, the fleet's.
pub async fn use_fleets(config: &Config, store: &StateDir) -> anyhow::Result<()> {
    let Some(fleet) = &config.fleet else {
        return Ok(());
    };
    let session = Session::open(fleet, None).await?;
    let outcome = ensure(config, store, &session).await;
    session.close().await;
    outcome
}

/// Under the account lock: the account this node has (say, from single-node days), or a new one, shared.
async fn create_and_share(
    config: &Config,
    store: &StateDir,
    session: &Session,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    // Another node may have shared one between the read and the lock.
    if let Some(shared) = session.store.account().await? {
        return adopt(store, path, &shared);
    }
    if !path.exists() {
        Acme::connect(&config.acme, store).await?;
    }
    let file = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if session.store.share_account(&file).await? {
        tracing::info!(
            node = session.store.node(),
            "shared this node's ACME account with the fleet"
        );
    }
    Ok(())
}

/// Writes the fleet's account file here, when it differs from the one here.
fn adopt(store: &StateDir, path: &std::path::Path, shared: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(shared) {
        return Ok(());
    }
    if let Ok(own) = std::fs::read(path) {
        // Kept, not lost: it may hold certificates' history at the CA, or be needed to revoke what it ordered.
        let kept = path.with_extension("json.before-fleet");
        store.write_secret(&kept, &own)?;
        tracing::warn!(file = %path.display(), kept = %kept.display(), "this node's ACME account differs from the fleet's; using the fleet's, and keeping this one");
    }
    store.write_secret(path, shared)
}
