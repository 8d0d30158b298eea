//! The ACME account: its file in the state directory (instant-acme's credentials, which hold the account key, plus what
//! `account show` prints), and the account's own life cycle: key rollover, contact update, deactivation.

use std::path::Path;

use anyhow::{Context, bail};
use instant_acme::{Account, AccountCredentials, Key};
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

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

    /// Replaces the account key (RFC 8555 §7.3.5). The old file is kept beside the new one until the CA has confirmed
    /// that the new key finds the same account; only then is the backup removed.
    pub async fn roll_over_key(mut self, state: &StateDir) -> anyhow::Result<String> {
        let path = state.account_path(&self.directory);
        let backup = path.with_extension("json.before-rollover");
        let old = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        state.write_secret(&backup, &old)?;

        let credentials = retry_transient!(self.account.update_key().await)
            .map_err(describe)
            .context("the CA refused the new account key; the old key stays in use")?;
        let mut file: AccountFile = serde_json::from_slice(&old)?;
        let key = credentials.private_key().clone_key();
        file.credentials = credentials;
        state.write_secret(&path, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(account = %file.url, backup = %backup.display(), "stored the new account key; confirming with the CA");

        let found = self.look_up_key(PrivateKeyDer::Pkcs8(key)).await.with_context(|| {
            format!(
                "the CA took the new key but does not find the account by it; the old account file is kept at {}",
                backup.display()
            )
        })?;
        if found != file.url {
            bail!(
                "the CA finds account {found} by the new key, not {}; the old account file is kept at {}",
                file.url,
                backup.display()
            );
        }
        crate::edge::store::remove_durably(&backup).with_context(|| format!("cannot remove {}", backup.display()))?;
        Ok(file.url)
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
