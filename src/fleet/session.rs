//! A node's presence in the fleet: the store, and a lease kept alive in the background. Locks and published tokens
//! live under the lease, so a node that dies or is paused past `[fleet] lease_ttl` lets go of them by itself. A daemon
//! also announces itself under it (`nodes/<node>/member`); a one-shot `run` does not, and revokes its lease when done.
//!
//! A lease that expired (a long pause, a partition) is replaced by a new one. What was held under the old one is gone,
//! and the fencing in [`super::store`] refuses every write made in its name.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::store::FleetStore;
use crate::core::config::FleetConfig;
use crate::edge::etcd::EtcdError;
use crate::error::UsageError;

pub struct Session {
    pub store: FleetStore,
    lease: Arc<AtomicI64>,
    keep_alive: JoinHandle<()>,
    pub config: FleetConfig,
}

impl Session {
    /// Connects, takes a lease, and (for a daemon, `member`: the certificates it is configured with) announces the node.
    /// Fails when etcd cannot be reached.
    pub async fn open(fleet: &FleetConfig, member: Option<Vec<String>>) -> anyhow::Result<Arc<Session>> {
        let store = FleetStore::connect(fleet)?;
        let lease = store.client().lease_grant(fleet.lease_ttl).await?;
        // A node with another fleet key is stopped here, before it can read or write anything else.
        if let Err(err) = store.account().await {
            let _ = store.client().lease_revoke(lease.id).await;
            if err.downcast_ref::<EtcdError>().is_some() {
                return Err(err);
            }
            return Err(UsageError(format!(
                "{err:#}; this node's [fleet] key_file ({}) is not the fleet's key, so it takes no part in the fleet",
                fleet.key_file.value.display()
            ))
            .into());
        }
        let advertise = fleet.advertise.map(|a| a.to_string());
        if let Some(certificates) = &member {
            store
                .join(lease.id, advertise.clone(), certificates, OffsetDateTime::now_utc())
                .await?;
            tracing::info!(node = store.node(), prefix = %fleet.prefix, "joined the fleet");
        }
        let shared = Arc::new(AtomicI64::new(lease.id));
        let keeper = Keeper {
            store: store.clone(),
            lease: shared.clone(),
            ttl: fleet.lease_ttl,
            member: member.map(|certificates| (advertise, certificates)),
        };
        Ok(Arc::new(Session {
            store,
            lease: shared,
            keep_alive: tokio::spawn(keeper.run()),
            config: fleet.clone(),
        }))
    }

    /// The lease that locks and tokens are held under now.
    pub fn lease(&self) -> i64 {
        self.lease.load(Ordering::SeqCst)
    }

    /// Revokes the lease: this node's locks, tokens and membership go at once, not a TTL later.
    pub async fn close(&self) {
        self.keep_alive.abort();
        // Not worth a stop that hangs while etcd is away: the lease then ends by itself, lease_ttl later.
        let revoke = self.store.client().lease_revoke(self.lease());
        match tokio::time::timeout(std::time::Duration::from_secs(1), revoke).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!("revoking the fleet lease: {err}"),
            Err(_) => tracing::debug!("revoking the fleet lease: no answer within 1 s; it expires by itself"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

struct Keeper {
    store: FleetStore,
    lease: Arc<AtomicI64>,
    ttl: Duration,
    /// The advertised address and the configured certificates, when the node is a member.
    member: Option<(Option<String>, Vec<String>)>,
}

impl Keeper {
    /// Renews the lease three times per TTL; replaces it once it is gone.
    async fn run(self) {
        let mut complained = false;
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            let id = self.lease.load(Ordering::SeqCst);
            match self.store.client().lease_keep_alive(id).await {
                Ok(_) => {
                    if complained {
                        tracing::info!("the fleet's store answers again; the lease is kept alive");
                        complained = false;
                    }
                }
                Err(EtcdError::LeaseGone { .. }) => {
                    tracing::warn!(
                        "the fleet lease expired (this node was paused or cut off for longer than lease_ttl): its \
                         locks are lost; taking a new lease"
                    );
                    self.replace().await;
                }
                Err(err) => {
                    if !complained {
                        tracing::warn!("cannot keep the fleet lease alive: {err}; serving goes on, renewals wait");
                        complained = true;
                    }
                }
            }
        }
    }

    async fn replace(&self) {
        let lease = match self.store.client().lease_grant(self.ttl).await {
            Ok(lease) => lease,
            Err(err) => {
                tracing::warn!("cannot take a new fleet lease: {err}");
                return;
            }
        };
        self.lease.store(lease.id, Ordering::SeqCst);
        if let Some((advertise, certificates)) = &self.member {
            let joined = self
                .store
                .join(lease.id, advertise.clone(), certificates, OffsetDateTime::now_utc())
                .await;
            if let Err(err) = joined {
                tracing::warn!("cannot announce this node again: {err}");
            }
        }
    }
}
