//! Fleets: several load balancers sharing their certificates through etcd. The rule: etcd is needed to renew, never to
//! serve.
//!
//! - [`layout`]: what is kept under the prefix, and its records (pure).
//! - [`store`]: those records read and written through `edge::etcd`; sealing, locks, fencing.
//! - [`session`]: a node's lease, kept alive in the background, and its membership.
//! - [`orders`]: one certificate's renewal under its lock: the order journal and the fenced publish.
//! - [`watch`]: the daemon's watch on the prefix: tokens for its responder, certificates to converge.
//! - [`account`]: the one ACME account the fleet shares.
//!
//! Deploying what the fleet shares is a run's business: `renew::converge` (the fleet's modules never reach into a run).
//! - [`budget`]: the CA budget the fleet shares: renewal windows, retry schedules, the failed-authorization ledger.

pub mod account;
pub mod budget;
pub mod layout;
pub mod orders;
pub mod session;
pub mod status;
pub mod store;
pub mod watch;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::core::config::{Config, FileOwner};
use crate::core::seal::FleetKey;
use crate::edge::store::write_atomic_new;
use crate::error::UsageError;

pub use session::Session;

/// How a run works with the fleet.
#[derive(Clone)]
pub enum FleetMode {
    /// Through the store: converge first, order under the lock, publish fenced.
    Coordinated(Arc<Session>),
    /// The store cannot be reached: serve what is here, and order alone only what is within `emergency_days` of
    /// expiry.
    Cut { emergency_days: f64, why: String },
}

impl FleetMode {
    /// The mode for a run under `config`: coordinated when etcd answers, cut off otherwise. `member`: announce the node
    /// (the daemon does).
    pub async fn open(config: &Config, member: bool) -> anyhow::Result<Option<FleetMode>> {
        let Some(fleet) = &config.fleet else {
            return Ok(None);
        };
        let certificates = member.then(|| config.certificates.iter().map(|c| c.name.clone()).collect());
        match Session::open(fleet, certificates).await {
            Ok(session) => Ok(Some(FleetMode::Coordinated(session))),
            Err(err) => match err.downcast_ref::<crate::edge::etcd::EtcdError>() {
                Some(_) => {
                    tracing::error!(
                        "the fleet's store (etcd) cannot be reached: {err:#}; this node keeps serving what it has, and \
                         orders alone only a certificate within {} days of expiry ([fleet] emergency_days)",
                        fleet.emergency_days
                    );
                    Ok(Some(FleetMode::Cut {
                        emergency_days: fleet.emergency_days,
                        why: format!("{err:#}"),
                    }))
                }
                None => Err(err),
            },
        }
    }

    pub fn session(&self) -> Option<&Arc<Session>> {
        match self {
            FleetMode::Coordinated(session) => Some(session),
            FleetMode::Cut { .. } => None,
        }
    }
}

/// `hapcert fleet init`: brings a single node's account and current certificates into an empty prefix, so that the
/// fleet starts from what this node serves instead of ordering everything again. Refuses a prefix that holds anything.
pub async fn init(config: &Config) -> anyhow::Result<String> {
    let Some(fleet) = &config.fleet else {
        return Err(UsageError(format!(
            "{}: there is no [fleet] in this config; add one (README: Fleet) before `fleet init`",
            config.path.display()
        ))
        .into());
    };
    let store = store::FleetStore::connect(fleet)?;
    let prefix = store.layout().prefix();
    let held = store.client().get_prefix(prefix.as_bytes(), None).await?;
    if !held.kvs.is_empty() {
        return Err(UsageError(format!(
            "{prefix} already holds {} key(s): `fleet init` only fills an empty prefix. A node joining a running fleet \
             needs no init (its daemon adopts what is there); to start over, remove the prefix with \
             `etcdctl del --prefix {prefix}`",
            held.kvs.len()
        ))
        .into());
    }
    let state = crate::edge::store::StateDir::at(&config.state.dir.value);
    let mut lines = Vec::new();
    let account = state.account_path(&config.acme.directory);
    match std::fs::read(&account) {
        Ok(file) => {
            store.share_account(&file).await?;
            lines.push(format!("shared the ACME account from {}", account.display()));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            lines.push("no ACME account here yet: the first node to order creates the fleet's".to_owned());
        }
        Err(err) => return Err(anyhow::Error::new(err).context(format!("cannot read {}", account.display()))),
    }
    let now = time::OffsetDateTime::now_utc();
    for spec in &config.certificates {
        let file = &spec.file.value;
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(err) => {
                lines.push(format!("{}: not shared ({}: {err})", spec.name, file.display()));
                continue;
            }
        };
        let facts = crate::core::pem::Bundle::parse(&bytes).and_then(|b| b.facts());
        match facts {
            Ok(facts) if facts.key_matches => {
                let pem = String::from_utf8_lossy(&bytes);
                store.seed(&spec.name, &pem, &facts, now).await?;
                // This node serves it (it is what its HAProxy loaded): acknowledged, so it is not its own laggard.
                store.acknowledge(&spec.name, &facts.serial, now).await?;
                lines.push(format!("{}: shared serial {}", spec.name, facts.serial));
            }
            Ok(_) => lines.push(format!(
                "{}: not shared ({} has no matching private key)",
                spec.name,
                file.display()
            )),
            Err(err) => lines.push(format!("{}: not shared ({}: {err})", spec.name, file.display())),
        }
    }
    Ok(lines.join("\n"))
}

/// `hapcert fleet keygen --out PATH`: a new random fleet key, mode 0600, never over an existing file. Returns the line
/// to print, which names the key's id and not the key.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    let shown = out.display();
    let text = FleetKey::generate_encoded().map_err(|_| anyhow::anyhow!("the system's randomness failed"))?;
    let id = FleetKey::decode(&text)
        .context("a new fleet key decodes")?
        .id()
        .to_owned();
    match write_atomic_new(out, text.as_bytes(), 0o600, FileOwner::default()) {
        Ok(()) => Ok(format!(
            "wrote a new fleet key to {shown} (mode 0600, id {id}); copy it to every node of the fleet (mode 0600) and \
             name it in [fleet] key_file"
        )),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(UsageError(format!(
            "{shown} already exists; a fleet key is never overwritten (the fleet's sealed secrets would be lost): \
             give another --out path, or remove the file if it is not in use"
        ))
        .into()),
        Err(err) => Err(anyhow::Error::new(err).context(format!("cannot write {shown}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_key_at_0600_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.key");
        let line = keygen(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let key = FleetKey::decode(&text).unwrap();
        assert!(line.contains(key.id()) && !line.contains(text.trim()), "{line}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        let err = keygen(&path).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "left alone");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }
}
