//! The ACME CA. The only module that uses instant-acme: the account (made on first use, stored in the state directory,
//! reused afterwards), the order flow for one certificate over HTTP-01, renewal information (ARI, RFC 9773),
//! revocation, the account's own life cycle (in `account`), and the choice among the chains the CA offers for a
//! certificate (`preferred_chain`, in `alternates`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AccountBuilder, AuthorizationStatus, AuthorizedIdentifier, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy, RevocationReason,
    RevocationRequest,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::core::ari::Suggested;
use crate::core::challenge::{Challenge, ChallengeKind, ChallengePublisher};
use crate::core::config::{AcmeConfig, DomainName};
use crate::core::order_journal::OrderJournal;
use crate::edge::store::StateDir;

/// How often one request is sent again after `badNonce`, on top of instant-acme's own three tries. A CA that rejects
/// nonces at random (Pebble does, on purpose) must not fail a renewal.
const NONCE_RETRIES: u32 = 10;

/// How often one request is sent again after a network error or a 5xx from the CA, with `http::transient_backoff`.
const TRANSIENT_RETRIES: u32 = 2;

/// Runs `$call` again while the CA answers `badNonce` (at once: the answer carries a fresh nonce), or while the CA
/// cannot be reached or answers 5xx (after a backoff). A macro, not a function, because each call borrows anew.
macro_rules! retry_transient {
    ($call:expr) => {{
        let (mut nonces, mut transients) = (0, 0);
        loop {
            match $call {
                Err(err) if $crate::edge::acme::is_bad_nonce(&err) && nonces < $crate::edge::acme::NONCE_RETRIES => {
                    nonces += 1;
                    tracing::debug!(attempt = nonces, "the CA rejected a nonce; sending again");
                }
                Err(err)
                    if $crate::edge::acme::is_transient(&err) && transients < $crate::edge::acme::TRANSIENT_RETRIES =>
                {
                    transients += 1;
                    let wait = $crate::edge::acme::http::transient_backoff(transients);
                    tracing::warn!(
                        attempt = transients,
                        ?wait,
                        "the CA did not answer properly ({err}); trying again"
                    );
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        }
    }};
}

mod account;
mod alternates;
pub mod http;
mod jws;

use account::AccountFile;
pub use account::{AccountStanding, AccountSummary, account_summary};
use http::{CaHttp, Observed};

fn polling() -> RetryPolicy {
    // Starts fast (Pebble and Let's Encrypt often validate within a second), backs off, and honours Retry-After.
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

fn problem_type(err: &instant_acme::Error) -> Option<&str> {
    match err {
        instant_acme::Error::Api(problem) => problem.r#type.as_deref(),
        _ => None,
    }
}

pub(crate) fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    problem_type(err) == Some("urn:ietf:params:acme:error:badNonce")
}

/// Worth asking again in a moment: the network failed, or the CA had an internal error.
pub(crate) fn is_transient(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Api(problem) => problem.status.is_some_and(|s| s >= 500),
        instant_acme::Error::Hyper(_) | instant_acme::Error::Other(_) => true,
        _ => false,
    }
}

/// The reasons RFC 5280 §5.3.1 defines that a subscriber may give (Let's Encrypt accepts exactly these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RevokeReason {
    #[value(name = "unspecified")]
    Unspecified,
    /// The private key is, or may be, known to someone else.
    #[value(name = "keyCompromise")]
    KeyCompromise,
    #[value(name = "affiliationChanged")]
    AffiliationChanged,
    /// Replaced by another certificate.
    #[value(name = "superseded")]
    Superseded,
    /// The names are no longer served.
    #[value(name = "cessationOfOperation")]
    CessationOfOperation,
}

/// The CA refused for rate limiting; `until` is its Retry-After, when it gave one.
#[derive(Debug, thiserror::Error)]
#[error("the CA is rate limiting{}: {detail}", until.map(|u| format!(" until {}", crate::core::time::format_rfc3339(u))).unwrap_or_default())]
pub struct RateLimited {
    pub until: Option<OffsetDateTime>,
    pub detail: String,
}

/// Validation of some names failed: they count against the CA's failed-authorization limit.
#[derive(Debug, thiserror::Error)]
#[error("validation failed: {detail}")]
pub struct ValidationFailed {
    pub names: Vec<String>,
    pub detail: String,
}

/// What an operator should do when the CA refuses a new account over External Account Binding, or None when the refusal
/// is about something else. The CA's own problem stays in the message too: CAs word these differently (Pebble says
/// `unauthorized` for a wrong HMAC key or an unknown key id).
fn eab_refusal(err: &instant_acme::Error, eab_configured: bool) -> Option<&'static str> {
    let kind = problem_type(err)?.strip_prefix("urn:ietf:params:acme:error:")?;
    match (kind, eab_configured) {
        ("externalAccountRequired", false) => Some(
            "the CA requires External Account Binding: set acme.eab_kid and acme.eab_hmac_key_file (a file of mode \
             0600 holding the HMAC key) to the key id and HMAC key the CA gave you",
        ),
        ("externalAccountRequired" | "unauthorized" | "malformed", true) => Some(
            "the CA rejected the External Account Binding: check acme.eab_kid and acme.eab_hmac_key (or the file named by \
             acme.eab_hmac_key_file) against what the CA gave you",
        ),
        _ => None,
    }
}

/// Turns instant-acme's error into one an operator can act on; a rate limit becomes a [`RateLimited`].
fn describe(err: instant_acme::Error) -> anyhow::Error {
    describe_with(err, None)
}

fn describe_with(err: instant_acme::Error, observed: Option<&Observed>) -> anyhow::Error {
    match err {
        instant_acme::Error::Api(problem)
            if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited") =>
        {
            RateLimited {
                until: observed
                    .and_then(Observed::rate_limited_until)
                    .map(OffsetDateTime::from),
                detail: problem.detail.unwrap_or_else(|| "no detail".into()),
            }
            .into()
        }
        // The stored account is gone at the CA (deactivated elsewhere, or the CA lost its data): every order will fail
        // the same way until a new account is registered, which hapcert does when no account file is there.
        instant_acme::Error::Api(problem)
            if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
        {
            anyhow::anyhow!(
                "the CA does not know the stored account ({}): it was deactivated, or the CA lost its data; move the \
                 account file aside (`hapcert account show` names it) and run again, and hapcert registers a new one",
                problem.detail.as_deref().unwrap_or("no detail")
            )
        }
        // A CA that fails (a 5xx, after the retries) often sends a body instant-acme cannot decode, and "missing field
        // newNonce" would hide what happened.
        other => match observed.and_then(Observed::server_error) {
            Some(answer) => anyhow::anyhow!("the CA answered {answer}; it is failing, try again later ({other})"),
            None => anyhow::Error::new(other),
        },
    }
}

/// An HTTP client of our own for instant-acme (see `http`), trusting the system roots or `ca_bundle`, giving each
/// request `request_timeout`.
fn ca_builder(
    ca_bundle: Option<&Path>,
    request_timeout: Duration,
    observed: Arc<Observed>,
) -> anyhow::Result<AccountBuilder> {
    Ok(Account::builder_with_http(Box::new(CaHttp::new(
        ca_bundle,
        request_timeout,
        observed,
    )?)))
}

/// A renewalInfo body as instant-acme reads it, then as the core records it: the fuzzer's way in, so that it checks
/// this very code. `None` when the body is not a renewalInfo object.
#[cfg(any(fuzzing, test))]
pub(crate) fn suggested_from_json(body: &[u8], retry_after: std::time::Duration) -> Option<Suggested> {
    serde_json::from_slice::<instant_acme::RenewalInfo>(body)
        .ok()
        .map(|info| suggested(info, retry_after))
}

/// The CA's renewalInfo answer as the core records it.
fn suggested(info: instant_acme::RenewalInfo, retry_after: std::time::Duration) -> Suggested {
    Suggested {
        start: info.suggested_window.start,
        end: info.suggested_window.end,
        explanation_url: info.explanation_url,
        retry_after,
    }
}

/// How to order: what the new certificate replaces (its ARI id), and under which profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderOptions<'a> {
    pub replaces: Option<&'a str>,
    pub profile: Option<&'a str>,
    /// An order placed before (by this account, journaled by a fleet node that stopped): taken up where it is instead
    /// of placing a new one. One the CA no longer lets finish fails with [`OrderGone`].
    pub resume: Option<&'a str>,
    /// The issuer common name of the chain to deploy, among those the CA offers (see `alternates`).
    pub preferred_chain: Option<&'a str>,
}

/// The order to resume is invalid or unknown to the CA: a new one must be placed.
#[derive(Debug, thiserror::Error)]
#[error("the journaled order {url} cannot be resumed: {why}")]
pub struct OrderGone {
    pub url: String,
    pub why: String,
}

/// What a CA's directory offers, for `doctor`.
#[derive(Debug, Clone)]
pub struct DirectoryFacts {
    /// Whether the CA suggests renewal windows (ARI, RFC 9773).
    pub renewal_info: bool,
    /// The profiles it offers, sorted; empty when it offers none.
    pub profiles: Vec<String>,
    /// Its clock, from the answer's `Date` header.
    pub date: Option<OffsetDateTime>,
}

/// A CA session with a ready account.
pub struct Acme {
    account: Account,
    directory: String,
    ca_bundle: Option<PathBuf>,
    request_timeout: Duration,
    observed: Arc<Observed>,
    /// The client under `account`, shared with it: what hapcert sends itself goes through it too.
    http: CaHttp,
    /// The account key, for the requests hapcert signs itself; `None` in a session without an account.
    key: Option<PrivatePkcs8KeyDer<'static>>,
}

impl Acme {
    /// Loads the account for the configured directory, or makes one and stores it (0600) before first use.
    pub async fn connect(config: &AcmeConfig, state: &StateDir) -> anyhow::Result<Acme> {
        let observed = Arc::new(Observed::default());
        let ca_bundle = config.ca_bundle.as_ref().map(|b| b.value.clone());
        let http = CaHttp::new(ca_bundle.as_deref(), config.request_timeout, observed.clone())?;
        let builder = || anyhow::Ok(Account::builder_with_http(Box::new(http.clone())));
        let session = |account, key| Acme {
            account,
            directory: config.directory.clone(),
            ca_bundle: ca_bundle.clone(),
            request_timeout: config.request_timeout,
            observed: observed.clone(),
            http: http.clone(),
            key: Some(key),
        };
        let path = state.account_path(&config.directory);
        if let Some(file) = AccountFile::load(&path)? {
            let (url, stored_key) = (file.url.clone(), file.credentials.private_key().clone_key());
            let account = builder()?
                .from_credentials(file.credentials)
                .await
                .map_err(|err| describe_with(err, Some(&observed)))
                .with_context(|| format!("cannot reach the ACME directory {}", config.directory))?;
            tracing::debug!(account = account.id(), "using the stored ACME account");
            let acme = session(account, stored_key.clone_key());
            // A pending key means a rollover was interrupted: the CA says which key the account has now.
            if let Some((account, key)) = acme.finish_interrupted_rollover(state, &url, stored_key).await? {
                return Ok(session(account, key));
            }
            return Ok(acme);
        }

        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let eab = match &config.eab {
            Some(eab) => {
                let key = URL_SAFE_NO_PAD
                    .decode(crate::edge::config_secrets::hmac_key(eab)?.trim_end_matches('='))
                    .context("the EAB HMAC key (acme.eab_hmac_key or acme.eab_hmac_key_file) is not valid base64url; paste it as the CA gave it")?;
                Some(ExternalAccountKey::new(eab.kid.clone(), &key))
            }
            None => None,
        };
        let (account, credentials) = retry_transient!(
            builder()?
                .create(&new_account, config.directory.clone(), eab.as_ref())
                .await
        )
        .map_err(|err| match eab_refusal(&err, eab.is_some()) {
            Some(what_to_do) => describe(err).context(what_to_do),
            None => describe(err),
        })
        .with_context(|| format!("cannot create an ACME account at {}", config.directory))?;
        let key = credentials.private_key().clone_key();
        let file = AccountFile {
            directory: config.directory.clone(),
            url: account.id().to_owned(),
            contact: config.contact.clone(),
            created: crate::core::time::format_rfc3339(OffsetDateTime::now_utc()),
            credentials,
        };
        state.write_secret(&path, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(account = account.id(), directory = %config.directory, "created an ACME account");
        Ok(session(account, key))
    }

    /// A session for what needs no account: renewal information is a plain GET. Used when no account is stored yet,
    /// so that checking windows never registers one, and by `doctor` to read the directory; it must not be used to
    /// order.
    pub async fn without_account(config: &AcmeConfig) -> anyhow::Result<Acme> {
        let observed = Arc::new(Observed::default());
        let ca_bundle = config.ca_bundle.as_ref().map(|b| b.value.clone());
        let (_, throwaway_key) = instant_acme::Key::generate_pkcs8().map_err(describe)?;
        let http = CaHttp::new(ca_bundle.as_deref(), config.request_timeout, observed.clone())?;
        let account = Account::builder_with_http(Box::new(http.clone()))
            .from_parts("urn:hapcert:no-account".into(), throwaway_key, config.directory.clone())
            .await
            .map_err(describe)
            .with_context(|| format!("cannot reach the ACME directory {}", config.directory))?;
        Ok(Acme {
            account,
            directory: config.directory.clone(),
            ca_bundle,
            request_timeout: config.request_timeout,
            observed,
            http,
            key: None,
        })
    }

    /// The account key's JWK thumbprint: the part after the dot of every key authorization.
    pub fn thumbprint(&self) -> &str {
        self.account.key_thumbprint()
    }

    pub fn account_url(&self) -> &str {
        self.account.id()
    }

    /// HTTP requests sent to the CA by this session, retries included.
    pub fn requests(&self) -> usize {
        self.observed.requests()
    }

    /// Checks that the CA offers `profile`, so that a typo fails before any order, with the names that would work.
    pub fn check_profile(&self, profile: &str) -> anyhow::Result<()> {
        let mut offered: Vec<&str> = self.account.profiles().map(|p| p.name).collect();
        offered.sort_unstable();
        if offered.contains(&profile) {
            return Ok(());
        }
        if offered.is_empty() {
            bail!(
                "the CA at {} offers no profiles, so profile \"{profile}\" cannot be used; remove `profile` from the config",
                self.directory
            );
        }
        bail!(
            "the CA at {} does not offer the profile \"{profile}\"; it offers: {}",
            self.directory,
            offered.join(", ")
        )
    }

    /// What the CA's directory offers, read from the directory itself (one GET through the session's client): whether
    /// it has `renewalInfo` (ARI), the profiles it names, and its `Date`, the CA's clock.
    pub async fn directory_facts(&self) -> anyhow::Result<DirectoryFacts> {
        let (parts, body) = jws::send(&self.http, ::http::Method::GET, &self.directory, None).await?;
        if !parts.status.is_success() {
            bail!("GET {} answered {}", self.directory, parts.status);
        }
        let directory: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("{} is not an ACME directory (not JSON)", self.directory))?;
        let mut profiles: Vec<String> = self.account.profiles().map(|p| p.name.to_owned()).collect();
        profiles.sort_unstable();
        Ok(DirectoryFacts {
            renewal_info: directory.get("renewalInfo").is_some_and(serde_json::Value::is_string),
            profiles,
            date: parts
                .headers
                .get(::http::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(self::http::http_date),
        })
    }

    /// The CA's suggested renewal window for the certificate with ARI id `cert_id`, or `None` when the CA's directory
    /// has no `renewalInfo`.
    pub async fn renewal_info(&self, cert_id: &str) -> anyhow::Result<Option<Suggested>> {
        let id = parse_cert_id(cert_id)?;
        match self.account.renewal_info(&id).await {
            Ok((info, retry_after)) => Ok(Some(suggested(info, retry_after))),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(err) => Err(describe(err)).with_context(|| format!("cannot fetch renewal information for {cert_id}")),
        }
    }

    /// Orders a certificate for `domains` (or resumes `options.resume`), tells `journal` of it, answers each challenge
    /// through `publisher`, finalizes with `csr_der`, and returns the chain the CA sends (PEM, leaf first).
    pub async fn issue<P: ChallengePublisher, J: OrderJournal>(
        &self,
        domains: &[DomainName],
        csr_der: &[u8],
        publisher: &P,
        journal: &J,
        options: OrderOptions<'_>,
    ) -> anyhow::Result<String> {
        let mut order = match options.resume {
            Some(url) => self.resume(url).await?,
            None => {
                let order = self.place(domains, options).await?;
                journal.placed(order.url()).await?;
                order
            }
        };
        match order.state().status {
            OrderStatus::Valid | OrderStatus::Processing => {
                tracing::info!(order = order.url(), "resuming an order the CA has already finalized");
            }
            OrderStatus::Ready => self.finalize(&mut order, csr_der, journal).await?,
            _ => {
                self.authorize(&mut order, publisher).await?;
                self.finalize(&mut order, csr_der, journal).await?;
            }
        }
        let chain = retry_transient!(order.poll_certificate(&polling()).await)
            .map_err(describe)
            .context("waiting for the CA to issue the certificate")?;
        let certificate_url = order.state().certificate.clone();
        Ok(self
            .pick_chain(chain, certificate_url.as_deref(), options.preferred_chain)
            .await)
    }

    /// Marks the order finalizing in the journal, then sends the CSR.
    async fn finalize<J: OrderJournal>(
        &self,
        order: &mut instant_acme::Order,
        csr_der: &[u8],
        journal: &J,
    ) -> anyhow::Result<()> {
        journal.finalizing(order.url()).await?;
        retry_transient!(order.finalize_csr(csr_der).await)
            .map_err(describe)
            .context("the CA refused to finalize the order")
    }

    /// A journaled order, as the CA has it now.
    async fn resume(&self, url: &str) -> anyhow::Result<instant_acme::Order> {
        let gone = |why: String| OrderGone {
            url: url.to_owned(),
            why,
        };
        let mut order =
            retry_transient!(self.account.order(url.to_owned()).await).map_err(|e| gone(describe(e).to_string()))?;
        match order.state().status {
            OrderStatus::Invalid => Err(gone("the CA says it is invalid".into()).into()),
            status => {
                tracing::info!(order = url, ?status, "resuming a journaled order");
                Ok(order)
            }
        }
    }

    /// Places a new order.
    async fn place(&self, domains: &[DomainName], options: OrderOptions<'_>) -> anyhow::Result<instant_acme::Order> {
        let identifiers: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.to_string())).collect();
        let new_order = |replaces: Option<&str>| -> anyhow::Result<NewOrder<'_>> {
            let mut order = NewOrder::new(&identifiers);
            if let Some(profile) = options.profile {
                order = order.profile(profile);
            }
            if let Some(id) = replaces {
                order = order.replaces(parse_cert_id(id)?);
            }
            Ok(order)
        };
        let placed = retry_transient!(self.account.new_order(&new_order(options.replaces)?).await);
        let order = match placed {
            // A certificate made by another account (certbot's, say) cannot be replaced by this one; the CA says so,
            // and the order goes out as a new one instead of failing the renewal.
            Err(err) if options.replaces.is_some() && refuses_replaces(&err) => {
                tracing::warn!(
                    "the CA refused to link this order to the certificate it replaces ({err}); ordering without `replaces`"
                );
                retry_transient!(self.account.new_order(&new_order(None)?).await)
            }
            other => other,
        }
        .map_err(|err| describe_with(err, Some(&self.observed)))
        .context("the CA refused the order")?;
        tracing::debug!(
            order = order.url(),
            replaces = options.replaces,
            profile = options.profile,
            "order placed"
        );
        Ok(order)
    }

    /// Answers every pending authorization of `order` and waits until the CA has validated them all. Every answer is
    /// published, then settled where the CA looks, and only then is the CA asked to validate; the answers are withdrawn
    /// when the CA has decided, whichever way.
    async fn authorize<P: ChallengePublisher>(
        &self,
        order: &mut instant_acme::Order,
        publisher: &P,
    ) -> anyhow::Result<()> {
        let mut published = Vec::new();
        let outcome = self.answer(order, publisher, &mut published).await;
        publisher.withdraw(published).await;
        outcome
    }

    async fn answer<P: ChallengePublisher>(
        &self,
        order: &mut instant_acme::Order,
        publisher: &P,
        published: &mut Vec<P::Published>,
    ) -> anyhow::Result<()> {
        let kind = publisher.kind();
        let pending = pending_challenges(order, kind).await?;
        for answer in &pending {
            published.push(publisher.publish(answer.challenge()).await?);
        }
        publisher.settle(published).await?;
        start_validations(order, kind, &pending).await?;

        // An order that becomes invalid comes back as a status or, from some CAs, as the problem of the failed
        // challenge; either way the names whose authorization failed are what the schedule counts.
        let invalid = match retry_transient!(order.poll_ready(&polling()).await) {
            Ok(OrderStatus::Ready) => None,
            Ok(_) => Some(None),
            Err(instant_acme::Error::Api(problem)) => Some(Some(problem)),
            Err(err) => return Err(describe(err)).context("waiting for the CA to validate"),
        };
        if let Some(problem) = invalid {
            let (names, mut detail) = self.validation_errors(order).await;
            if names.is_empty()
                && let Some(problem) = problem
            {
                detail = problem.to_string();
            }
            return Err(ValidationFailed { names, detail }.into());
        }
        Ok(())
    }

    /// Which names failed validation, and what the CA said about each, for the error message an operator reads.
    async fn validation_errors(&self, order: &mut instant_acme::Order) -> (Vec<String>, String) {
        let mut names = Vec::new();
        let mut problems = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = retry_transient!(authz.refresh().await) else {
                continue;
            };
            if state.status == AuthorizationStatus::Valid {
                continue;
            }
            let name = state.identifier().to_string();
            let detail = state
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref())
                .map(|p| {
                    format!(
                        "{} ({})",
                        p.detail.as_deref().unwrap_or("no detail"),
                        p.r#type.as_deref().unwrap_or("no type")
                    )
                })
                .unwrap_or_else(|| format!("authorization is {:?}", state.status));
            problems.push(format!("{name}: {detail}"));
            names.push(name);
        }
        let detail = if problems.is_empty() {
            "the order became invalid".into()
        } else {
            problems.join("; ")
        };
        (names, detail)
    }

    /// Revokes `cert` (RFC 8555 §7.6), signed by the account that ordered it.
    pub async fn revoke(&self, cert: &CertificateDer<'_>, reason: RevokeReason) -> anyhow::Result<()> {
        let reason = match reason {
            RevokeReason::Unspecified => RevocationReason::Unspecified,
            RevokeReason::KeyCompromise => RevocationReason::KeyCompromise,
            RevokeReason::AffiliationChanged => RevocationReason::AffiliationChanged,
            RevokeReason::Superseded => RevocationReason::Superseded,
            RevokeReason::CessationOfOperation => RevocationReason::CessationOfOperation,
        };
        let request = RevocationRequest {
            certificate: cert,
            reason: Some(reason),
        };
        retry_transient!(self.account.revoke(&request).await)
            .map_err(describe)
            .context("the CA refused the revocation")
    }
}

/// Whether a refused order may go out again without `replaces`: the CA has no ARI, or it will not link the order to
/// that certificate (another account's, already replaced, no name in common). Not for rate limits: the CA means those.
fn refuses_replaces(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Api(problem) => {
            problem.status != Some(429) && problem_type(err) != Some("urn:ietf:params:acme:error:rateLimited")
        }
        _ => false,
    }
}

/// "AKI.serial", both base64url, as `pem::CertFacts::ari_id` makes it.
fn parse_cert_id(id: &str) -> anyhow::Result<CertificateIdentifier<'static>> {
    let (aki, serial) = id
        .split_once('.')
        .with_context(|| format!("\"{id}\" is not an ARI certificate id (AKI.serial)"))?;
    Ok(CertificateIdentifier {
        authority_key_identifier: aki.to_owned().into(),
        serial: serial.to_owned().into(),
    })
}

/// One challenge of an order still to answer, as read from its authorization.
struct PendingChallenge {
    authorization: String,
    identifier: String,
    wildcard: bool,
    token: String,
    key_authorization: String,
    dns_value: String,
    /// A resumed order's challenge may have been started already; asking again would be refused.
    started: bool,
}

impl PendingChallenge {
    fn challenge(&self) -> Challenge<'_> {
        Challenge {
            identifier: &self.identifier,
            wildcard: self.wildcard,
            token: &self.token,
            key_authorization: &self.key_authorization,
            dns_value: &self.dns_value,
        }
    }

    /// The name as an operator wrote it.
    fn shown(&self) -> String {
        match self.wildcard {
            true => format!("*.{}", self.identifier),
            false => self.identifier.clone(),
        }
    }
}

fn acme_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    }
}

/// What a walk over an order's authorizations does.
enum Pass<'p> {
    /// Reads the challenges of the pending authorizations.
    Read,
    /// Tells the CA to validate each of these that is not started yet.
    Start(&'p [PendingChallenge]),
}

/// The challenges of `kind` that `order`'s pending authorizations ask for.
async fn pending_challenges(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
) -> anyhow::Result<Vec<PendingChallenge>> {
    walk_authorizations(order, kind, Pass::Read).await
}

/// Tells the CA to validate each of `pending` that is not started yet.
async fn start_validations(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
    pending: &[PendingChallenge],
) -> anyhow::Result<()> {
    walk_authorizations(order, kind, Pass::Start(pending)).await.map(drop)
}

/// One walk over `order`'s authorizations, for either pass. A bad nonce or a transient failure while fetching resumes
/// where it stopped: the stream keeps what it fetched, and each authorization is handled once.
async fn walk_authorizations(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
    pass: Pass<'_>,
) -> anyhow::Result<Vec<PendingChallenge>> {
    let mut read = Vec::new();
    let mut done: HashSet<String> = match pass {
        Pass::Read => HashSet::new(),
        Pass::Start(pending) => pending
            .iter()
            .filter(|p| p.started)
            .map(|p| p.authorization.clone())
            .collect(),
    };
    let mut attempts = 0;
    'restart: loop {
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = match next {
                Ok(authz) => authz,
                Err(err) if (is_bad_nonce(&err) || is_transient(&err)) && attempts < NONCE_RETRIES => {
                    attempts += 1;
                    continue 'restart;
                }
                Err(err) => return Err(describe(err)).context("cannot fetch an authorization"),
            };
            let url = authz.url().to_owned();
            let answer = match pass {
                Pass::Read => None,
                Pass::Start(pending) => match pending.iter().find(|p| p.authorization == url) {
                    Some(answer) => Some(answer),
                    None => continue,
                },
            };
            if !done.insert(url.clone()) {
                continue;
            }
            let name = authz.identifier().to_string();
            if let Some(answer) = answer {
                let mut challenge = authz
                    .challenge(acme_type(kind))
                    .with_context(|| format!("the CA offers no {} challenge for {}", kind.name(), answer.shown()))?;
                retry_transient!(challenge.set_ready().await)
                    .map_err(describe)
                    .with_context(|| format!("the CA refused to start validating {}", answer.shown()))?;
                continue;
            }
            match authz.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => bail!("the CA's authorization for {name} is {other:?}; it cannot be completed"),
            }
            let (identifier, wildcard) = match authz.identifier() {
                AuthorizedIdentifier {
                    identifier: Identifier::Dns(base),
                    wildcard,
                    ..
                } => (base.clone(), wildcard),
                other => bail!("the CA's authorization is for {other}, not a DNS name"),
            };
            let challenge = authz
                .challenge(acme_type(kind))
                .with_context(|| format!("the CA offers no {} challenge for {name}", kind.name()))?;
            let key_authorization = challenge.key_authorization();
            read.push(PendingChallenge {
                authorization: url,
                identifier,
                wildcard,
                token: challenge.token.clone(),
                key_authorization: key_authorization.as_str().to_owned(),
                dns_value: key_authorization.dns_value(),
                started: challenge.status != instant_acme::ChallengeStatus::Pending,
            });
        }
        return Ok(read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_the_ca_does_not_know_says_how_to_recover() {
        let problem: instant_acme::Problem = serde_json::from_str(
            r#"{"type": "urn:ietf:params:acme:error:accountDoesNotExist", "detail": "unable to find account", "status": 400}"#,
        )
        .unwrap();
        let message = format!("{:#}", describe(instant_acme::Error::Api(problem)));
        assert!(
            message.starts_with("the CA does not know the stored account (unable to find account)")
                && message.contains("move the account file aside (`hapcert account show` names it)"),
            "{message}"
        );
    }

    #[test]
    fn a_failing_ca_is_named_for_what_it_answered() {
        let observed = Observed::default();
        observed.record_server_error(Some("500 Internal Server Error for GET https://ca.test/dir".into()));
        let decoding = instant_acme::Error::Json(serde_json::from_str::<u8>("{}").unwrap_err());
        let message = format!("{:#}", describe_with(decoding, Some(&observed)));
        assert!(
            message.starts_with("the CA answered 500 Internal Server Error for GET https://ca.test/dir; it is failing"),
            "{message}"
        );
    }
}
