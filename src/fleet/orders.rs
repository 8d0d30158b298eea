//! One certificate's renewal under its fleet lock: the journal a successor resumes from, and the fenced publish of
//! what was issued. The lock's revision fences both: a holder that lost its lease learns it at its next write, before
//! it finalizes and before it publishes.

use std::sync::Arc;

use time::OffsetDateTime;

use super::session::Session;
use super::store::{Claim, Fenced, Held};
use crate::core::order_journal::OrderJournal;
use crate::core::verify::Verified;

/// A certificate this node has the fleet's lock on.
#[derive(Clone)]
pub struct LockedOrder {
    pub session: Arc<Session>,
    pub lock: Held,
    pub name: String,
}

/// What taking a certificate's lock gave.
pub enum Taken {
    Locked(LockedOrder),
    Busy { holder: String },
}

impl LockedOrder {
    /// Takes the lock on certificate `name`, if no node holds it.
    pub async fn take(session: &Arc<Session>, name: &str) -> anyhow::Result<Taken> {
        let key = session.store.layout().lock(name);
        match session
            .store
            .try_lock(&key, session.lease(), OffsetDateTime::now_utc())
            .await?
        {
            Claim::Busy { holder } => Ok(Taken::Busy { holder }),
            Claim::Held(lock) => Ok(Taken::Locked(LockedOrder {
                session: session.clone(),
                lock,
                name: name.to_owned(),
            })),
        }
    }

    /// An order a previous holder journaled, with the private key its CSR used.
    pub async fn journaled(&self) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        Ok(self
            .session
            .store
            .journal(&self.name)
            .await?
            .map(|(journal, key)| {
                tracing::info!(certificate = %self.name, order = %journal.order_url, by = %journal.node, "found an order journaled by {}; resuming it instead of ordering again", journal.node);
                (journal.order_url, key)
            }))
    }

    /// Forgets a journaled order the CA no longer lets finish.
    pub async fn forget_journal(&self) -> anyhow::Result<()> {
        self.session.store.drop_journal(&self.lock, &self.name).await
    }

    /// Shares what was issued (fenced), and clears the journal.
    pub async fn publish(&self, new: &Verified) -> anyhow::Result<()> {
        self.session
            .store
            .publish(
                &self.lock,
                &self.name,
                new.pem(),
                new.facts(),
                OffsetDateTime::now_utc(),
            )
            .await
    }

    /// Whether this node still holds the lock (its key exists with the revision that created it). A failed order
    /// whose lock is gone was taken over: what the CA said is then the successor's doing, not a failure.
    pub async fn lost(&self) -> Option<Fenced> {
        let current = self.session.store.client().get(self.lock.key.as_bytes()).await.ok()?;
        match current {
            Some(kv) if kv.create_revision == self.lock.revision => None,
            _ => Some(Fenced {
                lock: self.lock.key.clone(),
            }),
        }
    }

    pub async fn release(&self) {
        self.session.store.unlock(&self.lock).await;
    }
}

/// The journal of one order: the fleet's, when the certificate is under a fleet lock.
pub struct Journaling<'a> {
    pub order: Option<&'a LockedOrder>,
    /// The order's private key (PKCS#8 DER), sealed into the journal.
    pub key_der: &'a [u8],
}

impl Journaling<'_> {
    async fn write(&self, order_url: &str, finalizing: bool) -> anyhow::Result<()> {
        let Some(order) = self.order else {
            return Ok(());
        };
        order
            .session
            .store
            .write_journal(
                &order.lock,
                &order.name,
                order_url,
                self.key_der,
                finalizing,
                OffsetDateTime::now_utc(),
            )
            .await
    }
}

impl OrderJournal for Journaling<'_> {
    fn placed(&self, order_url: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        self.write(order_url, false)
    }

    fn finalizing(&self, order_url: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        self.write(order_url, true)
    }
}
