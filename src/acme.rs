//! The ACME CA. The only module that uses instant-acme: the account (made on first use, stored in the state directory,
//! reused afterwards) and the order flow for one certificate over HTTP-01.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use crate::config::{AcmeConfig, DomainName};
use crate::responder::ChallengeTokens;
use crate::store::StateDir;

/// How often one request is sent again after `badNonce`, on top of instant-acme's own three tries. A CA that rejects
/// nonces at random (Pebble does, on purpose) must not fail a renewal.
const NONCE_RETRIES: usize = 10;

/// Polling starts fast (Pebble and Let's Encrypt often validate within a second), backs off, and honours Retry-After.
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

/// Runs `$call` again while the CA answers `badNonce`. A macro, not a function, because each call borrows the order anew.
macro_rules! retry_bad_nonce {
    ($call:expr) => {{
        let mut attempt = 0;
        loop {
            match $call {
                Err(err) if is_bad_nonce(&err) && attempt < NONCE_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "the CA rejected a nonce; sending again");
                }
                other => break other,
            }
        }
    }};
}

fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(problem) if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// What an operator should do when the CA refuses a new account over External Account Binding, or None when the refusal
/// is about something else. The CA's own problem stays in the message too: CAs word these differently (Pebble says
/// `unauthorized` for a wrong HMAC key or an unknown key id).
fn eab_refusal(err: &instant_acme::Error, eab_configured: bool) -> Option<&'static str> {
    let instant_acme::Error::Api(problem) = err else {
        return None;
    };
    let kind = problem.r#type.as_deref()?.strip_prefix("urn:ietf:params:acme:error:")?;
    match (kind, eab_configured) {
        ("externalAccountRequired", false) => Some(
            "the CA requires External Account Binding: set acme.eab_kid and acme.eab_hmac_key to the key id and HMAC \
             key the CA gave you",
        ),
        ("externalAccountRequired" | "unauthorized" | "malformed", true) => Some(
            "the CA rejected the External Account Binding: check acme.eab_kid and acme.eab_hmac_key against what the \
             CA gave you",
        ),
        _ => None,
    }
}

/// The account file: instant-acme's credentials (which hold the account key) plus what `account show` prints.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory: String,
    url: String,
    contact: Vec<String>,
    created: String,
    credentials: AccountCredentials,
}

/// The public part of the account file, for `account show`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountSummary {
    pub directory: String,
    pub url: String,
    pub contact: Vec<String>,
    pub created: String,
}

pub fn account_summary(state: &StateDir, directory: &str) -> anyhow::Result<Option<AccountSummary>> {
    let path = state.account_path(directory);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?,
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A CA session with a ready account.
pub struct Acme {
    account: Account,
}

impl Acme {
    /// Loads the account for the configured directory, or makes one and stores it (0600) before first use.
    pub async fn connect(config: &AcmeConfig, state: &StateDir) -> anyhow::Result<Acme> {
        let builder = || match &config.ca_bundle {
            Some(bundle) => Account::builder_with_root(&bundle.value)
                .with_context(|| format!("cannot use the CA bundle {}", bundle.value.display())),
            None => Account::builder().context("cannot set up HTTPS to the CA"),
        };
        let path = state.account_path(&config.directory);
        if let Ok(bytes) = std::fs::read(&path) {
            let file: AccountFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("the account file {} is damaged", path.display()))?;
            let account = builder()?
                .from_credentials(file.credentials)
                .await
                .with_context(|| format!("cannot reach the ACME directory {}", config.directory))?;
            tracing::debug!(account = account.id(), "using the stored ACME account");
            return Ok(Acme { account });
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
                    .decode(eab.hmac_key.trim_end_matches('='))
                    .context("acme.eab_hmac_key is not valid base64url")?;
                Some(ExternalAccountKey::new(eab.kid.clone(), &key))
            }
            None => None,
        };
        let (account, credentials) = retry_bad_nonce!(
            builder()?
                .create(&new_account, config.directory.clone(), eab.as_ref())
                .await
        )
        .map_err(|err| match eab_refusal(&err, eab.is_some()) {
            Some(what_to_do) => anyhow::Error::from(err).context(what_to_do),
            None => err.into(),
        })
        .with_context(|| format!("cannot create an ACME account at {}", config.directory))?;
        let file = AccountFile {
            directory: config.directory.clone(),
            url: account.id().to_owned(),
            contact: config.contact.clone(),
            created: crate::status::format_rfc3339(time::OffsetDateTime::now_utc()),
            credentials,
        };
        state.write_secret(&path, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(account = account.id(), directory = %config.directory, "created an ACME account");
        Ok(Acme { account })
    }

    /// The account key's JWK thumbprint: the part after the dot of every key authorization.
    pub fn thumbprint(&self) -> &str {
        self.account.key_thumbprint()
    }

    /// Orders a certificate for `domains`, answers HTTP-01 through `tokens`, finalizes with `csr_der`, and returns the
    /// chain the CA sends (PEM, leaf first).
    pub async fn issue(
        &self,
        domains: &[DomainName],
        csr_der: &[u8],
        tokens: &ChallengeTokens,
    ) -> anyhow::Result<String> {
        let identifiers: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.to_string())).collect();
        let mut order = retry_bad_nonce!(self.account.new_order(&NewOrder::new(&identifiers)).await)
            .context("the CA refused the order")?;
        tracing::debug!(order = order.url(), "order placed");

        // Tokens stay published until this function returns, whichever way it returns.
        let mut published = Vec::new();
        let mut handled: HashSet<String> = HashSet::new();
        let mut attempts = 0;
        'restart: loop {
            let mut authorizations = order.authorizations();
            while let Some(next) = authorizations.next().await {
                let mut authz = match next {
                    Ok(authz) => authz,
                    // The stream keeps what it fetched, so a fresh one resumes where this one failed.
                    Err(err) if is_bad_nonce(&err) && attempts < NONCE_RETRIES => {
                        attempts += 1;
                        continue 'restart;
                    }
                    Err(err) => return Err(err).context("cannot fetch an authorization"),
                };
                if !handled.insert(authz.url().to_owned()) {
                    continue;
                }
                let name = authz.identifier().to_string();
                match authz.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => bail!("the CA's authorization for {name} is {other:?}; it cannot be completed"),
                }
                let mut challenge = authz
                    .challenge(ChallengeType::Http01)
                    .with_context(|| format!("the CA offers no HTTP-01 challenge for {name}"))?;
                published.push(tokens.publish(&challenge.token, challenge.key_authorization().as_str())?);
                retry_bad_nonce!(challenge.set_ready().await)
                    .with_context(|| format!("the CA refused to start validating {name}"))?;
            }
            break;
        }

        let status = retry_bad_nonce!(order.poll_ready(&polling()).await).context("waiting for the CA to validate")?;
        if status != OrderStatus::Ready {
            bail!("validation failed: {}", self.validation_errors(&mut order).await);
        }
        drop(published);

        retry_bad_nonce!(order.finalize_csr(csr_der).await).context("the CA refused to finalize the order")?;
        retry_bad_nonce!(order.poll_certificate(&polling()).await)
            .context("waiting for the CA to issue the certificate")
    }

    /// What the CA said about each failed authorization, for the error message an operator reads.
    async fn validation_errors(&self, order: &mut instant_acme::Order) -> String {
        let mut problems = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = retry_bad_nonce!(authz.refresh().await) else {
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
        }
        if problems.is_empty() {
            "the order became invalid".into()
        } else {
            problems.join("; ")
        }
    }
}
