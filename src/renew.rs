//! The orchestrator of a run: refresh the CA's renewal windows (ARI) that are stale, decide what is due, hold back what
//! the retry schedule or the CA's limits say must wait, issue the rest (concurrently, one fresh key each, each order
//! naming the certificate it replaces), verify it, write the PEMs, hand them to HAProxy once for the whole batch, put
//! the previous files back if HAProxy will not take them, and remember the outcome for the next run.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use crate::acme::{Acme, OrderOptions, RateLimited, ValidationFailed};
use crate::ari;
use crate::challenge::ChallengeSide;
use crate::config::{CertificateSpec, Config, FileOwner};
use crate::decision::{Decision, Local, decide};
use crate::deploy::{self, Change, Deployed};
use crate::haproxy::Applied;
use crate::keys::{csr_der, generate_key};
use crate::pem::{Bundle, CertFacts};
use crate::schedule::{Failures, Gate, Overrides};
use crate::status::format_rfc3339;
use crate::store::{CertState, LastResult, Outcome, State, StateDir};
use crate::verify::verify_issued;

/// Orders in flight at once. Enough to keep a CA busy; few enough not to look like abuse.
const MAX_CONCURRENT_ORDERS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Certificates to consider; empty means all.
    pub names: Vec<String>,
    pub force: bool,
    /// With `force`: also order when the CA asked us to wait (its Retry-After, or the failed-authorization budget).
    pub ignore_retry_after: bool,
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
    Failed(Failure),
    /// Due, but held back by the retry schedule or the CA's limits until `until`.
    Deferred {
        until: OffsetDateTime,
        why: String,
    },
}

/// What went wrong, with what the retry schedule needs to know about it.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub rate_limited_until: Option<OffsetDateTime>,
    /// Names whose validation failed: they count against the CA's failed-authorization limit.
    pub failed_names: Vec<String>,
}

impl Failure {
    fn of(err: &anyhow::Error) -> Failure {
        let rate_limited = err.chain().find_map(|e| e.downcast_ref::<RateLimited>());
        let validation = err.chain().find_map(|e| e.downcast_ref::<ValidationFailed>());
        Failure {
            message: format!("{err:#}"),
            rate_limited_until: rate_limited.and_then(|r| r.until),
            failed_names: validation.map(|v| v.names.clone()).unwrap_or_default(),
        }
    }

    fn message(message: String) -> Failure {
        Failure {
            message,
            rate_limited_until: None,
            failed_names: Vec::new(),
        }
    }
}

impl Report {
    /// A certificate that failed, or that is due and held back, fails the run: either way it is not being renewed.
    pub fn any_failed(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.result, ItemResult::Failed(_) | ItemResult::Deferred { .. }))
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
    let store = StateDir::create(&config.state.dir.value)?;
    let _lock = store.lock(options.lock_timeout)?;
    let now = OffsetDateTime::now_utc();
    let mut state = store.load_state()?;
    state.failed_authorizations.prune(now);
    let ca = CaSession::new(config, &store);

    let specs: Vec<CertificateSpec> = config.select(&options.names).cloned().collect();
    let on_disk: Vec<OnDisk> = specs.iter().map(load_on_disk).collect();
    if !options.dry_run {
        // A dry run may talk to another CA (staging); the windows kept are the configured CA's.
        let present = specs
            .iter()
            .zip(&on_disk)
            .filter_map(|(spec, disk)| Some((spec.name.clone(), disk.local.facts()?.ari_id.clone()?)));
        refresh_renewal_info(&ca, &mut state, present.collect(), now).await;
    }

    let mut items = Vec::new();
    let mut due = Vec::new();
    let nothing_known = CertState::default();
    for (spec, deployed) in specs.into_iter().zip(on_disk) {
        if let Local::Unreadable(why) | Local::Unparseable(why) = &deployed.local {
            tracing::warn!(certificate = %spec.name, file = %spec.file.value.display(), "{why}; it will be replaced");
        }
        let remembered = state.certificates.get(&spec.name).unwrap_or(&nothing_known);
        let facts = deployed.local.facts();
        let ari_id = facts.and_then(|f| f.ari_id.clone());
        let known = remembered.known(facts);
        let window = known.window;
        let decision = decide(&spec, &deployed.local, known, now, options.force);
        tracing::info!(certificate = %spec.name, due = decision.due, "{}", decision.reason);
        if let Some(url) = window.and_then(|w| w.explanation_url.as_deref()) {
            tracing::info!(certificate = %spec.name, explanation = url, "the CA explains its renewal window");
        }
        let mut result = ItemResult::NotDue;
        if decision.due {
            let overrides = Overrides {
                force: options.force,
                ignore_retry_after: options.ignore_retry_after,
            };
            match state.gate(&spec, now, overrides) {
                // A dry run is not held back by the schedule of the real runs, and does not add to it.
                _ if options.dry_run => due.push((spec.clone(), deployed, None, items.len())),
                // `replaces` only to a CA that has shown it knows ARI.
                Gate::Go => {
                    let offers_ari = matches!(remembered.renewal_info, Some(ari::RenewalInfo::Ari(_)));
                    due.push((spec.clone(), deployed, ari_id.filter(|_| offers_ari), items.len()))
                }
                Gate::Wait { until, why } => {
                    tracing::warn!(certificate = %spec.name, until = %format_rfc3339(until), "due, but not tried now: {why}");
                    result = ItemResult::Deferred {
                        until,
                        why: why.to_string(),
                    };
                }
            }
        }
        items.push(Item {
            name: spec.name.clone(),
            decision,
            result,
        });
    }

    if !due.is_empty() {
        let orders = due
            .iter()
            .map(|(spec, _, replaces, _)| (spec.clone(), replaces.clone()))
            .collect();
        let issued = issue_all(config, &ca, orders).await;
        let mut changes = Vec::new();
        let mut change_items = Vec::new();
        for ((spec, deployed, _, index), outcome) in due.into_iter().zip(issued) {
            match outcome {
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::error!(certificate = %spec.name, "renewal failed: {message}; the served certificate is untouched");
                    items[index].result = ItemResult::Failed(Failure::of(&err));
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
            for (outcome, index) in deploy::deploy(config, owner, &store, changes)
                .await
                .into_iter()
                .zip(change_items)
            {
                items[index].result = match outcome {
                    Deployed::Verified { facts, how } => ItemResult::Renewed(facts, how),
                    Deployed::Failed(message) => ItemResult::Failed(Failure::message(message)),
                };
            }
        }
        if !options.dry_run {
            // The new certificates' windows, so that `status` shows them right away.
            let renewed = items.iter().filter_map(|item| match &item.result {
                ItemResult::Renewed(facts, _) => Some((item.name.clone(), facts.ari_id.clone()?)),
                _ => None,
            });
            refresh_renewal_info(&ca, &mut state, renewed.collect(), now).await;
        }
    }
    tracing::debug!(requests = ca.requests(), "HTTP requests sent to the CA");
    record(&mut state, &items, now, options.dry_run);
    store.save_state(&state)?;
    Ok(Report { items })
}

/// The CA session of a run, made on first need: a run with nothing due and every window fresh sends no request, and
/// one that only reads renewal windows registers no account.
struct CaSession<'a> {
    config: &'a Config,
    store: &'a StateDir,
    acme: OnceCell<Arc<Acme>>,
    reader: OnceCell<Arc<Acme>>,
}

impl<'a> CaSession<'a> {
    fn new(config: &'a Config, store: &'a StateDir) -> CaSession<'a> {
        CaSession {
            config,
            store,
            acme: OnceCell::new(),
            reader: OnceCell::new(),
        }
    }

    /// A session for renewal information: the account's when there is one, else one without an account.
    async fn reader(&self) -> anyhow::Result<Arc<Acme>> {
        if self.acme.initialized() || self.store.account_path(&self.config.acme.directory).exists() {
            return self.get().await;
        }
        self.reader
            .get_or_try_init(|| async { Acme::without_account(&self.config.acme).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn get(&self) -> anyhow::Result<Arc<Acme>> {
        self.acme
            .get_or_try_init(|| async { Acme::connect(&self.config.acme, self.store).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// HTTP requests this run sent to the CA.
    fn requests(&self) -> usize {
        [self.acme.get(), self.reader.get()]
            .into_iter()
            .flatten()
            .map(|a| a.requests())
            .sum()
    }
}

/// Asks the CA for the renewal window of each `(name, ARI id)` whose stored window is missing, for another
/// certificate, or past its Retry-After. A CA that cannot be asked leaves the stored windows as they are: the lifetime
/// rule still guards every certificate.
async fn refresh_renewal_info(
    ca: &CaSession<'_>,
    state: &mut State,
    certificates: Vec<(String, String)>,
    now: OffsetDateTime,
) {
    let stale: Vec<(String, String)> = certificates
        .into_iter()
        .filter(|(name, id)| {
            let known = state.certificates.get(name).and_then(|c| c.renewal_info.as_ref());
            ari::needs_check(known, id, now)
        })
        .collect();
    if stale.is_empty() {
        return;
    }
    let acme = match ca.reader().await {
        Ok(acme) => acme,
        Err(err) => {
            tracing::warn!(
                "cannot ask the CA for renewal windows: {err:#}; the stored windows and the lifetime rule apply"
            );
            return;
        }
    };
    let answers = bounded(MAX_CONCURRENT_ORDERS, stale, move |(name, id)| {
        let acme = acme.clone();
        async move {
            let answer = acme.renewal_info(&id).await;
            (name, id, answer)
        }
    })
    .await;
    for (name, id, answer) in answers.into_iter().flatten() {
        let entry = state.certificates.entry(name.clone()).or_default();
        match answer {
            Ok(Some(suggested)) => {
                let recorded = ari::record(entry.renewal_info.as_ref(), &id, suggested, now, ari::random_unit());
                if let Some(window) = recorded.window_for(&id) {
                    tracing::debug!(certificate = %name, start = %format_rfc3339(window.start), end = %format_rfc3339(window.end), renew_at = %format_rfc3339(window.renew_at), "the CA's renewal window");
                }
                entry.renewal_info = Some(recorded);
            }
            Ok(None) => {
                tracing::debug!(certificate = %name, "the CA offers no renewal information (ARI); the lifetime rule decides");
                entry.renewal_info = Some(ari::record_not_offered(now));
            }
            Err(err) => tracing::warn!(certificate = %name, "{err:#}; the stored window or the lifetime rule applies"),
        }
    }
}

/// Runs `work` on every item, at most `limit` at a time. Results come back in the order of `items`; `None` marks a
/// task that panicked.
async fn bounded<T, F, Fut, R>(limit: usize, items: Vec<T>, work: F) -> Vec<Option<R>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit));
    let mut tasks = JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let permits = permits.clone();
        let job = work(item);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore is never closed");
            (index, job.await)
        });
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) => tracing::error!("a task ended abnormally: {err}"),
        }
    }
    results
}

struct Issued {
    pem: String,
    facts: CertFacts,
}

/// Issues every due certificate with one account and one responder, at most `MAX_CONCURRENT_ORDERS` at a time. One
/// certificate's failure does not stop the others. Results come back in the order of `orders`.
async fn issue_all(
    config: &Config,
    ca: &CaSession<'_>,
    orders: Vec<(CertificateSpec, Option<String>)>,
) -> Vec<anyhow::Result<Issued>> {
    let shared_failure = |err: anyhow::Error| orders.iter().map(|_| Err(anyhow::anyhow!("{err:#}"))).collect();
    let acme = match ca.get().await {
        Ok(acme) => acme,
        Err(err) => return shared_failure(err),
    };
    let side = match ChallengeSide::start(config, acme.thumbprint()).await {
        Ok(side) => Arc::new(side),
        Err(err) => return shared_failure(err),
    };

    let results = bounded(MAX_CONCURRENT_ORDERS, orders, |(spec, replaces)| {
        let (acme, side, config) = (acme.clone(), side.clone(), config.clone());
        async move { issue_one(&config, &acme, &spec, replaces.as_deref(), &side).await }
    })
    .await;

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
    replaces: Option<&str>,
    side: &ChallengeSide,
) -> anyhow::Result<Issued> {
    if let Some(profile) = &spec.profile {
        acme.check_profile(profile).context("nothing was ordered")?;
    }
    if config.challenge.preflight {
        side.preflight(config, spec)
            .await
            .context("preflight failed, nothing was ordered")?;
    }
    tracing::info!(certificate = %spec.name, names = spec.domains.len(), key_type = %spec.key_type, replaces, profile = spec.profile, "ordering");
    let key = generate_key(spec.key_type).context("cannot generate a private key")?;
    let csr = csr_der(&spec.domains, &key).context("cannot build the CSR")?;
    let options = OrderOptions {
        replaces,
        profile: spec.profile.as_deref(),
    };
    let chain = acme.issue(&spec.domains, &csr, &side.tokens, options).await?;

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

/// Keeps each acted-on certificate's outcome for `status`, and its failures for the retry schedule.
fn record(state: &mut State, items: &[Item], now: OffsetDateTime, dry_run: bool) {
    for item in items {
        let entry = state.certificates.entry(item.name.clone()).or_default();
        let (outcome, serial, message) = match &item.result {
            ItemResult::NotDue | ItemResult::Deferred { .. } => continue,
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
            ItemResult::Failed(failure) => (Outcome::Failed, None, failure.message.clone()),
        };
        if !dry_run {
            match &item.result {
                ItemResult::Renewed(..) => {
                    entry.failures = Failures::default();
                    entry.revoked_serial = None;
                }
                ItemResult::Failed(failure) => {
                    entry.failures = entry.failures.after_failure(now, failure.rate_limited_until);
                    state.failed_authorizations.record(&failure.failed_names, now);
                }
                _ => {}
            }
        }
        // The serial last seen served stays known across failed runs, for `status`.
        let verified_serial = match &item.result {
            ItemResult::Renewed(..) => serial.clone(),
            _ => entry.last.as_ref().and_then(|r| r.verified_serial.clone()),
        };
        entry.last = Some(LastResult {
            at: format_rfc3339(now),
            outcome,
            serial,
            message,
            verified_serial,
        });
    }
}
