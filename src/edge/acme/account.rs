//! The ACME account: its file in the state directory (instant-acme's credentials, which hold the account key, plus what
//! `account show` prints), and the account's own life cycle: key rollover, contact update, deactivation.

use std::path::Path;

use anyhow::{Context, bail};
use aws_lc_rs::signature::EcdsaKeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use instant_acme::{Account, AccountCredentials, Key};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use super::http::CaHttp;
use super::jws::{self, fresh_nonce, jwk, jws, nonce_of, send, signing_key};
use super::{Acme, ca_builder, describe};
use crate::core::config::AcmeConfig;
use crate::edge::store::StateDir;

#[derive(Serialize, Deserialize)]
pub(super) struct AccountFile {
    pub directory: String,
    pub url: String,
    pub contact: Vec<String>,
    pub created: String,
    pub credentials: AccountCredentials,
}

impl AccountFile {
    pub fn load(path: &Path) -> anyhow::Result<Option<AccountFile>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the account file {} is damaged; restore it from a backup",
                    path.display()
                )
            })?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }
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
    Ok(AccountFile::load(&path)?.map(|file| AccountSummary {
        directory: file.directory,
        url: file.url,
        contact: file.contact,
        created: file.created,
    }))
}

/// What the CA said about an account's key after `deactivate`.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountStanding {
    Valid,
    /// The CA refuses the key; its words.
    Refused(String),
}

impl Acme {
    /// Loads the stored account for `config.directory`; fails if there is none (account commands never create one).
    pub async fn existing(config: &AcmeConfig, state: &StateDir) -> anyhow::Result<Acme> {
        let path = state.account_path(&config.directory);
        if AccountFile::load(&path)?.is_none() {
            bail!(
                "there is no account for {} in {}; `hapcert run` makes one on first use",
                config.directory,
                path.display()
            );
        }
        Acme::connect(config, state).await
    }

    /// Replaces the account key (RFC 8555 §7.3.5). The new key is stored first, as the pending file beside the account
    /// file (0600, atomically), and only then sent to the CA: a crash at any moment leaves a key the CA accepts on disk,
    /// which [`finish_interrupted_rollover`] finds at the next load. Once the CA took it, the pending file replaces the
    /// account file (one rename), and the CA is asked to find the account by the new key.
    pub async fn roll_over_key(self, state: &StateDir) -> anyhow::Result<String> {
        let (path, pending) = (
            state.account_path(&self.directory),
            state.pending_account_path(&self.directory),
        );
        let old = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut file: AccountFile = serde_json::from_slice(&old)?;
        let old_key = file.credentials.private_key().clone_key();
        let (_, new_key) = Key::generate_pkcs8().map_err(describe)?;
        file.credentials = with_key(&file.credentials, &new_key)?;
        state.write_secret(&pending, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(pending = %pending.display(), "stored the new account key as pending; sending it to the CA");

        let http = CaHttp::new(self.ca_bundle.as_deref(), self.request_timeout, self.observed.clone())?;
        match key_change(&http, &self.directory, &file.url, &old_key, &new_key).await {
            Ok(()) => {}
            // The CA never took the new key: the pending key is of no use.
            Err(KeyChangeFailure::NotSent(err)) => {
                crate::edge::store::remove_durably(&pending).ok();
                return Err(err.context("the new account key was not sent to the CA; the old key stays in use"));
            }
            Err(KeyChangeFailure::Refused(err)) => {
                crate::edge::store::remove_durably(&pending).ok();
                return Err(err.context("the CA refused the new account key; the old key stays in use"));
            }
            // The request went out and no answer settles it (a timeout, a lost connection, a 5xx): the CA may hold
            // either key, so the pending one stays for the next load to settle by asking the CA.
            Err(KeyChangeFailure::Unsettled(err)) => {
                return Err(err.context(format!(
                    "no answer says whether the CA took the new account key; it is kept in {}, and the next run asks \
                     the CA which key it holds",
                    pending.display()
                )));
            }
        }
        crate::edge::store::rename_durably(&pending, &path).with_context(|| {
            format!(
                "the CA took the new key, but {} cannot replace {}",
                pending.display(),
                path.display()
            )
        })?;
        tracing::info!(account = %file.url, file = %path.display(), "the CA took the new account key; the account file holds it");

        let found = self
            .look_up_key(PrivateKeyDer::Pkcs8(new_key))
            .await
            .context("the CA took the new key but does not find the account by it")?;
        if found != file.url {
            bail!("the CA finds account {found} by the new key, not {}", file.url);
        }
        Ok(file.url)
    }

    /// A rollover that a crash interrupted left its pending file. The CA decides which key is the account's: when it
    /// still finds the account by the stored key, keyChange never took effect and the pending file is removed; when
    /// it finds it by the pending key, the rollover is finished (the pending file replaces the account file).
    pub(super) async fn finish_interrupted_rollover(
        &self,
        state: &StateDir,
        account: &str,
        stored: PrivatePkcs8KeyDer<'static>,
    ) -> anyhow::Result<Option<(Account, PrivatePkcs8KeyDer<'static>)>> {
        let (path, pending) = (
            state.account_path(&self.directory),
            state.pending_account_path(&self.directory),
        );
        let Some(new) = AccountFile::load(&pending)? else {
            return Ok(None);
        };
        let by_stored = self.look_up_key(PrivateKeyDer::Pkcs8(stored)).await;
        if let Ok(url) = &by_stored
            && url == account
        {
            crate::edge::store::remove_durably(&pending)
                .with_context(|| format!("cannot remove {}", pending.display()))?;
            tracing::warn!(pending = %pending.display(), "removed the pending key of an interrupted rollover: the CA never took it, and the stored key is still the account's");
            return Ok(None);
        }
        let key = PrivateKeyDer::Pkcs8(new.credentials.private_key().clone_key());
        match self.look_up_key(key).await {
            Ok(url) if url == account => {
                crate::edge::store::rename_durably(&pending, &path)
                    .with_context(|| format!("cannot move {} to {}", pending.display(), path.display()))?;
                tracing::warn!(account = %url, file = %path.display(), "finished an interrupted key rollover: the CA had taken the pending key, which now replaces the old one in the account file");
                let key = new.credentials.private_key().clone_key();
                let account = Account::builder_with_http(Box::new(self.http.clone()))
                    .from_credentials(new.credentials)
                    .await
                    .map_err(describe)
                    .context("cannot reach the ACME directory")?;
                Ok(Some((account, key)))
            }
            by_pending => {
                let said = |answer: anyhow::Result<String>| match answer {
                    Ok(url) => format!("account {url}"),
                    Err(err) => format!("{err:#}"),
                };
                bail!(
                    "a key rollover was interrupted, and the CA finds account {account} by neither the key in {} ({}) \
                     nor the pending one in {} ({}); if the CA could not be reached, run hapcert again later; if the \
                     account is gone, move both files aside and run hapcert again to make a new one",
                    path.display(),
                    said(by_stored),
                    pending.display(),
                    said(by_pending)
                )
            }
        }
    }

    /// Sets the account's contacts at the CA, then in the account file.
    pub async fn update_contacts(&self, state: &StateDir, contacts: &[String]) -> anyhow::Result<()> {
        let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
        retry_transient!(self.account.update_contacts(&refs).await)
            .map_err(describe)
            .context("the CA refused the contact update")?;
        let path = state.account_path(&self.directory);
        let mut file = AccountFile::load(&path)?.context("the account file disappeared")?;
        file.contact = contacts.to_vec();
        state.write_secret(&path, &serde_json::to_vec_pretty(&file)?)
    }

    /// Deactivates the account, then asks the CA about the key again: instant-acme discards the CA's answer to the
    /// deactivation itself, so the second question is what tells the operator the truth.
    pub async fn deactivate(&self, state: &StateDir) -> anyhow::Result<AccountStanding> {
        let path = state.account_path(&self.directory);
        let file = AccountFile::load(&path)?.context("the account file disappeared")?;
        let key = file.credentials.private_key().clone_key();
        let sent = retry_transient!(self.account.clone().deactivate().await).map_err(describe);
        let standing = match self.look_up_key(PrivateKeyDer::Pkcs8(key)).await {
            Ok(_) => AccountStanding::Valid,
            Err(err) => AccountStanding::Refused(format!("{err:#}")),
        };
        if let (Err(err), AccountStanding::Valid) = (&sent, &standing) {
            bail!("the CA refused to deactivate the account: {err:#}");
        }
        if let AccountStanding::Refused(_) = standing {
            let kept = path.with_extension("json.deactivated");
            crate::edge::store::rename_durably(&path, &kept)
                .with_context(|| format!("cannot move {} aside", path.display()))?;
            tracing::info!(file = %kept.display(), "the deactivated account's file was moved aside; the next run makes a new account");
        }
        Ok(standing)
    }

    /// Asks the CA which account `key` belongs to (newAccount with onlyReturnExisting); returns its URL.
    async fn look_up_key(&self, key: PrivateKeyDer<'static>) -> anyhow::Result<String> {
        let PrivateKeyDer::Pkcs8(pkcs8) = &key else {
            bail!("the account key is not PKCS#8");
        };
        let signer = Key::from_pkcs8_der(pkcs8.clone_key()).map_err(describe)?;
        let builder = ca_builder(self.ca_bundle.as_deref(), self.request_timeout, self.observed.clone())?;
        let (account, _): (Account, _) = builder
            .from_key((signer, key), self.directory.clone())
            .await
            .map_err(describe)?;
        Ok(account.id().to_owned())
    }
}

/// `credentials` with another key: instant-acme's credentials are built only from their serialized form.
fn with_key(credentials: &AccountCredentials, key: &PrivatePkcs8KeyDer<'_>) -> anyhow::Result<AccountCredentials> {
    let mut value = serde_json::to_value(credentials)?;
    value["key_pkcs8"] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(key.secret_pkcs8_der()));
    let patched: AccountCredentials = serde_json::from_value(value)?;
    // The field name is instant-acme's; should it ever change, the patch would keep the old key without a word.
    if patched.private_key().secret_pkcs8_der() != key.secret_pkcs8_der() {
        bail!("cannot put the new key into the account credentials (instant-acme's format changed); the old key stays");
    }
    Ok(patched)
}

/// Why a keyChange did not succeed, by what it means for the new key.
enum KeyChangeFailure {
    /// Failed before the keyChange request went out: the CA never saw the new key.
    NotSent(anyhow::Error),
    /// The CA answered with a client error: it did not take the new key.
    Refused(anyhow::Error),
    /// Sent, with no answer that settles it: the CA may have taken the new key.
    Unsettled(anyhow::Error),
}

/// RFC 8555 §7.3.5, sent here rather than by instant-acme, which makes the new key itself and so cannot have it stored
/// before the CA sees it: the inner JWS (signed by the new key, with its JWK) names the account and the old key, and
/// the outer JWS is signed by the account's current key. One retry after `badNonce`.
async fn key_change(
    http: &CaHttp,
    directory: &str,
    account: &str,
    old: &PrivatePkcs8KeyDer<'_>,
    new: &PrivatePkcs8KeyDer<'_>,
) -> Result<(), KeyChangeFailure> {
    let (url, inner, nonce, old) = key_change_request(http, directory, account, old, new)
        .await
        .map_err(KeyChangeFailure::NotSent)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut nonce = nonce;
    for attempt in 1..=2 {
        let outer = jws(
            &old,
            &rng,
            &serde_json::json!({"alg": "ES256", "kid": account, "nonce": nonce, "url": url}),
            &inner,
        )
        .map_err(KeyChangeFailure::NotSent)?;
        let body = serde_json::to_vec(&outer).map_err(|e| KeyChangeFailure::NotSent(e.into()))?;
        let (parts, body) = send(http, Method::POST, &url, Some(body))
            .await
            .map_err(KeyChangeFailure::Unsettled)?;
        if parts.status.is_success() {
            return Ok(());
        }
        let problem = String::from_utf8_lossy(&body).into_owned();
        if attempt == 1 && problem.contains("urn:ietf:params:acme:error:badNonce") {
            nonce = nonce_of(&parts).map_err(KeyChangeFailure::Unsettled)?;
            continue;
        }
        let answered = anyhow::anyhow!("keyChange answered {}: {problem}", parts.status);
        return Err(if parts.status.is_client_error() {
            KeyChangeFailure::Refused(answered)
        } else {
            KeyChangeFailure::Unsettled(answered)
        });
    }
    unreachable!("the loop returns")
}

/// What keyChange sends, made before anything goes out: its URL, the inner JWS (signed by the new key), a fresh nonce,
/// and the old key that signs the outer JWS.
async fn key_change_request(
    http: &CaHttp,
    directory: &str,
    account: &str,
    old: &PrivatePkcs8KeyDer<'_>,
    new: &PrivatePkcs8KeyDer<'_>,
) -> anyhow::Result<(String, Vec<u8>, String, EcdsaKeyPair)> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let (old, new) = (signing_key(old)?, signing_key(new)?);
    let urls = jws::directory(http, directory).await?;
    let Some(url) = urls["keyChange"].as_str() else {
        bail!("the CA's directory {directory} offers no keyChange: it does not support key rollover");
    };
    let inner = jws(
        &new,
        &rng,
        &serde_json::json!({"alg": "ES256", "jwk": jwk(&new), "url": url}),
        &serde_json::to_vec(&serde_json::json!({"account": account, "oldKey": jwk(&old)}))?,
    )?;
    let inner = serde_json::to_vec(&inner)?;
    let nonce = fresh_nonce(http, &urls, directory).await?;
    Ok((url.to_owned(), inner, nonce, old))
}
