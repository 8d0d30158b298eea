//! How an order's challenges reach the place the CA validates them, without the ACME edge knowing that place: the
//! HTTP-01 responder publishes a token in memory (`edge::http01::responder`); a DNS-01 provider will publish a TXT
//! record. The ACME edge asks for one answer per pending authorization and holds what it gets back until the order
//! ends, whichever way it ends: dropping it withdraws the answer.

use std::future::Future;

/// The challenge types an order can be answered with, as RFC 8555 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Http01,
}

/// One challenge to answer: the name being validated, the CA's token, and the key authorization that answers it.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    pub identifier: &'a str,
    pub token: &'a str,
    pub key_authorization: &'a str,
}

/// A place where challenge answers are published for the CA's validator.
pub trait ChallengePublisher: Send + Sync {
    /// Held while the answer must stay published; dropping it withdraws the answer.
    type Published: Send;

    /// Which challenge type this publisher answers.
    fn kind(&self) -> ChallengeKind;

    /// Publishes the answer to `challenge`; it is in place (visible to the CA) when the future completes.
    fn publish(&self, challenge: Challenge<'_>) -> impl Future<Output = anyhow::Result<Self::Published>> + Send;
}
