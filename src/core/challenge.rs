//! How an order's challenges reach the place the CA validates them, without the ACME edge knowing that place: the
//! HTTP-01 responder publishes a token in memory (`edge::http01::responder`); a DNS-01 provider will publish a TXT
//! record. The ACME edge asks for one answer per pending authorization and holds what it gets back until the order
//! ends, whichever way it ends: dropping it withdraws the answer.

use std::future::Future;

/// The challenge types an order can be answered with, as RFC 8555 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Http01,
    Dns01,
}

impl ChallengeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }
}

/// One challenge to answer: the name being validated, the CA's token, and the key authorization that answers it.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    /// The name without a wildcard label (`example.com` for `*.example.com`), as the CA's authorization holds it.
    pub identifier: &'a str,
    /// Whether the authorization is for the wildcard over `identifier`.
    pub wildcard: bool,
    pub token: &'a str,
    /// What HTTP-01 serves at `/.well-known/acme-challenge/<token>`.
    pub key_authorization: &'a str,
    /// What DNS-01 publishes as the TXT record at `_acme-challenge.<identifier>`: the key authorization's SHA-256,
    /// base64url.
    pub dns_value: &'a str,
}

/// A place where challenge answers are published for the CA's validator.
pub trait ChallengePublisher: Send + Sync {
    /// Held while the answer must stay published; [`ChallengePublisher::withdraw`] (or, as a fallback, dropping it)
    /// withdraws the answer.
    type Published: Send + Sync;

    /// Which challenge type this publisher answers.
    fn kind(&self) -> ChallengeKind;

    /// Publishes the answer to `challenge` at its source (the responder's memory, the zone's primary).
    fn publish(&self, challenge: Challenge<'_>) -> impl Future<Output = anyhow::Result<Self::Published>> + Send;

    /// Waits until every answer in `published` is where the CA will look (every authoritative server of a zone), or
    /// fails naming what lags. Only then is the CA told to validate.
    fn settle(&self, published: &[Self::Published]) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Withdraws the answers, once the CA has decided on every authorization.
    fn withdraw(&self, published: Vec<Self::Published>) -> impl Future<Output = ()> + Send;
}
