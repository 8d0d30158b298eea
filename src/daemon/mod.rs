//! `hapcert daemon`: the long-running alternative to the timer.
//!
//! One loop does everything, one thing at a time: a renewal pass (what `hapcert run` does, under the same run lock),
//! a probe of the endpoints (what `hapcert check` does), then a sleep until the next of either ([`wake`]). Around it:
//! the HTTP-01 responder on the side port, up for the daemon's whole life so that HAProxy's challenge backend stays
//! UP (side-port mode only); `/metrics` and `/healthz` on `[daemon] listen` ([`server`]); and the signals:
//!
//! - SIGHUP re-reads the config. A config with problems is logged, every problem of it, and the daemon goes on with
//!   the one it had. A good one is taken, the side port and the metrics listener move if their addresses changed
//!   (bound before the old ones are let go, so a port that cannot be had leaves everything as it was), and a renewal
//!   pass follows at once, so a certificate just added is issued. In a fleet the node leaves and joins again with the
//!   new `[fleet]` table.
//! - SIGTERM or SIGINT stops it. Orders in flight are abandoned (the CA lets them expire; nothing was written), a
//!   deploy that has started is finished (HAProxy is never left mid-update, nor a new PEM unverified), then the
//!   servers stop and the daemon exits 0. Every file is written atomically anyway.
//!
//! The control socket (`[daemon] control`, [`control_link`]) takes `renew`, `revoke` and `status` by hand: each
//! request runs in this loop like a pass, one at a time, with the daemon's responder and fleet session.
//!
//! With `$NOTIFY_SOCKET` set (`Type=notify`), systemd hears READY, RELOADING, STOPPING and a one-line STATUS.

mod control_link;
mod fleet_link;
mod health;
mod server;
mod systemd;
mod wake;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use self::fleet_link::FleetLink;
use self::health::Activity;
use self::server::Shared;
use self::wake::Upcoming;
use crate::core::config::{ChallengeMode, Config, FileOwner};
use crate::core::decision::Local;
use crate::core::schedule::Overrides;
use crate::core::state::State;
use crate::core::survey::survey;
use crate::core::time::format_rfc3339;
use crate::edge::http_server::Running;
use crate::edge::http01::responder::{self, ChallengeTokens};
use crate::renew::challenge::StandingResponder;
use crate::renew::{self, ItemResult, Report, RunContext, RunOptions};

pub async fn run(config_path: &Path, lock_timeout: Duration) -> anyhow::Result<()> {
    // Headroom for a flood on the side port (the servers cap their connections at a share of whatever limit this is).
    crate::edge::fd_limit::raise_soft_limit();
    let config = crate::edge::host::load_config(config_path)?;
    let mut owner = crate::edge::host::host_check(&config)?;
    let mut signals = Signals::install()?;
    let started = OffsetDateTime::now_utc();
    let shared = Arc::new(Shared::new(Arc::new(config), started));
    let mut listeners = Listeners::default();
    // First: another daemon on this socket is the clearest reason not to start, before its ports say the same.
    let mut control = control_link::Control::start(shared.config().daemon.control_socket()).await?;
    listeners.apply(&shared.config(), &shared).await?;
    let mut fleet = FleetLink::new(shared.fleet.clone());
    fleet.connect(&shared.config(), listeners.tokens()).await?;
    tracing::info!(config = %config_path.display(), "hapcert daemon started");
    systemd::notify("READY=1");

    let mut last_pass = started;
    let mut last_probe = started;
    let mut jitter_unit = crate::core::ari::random_unit();
    let (mut pass_due, mut probe_due) = (true, true);
    let mut announced_pass = None;
    // What the last pass left: the state it saved and what the files hold. The next wake is planned from it.
    let mut after_pass = None;
    // A certificate held back for a short while (another node holds its lock): the next pass comes no later.
    let mut retry_at: Option<OffsetDateTime> = None;
    loop {
        let config = shared.config();
        if pass_due {
            last_pass = OffsetDateTime::now_utc();
            jitter_unit = crate::core::ari::random_unit();
            shared.set_activity(Activity::Renewing { since: last_pass });
            fleet.connect(&config, listeners.tokens()).await?;
            let context = RunContext {
                responder: listeners.tokens(),
                fleet: fleet.mode.clone(),
                ..Default::default()
            };
            let (flow, report) = renewal_pass(&config, owner, lock_timeout, context, &mut signals).await;
            retry_at = report.as_ref().and_then(earliest_retry);
            after_pass = report.map(|r| (r.state, r.on_disk));
            if flow == Flow::Stop {
                break;
            }
        }
        if probe_due {
            last_probe = OffsetDateTime::now_utc();
            shared.set_activity(Activity::Probing { since: last_probe });
            tokio::select! {
                () = probe(&config, listeners.tokens()) => {}
                signal = signals.stop() => {
                    tracing::info!("{signal}: stopping; the probe is abandoned");
                    break;
                }
            }
        }

        let now = OffsetDateTime::now_utc();
        let mut plan = wake::plan(
            &upcoming(&config, after_pass.as_ref(), now),
            last_pass,
            last_probe,
            &config.daemon,
            jitter_unit,
        );
        if let Some(at) = retry_at.filter(|at| *at < plan.pass_at) {
            plan.pass_at = at;
            plan.pass_reason = "a certificate held back by the fleet's lock".into();
        }
        shared.set_activity(Activity::Sleeping { until: plan.wake_at() });
        // Said once per plan, not at every probe.
        // A plan made again moments later (the fleet's wake-ups) moves "due now" by those moments: not news.
        let news =
            announced_pass.is_none_or(|at: OffsetDateTime| (plan.pass_at - at).abs() > time::Duration::minutes(1));
        if news {
            tracing::info!(next_pass = %format_rfc3339(plan.pass_at), "next renewal pass: {}", plan.pass_reason);
            announced_pass = Some(plan.pass_at);
        }
        tracing::debug!(next_probe = %format_rfc3339(plan.probe_at), "next probe");
        systemd::notify(&format!(
            "STATUS=next renewal pass {} ({}); next probe {}",
            format_rfc3339(plan.pass_at),
            plan.pass_reason,
            format_rfc3339(plan.probe_at)
        ));
        tokio::select! {
            () = tokio::time::sleep(plan.sleep_from(now)) => {
                (pass_due, probe_due) = plan.due(OffsetDateTime::now_utc());
            }
            () = fleet_link::laggard_tick(fleet.coordinated()) => {
                (pass_due, probe_due) = (false, false);
                fleet.alert_laggards(&config).await;
            }
            job = control.next() => {
                (pass_due, probe_due) = (false, false);
                fleet.connect(&config, listeners.tokens()).await?;
                let context = RunContext {
                    responder: listeners.tokens(),
                    fleet: fleet.mode.clone(),
                    ..Default::default()
                };
                let flow = control_link::run_job(job, &config, config_path, lock_timeout, context, &mut signals).await;
                if flow == Flow::Stop {
                    break;
                }
            }
            Some(changed) = fleet.next_change() => {
                (pass_due, probe_due) = (false, false);
                fleet.converge(&config, owner, lock_timeout, changed).await;
            }
            signal = signals.next() => {
                if signal != HANGUP {
                    tracing::info!("{signal}: stopping");
                    break;
                }
                (pass_due, probe_due) = (false, false);
                if let Some(new_owner) = reload(config_path, &shared, &mut listeners).await {
                    owner = new_owner;
                    if shared.config().daemon.control_socket() != control.path() {
                        tracing::warn!(
                            socket = %control.path().display(),
                            "[daemon] control changed; the daemon listens where it started until it is restarted"
                        );
                    }
                    pass_due = true;
                    // The fleet is joined again with what the new config says (its table, its certificates, the
                    // responder its watch feeds); the pass that follows converges first.
                    fleet.close().await;
                    if let Err(err) = fleet.connect(&shared.config(), listeners.tokens()).await {
                        tracing::error!("cannot join the fleet with the new config: {err:#}; serving goes on");
                    }
                }
            }
        }
    }

    systemd::notify("STOPPING=1");
    fleet.close().await;
    control.stop().await;
    listeners.stop().await;
    tracing::info!("hapcert daemon stopped");
    Ok(())
}

/// SIGHUP: the new config and its file owner, or `None` when the one in use stays (the problems are logged).
async fn reload(path: &Path, shared: &Arc<Shared>, listeners: &mut Listeners) -> Option<FileOwner> {
    tracing::info!(config = %path.display(), "SIGHUP: reading the config again");
    systemd::notify("RELOADING=1");
    let outcome = async {
        let config = crate::edge::host::load_config(path)?;
        let owner = crate::edge::host::host_check(&config)?;
        listeners.apply(&config, shared).await?;
        anyhow::Ok((config, owner))
    }
    .await;
    let owner = match outcome {
        Ok((config, owner)) => {
            shared.set_config(Arc::new(config));
            tracing::info!(config = %path.display(), "config reloaded; a renewal pass follows");
            Some(owner)
        }
        Err(err) => {
            tracing::error!(
                config = %path.display(),
                "the new config is not used, the daemon goes on with the one it had:\n{err:#}"
            );
            None
        }
    };
    systemd::notify("READY=1");
    owner
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// One renewal pass, and its report when it ran. A stop signal during it abandons the orders in flight and lets a
/// started deploy finish.
async fn renewal_pass(
    config: &Config,
    owner: FileOwner,
    lock_timeout: Duration,
    context: RunContext,
    signals: &mut Signals,
) -> (Flow, Option<Report>) {
    let (abandon, abandoned) = watch::channel(false);
    let context = RunContext {
        abandon: Some(abandoned),
        ..context
    };
    let options = RunOptions {
        lock_timeout,
        ..Default::default()
    };
    let run = renew::run_with(config, owner, &options, &context);
    tokio::pin!(run);
    let mut flow = Flow::Continue;
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            signal = signals.stop(), if flow == Flow::Continue => {
                tracing::info!("{signal}: stopping; orders in flight are abandoned, a deploy that has started is finished");
                systemd::notify("STOPPING=1");
                abandon.send_replace(true);
                flow = Flow::Stop;
            }
        }
    };
    match outcome {
        Ok(report) => {
            log_report(&report);
            (flow, Some(report))
        }
        Err(err) => {
            tracing::error!("the renewal pass stopped: {err:#}");
            (flow, None)
        }
    }
}

/// The soonest a held-back certificate may be tried again, when that is soon (another node's lock, a stopping daemon
/// excluded): the next pass comes then rather than at the planned time.
fn earliest_retry(report: &Report) -> Option<OffsetDateTime> {
    let soon = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    report
        .items
        .iter()
        .filter_map(|item| match &item.result {
            ItemResult::Deferred { until, .. } | ItemResult::Elsewhere { until, .. } if *until <= soon => Some(*until),
            _ => None,
        })
        .min()
}

fn log_report(report: &Report) {
    let count = |wanted: fn(&ItemResult) -> bool| report.items.iter().filter(|i| wanted(&i.result)).count();
    let renewed = count(|r| matches!(r, ItemResult::Renewed(..)));
    let failed = count(|r| matches!(r, ItemResult::Failed(_)));
    let held_back = count(|r| matches!(r, ItemResult::Deferred { .. }));
    let hooks_failed = report.hook_failures.len();
    if failed + held_back + hooks_failed > 0 {
        tracing::warn!(renewed, failed, held_back, hooks_failed, "renewal pass done");
    } else {
        tracing::info!(renewed, "renewal pass done");
    }
}

/// One probe of the endpoints, as `hapcert check` does it (it records, notifies and writes the metrics).
async fn probe(config: &Config, standing: Option<ChallengeTokens>) {
    let report = crate::check::probe(config, OffsetDateTime::now_utc(), standing).await;
    // The summary goes to the journal only when something is wrong: every 5 minutes "OK" would drown the rest.
    if report.exit_code == 0 {
        tracing::debug!("probe: {}", report.summary);
    } else {
        tracing::warn!("probe: {}", report.summary);
    }
}

/// What each certificate waits for, from what the last pass left (the state it saved, what the files hold). Without
/// a pass that ran, only the recheck interval is left (the pass said why it did not run).
fn upcoming(config: &Config, after_pass: Option<&(State, Vec<Local>)>, now: OffsetDateTime) -> Vec<Upcoming> {
    let Some((state, on_disk)) = after_pass else {
        return Vec::new();
    };
    survey(
        config.certificates.iter().zip(on_disk),
        state,
        Some(&config.acme.directory),
        now,
        Overrides::default(),
    )
    .iter()
    .map(|entry| wake::upcoming(&entry.spec.name, &entry.decision, entry.gate.as_ref(), now))
    .collect()
}

const HANGUP: &str = "SIGHUP";

struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let install = |kind: SignalKind| signal(kind).map_err(|e| anyhow::anyhow!("cannot handle signals: {e}"));
        Ok(Signals {
            hangup: install(SignalKind::hangup())?,
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Completes on any of the three, with the signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.hangup.recv() => HANGUP,
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }

    /// Completes on SIGTERM or SIGINT, with the signal's name. A SIGHUP meanwhile waits for [`Signals::next`].
    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// The daemon's listening sockets: the standing HTTP-01 responder (side-port mode) and the metrics server.
#[derive(Default)]
struct Listeners {
    responder: Option<StandingResponder>,
    metrics: Option<MetricsServer>,
}

struct MetricsServer {
    addr: SocketAddr,
    server: Running,
}

impl Listeners {
    /// Where a run publishes its tokens; none in stateless mode.
    fn tokens(&self) -> Option<ChallengeTokens> {
        self.responder.as_ref().map(StandingResponder::tokens)
    }

    /// Listens where `config` says. Every new address is bound before anything is let go: an error leaves all as it was.
    async fn apply(&mut self, config: &Config, shared: &Arc<Shared>) -> anyhow::Result<()> {
        let side = (config.challenge.mode == ChallengeMode::SidePort).then_some(config.challenge.listen);
        let side_change = match side {
            _ if side == self.responder.as_ref().map(StandingResponder::listen) => None,
            Some(addr) => Some(Some((responder::bind(addr).await?, addr))),
            None => Some(None),
        };
        let metrics = config.daemon.listen;
        let metrics_change = match metrics {
            _ if metrics == self.metrics.as_ref().map(|m| m.addr) => None,
            Some(addr) => Some(Some((server::bind(addr).await?, addr))),
            None => Some(None),
        };

        if let Some(new) = side_change {
            if let Some(old) = self.responder.take() {
                old.stop().await;
            }
            self.responder = new.map(|(listener, addr)| StandingResponder::start(listener, addr));
        }
        if let Some(new) = metrics_change {
            if let Some(old) = self.metrics.take() {
                old.stop().await;
            }
            self.metrics = new.map(|(listener, addr)| MetricsServer::start(listener, addr, shared.clone()));
        }
        Ok(())
    }

    async fn stop(self) {
        if let Some(responder) = self.responder {
            responder.stop().await;
        }
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
    }
}

impl MetricsServer {
    fn start(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) -> MetricsServer {
        let server = Running::spawn(|shutdown| server::serve(listener, shared, shutdown));
        tracing::info!(listen = %addr, "serving /metrics and /healthz");
        MetricsServer { addr, server }
    }

    async fn stop(self) {
        self.server.stop().await;
        tracing::info!(listen = %self.addr, "stopped serving /metrics and /healthz");
    }
}
