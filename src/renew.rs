//! The orchestrator of a run: decide what is due, issue it (concurrently, one fresh key each), verify it, write the PEMs,
//! hand them to HAProxy once for the whole batch, and put the previous files back if HAProxy will not take them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::acme::Acme;
use crate::challenge::ChallengeSide;
use crate::config::{CertificateSpec, Config, FileOwner};
use crate::decision::{Decision, Local, decide};
use crate::deploy::{self, Change, Deployed};
use crate::haproxy::Applied;
use crate::keys::{csr_der, generate_key};
use crate::pem::{Bundle, CertFacts};
use crate::status::format_rfc3339;
use crate::store::{LastResult, Outcome, StateDir};
use crate::verify::verify_issued;

/// Orders in flight at once. Enough to keep a CA busy; few enough not to look like abuse.
const MAX_CONCURRENT_ORDERS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Certificates to consider; empty means all.
    pub names: Vec<String>,
    pub force: bool,
    pub dry_run: bool,
    pub lock_timeout: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub items: Vec<Item>,
}

#[derive(Debug)]
pub struct Item {
    pub name: String,
    pub decision: Decision,
    pub result: ItemResult,
}

#[derive(Debug)]
pub enum ItemResult {
    NotDue,
    /// Deployed and seen on the wire, by the given way.
    Renewed(CertFacts, Applied),
    DryRun(CertFacts),
    Failed(String),
}

impl Report {
    pub fn any_failed(&self) -> bool {
        self.items.iter().any(|i| matches!(i.result, ItemResult::Failed(_)))
    }
}

/// A certificate's file as found before the run: its bytes (to put back if needed) and what they mean.
pub struct OnDisk {
    pub bytes: Option<Vec<u8>>,
    pub local: Local,
}

pub fn load_on_disk(spec: &CertificateSpec) -> OnDisk {
    match std::fs::read(&spec.file.value) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => OnDisk {
            bytes: None,
            local: Local::Missing,
        },
        Err(err) => OnDisk {
            bytes: None,
            local: Local::Unreadable(err.to_string()),
        },
        Ok(bytes) => {
            let local = match Bundle::parse(&bytes).and_then(|b| b.facts()) {
                Ok(facts) => Local::Present(facts),
                Err(err) => Local::Unparseable(err.to_string()),
            };
            OnDisk {
                bytes: Some(bytes),
                local,
            }
        }
    }
}

pub async fn run(config: &Config, owner: FileOwner, options: &RunOptions) -> anyhow::Result<Report> {
    let state = StateDir::create(&config.state.dir.value)?;
    let _lock = state.lock(options.lock_timeout)?;
    let now = OffsetDateTime::now_utc();

    let mut items = Vec::new();
    let mut due = Vec::new();
    for spec in config.select(&options.names) {
        let deployed = load_on_disk(spec);
        if let Local::Unreadable(why) | Local::Unparseable(why) = &deployed.local {
            tracing::warn!(certificate = %spec.name, file = %spec.file.value.display(), "{why}; it will be replaced");
        }
        let decision = decide(spec, &deployed.local, now, options.force);
        tracing::info!(certificate = %spec.name, due = decision.due, "{}", decision.reason);
        if decision.due {
            due.push((spec.clone(), deployed, items.len()));
        }
        items.push(Item {
            name: spec.name.clone(),
            decision,
            result: ItemResult::NotDue,
        });
    }
    if due.is_empty() {
        return Ok(Report { items });
    }

    let issued = issue_all(config, &state, due.iter().map(|(spec, _, _)| spec.clone()).collect()).await;
    let mut changes = Vec::new();
    let mut change_items = Vec::new();
    for ((spec, deployed, index), outcome) in due.into_iter().zip(issued) {
        match outcome {
            Err(err) => {
                let message = format!("{err:#}");
                tracing::error!(certificate = %spec.name, "renewal failed: {message}; the served certificate is untouched");
                items[index].result = ItemResult::Failed(message);
            }
            Ok(new) if options.dry_run => {
                tracing::info!(certificate = %spec.name, serial = %new.facts.serial, "dry run: issued and verified, not deployed");
                items[index].result = ItemResult::DryRun(new.facts);
            }
            Ok(new) => {
                changes.push(Change {
                    spec,
                    previous: deployed.bytes,
                    pem: new.pem,
                    facts: new.facts,
                });
                change_items.push(index);
            }
        }
    }
    if !changes.is_empty() {
        for (outcome, index) in deploy::deploy(config, owner, &state, changes)
            .await
            .into_iter()
            .zip(change_items)
        {
            items[index].result = match outcome {
                Deployed::Verified { facts, how } => ItemResult::Renewed(facts, how),
                Deployed::Failed(message) => ItemResult::Failed(message),
            };
        }
    }
    record(&state, &items, now)?;
    Ok(Report { items })
}

struct Issued {
    pem: String,
    facts: CertFacts,
}

/// Issues every due certificate with one account and one responder, at most `MAX_CONCURRENT_ORDERS` at a time. One
/// certificate's failure does not stop the others. Results come back in the order of `specs`.
async fn issue_all(config: &Config, state: &StateDir, specs: Vec<CertificateSpec>) -> Vec<anyhow::Result<Issued>> {
    let shared_failure = |err: anyhow::Error| specs.iter().map(|_| Err(anyhow::anyhow!("{err:#}"))).collect();
    let acme = match Acme::connect(&config.acme, state).await {
        Ok(acme) => Arc::new(acme),
        Err(err) => return shared_failure(err),
    };
    let side = match ChallengeSide::start(config, acme.thumbprint()).await {
        Ok(side) => Arc::new(side),
        Err(err) => return shared_failure(err),
    };

    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_ORDERS));
    let mut tasks = JoinSet::new();
    for (index, spec) in specs.iter().cloned().enumerate() {
        let (acme, side, permits, config) = (acme.clone(), side.clone(), permits.clone(), config.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore is never closed");
            (index, issue_one(&config, &acme, &spec, &side).await)
        });
    }
    let mut results: Vec<Option<anyhow::Result<Issued>>> = specs.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) => tracing::error!("an issuance task ended abnormally: {err}"),
        }
    }

    if let Ok(side) = Arc::try_unwrap(side) {
        side.stop().await;
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("the issuance task ended abnormally"))))
        .collect()
}

async fn issue_one(
    config: &Config,
    acme: &Acme,
    spec: &CertificateSpec,
    side: &ChallengeSide,
) -> anyhow::Result<Issued> {
    if config.challenge.preflight {
        side.preflight(config, spec)
            .await
            .context("preflight failed, nothing was ordered")?;
    }
    tracing::info!(certificate = %spec.name, names = spec.domains.len(), key_type = %spec.key_type, "ordering");
    let key = generate_key(spec.key_type).context("cannot generate a private key")?;
    let csr = csr_der(&spec.domains, &key).context("cannot build the CSR")?;
    let chain = acme.issue(&spec.domains, &csr, &side.tokens).await?;

    let certs = <CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the CA sent a chain that is not PEM")?;
    anyhow::ensure!(!certs.is_empty(), "the CA sent no certificate");
    let bundle = Bundle {
        certs,
        key: Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))),
    };
    verify_issued(&bundle, &spec.domain_set(), OffsetDateTime::now_utc())
        .context("the issued certificate failed verification; not deployed")?;
    let facts = bundle.facts()?;
    Ok(Issued {
        pem: bundle.to_haproxy_pem()?,
        facts,
    })
}

/// Keeps each acted-on certificate's outcome for `status`.
fn record(state: &StateDir, items: &[Item], now: OffsetDateTime) -> anyhow::Result<()> {
    let mut results = state.load_results().unwrap_or_default();
    for item in items {
        let (outcome, serial, message) = match &item.result {
            ItemResult::NotDue => continue,
            ItemResult::Renewed(facts, _) => (
                Outcome::Renewed,
                Some(facts.serial.clone()),
                item.decision.reason.to_string(),
            ),
            ItemResult::DryRun(facts) => (
                Outcome::DryRun,
                Some(facts.serial.clone()),
                "dry run: not deployed".to_owned(),
            ),
            ItemResult::Failed(message) => (Outcome::Failed, None, message.clone()),
        };
        // The serial last seen served stays known across failed runs, for `status`.
        let verified_serial = match &item.result {
            ItemResult::Renewed(..) => serial.clone(),
            _ => results
                .certificates
                .get(&item.name)
                .and_then(|r| r.verified_serial.clone()),
        };
        let entry = LastResult {
            at: format_rfc3339(now),
            outcome,
            serial,
            message,
            verified_serial,
        };
        results.certificates.insert(item.name.clone(), entry);
    }
    state.save_results(&results)
}
