//! Where an order is written down before the CA can act on it, without the ACME edge knowing where: a fleet keeps its
//! orders in the shared store, so that a successor resumes an order instead of placing another one (and a holder that
//! lost its lock learns it before finalizing); a single node keeps nothing.

use std::future::Future;

/// Told of an order at the two points that matter. An error from either stops the order where it is.
pub trait OrderJournal: Send + Sync {
    /// The order exists at the CA, at `order_url`.
    fn placed(&self, order_url: &str) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The order is about to be finalized: once asked, the CA may issue at any moment.
    fn finalizing(&self, order_url: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// No journal: a single node's orders live and die with its run.
pub struct Unjournaled;

impl OrderJournal for Unjournaled {
    fn placed(&self, _: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    fn finalizing(&self, _: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}
