//! The orchestrator of a run: decide what is due, issue it (concurrently, one fresh key each), verify it, write the PEMs,
//! hand them to HAProxy once for the whole batch, and put the previous files back if HAProxy will not take them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::acme::Acme;
use crate::config::{CertificateSpec, Config, FileOwner};
use crate::decision::{Decision, Local, decide};
use crate::haproxy::Haproxy;
use crate::keys::{csr_der, generate_key};
use crate::pem::{Bundle, CertFacts};
use crate::responder::{self, ChallengeTokens};
use crate::status::format_rfc3339;
use crate::store::{self, LastResult, Outcome, StateDir};
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
    Renewed(CertFacts),
    DryRun(CertFacts),
    Failed(String),
}

impl Report {
    pub fn any_failed(&self) -> bool {
        self.items.iter().any(|i| matches!(i.result, ItemResult::Failed(_)))
    }
}

/// A certificate's file as found before the run: its bytes (to put back if needed) and what they mean.
pub struct Deployed {
    pub bytes: Option<Vec<u8>>,
    pub local: Local,
}

pub fn load_deployed(spec: &CertificateSpec) -> Deployed {
    match std::fs::read(&spec.file.value) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Deployed {
            bytes: None,
            local: Local::Missing,
        },
        Err(err) => Deployed {
            bytes: None,
            local: Local::Unreadable(err.to_string()),
        },
        Ok(bytes) => {
            let local = match Bundle::parse(&bytes).and_then(|b| b.facts()) {
                Ok(facts) => Local::Present(facts),
                Err(err) => Local::Unparseable(err.to_string()),
            };
            Deployed {
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
    for spec in config
        .certificates
        .iter()
        .filter(|c| options.names.is_empty() || options.names.contains(&c.name))
    {
        let deployed = load_deployed(spec);
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
    let mut to_deploy = Vec::new();
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
            Ok(new) => to_deploy.push((spec, deployed, index, new)),
        }
    }
    if !to_deploy.is_empty() {
        deploy(config, owner, &state, to_deploy, &mut items).await;
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
    let listener = match responder::bind(config.challenge.listen).await {
        Ok(listener) => listener,
        Err(err) => return shared_failure(err),
    };
    let tokens = ChallengeTokens::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(responder::serve(listener, tokens.clone(), async {
        stopped.await.ok();
    }));
    tracing::debug!(listen = %config.challenge.listen, "HTTP-01 responder up");

    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_ORDERS));
    let mut tasks = JoinSet::new();
    for (index, spec) in specs.iter().cloned().enumerate() {
        let (acme, tokens, permits) = (acme.clone(), tokens.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore is never closed");
            (index, issue_one(&acme, &spec, &tokens).await)
        });
    }
    let mut results: Vec<Option<anyhow::Result<Issued>>> = specs.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) => tracing::error!("an issuance task ended abnormally: {err}"),
        }
    }

    stop.send(()).ok();
    server.await.ok();
    tracing::debug!("HTTP-01 responder down");
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("the issuance task ended abnormally"))))
        .collect()
}

async fn issue_one(acme: &Acme, spec: &CertificateSpec, tokens: &ChallengeTokens) -> anyhow::Result<Issued> {
    tracing::info!(certificate = %spec.name, names = spec.domains.len(), key_type = %spec.key_type, "ordering");
    let key = generate_key(spec.key_type).context("cannot generate a private key")?;
    let csr = csr_der(&spec.domains, &key).context("cannot build the CSR")?;
    let chain = acme.issue(&spec.domains, &csr, tokens).await?;

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

/// Writes every new PEM (after keeping the previous one in the state directory), then hands them to HAProxy in one go.
/// If HAProxy refuses, every previous file is put back byte for byte and the batch counts as failed.
async fn deploy(
    config: &Config,
    owner: FileOwner,
    state: &StateDir,
    batch: Vec<(CertificateSpec, Deployed, usize, Issued)>,
    items: &mut [Item],
) {
    let mut written: Vec<(PathBuf, Option<Vec<u8>>, usize, CertFacts)> = Vec::new();
    for (spec, deployed, index, issued) in batch {
        let file = spec.file.value.clone();
        let saved = match &deployed.bytes {
            Some(previous) => state.write_secret(&state.backup_path(&spec.name), previous),
            None => Ok(()),
        };
        let wrote = saved.and_then(|()| {
            store::write_atomic(&file, issued.pem.as_bytes(), config.haproxy.mode, owner)
                .with_context(|| format!("cannot write {}", file.display()))
        });
        match wrote {
            Ok(()) => written.push((file, deployed.bytes, index, issued.facts)),
            Err(err) => {
                tracing::error!(certificate = %spec.name, "{err:#}; the served certificate is untouched");
                items[index].result = ItemResult::Failed(format!("{err:#}"));
            }
        }
    }
    if written.is_empty() {
        return;
    }

    let files: Vec<PathBuf> = written.iter().map(|(file, ..)| file.clone()).collect();
    match Haproxy::new(&config.haproxy).apply(&files).await {
        Ok(_) => {
            for (file, _, index, facts) in written {
                tracing::info!(
                    certificate = %items[index].name,
                    serial = %facts.serial,
                    not_after = %crate::status::format_time(facts.not_after),
                    file = %file.display(),
                    "renewed and deployed"
                );
                items[index].result = ItemResult::Renewed(facts);
            }
        }
        Err(err) => {
            tracing::error!("{err}");
            for (file, previous, index, _) in written {
                let restored = match &previous {
                    Some(bytes) => store::write_atomic(&file, bytes, config.haproxy.mode, owner),
                    None => store::remove_durably(&file),
                };
                let what = match (restored, previous.is_some()) {
                    (Ok(()), true) => "the previous PEM was put back".to_owned(),
                    (Ok(()), false) => "the new PEM was removed".to_owned(),
                    (Err(e), _) => format!(
                        "PUTTING THE PREVIOUS PEM BACK FAILED ({e}); check {} by hand",
                        file.display()
                    ),
                };
                tracing::error!(certificate = %items[index].name, file = %file.display(), "{what}");
                items[index].result = ItemResult::Failed(format!("{err}; {what}; HAProxy was not reloaded by hapcert"));
            }
        }
    }
}

/// Keeps each acted-on certificate's outcome for `status`.
fn record(state: &StateDir, items: &[Item], now: OffsetDateTime) -> anyhow::Result<()> {
    let mut results = state.load_results().unwrap_or_default();
    for item in items {
        let (outcome, serial, message) = match &item.result {
            ItemResult::NotDue => continue,
            ItemResult::Renewed(facts) => (
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
        results.certificates.insert(
            item.name.clone(),
            LastResult {
                at: format_rfc3339(now),
                outcome,
                serial,
                message,
            },
        );
    }
    state.save_results(&results)
}
