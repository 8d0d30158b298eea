//! One run: refresh the CA's renewal windows (ARI) that are stale, survey what is due, hold back what the retry schedule
//! or the CA's limits say must wait, issue the rest ([`issue`]), write the PEMs and hand them to HAProxy once for the
//! whole batch ([`deploy`]), with the hooks around them ([`hooks`]), then record the outcome in the state, tell the
//! notifications ([`events`]) and write the metrics from what is in memory.
//!
//! [`report`] holds what a run is asked and what it answers; [`challenge`] the HTTP-01 side of its orders; [`revoke`]
//! the other way a certificate's life ends. In a fleet, [`converge`] deploys what the other nodes ordered, and
//! `fleet_run` takes the locks.

pub mod challenge;
pub mod converge;
pub mod deploy;
pub mod dns;
mod events;
mod fleet_run;
pub mod hooks;
mod issue;
pub use issue::MAX_CONCURRENT_ORDERS;
pub mod progress;
mod report;
pub mod revoke;

use std::collections::HashMap;

use time::OffsetDateTime;

use self::deploy::{Change, Deployed, Previous};
use self::hooks::{HookFailure, Stage};
use self::issue::{CaSession, issue_all, refresh_renewal_info};
pub use self::report::{Failure, Item, ItemResult, Report, RunContext, RunOptions};
use crate::core::ari;
use crate::core::config::{CertificateSpec, Config, ConfigErrors, FileOwner};
use crate::core::decision::Local;
use crate::core::pem::CertFacts;
use crate::core::schedule::{Gate, Overrides};
use crate::core::state::{Deploying, LastResult, Outcome, ReplacedFile, State, StateStorage};
use crate::core::survey::{Surveyed, survey};
use crate::core::time::format_rfc3339;
use crate::core::verify::Verified;
use crate::edge::store::StateDir;
use crate::edge::store::facts_cache::FactsCache;
use crate::fleet::FleetMode;
use crate::fleet::orders::LockedOrder;
use crate::fleet::store::Fenced;
use crate::metrics;
use crate::notify::{self, Scope};

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
    remove_leftover_temp_files(config, &store);
    let now = OffsetDateTime::now_utc();
    let mut state = store.load_state()?;
    state.failed_authorizations.prune(now);
    let ca = CaSession::new(config, &store);

    let mut on_disk = read_certificates(config, &store)?;
    let interrupted = if options.dry_run {
        Vec::new()
    } else {
        finish_interrupted_deploys(config, &store, &mut state, &mut on_disk, now).await
    };
    let session = context.fleet.as_ref().and_then(FleetMode::session);
    let mut budget = None;
    let mut adopted = Vec::new();
    if let Some(session) = session
        && !options.dry_run
    {
        adopted = converge::converge(config, owner, &store, &mut state, &mut on_disk, session, None).await;
        budget = Some(crate::fleet::budget::take_in(session, &mut state).await);
    }
    let selected: Vec<(&CertificateSpec, &Local)> = config
        .certificates
        .iter()
        .zip(&on_disk)
        .filter(|(spec, _)| spec.is_named_by(&options.names))
        .collect();
    // A dry run may talk to another CA (staging): it neither records nor compares the directory, and the windows kept
    // are the configured CA's.
    let directory = (!options.dry_run).then_some(config.acme.directory.as_str());
    if let Some(directory) = directory {
        // What a state from an older hapcert (or a file put in place by hand) does not say is taken as the
        // configured directory's, so that no upgrade renews everything at once.
        let present = selected
            .iter()
            .filter_map(|(spec, local)| Some((spec.name.as_str(), local.facts()?.serial.as_str())));
        state.note_issuers(present, directory);
        // The configured CA knows nothing of another CA's certificate: its window is not asked for.
        let present = selected
            .iter()
            .filter(|(spec, local)| {
                let known = state.remembered(&spec.name).known(local.facts(), Some(directory));
                known.switched.is_none()
            })
            .filter_map(|(spec, local)| Some((spec.name.clone(), local.facts()?.ari_id.clone()?)))
            .collect();
        refresh_renewal_info(&ca, &mut state, present, now).await;
    }

    let overrides = Overrides {
        force: options.force,
        ignore_retry_after: options.ignore_retry_after,
    };
    let (mut items, mut due) = plan(survey(selected, &state, directory, now, overrides), options.dry_run);
    let mut locked = HashMap::new();
    let mut emergency = Vec::new();
    if let Some(fleet) = context.fleet.as_ref().filter(|_| !options.dry_run) {
        let run = fleet_run::Run {
            config,
            owner,
            store: &store,
            by_hand: options.force || !options.names.is_empty(),
            now,
        };
        let prepared = run
            .before_ordering(fleet, due, &mut items, &mut state, &mut on_disk)
            .await;
        (due, locked, emergency) = (prepared.due, prepared.locked, prepared.alerts);
        adopted.extend(prepared.adopted);
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
            locked: &locked,
        };
        hook_failures = pass.renew_due(due, &mut items, &mut state).await;
        let renewed: Vec<(&str, &CertFacts)> = items
            .iter()
            .filter_map(|item| match &item.result {
                ItemResult::Renewed(facts, _) => Some((item.name.as_str(), facts)),
                _ => None,
            })
            .collect();
        for (spec, local) in config.certificates.iter().zip(on_disk.iter_mut()) {
            if let Some((_, facts)) = renewed.iter().find(|(name, _)| *name == spec.name) {
                *local = Local::Present((*facts).clone());
            }
        }
        // The deploy boundary: what HAProxy now serves, and what failed, is saved before anything else of the run
        // (the new certificates' windows, the hooks' aftermath, the notifications) can go wrong.
        let attempts: Vec<_> = items.iter().map(|i| (i.name.as_str(), i.attempt())).collect();
        state.record(&attempts, now, options.dry_run);
        if let Some(directory) = directory {
            state.note_issuers(
                renewed.iter().map(|(name, facts)| (*name, facts.serial.as_str())),
                directory,
            );
        }
        if let Err(err) = store.save_state(&state) {
            tracing::error!("cannot save the state after the deploy: {err:#}; trying again at the end of the run");
        }
        if !options.dry_run {
            // The new certificates' windows, so that `status` shows them right away.
            let windows = renewed
                .iter()
                .filter_map(|(name, facts)| Some((name.to_string(), facts.ari_id.clone()?)));
            refresh_renewal_info(&ca, &mut state, windows.collect(), now).await;
        }
    }
    for order in locked.values() {
        order.release().await;
    }
    tracing::debug!(requests = ca.requests(), "HTTP requests sent to the CA");
    report_request_count(ca.requests());
    let report = Report {
        items,
        adopted,
        hook_failures,
        interrupted,
        state: State::default(),
        on_disk,
    };
    // Only a certificate that was ordered has an outcome to record, and that was recorded at the deploy boundary.
    let attempts = report.attempts();
    if !options.dry_run {
        let end = OffsetDateTime::now_utc();
        state.tally(&attempts, end);
        let scope = Scope::Run {
            certificates: events::acted_on(&report.items),
        };
        let mut observed = events::run_events(config, &report.items, end);
        observed.append(&mut emergency);
        notify::notify(config, &store, observed, scope, end).await;
    }
    if let (Some(session), Some(budget)) = (session, budget) {
        crate::fleet::budget::give_back(config, session, &state, budget, OffsetDateTime::now_utc()).await;
    }
    store.save_state(&state)?;
    metrics::write_textfile_after_run(config, &state, &report.on_disk, OffsetDateTime::now_utc());
    Ok(Report { state, ..report })
}

/// What the run does with each surveyed certificate: the items of its report, and the certificates it orders now.
fn plan(surveyed: Vec<Surveyed<'_>>, dry_run: bool) -> (Vec<Item>, Vec<Due>) {
    let mut items = Vec::new();
    let mut due = Vec::new();
    for entry in surveyed {
        let (spec, local, decision) = (entry.spec, &entry.local, entry.decision);
        if let Local::Unreadable(why) | Local::Unparseable(why) = local {
            tracing::warn!(certificate = %spec.name, file = %spec.file.value.display(), "{why}; it will be replaced");
        }
        tracing::info!(certificate = %spec.name, due = decision.due, "{}", decision.reason);
        if let Some(url) = entry.known.window.and_then(|w| w.explanation_url.as_deref()) {
            tracing::info!(certificate = %spec.name, explanation = url, "the CA explains its renewal window");
        }
        let previous = local.facts().cloned();
        let mut result = ItemResult::NotDue;
        // `Some(replaces)` when it is ordered now.
        let ordered = match entry.gate {
            None => None,
            // A dry run is not held back by the schedule of the real runs, and does not add to it.
            Some(_) if dry_run => Some(None),
            // `replaces` only to a CA that has shown it knows ARI, and that issued the certificate replaced: after a
            // switch of directory, the new CA has never seen it.
            Some(Gate::Go) => {
                let offers_ari = matches!(entry.remembered.renewal_info, Some(ari::RenewalInfo::Ari(_)))
                    && entry.known.switched.is_none();
                Some(previous.as_ref().and_then(|f| f.ari_id.clone()).filter(|_| offers_ari))
            }
            Some(Gate::Wait { until, why }) => {
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
        items.push(Item {
            name: spec.name.clone(),
            decision,
            result,
            previous,
        });
    }
    (items, due)
}

/// A crash inside `write_atomic` leaves its temp file, a whole PEM or secret, beside the target; the next run removes
/// those of every configured certificate, its backup, the state and the account, and nothing else.
fn remove_leftover_temp_files(config: &Config, store: &StateDir) {
    crate::edge::store::leftovers::remove_leftovers(config.certificates.iter().map(|c| c.file.value.as_path()));
    store.remove_leftovers(
        config.certificates.iter().map(|c| c.name.as_str()),
        &config.acme.directory,
    );
}

/// What each configured certificate's file holds, in config order, from the facts cache where the file is unchanged;
/// the cache is written back before anything is ordered. A file that exists and could not be read as a certificate is
/// refused if it is not a PEM certificate at all (a wrong `file =`), before anything can overwrite it.
pub(crate) fn read_certificates(config: &Config, store: &StateDir) -> Result<Vec<Local>, ConfigErrors> {
    let mut cache = FactsCache::load(store);
    let locals: Vec<Local> = config
        .certificates
        .iter()
        .map(|spec| cache.local(&spec.file.value))
        .collect();
    tracing::debug!(
        parsed = cache.parsed(),
        from_cache = locals.len() - cache.parsed(),
        "certificate files read"
    );
    let suspects = config
        .certificates
        .iter()
        .zip(&locals)
        .filter(|(_, local)| matches!(local, Local::Unreadable(_) | Local::Unparseable(_)))
        .map(|(spec, _)| &spec.file);
    crate::edge::host::check_certificate_files(config, suspects)?;
    cache.save(store, config.certificates.iter().map(|c| c.file.value.as_path()));
    Ok(locals)
}

/// A due certificate's file, kept to be put back byte for byte, with its mode and owner, if the deploy fails. A file that holds a
/// certificate but cannot be read now is not ordered: without its bytes a failed deploy could not restore it.
fn keep_previous(spec: &CertificateSpec, present: bool) -> Result<Option<Previous>, String> {
    let file = &spec.file.value;
    match Previous::read(file) {
        Ok(previous) => Ok(Some(previous)),
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
    /// The file (bytes, mode, owner), to put back if the deploy fails: read just before the order, not for the certificates that
    /// are not due. `None` when there is no file (or none could be read).
    previous: Option<Previous>,
    /// The ARI id of the certificate the order replaces.
    replaces: Option<String>,
    /// Its place in the run's items.
    index: usize,
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
    /// The certificates this node holds the fleet's lock on, by name; empty for a single node.
    locked: &'a HashMap<String, LockedOrder>,
}

impl Pass<'_> {
    /// Orders, verifies and deploys the due certificates, with the hooks around them; each outcome goes into `items`.
    /// Returns the post and deploy hooks that failed.
    async fn renew_due(&self, mut due: Vec<Due>, items: &mut [Item], state: &mut State) -> Vec<HookFailure> {
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
            let orders = due
                .iter()
                .map(|d| {
                    (
                        d.spec.clone(),
                        d.replaces.clone(),
                        self.locked.get(&d.spec.name).cloned(),
                    )
                })
                .collect();
            let fleet = context.fleet.as_ref().and_then(FleetMode::session).cloned();
            let issued = tokio::select! {
                issued = issue_all(config, self.ca, orders, context.responder.clone(), fleet, options.progress) => Some(issued),
                () = context.abandon_requested() => None,
            };
            match issued {
                None => abandon(&due, items),
                Some(issued) => {
                    let renewed = self.deploy_issued(due, issued, items, state).await;
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
        issued: Vec<anyhow::Result<Verified>>,
        items: &mut [Item],
        state: &mut State,
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
                // Another node holds the lock now and renews it: not this node's failure, and no backoff for it.
                Err(err) if err.downcast_ref::<Fenced>().is_some() => {
                    tracing::warn!(certificate = %d.spec.name, "{err:#}");
                    items[d.index].result = fenced_out();
                }
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::error!(certificate = %d.spec.name, "renewal failed: {message}; the served certificate is untouched");
                    items[d.index].result = ItemResult::Failed(Failure::of(&err));
                }
                Ok(new) if options.dry_run => {
                    tracing::info!(certificate = %d.spec.name, serial = %new.facts().serial, "dry run: issued and verified, not deployed");
                    items[d.index].result = ItemResult::DryRun(new.into_facts());
                }
                Ok(new) => {
                    if let Some(order) = self.locked.get(&d.spec.name)
                        && let Err(err) = order.publish(&new).await
                    {
                        let message = format!("{err:#}");
                        tracing::error!(certificate = %d.spec.name, serial = %new.facts().serial, "not published to the fleet, so not deployed: {message}");
                        items[d.index].result = match err.downcast_ref::<Fenced>() {
                            Some(_) => fenced_out(),
                            None => ItemResult::Failed(Failure::not_deployed(message)),
                        };
                        continue;
                    }
                    change_items.push((
                        d.index,
                        d.spec.clone(),
                        new.facts().serial.clone(),
                        new.pem().to_owned(),
                    ));
                    changes.push(Change {
                        spec: d.spec,
                        previous: d.previous,
                        new,
                    });
                }
            }
        }
        let mut renewed = Vec::new();
        if changes.is_empty() {
            return renewed;
        }
        if let Err(err) = record_deploys_under_way(store, state, &changes) {
            for (index, _, serial, _) in change_items {
                let why = format!(
                    "cannot record the deploy in the state before writing the file ({err:#}), so a crash could not be \
                     recovered from; nothing was written. Make the state dir writable"
                );
                tracing::error!(certificate = %items[index].name, "{why}");
                items[index].result = ItemResult::Failed(Failure::of_deploy(
                    deploy::DeployFailure {
                        kind: deploy::FailureKind::NotDeployed,
                        message: why,
                        served_serial: None,
                    },
                    serial,
                ));
            }
            return renewed;
        }
        let outcomes = deploy::deploy(config, owner, store, changes).await;
        for (outcome, (index, spec, serial, pem)) in outcomes.into_iter().zip(change_items) {
            let kept = store.kept_issued_path(&spec.name);
            items[index].result = match outcome {
                Deployed::Verified { facts, how } => {
                    if kept.exists()
                        && let Err(err) = crate::edge::store::remove_durably(&kept)
                    {
                        tracing::warn!(certificate = %spec.name, "cannot remove {}: {err}", kept.display());
                    }
                    if let Some(order) = self.locked.get(&spec.name) {
                        converge::acknowledge(&order.session, &spec.name, &facts.serial, OffsetDateTime::now_utc())
                            .await;
                    }
                    renewed.push((spec, facts.clone()));
                    ItemResult::Renewed(facts, how)
                }
                Deployed::Failed(failure) => {
                    // Issued and verified, but not served: kept, so that the next run deploys it without ordering
                    // again (the CA counts duplicate certificates).
                    match store.write_secret(&kept, pem.as_bytes()) {
                        Ok(()) => {
                            tracing::info!(certificate = %spec.name, %serial, "the issued certificate is kept in the state dir; the next run deploys it without ordering again")
                        }
                        Err(err) => {
                            tracing::warn!(certificate = %spec.name, %serial, "cannot keep the issued certificate for the next run: {err:#}")
                        }
                    }
                    ItemResult::Failed(Failure::of_deploy(failure, serial))
                }
            };
        }
        renewed
    }
}

/// Saves, before any file is written, which certificates the deploy is about to write: a run after a crash finds them
/// in the state and finishes or undoes that deploy ([`finish_interrupted_deploys`]).
pub(crate) fn record_deploys_under_way(store: &StateDir, state: &mut State, changes: &[Change]) -> anyhow::Result<()> {
    let since = format_rfc3339(OffsetDateTime::now_utc());
    for change in changes {
        let entry = state.certificates.entry(change.spec.name.clone()).or_default();
        entry.deploying = Some(Deploying {
            serial: change.new.facts().serial.clone(),
            since: since.clone(),
            replaces: change.previous.as_ref().map(|p| ReplacedFile {
                mode: p.mode,
                uid: p.owner.uid,
                gid: p.owner.gid,
            }),
        });
    }
    store.save_state(state)
}

/// The start of a run: each file is compared with what the state says of it. A deploy still recorded as under way was
/// interrupted (hapcert died between recording it and recording its outcome): its file may hold a certificate that
/// HAProxy does not serve. It is finished (served and verified) or undone (the previous file back, served and verified)
/// before anything is ordered. Only those files are read; the others are known from the facts cache, and a file whose
/// serial is not the one last verified served, with no deploy of it recorded, was written by someone else: it is
/// logged and left alone. Returns the interrupted deploys that were undone or could not be settled, which fail the run.
async fn finish_interrupted_deploys(
    config: &Config,
    store: &StateDir,
    state: &mut State,
    on_disk: &mut [Local],
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let mut interrupted = Vec::new();
    for (index, spec) in config.certificates.iter().enumerate() {
        let remembered = state.remembered(&spec.name);
        if let Some(deploying) = &remembered.deploying {
            interrupted.push((
                index,
                deploy::Interrupted {
                    spec: spec.clone(),
                    deploying: deploying.clone(),
                },
            ));
            continue;
        }
        let verified = remembered.last.as_ref().and_then(|l| l.verified_serial.as_deref());
        if let (Some(verified), Some(facts)) = (verified, on_disk[index].facts())
            && facts.serial != verified
        {
            tracing::warn!(
                certificate = %spec.name,
                file = %spec.file.value.display(),
                "the file holds serial {}, not {verified}, the one hapcert last deployed and verified; hapcert did not \
                 write it, so it leaves it as it is (reload HAProxy if it must be served)",
                facts.serial
            );
        }
    }
    let mut failed = Vec::new();
    if interrupted.is_empty() {
        return failed;
    }
    for (_, one) in &interrupted {
        tracing::warn!(
            certificate = %one.spec.name,
            serial = %one.deploying.serial,
            since = %one.deploying.since,
            "a deploy was interrupted (hapcert stopped before recording its outcome); finishing or undoing it"
        );
    }
    let ones: Vec<deploy::Interrupted> = interrupted.iter().map(|(_, i)| i.clone()).collect();
    let outcomes = deploy::resume(config, store, &ones).await;
    for ((index, one), outcome) in interrupted.into_iter().zip(outcomes) {
        let name = one.spec.name.as_str();
        let entry = state.certificates.entry(name.to_owned()).or_default();
        let (facts, last) = match outcome {
            deploy::Resumed::Finished { facts, how } => {
                tracing::info!(certificate = name, serial = %facts.serial, via = %how, "the interrupted deploy is finished: deployed and verified on the wire");
                entry.failures = Default::default();
                entry.revoked_serial = None;
                let message = format!("an interrupted deploy, finished by the next run ({how})");
                (
                    Some(facts.clone()),
                    Some((Outcome::Renewed, Some(facts.serial), message)),
                )
            }
            deploy::Resumed::Served { facts } => {
                tracing::info!(certificate = name, serial = %facts.serial, "the interrupted deploy had not replaced the file; HAProxy serves it, verified on the wire");
                let verified = Some(facts.serial.clone());
                if let Some(last) = &mut entry.last {
                    last.verified_serial = verified;
                }
                (Some(facts), None)
            }
            deploy::Resumed::NothingWritten => {
                tracing::info!(
                    certificate = name,
                    "the interrupted deploy had not written its file yet: nothing to finish"
                );
                (None, None)
            }
            deploy::Resumed::Undone { facts, message } => {
                tracing::error!(certificate = name, "{message}");
                failed.push((name.to_owned(), message.clone()));
                (facts, Some((Outcome::Failed, None, message)))
            }
            deploy::Resumed::Unsettled { message } => {
                tracing::error!(
                    certificate = name,
                    "the interrupted deploy is not settled: {message}; the next run tries again"
                );
                failed.push((
                    name.to_owned(),
                    format!("not settled: {message}; the next run tries again"),
                ));
                continue;
            }
        };
        entry.deploying = None;
        if let Some((outcome, serial, message)) = last {
            let verified_serial = match outcome {
                Outcome::Renewed => serial.clone(),
                _ => facts
                    .as_ref()
                    .map(|f| f.serial.clone())
                    .or_else(|| entry.last.as_ref().and_then(|l| l.verified_serial.clone())),
            };
            entry.last = Some(LastResult {
                at: format_rfc3339(now),
                outcome,
                serial,
                message,
                verified_serial,
            });
        }
        on_disk[index] = match facts {
            Some(facts) => Local::Present(facts),
            None => Local::Missing,
        };
    }
    failed
}

/// What a fenced-out order leaves: the lock's new holder renews the certificate, and this node adopts it.
fn fenced_out() -> ItemResult {
    ItemResult::Elsewhere {
        holder: "the lock's new holder".into(),
        until: OffsetDateTime::now_utc(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let kept = keep_previous(&at(file), true).unwrap().unwrap();
        assert_eq!(kept.bytes, b"any bytes\r\n\n");
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
}
