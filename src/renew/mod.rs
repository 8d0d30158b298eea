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
use tokio::sync::{OnceCell, Semaphore, watch};
use tokio::task::JoinSet;

use self::challenge::ChallengeSide;
use self::deploy::{Change, DeployFailure, Deployed};
use self::hooks::{HookFailure, Stage};
use self::progress::Progress;
use crate::core::ari;
use crate::core::config::{CertificateSpec, Config, FileOwner};
use crate::core::decision::{Decision, Local, decide};
use crate::core::keys::{csr_der, generate_key};
use crate::core::pem::{Bundle, CertFacts};
use crate::core::schedule::{Failures, Gate, Overrides};
use crate::core::time::format_rfc3339;
use crate::core::verify::verify_issued;
use crate::edge::acme::{Acme, OrderOptions, RateLimited, ValidationFailed};
use crate::edge::haproxy::Applied;
use crate::edge::http01::responder::ChallengeTokens;
use crate::edge::store::facts_cache::FactsCache;
use crate::edge::store::{LastResult, Outcome, State, StateDir};
use crate::metrics;
use crate::notify::{self, Scope};

pub mod challenge;
pub mod deploy;
mod events;
pub mod hooks;
pub mod progress;
pub mod revoke;

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
    /// A progress bar while several certificates are ordered, on a terminal: for a renewal by hand only.
    pub progress: bool,
}

/// What the daemon lends a run. A one-shot run gets the default: it opens the side port for its orders itself, and
/// nothing abandons it.
#[derive(Clone, Default)]
pub struct RunContext {
    /// The daemon's standing HTTP-01 responder: the run publishes its tokens there instead of opening the side port.
    pub responder: Option<ChallengeTokens>,
    /// Turns true when the run must give up its orders (the daemon got SIGTERM). Orders in flight are dropped, which
    /// the CA lets expire; nothing has been written by then. A deploy that has started is always finished.
    pub abandon: Option<watch::Receiver<bool>>,
}

impl RunContext {
    fn abandoned(&self) -> bool {
        self.abandon.as_ref().is_some_and(|a| *a.borrow())
    }

    /// Completes when the run must give up its orders; never, for a one-shot run.
    async fn abandon_requested(&self) {
        let Some(mut abandon) = self.abandon.clone() else {
            return std::future::pending().await;
        };
        // A daemon that dropped the sender has no way left to ask: wait for good.
        if abandon.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub items: Vec<Item>,
    /// Post and deploy hooks that failed; none of them undid a deploy. (A failed pre hook fails its certificates
    /// instead: they are not ordered.)
    pub hook_failures: Vec<HookFailure>,
}

#[derive(Debug)]
pub struct Item {
    pub name: String,
    pub decision: Decision,
    pub result: ItemResult,
    /// The certificate on disk when the run started: the one HAProxy still serves when this item was not renewed.
    pub previous: Option<CertFacts>,
}

#[derive(Debug)]
pub enum ItemResult {
    NotDue,
    /// Deployed and seen on the wire, by the given way.
    Renewed(CertFacts, Applied),
    DryRun(CertFacts),
    Failed(Failure),
    /// Due, but held back by the retry schedule or the CA's limits until `until`, or abandoned by a daemon that stops.
    Deferred {
        until: OffsetDateTime,
        why: String,
    },
}

/// What went wrong, with what the retry schedule and the notifications need to know about it.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub rate_limited_until: Option<OffsetDateTime>,
    /// Names whose validation failed: they count against the CA's failed-authorization limit.
    pub failed_names: Vec<String>,
    /// The new certificate's serial, when one was issued.
    pub expected_serial: Option<String>,
    /// What an endpoint served instead of the new certificate, when a handshake showed it.
    pub served_serial: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing new reached HAProxy: a pre hook, the preflight, the order, the CA, the check of what it issued, or the
    /// write of the file failed. The served certificate is untouched.
    NotDeployed,
    /// HAProxy refused the new files (its check, the reload or the hot update failed); the previous ones were put back.
    Refused,
    /// HAProxy took the new certificate but did not serve it on the wire; the previous one was put back.
    Unverified,
}

impl Failure {
    fn of(err: &anyhow::Error) -> Failure {
        let rate_limited = err.chain().find_map(|e| e.downcast_ref::<RateLimited>());
        let validation = err.chain().find_map(|e| e.downcast_ref::<ValidationFailed>());
        Failure {
            kind: FailureKind::NotDeployed,
            message: format!("{err:#}"),
            rate_limited_until: rate_limited.and_then(|r| r.until),
            failed_names: validation.map(|v| v.names.clone()).unwrap_or_default(),
            expected_serial: None,
            served_serial: None,
        }
    }

    fn not_deployed(message: String) -> Failure {
        Failure {
            kind: FailureKind::NotDeployed,
            message,
            rate_limited_until: None,
            failed_names: Vec::new(),
            expected_serial: None,
            served_serial: None,
        }
    }

    fn of_deploy(failure: DeployFailure, expected_serial: String) -> Failure {
        Failure {
            kind: failure.kind,
            message: failure.message,
            rate_limited_until: None,
            failed_names: Vec::new(),
            expected_serial: Some(expected_serial),
            served_serial: failure.served_serial,
        }
    }
}

impl Report {
    /// A certificate that failed, or that is due and held back, fails the run: either way it is not being renewed. So
    /// does a failed hook: what the operator asked to happen around the renewal did not.
    pub fn any_failed(&self) -> bool {
        !items_ok(&self.items) || !self.hook_failures.is_empty()
    }

    /// The failed deploy hook of the certificate `name`, if it failed.
    pub fn deploy_hook_failure(&self, name: &str) -> Option<&HookFailure> {
        self.hook_failures
            .iter()
            .find(|f| f.stage == Stage::Deploy && f.certificate.as_deref() == Some(name))
    }
}

/// Nothing failed and nothing due was held back: what the dead-man's switch counts as a successful run.
fn items_ok(items: &[Item]) -> bool {
    !items
        .iter()
        .any(|i| matches!(i.result, ItemResult::Failed(_) | ItemResult::Deferred { .. }))
}

/// What each certificate's file holds, from the facts cache where the file is unchanged; the cache is written back
/// (for every configured certificate, whichever were selected) before anything is ordered.
fn read_certificates(config: &Config, store: &StateDir, specs: &[CertificateSpec]) -> Vec<Local> {
    let mut cache = FactsCache::load(store);
    let locals: Vec<Local> = specs.iter().map(|spec| cache.local(&spec.file.value)).collect();
    tracing::debug!(
        parsed = cache.parsed(),
        from_cache = specs.len() - cache.parsed(),
        "certificate files read"
    );
    cache.save(store, config.certificates.iter().map(|c| c.file.value.as_path()));
    locals
}

/// The bytes of a due certificate's file, kept to be put back byte for byte if the deploy fails. A file that holds a
/// certificate but cannot be read now is not ordered: without its bytes a failed deploy could not restore it.
fn keep_previous(spec: &CertificateSpec, present: bool) -> Result<Option<Vec<u8>>, String> {
    let file = &spec.file.value;
    match std::fs::read(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if present && err.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "cannot read {} to keep it for a rollback ({err}); make it readable to hapcert",
            file.display()
        )),
        // Nothing there (any more), or nothing usable was ever read from it: there is nothing to put back.
        Err(_) => Ok(None),
    }
}

/// A due certificate the run will order.
struct Due {
    spec: CertificateSpec,
    /// The file's bytes, to put back if the deploy fails: read just before the order, not for the certificates that
    /// are not due. `None` when there is no file (or none could be read).
    previous: Option<Vec<u8>>,
    /// The ARI id of the certificate the order replaces.
    replaces: Option<String>,
    /// Its place in the run's items.
    index: usize,
}

/// One run, as `hapcert run` and `hapcert renew` do it.
pub async fn run(config: &Config, owner: FileOwner, options: &RunOptions) -> anyhow::Result<Report> {
    run_with(config, owner, options, &RunContext::default()).await
}

/// One run, with what the daemon lends it.
pub async fn run_with(
    config: &Config,
    owner: FileOwner,
    options: &RunOptions,
    context: &RunContext,
) -> anyhow::Result<Report> {
    let store = StateDir::create(&config.state.dir.value)?;
    let _lock = store.lock(options.lock_timeout)?;
    let now = OffsetDateTime::now_utc();
    let mut state = store.load_state()?;
    state.failed_authorizations.prune(now);
    let ca = CaSession::new(config, &store);

    let specs: Vec<CertificateSpec> = config.select(&options.names).cloned().collect();
    let on_disk = read_certificates(config, &store, &specs);
    if !options.dry_run {
        // A dry run may talk to another CA (staging); the windows kept are the configured CA's.
        let present = specs
            .iter()
            .zip(&on_disk)
            .filter_map(|(spec, local)| Some((spec.name.clone(), local.facts()?.ari_id.clone()?)));
        refresh_renewal_info(&ca, &mut state, present.collect(), now).await;
    }

    let mut items = Vec::new();
    let mut due = Vec::new();
    for (spec, local) in specs.into_iter().zip(on_disk) {
        if let Local::Unreadable(why) | Local::Unparseable(why) = &local {
            tracing::warn!(certificate = %spec.name, file = %spec.file.value.display(), "{why}; it will be replaced");
        }
        let remembered = state.remembered(&spec.name);
        let facts = local.facts();
        let previous = facts.cloned();
        let ari_id = facts.and_then(|f| f.ari_id.clone());
        let known = remembered.known(facts);
        let window = known.window;
        let decision = decide(&spec, &local, known, now, options.force);
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
            // `Some(replaces)` when it is ordered now.
            let ordered = match state.gate(&spec, now, overrides) {
                // A dry run is not held back by the schedule of the real runs, and does not add to it.
                _ if options.dry_run => Some(None),
                // `replaces` only to a CA that has shown it knows ARI.
                Gate::Go => {
                    let offers_ari = matches!(remembered.renewal_info, Some(ari::RenewalInfo::Ari(_)));
                    Some(ari_id.filter(|_| offers_ari))
                }
                Gate::Wait { until, why } => {
                    tracing::warn!(certificate = %spec.name, until = %format_rfc3339(until), "due, but not tried now: {why}");
                    result = ItemResult::Deferred {
                        until,
                        why: why.to_string(),
                    };
                    None
                }
            };
            if let Some(replaces) = ordered {
                due.push(Due {
                    spec: spec.clone(),
                    previous: None,
                    replaces,
                    index: items.len(),
                });
            }
        }
        items.push(Item {
            name: spec.name.clone(),
            decision,
            result,
            previous,
        });
    }

    let mut hook_failures = Vec::new();
    if !due.is_empty() {
        let pass = Pass {
            config,
            owner,
            store: &store,
            ca: &ca,
            options,
            context,
        };
        hook_failures = pass.renew_due(due, &mut items).await;
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
    report_request_count(ca.requests());
    record(&mut state, &items, now, options.dry_run);
    if !options.dry_run {
        let end = OffsetDateTime::now_utc();
        tally(&mut state, &items, end);
        let scope = Scope::Run {
            certificates: events::acted_on(&items),
        };
        notify::notify(config, &store, events::run_events(config, &items, end), scope, end).await;
    }
    store.save_state(&state)?;
    metrics::write_textfile(config, OffsetDateTime::now_utc());
    Ok(Report { items, hook_failures })
}

/// Where the benchmarks (scripts/bench) read how many HTTP requests a run sent to the CA. The count itself is kept by
/// the ACME client's HTTP layer (`acme::http`) for every request, retries included; this only hands it out.
const REQUEST_COUNT_FILE: &str = "HAPCERT_REQUEST_COUNT_FILE";

/// A plain write, not `store::write_atomic`: a count for a benchmark, neither a secret nor a file anything serves.
fn report_request_count(requests: usize) {
    let Some(path) = std::env::var_os(REQUEST_COUNT_FILE) else {
        return;
    };
    if let Err(err) = std::fs::write(&path, format!("{requests}\n")) {
        tracing::warn!(
            "cannot write the request count to {} ({REQUEST_COUNT_FILE}): {err}",
            path.to_string_lossy()
        );
    }
}

/// What the ordering part of a run works with.
struct Pass<'a> {
    config: &'a Config,
    owner: FileOwner,
    store: &'a StateDir,
    ca: &'a CaSession<'a>,
    options: &'a RunOptions,
    context: &'a RunContext,
}

impl Pass<'_> {
    /// Orders, verifies and deploys the due certificates, with the hooks around them; each outcome goes into `items`.
    /// Returns the post and deploy hooks that failed.
    async fn renew_due(&self, mut due: Vec<Due>, items: &mut [Item]) -> Vec<HookFailure> {
        let Pass {
            config,
            options,
            context,
            ..
        } = *self;
        let mut hook_failures = Vec::new();
        let hook_timeout = config.hooks.timeout;
        let run_hooks = !options.dry_run;
        if context.abandoned() {
            abandon(&due, items);
            return hook_failures;
        }
        let post_commands = hooks::distinct(due.iter().map(|d| d.spec.hooks.post.as_deref()));
        if run_hooks {
            let pre_commands = hooks::distinct(due.iter().map(|d| d.spec.hooks.pre.as_deref()));
            let failed = hooks::run_stage(Stage::Pre, &pre_commands, hook_timeout).await;
            due.retain(|d| {
                let Some(failure) = failed
                    .iter()
                    .find(|f| d.spec.hooks.pre.as_deref() == Some(f.command.as_str()))
                else {
                    return true;
                };
                not_ordered(d, items, failure);
                false
            });
            // Read after the pre hooks: a rollback puts back the file as it was just before the new one was written.
            due.retain_mut(|d| match keep_previous(&d.spec, items[d.index].previous.is_some()) {
                Ok(previous) => {
                    d.previous = previous;
                    true
                }
                Err(message) => {
                    not_ordered(d, items, message);
                    false
                }
            });
        }

        if !due.is_empty() {
            let orders = due.iter().map(|d| (d.spec.clone(), d.replaces.clone())).collect();
            let issued = tokio::select! {
                issued = issue_all(config, self.ca, orders, context.responder.clone(), options.progress) => Some(issued),
                () = context.abandon_requested() => None,
            };
            match issued {
                None => abandon(&due, items),
                Some(issued) => {
                    let renewed = self.deploy_issued(due, issued, items).await;
                    if run_hooks {
                        for (spec, facts) in renewed {
                            hook_failures.extend(hooks::run_deploy(&spec, &facts, hook_timeout).await);
                        }
                    }
                }
            }
        }

        if run_hooks {
            hook_failures.extend(hooks::run_stage(Stage::Post, &post_commands, hook_timeout).await);
        }
        hook_failures
    }

    /// Deploys what was issued (or, in a dry run, only says so); returns the certificates verified on the wire.
    async fn deploy_issued(
        &self,
        due: Vec<Due>,
        issued: Vec<anyhow::Result<Issued>>,
        items: &mut [Item],
    ) -> Vec<(CertificateSpec, CertFacts)> {
        let Pass {
            config,
            owner,
            store,
            options,
            ..
        } = *self;
        let mut changes = Vec::new();
        let mut change_items = Vec::new();
        for (d, outcome) in due.into_iter().zip(issued) {
            match outcome {
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::error!(certificate = %d.spec.name, "renewal failed: {message}; the served certificate is untouched");
                    items[d.index].result = ItemResult::Failed(Failure::of(&err));
                }
                Ok(new) if options.dry_run => {
                    tracing::info!(certificate = %d.spec.name, serial = %new.facts.serial, "dry run: issued and verified, not deployed");
                    items[d.index].result = ItemResult::DryRun(new.facts);
                }
                Ok(new) => {
                    change_items.push((d.index, d.spec.clone(), new.facts.serial.clone()));
                    changes.push(Change {
                        spec: d.spec,
                        previous: d.previous,
                        pem: new.pem,
                        facts: new.facts,
                    });
                }
            }
        }
        let mut renewed = Vec::new();
        if changes.is_empty() {
            return renewed;
        }
        let outcomes = deploy::deploy(config, owner, store, changes).await;
        for (outcome, (index, spec, serial)) in outcomes.into_iter().zip(change_items) {
            items[index].result = match outcome {
                Deployed::Verified { facts, how } => {
                    renewed.push((spec, facts.clone()));
                    ItemResult::Renewed(facts, how)
                }
                Deployed::Failed(failure) => ItemResult::Failed(Failure::of_deploy(failure, serial)),
            };
        }
        renewed
    }
}

/// A due certificate held back before its order: logged, and failed with `why`.
fn not_ordered(d: &Due, items: &mut [Item], why: impl std::fmt::Display) {
    tracing::error!(certificate = %d.spec.name, "not ordered: {why}; the served certificate is untouched");
    items[d.index].result = ItemResult::Failed(Failure::not_deployed(format!("{why}; nothing was ordered")));
}

/// The daemon is stopping before these certificates were issued: they are left for its next start, as if held back.
fn abandon(due: &[Due], items: &mut [Item]) {
    let now = OffsetDateTime::now_utc();
    for d in due {
        tracing::warn!(certificate = %d.spec.name, "order abandoned: hapcert is stopping; nothing was written");
        items[d.index].result = ItemResult::Deferred {
            until: now,
            why: "abandoned: hapcert stopped while ordering".into(),
        };
    }
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

/// Issues every due certificate with one account and one responder (the daemon's standing one, when given), at most
/// `MAX_CONCURRENT_ORDERS` at a time. One certificate's failure does not stop the others. Results come back in the order
/// of `orders`. Dropping the future drops the orders in flight, and with them their tokens.
async fn issue_all(
    config: &Config,
    ca: &CaSession<'_>,
    orders: Vec<(CertificateSpec, Option<String>)>,
    standing: Option<ChallengeTokens>,
    show_progress: bool,
) -> Vec<anyhow::Result<Issued>> {
    let shared_failure = |err: anyhow::Error| orders.iter().map(|_| Err(anyhow::anyhow!("{err:#}"))).collect();
    let acme = match ca.get().await {
        Ok(acme) => acme,
        Err(err) => return shared_failure(err),
    };
    let side = match standing {
        Some(tokens) => ChallengeSide::over(tokens, acme.thumbprint()),
        None => match ChallengeSide::start(config, acme.thumbprint()).await {
            Ok(side) => side,
            Err(err) => return shared_failure(err),
        },
    };
    let side = Arc::new(side);

    let progress = Progress::start(orders.len(), show_progress);
    let results = bounded(MAX_CONCURRENT_ORDERS, orders, |(spec, replaces)| {
        let (acme, side, config, progress) = (acme.clone(), side.clone(), config.clone(), progress.clone());
        async move {
            let issued = issue_one(&config, &acme, &spec, replaces.as_deref(), &side).await;
            progress.finished(&spec.name);
            issued
        }
    })
    .await;
    progress.clear();

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

/// The run's marks: when it ended, whether it counts as successful for the dead-man's switch, and the renewal
/// counters of the metrics.
fn tally(state: &mut State, items: &[Item], end: OffsetDateTime) {
    state.last_run = Some(end);
    if items_ok(items) {
        state.last_run_success = Some(end);
    }
    for item in items {
        let result = match item.result {
            ItemResult::Renewed(..) => "success",
            ItemResult::Failed(_) => "failure",
            _ => continue,
        };
        *state.renewals.entry(result.to_owned()).or_default() += 1;
    }
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::core::decision::Reason;

    fn item(result: ItemResult) -> Item {
        Item {
            name: "www".into(),
            decision: Decision {
                due: true,
                reason: Reason::Missing,
                renew_at: None,
            },
            result,
            previous: None,
        }
    }

    fn failed() -> ItemResult {
        ItemResult::Failed(Failure::not_deployed("no".into()))
    }

    #[test]
    fn the_previous_bytes_are_read_whole_and_a_certificate_that_cannot_be_read_now_is_not_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let at = |path: std::path::PathBuf| {
            let mut spec = crate::testing::www_spec();
            spec.file.value = path;
            spec
        };
        let file = dir.path().join("www.pem");
        std::fs::write(&file, b"any bytes\r\n\n").unwrap();
        assert_eq!(keep_previous(&at(file), true), Ok(Some(b"any bytes\r\n\n".to_vec())));
        assert_eq!(keep_previous(&at(dir.path().join("gone.pem")), true), Ok(None));

        // A directory where the file should be: reading it fails as an unreadable file does.
        let unreadable = at(dir.path().to_owned());
        let err = keep_previous(&unreadable, true).unwrap_err();
        assert!(
            err.contains("to keep it for a rollback") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
        assert_eq!(
            keep_previous(&unreadable, false),
            Ok(None),
            "nothing usable was there: nothing to put back"
        );
    }

    #[test]
    fn a_run_marks_its_end_and_counts_renewals_and_only_a_clean_one_feeds_the_dead_mans_switch() {
        let (first, second) = (datetime!(2026-03-01 00:00 UTC), datetime!(2026-03-02 00:00 UTC));
        let renewed = || {
            let facts = CertFacts {
                serial: "01".into(),
                names: Default::default(),
                not_before: first,
                not_after: second,
                key_type: None,
                key_matches: true,
                ari_id: None,
            };
            ItemResult::Renewed(facts, Applied::HotUpdated)
        };
        let mut state = State::default();
        tally(&mut state, &[item(renewed()), item(ItemResult::NotDue)], first);
        assert_eq!((state.last_run, state.last_run_success), (Some(first), Some(first)));
        assert_eq!(state.renewals["success"], 1);

        let deferred = ItemResult::Deferred {
            until: second,
            why: "backoff".into(),
        };
        tally(&mut state, &[item(renewed()), item(failed()), item(deferred)], second);
        assert_eq!(state.last_run, Some(second));
        assert_eq!(state.last_run_success, Some(first), "a failure is not a successful run");
        assert_eq!((state.renewals["success"], state.renewals["failure"]), (2, 1));
    }
}
