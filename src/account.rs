//! `hapcert account`: show the ACME account, roll its key over, change its contacts, deactivate it. The CA's side of
//! each is in `edge::acme`; this is what the operator sees.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;

use crate::core::config::{self, Config};
use crate::edge::acme::{self, AccountStanding, Acme};
use crate::edge::store::StateDir;
use crate::error::UsageError;
use crate::output::{out, outln};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print the account URL, contacts and directory.
    Show,
    /// Replace the account key. The old key file is kept until the CA confirms the new key.
    Rollover,
    /// Deactivate the account at the CA, for good. The next run makes a new account.
    Deactivate {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Replace the account's contact addresses at the CA (none given removes them).
    Update {
        /// An e-mail address; repeat for several.
        #[arg(long = "contact")]
        contacts: Vec<String>,
    },
}

/// Runs `hapcert account ...`; `false` when the CA did not do what was asked.
pub async fn command(config: &Config, command: AccountCommand, lock_timeout: Duration) -> anyhow::Result<bool> {
    let at_ca = || async {
        let state = StateDir::create(&config.state.dir.value)?;
        let lock = state.lock(lock_timeout)?;
        let acme = Acme::existing(&config.acme, &state).await?;
        anyhow::Ok((acme, state, lock))
    };
    // The fleet's account is one, sealed in the store: a new key here would leave every other node signing with the
    // old one, and a deactivation would stop them all.
    if config.fleet.is_some() && matches!(command, AccountCommand::Rollover | AccountCommand::Deactivate { .. }) {
        return Err(UsageError(format!(
            "{}: with [fleet], the ACME account is the fleet's, shared through etcd; rolling its key over or \
             deactivating it from one node is not supported yet. Remove [fleet] on every node first, or leave the \
             account as it is",
            config.path.display()
        ))
        .into());
    }
    match command {
        AccountCommand::Show => show(config),
        AccountCommand::Rollover => {
            let (acme, state, _lock) = at_ca().await?;
            let url = acme.roll_over_key(&state).await?;
            outln!("rolled over: account {url} now signs with a new key (confirmed by the CA)");
            Ok(true)
        }
        AccountCommand::Update { contacts } => {
            let (acme, state, _lock) = at_ca().await?;
            let contacts = contacts
                .iter()
                .map(|c| config::contact_uri(c).ok_or_else(|| UsageError(format!("'{c}' is not an e-mail address"))))
                .collect::<Result<Vec<_>, _>>()?;
            acme.update_contacts(&state, &contacts).await?;
            outln!(
                "updated:  account {} contacts are now {}",
                acme.account_url(),
                if contacts.is_empty() {
                    "none".to_owned()
                } else {
                    contacts.join(", ")
                }
            );
            Ok(true)
        }
        AccountCommand::Deactivate { yes } => {
            let (acme, state, _lock) = at_ca().await?;
            if !yes && !confirm(&format!("Deactivate account {} for good? [y/N] ", acme.account_url()))? {
                outln!("not deactivated");
                return Ok(false);
            }
            let url = acme.account_url().to_owned();
            match acme.deactivate(&state).await? {
                AccountStanding::Refused(answer) => {
                    outln!("deactivated: account {url}; the CA now refuses its key ({answer})");
                    Ok(true)
                }
                AccountStanding::Valid => {
                    outln!("NOT deactivated: the CA still accepts account {url}");
                    Ok(false)
                }
            }
        }
    }
}

/// Asks on the terminal; without one, there is nobody to ask, and the answer is a usage error.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::BufRead;
    if !std::io::stdin().is_terminal() {
        return Err(UsageError("refusing to deactivate without confirmation; pass --yes".into()).into());
    }
    out!("{question}");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `hapcert account show`: read from the account file; the CA is not asked.
fn show(config: &Config) -> anyhow::Result<bool> {
    let state = StateDir::at(&config.state.dir.value);
    match acme::account_summary(&state, &config.acme.directory)? {
        Some(account) => {
            outln!("account:   {}", account.url);
            outln!("directory: {}", account.directory);
            outln!(
                "contact:   {}",
                if account.contact.is_empty() {
                    "-".into()
                } else {
                    account.contact.join(", ")
                }
            );
            outln!("created:   {}", account.created);
            outln!("key file:  {}", state.account_path(&config.acme.directory).display());
        }
        None => outln!(
            "no account yet for {}; the first run that orders a certificate creates one",
            config.acme.directory
        ),
    }
    Ok(true)
}
