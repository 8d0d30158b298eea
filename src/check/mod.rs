//! `hapcert check`, the monitor: each certificate on disk, and what every endpoint serves for each of its names, judged
//! against the thresholds; the dead-man's switch on the last successful run. Output and exit code follow the
//! monitoring-plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), summary line first.
//!
//! `judge` decides (pure), `render` writes the text (pure), `chain` verifies served chains, `route` tries the challenge
//! routes that are due; this file does the I/O: it reads the files and the state, probes the endpoints concurrently,
//! and after judging records the result in `monitor.json`, notifies, and writes the metrics.

pub mod chain;
pub mod judge;
pub mod render;
mod route;
mod watch;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use self::chain::Roots;
use self::judge::{CheckReport, Disk, Observed, Probe, RunRecord, Served, Status};
use crate::core::config::{CertificateSpec, Config};
use crate::core::pem::{Bundle, dns_names, serial_hex, sha1_hex};
use crate::core::state::monitor::{CertCheck, Event, LastCheck, RouteCheck, Source, WatchedCheck};
use crate::core::state::{State, StateStorage};
use crate::edge::http01::responder::ChallengeTokens;
use crate::edge::probe::{self, ClientKind};
use crate::edge::store::StateDir;
use crate::fanout;
use crate::notify::{EventKind, Scope};
use crate::output::{out, outln};

/// Handshakes in flight at once: enough for a few hundred names within the probe timeout, few enough not to look like
/// an attack to the load balancer.
const PROBES_AT_ONCE: usize = 16;

/// `hapcert check`: runs [`probe`], prints the summary line, then the details (or, with `json`, the report as one JSON
/// document); returns the plugin exit code.
pub async fn command(config: &Config, json: bool) -> u8 {
    let report = probe(config, OffsetDateTime::now_utc(), None).await;
    outln!("{}", report.summary);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => outln!("{text}"),
            Err(err) => outln!("{{\"error\": \"cannot serialize the report: {err}\"}}"),
        }
    } else {
        out!("{}", render::details(&report));
    }
    report.exit_code
}

/// The summary line for a check that could not run at all; exit code 3.
pub fn unknown(err: &anyhow::Error) -> u8 {
    outln!("HAPCERT UNKNOWN - {}", format!("{err:#}").replace('\n', "; "));
    3
}

/// The whole check, as `hapcert check` and the daemon (every probe interval) run it: look, judge, record the result in
/// `monitor.json`, notify, write the metrics textfile. Never fails: what could not be looked at is in the report, and
/// what could not be recorded, notified or written is logged. `standing` is the daemon's responder, where its checks
/// publish the challenge-route test tokens.
pub async fn probe(config: &Config, now: OffsetDateTime, standing: Option<ChallengeTokens>) -> CheckReport {
    let (report, routes) = evaluate(config, now, standing).await;
    record(config, &report, routes).await;
    let store = StateDir::at(&config.state.dir.value);
    let scope = Scope::Check {
        certificates: config.certificates.iter().map(|c| c.name.clone()).collect(),
        watched: config.watch.iter().map(|w| w.name.clone()).collect(),
        // Only an inventory HAProxy did not answer for leaves its conditions as they were.
        inventory: report.inventory.state != "failed",
    };
    crate::notify::notify(config, &store, events(&report), scope, now).await;
    crate::metrics::write_textfile(config, now);
    report
}

/// Looks at the files, the state, the endpoints and the challenge routes that are due, and judges; records nothing.
/// Returns the report and every certificate's last route check, to record.
async fn evaluate(
    config: &Config,
    now: OffsetDateTime,
    standing: Option<ChallengeTokens>,
) -> (CheckReport, BTreeMap<String, RouteCheck>) {
    let loading = config.clone();
    let roots = tokio::task::spawn_blocking(move || Roots::load(&loading))
        .await
        .unwrap_or_else(|err| Roots::Unavailable(format!("loading the roots failed: {err}")));
    let state = StateDir::at(&config.state.dir.value).load_state();
    let runs = judge::judge_runs(&run_record(&state), config.check.max_run_age, now);
    let roots = Arc::new(roots);
    let remembered = state.as_ref().ok();
    let (observed, watched, routes) = tokio::join!(
        observe(config, remembered, roots.clone(), now),
        watch::observe(config, roots, now),
        route::observe(config, standing, now)
    );
    let certificates: Vec<_> = observed
        .iter()
        .map(|seen| {
            judge::with_route(
                judge::judge_certificate(&config.check, seen, now),
                routes.get(&seen.name),
            )
        })
        .collect();
    let managed_leaves: Vec<String> = observed
        .iter()
        .filter_map(|seen| match &seen.disk {
            Disk::Present { leaf, .. } => Some(sha1_hex(leaf)),
            _ => None,
        })
        .collect();
    let inventory = watch::inventory(config, &managed_leaves, now).await;
    let watched = watched
        .iter()
        .map(|seen| judge::judge_watch(&config.check, seen, now))
        .collect();
    let runs = match &config.fleet {
        Some(fleet) => judge::with_fleet_store(runs, fleet_store_problem(fleet).await.as_deref(), &certificates),
        None => runs,
    };
    (render::report(runs, certificates, inventory, watched, now), routes)
}

/// Why the fleet's store cannot be read, if it cannot: renewals wait for it (serving does not).
async fn fleet_store_problem(fleet: &crate::core::config::FleetConfig) -> Option<String> {
    let store = match crate::fleet::store::FleetStore::connect(fleet) {
        Ok(store) => store,
        Err(err) => return Some(format!("{err:#}")),
    };
    let prefix = store.layout().prefix();
    store
        .client()
        .get(prefix.as_bytes())
        .await
        .err()
        .map(|err| err.to_string())
}

/// Every certificate's file, and a handshake per `[check] endpoints` entry and name; at most `PROBES_AT_ONCE` at a time.
async fn observe(config: &Config, state: Option<&State>, roots: Arc<Roots>, now: OffsetDateTime) -> Vec<Observed> {
    let mut observed: Vec<Observed> = config
        .certificates
        .iter()
        .map(|spec| Observed {
            name: spec.name.clone(),
            file: spec.file.value.clone(),
            names: spec.domains.iter().map(|d| d.to_string()).collect(),
            disk: read_disk(spec),
            probes: Vec::new(),
            interrupted_deploy: state
                .and_then(|s| s.remembered(&spec.name).deploying.as_ref())
                .map(|d| d.serial.clone()),
        })
        .collect();

    let mut targets = Vec::new();
    for (cert, spec) in config.certificates.iter().enumerate() {
        // As deploy asks for it.
        let client = ClientKind::for_certificate(config, spec);
        for endpoint in &config.check.endpoints {
            for name in &spec.domains {
                targets.push((cert, endpoint.clone(), name.to_string(), client));
            }
        }
    }
    // In the configured order, whatever order they finished in.
    let key = config.check.endpoints_key;
    let probes = fanout::bounded(PROBES_AT_ONCE, "probe", targets, |(cert, endpoint, name, client)| {
        let roots = roots.clone();
        async move {
            let outcome = probe_one(&endpoint, &name, client, &roots, now, key).await;
            let probe = Probe {
                endpoint,
                name,
                client,
                outcome,
            };
            (cert, probe)
        }
    })
    .await;
    for (cert, probe) in probes.into_iter().flatten() {
        observed[cert].probes.push(probe);
    }
    observed
}

async fn probe_one(
    endpoint: &str,
    name: &str,
    client: ClientKind,
    roots: &Roots,
    now: OffsetDateTime,
    key: &str,
) -> Result<Served, String> {
    let chain = probe::served_chain(endpoint, name, client)
        .await
        .map_err(|err| match probe::refused(&err) {
            true => probe::not_listening(endpoint, key),
            false => format!("{err:#}"),
        })?;
    served(endpoint, name, &chain, roots, now)
}

/// What a handshake's chain says: the leaf's facts, whether the chain verifies, how it is sent.
fn served(
    endpoint: &str,
    name: &str,
    chain: &[rustls::pki_types::CertificateDer<'_>],
    roots: &Roots,
    now: OffsetDateTime,
) -> Result<Served, String> {
    let (_, leaf) = X509Certificate::from_der(&chain[0])
        .map_err(|err| format!("{endpoint} (SNI {name}) sent a certificate that cannot be parsed: {err}"))?;
    let not_after = leaf.validity().not_after.to_datetime();
    Ok(Served {
        leaf: chain[0].to_vec(),
        serial: serial_hex(leaf.raw_serial()),
        names: dns_names(&leaf),
        not_before: leaf.validity().not_before.to_datetime(),
        not_after,
        chain: roots.verify(chain, not_after, now),
        flaws: crate::core::chain::flaws(chain),
    })
}

/// The certificate file. Unlike a run, the check tells "this process may not read it" (UNKNOWN: run the check as root)
/// from "it is unreadable" (CRITICAL).
fn read_disk(spec: &CertificateSpec) -> Disk {
    let bytes = match std::fs::read(&spec.file.value) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Disk::Missing,
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => return Disk::Forbidden(err.to_string()),
        Err(err) => return Disk::Broken(format!("cannot read it: {err}")),
    };
    match Bundle::parse(&bytes).and_then(|bundle| Ok((bundle.facts()?, bundle))) {
        Ok((facts, bundle)) => Disk::Present {
            facts,
            leaf: bundle.certs[0].to_vec(),
        },
        Err(err) => Disk::Broken(format!("the file {err}")),
    }
}

/// What `state.json` says of the runs. A damaged file stops every run, so it is a finding; a file this process may not
/// read is not.
fn run_record(state: &anyhow::Result<State>) -> RunRecord {
    match state {
        Ok(state) => RunRecord::Read {
            last_run: state.last_run,
            last_run_success: state.last_run_success,
        },
        Err(err) => {
            let denied = err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::PermissionDenied);
            if denied {
                RunRecord::Unreadable(format!("{err:#}"))
            } else {
                RunRecord::Damaged(format!("{err:#}"))
            }
        }
    }
}

/// Remembers the result in `monitor.json`, for `status`, the metrics and the daemon's `/healthz`. Takes only the
/// monitor's lock, never the run lock: a check must not wait for a run.
async fn record(config: &Config, report: &CheckReport, routes: BTreeMap<String, RouteCheck>) {
    let root = config.state.dir.value.clone();
    let last = last_check(report);
    let configured: Vec<String> = config.certificates.iter().map(|c| c.name.clone()).collect();
    let recorded = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let store = StateDir::create(&root)?;
        let _lock = store.monitor_lock()?;
        let mut monitor = store.load_monitor()?;
        monitor.last_check = Some(last);
        // Another check (the daemon's) may have tried a route since this one read them: the later try wins.
        monitor.routes.retain(|name, _| configured.contains(name));
        for (name, ours) in routes {
            match monitor.routes.get(&name) {
                Some(theirs) if theirs.at > ours.at => {}
                _ => {
                    monitor.routes.insert(name, ours);
                }
            }
        }
        store.save_monitor(&monitor)
    })
    .await;
    match recorded {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!("the check's result was not recorded: {err:#}"),
        Err(err) => tracing::warn!("the check's result was not recorded: {err}"),
    }
}

/// What `monitor.json` keeps of a report.
fn last_check(report: &CheckReport) -> LastCheck {
    LastCheck {
        at: report.checked_at,
        status: report.exit_code,
        certificates: report
            .certificates
            .iter()
            .map(|cert| {
                let check = CertCheck {
                    status: cert.status.code(),
                    served_matches_disk: cert.served_matches_disk(),
                    summary: cert.summary.clone(),
                };
                (cert.name.clone(), check)
            })
            .collect(),
        watched: report
            .watched
            .iter()
            .chain(&report.inventory.items)
            .map(|item| WatchedCheck {
                source: item.source,
                name: item.name.clone(),
                status: item.status.code(),
                not_after: item.not_after,
                summary: item.summary.clone(),
            })
            .collect(),
        inventory_error: (report.inventory.state == "failed").then(|| report.inventory.message.clone()),
    }
}

/// A `warning` or `critical` event per certificate in that state, and `run-overdue` when the runs are; the notifier
/// decides what is new, what repeats and what has resolved.
fn events(report: &CheckReport) -> Vec<Event> {
    let mut events = Vec::new();
    if report.runs.status == Status::Critical {
        events.push(Event {
            kind: EventKind::RunOverdue,
            certificate: None,
            source: Source::Managed,
            names: Vec::new(),
            served_serial: None,
            expected_serial: None,
            days_left: None,
            message: report.runs.message.clone(),
        });
    }
    for cert in &report.certificates {
        let event = |kind, message: &str| Event {
            kind,
            certificate: Some(cert.name.clone()),
            source: Source::Managed,
            names: cert.names.clone(),
            served_serial: cert.served_serial().map(str::to_owned),
            expected_serial: cert.disk.serial.clone(),
            days_left: cert.days_left,
            message: format!("{}: {message}", cert.name),
        };
        // A broken route is a condition of its own, told and resolved apart from the certificate's other problems.
        let route = cert.route.as_ref().and_then(|r| r.problem.as_deref());
        if let Some(problem) = route {
            events.push(event(EventKind::ChallengeRoute, problem));
        }
        let others: Vec<_> = cert
            .problems
            .iter()
            .filter(|p| Some(p.message.as_str()) != route)
            .collect();
        let kind = match others.iter().fold(Status::Ok, |worst, p| worst.worst(p.status)) {
            Status::Warning => EventKind::Warning,
            Status::Critical => EventKind::Critical,
            Status::Ok | Status::Unknown => continue,
        };
        events.push(event(kind, &judge::summarize(others, String::new)));
    }
    for item in report.watched.iter().chain(&report.inventory.items) {
        let kind = match item.status {
            Status::Warning => EventKind::Warning,
            Status::Critical => EventKind::Critical,
            Status::Ok | Status::Unknown => continue,
        };
        events.push(Event {
            kind,
            certificate: Some(item.name.clone()),
            source: item.source,
            names: Vec::new(),
            served_serial: item.endpoint.as_ref().and_then(|e| e.served_serial.clone()),
            expected_serial: None,
            days_left: item.days_left,
            message: item.summary.clone(),
        });
    }
    events
}
