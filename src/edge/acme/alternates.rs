//! `preferred_chain`: the CA's alternate chains for a certificate, downloaded only when the default chain does not
//! lead to the root asked for, and the choice among them (the rule is `core::chain::choose`, pure).
//!
//! How the alternates are had, and why this way. A CA lists them as `Link: <url>;rel="alternate"` headers of the
//! certificate download (RFC 8555 §7.4.2). instant-acme 0.8.5 returns only the download's body, and it has no call
//! that POSTs-as-GET to a URL of our choosing. Two halves, then, neither a fork of the crate:
//! - the links are read where every answer passes anyway: our HTTP client under instant-acme (`http::CaHttp`) records
//!   the alternate links of each certificate download, by the download's URL, and the order takes them;
//! - each alternate is fetched by a POST-as-GET (RFC 8555 §6.3) that hapcert signs itself (`jws`): the account's
//!   ES256 key, protected header `alg`/`kid`/`nonce`/`url`, an empty payload. The nonce is the one the certificate
//!   download brought (kept by `CaHttp`), else a HEAD to `newNonce`; a `badNonce` answer carries a fresh one, and the
//!   request goes once more with it. It is sent through the same `CaHttp`, so it is counted, traced and timed out like
//!   every other request.
//!
//! Nothing the CA sends is taken on trust: at most [`MAX_ALTERNATES`] links are followed, an alternate must carry the
//! very leaf of the default chain, and one that cannot be downloaded or read is skipped with a WARN. The run never
//! fails here: the worst outcome is the default chain. Whatever is chosen then goes through `verify_issued`, like any
//! chain, before it is deployed.

use http::Method;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::Acme;
use super::jws::{directory, fresh_nonce, jws, nonce_of, send, signing_key};
use crate::core::chain::{Choice, choose, matches, topmost_issuer_cn};

/// The most alternate chains followed for one certificate: Let's Encrypt offers one, a CA that lists dozens is not
/// to be obliged.
pub const MAX_ALTERNATES: usize = 5;

/// One chain as downloaded: the PEM as sent, and its certificates.
struct Downloaded {
    pem: String,
    certs: Vec<CertificateDer<'static>>,
}

impl Downloaded {
    fn parse(pem: String) -> anyhow::Result<Downloaded> {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| anyhow::anyhow!("not a PEM chain: {}", crate::core::pem::pem_syntax(&err)))?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in it");
        Ok(Downloaded { pem, certs })
    }

    fn issuer(&self) -> Option<String> {
        topmost_issuer_cn(&self.certs)
    }
}

impl Acme {
    /// The chain to deploy for the certificate just downloaded from `certificate_url` as `default`: `default` itself
    /// unless `preferred` names another root and the CA offers a chain to it.
    pub(super) async fn pick_chain(
        &self,
        default: String,
        certificate_url: Option<&str>,
        preferred: Option<&str>,
    ) -> String {
        // Taken even when unused, so that nothing piles up in the client.
        let links = certificate_url
            .map(|url| self.observed.take_alternates(url))
            .unwrap_or_default();
        let Some(preferred) = preferred else {
            return default;
        };
        let parsed = Downloaded::parse(default.clone()).ok();
        let default_issuer = parsed.as_ref().and_then(Downloaded::issuer);
        if matches(preferred, default_issuer.as_deref()) {
            tracing::debug!(
                preferred_chain = preferred,
                "the CA's default chain is the preferred one"
            );
            return default;
        }
        let mut links = links;
        if links.len() > MAX_ALTERNATES {
            tracing::warn!(
                offered = links.len(),
                "the CA lists {} alternate chains; only the first {MAX_ALTERNATES} are looked at",
                links.len()
            );
            links.truncate(MAX_ALTERNATES);
        }
        // An alternate is the same certificate with another chain: its leaf must be the default chain's.
        let leaf = parsed.map(|d| d.certs[0].clone());
        let mut issuers = Vec::new();
        let mut chains = Vec::new();
        for link in &links {
            let fetched = match self.post_as_get(link).await.and_then(Downloaded::parse) {
                Ok(chain) if Some(&chain.certs[0]) == leaf.as_ref() => Some(chain),
                Ok(_) => {
                    tracing::warn!(url = %link, "the CA's alternate chain holds another certificate than the one issued; skipped");
                    None
                }
                Err(err) => {
                    tracing::warn!(url = %link, "cannot download the CA's alternate chain, skipped: {err:#}");
                    None
                }
            };
            let issuer = fetched.as_ref().and_then(Downloaded::issuer);
            let found = matches(preferred, issuer.as_deref());
            issuers.push(issuer);
            chains.push(fetched);
            // The first match wins (see `choose`): later alternates need not be fetched.
            if found {
                break;
            }
        }
        match choose(preferred, default_issuer.as_deref(), &issuers) {
            Choice::Default => default,
            Choice::Alternate(index) => {
                tracing::info!(
                    preferred_chain = preferred,
                    url = %links[index],
                    "serving the CA's alternate chain to the preferred root"
                );
                match chains.swap_remove(index) {
                    Some(chain) => chain.pem,
                    None => default,
                }
            }
            Choice::NoMatch { offered } => {
                let offered: Vec<String> = offered.iter().map(|cn| format!("\"{cn}\"")).collect();
                tracing::warn!(
                    preferred_chain = preferred,
                    "no chain the CA offers leads to \"{preferred}\" (offered: {}); serving the default chain. Set \
                     preferred_chain to one of the offered names, or remove it",
                    if offered.is_empty() {
                        "none that could be read".to_owned()
                    } else {
                        offered.join(", ")
                    }
                );
                default
            }
        }
    }

    /// Downloads `url` by a POST-as-GET signed with the account key; the body as text.
    async fn post_as_get(&self, url: &str) -> anyhow::Result<String> {
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this session has no account key"))?;
        let signer = signing_key(key)?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut nonce = self.nonce().await?;
        for attempt in 1..=2 {
            let protected = serde_json::json!({"alg": "ES256", "kid": self.account.id(), "nonce": nonce, "url": url});
            let body = serde_json::to_vec(&jws(&signer, &rng, &protected, b"")?)?;
            let (parts, bytes) = send(&self.http, Method::POST, url, Some(body)).await?;
            if parts.status.is_success() {
                return String::from_utf8(bytes.to_vec()).map_err(|_| anyhow::anyhow!("the chain is not text"));
            }
            let problem = String::from_utf8_lossy(&bytes).into_owned();
            if attempt == 1 && problem.contains("urn:ietf:params:acme:error:badNonce") {
                nonce = nonce_of(&parts)?;
                continue;
            }
            anyhow::bail!("the CA answered {}: {problem}", parts.status);
        }
        unreachable!("the loop returns")
    }

    /// A nonce for one request: one kept from a certificate download, else a fresh one from `newNonce`.
    async fn nonce(&self) -> anyhow::Result<String> {
        if let Some(nonce) = self.http.take_spare_nonce() {
            return Ok(nonce);
        }
        fresh_nonce(
            &self.http,
            &directory(&self.http, &self.directory).await?,
            &self.directory,
        )
        .await
    }
}
