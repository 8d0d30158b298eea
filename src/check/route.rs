//! The challenge-route check of `check` and the daemon: each certificate's preflight (a test token fetched through
//! HAProxy's port 80, or a probe TXT record seen on every authoritative server), tried once a day while it works and at
//! every check while it does not, so that a route broken after issuance shows long before the renewal that needs it.
//!
//! A check never waits for a run, and never disturbs one:
//! - HTTP-01: the test token is random, published only in this process's responder (never in a fleet's store), and
//!   withdrawn at once. In side-port mode the daemon's check publishes into the daemon's standing responder; a one-shot
//!   check opens the side port only while it holds the run lock, taken only if free at once, so that a run starting
//!   meanwhile waits a moment instead of finding its port taken. Held (a run, or the daemon, which checks the routes
//!   itself): the routes keep their last result.
//! - DNS-01: the probe record goes in a journal of its own (`dns-probes.json`), so a check never removes a run's
//!   records; `route.lock` keeps two checks from sharing that journal.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use time::OffsetDateTime;

use crate::core::challenge::ChallengeKind;
use crate::core::config::{CertificateSpec, ChallengeMode, Config};
use crate::core::state::monitor::RouteCheck;
use crate::edge::acme::Acme;
use crate::edge::http01::preflight::random_token;
use crate::edge::http01::responder::ChallengeTokens;
use crate::edge::store::{RunLock, StateDir};
use crate::renew::challenge::{ChallengeSide, in_use, preflight_with};
use crate::renew::dns::DnsSide;

/// Each configured certificate's last route check, with those that were due tried now. Empty when `[check] route`
/// is off. `standing` is the daemon's responder, when it has one.
pub async fn observe(
    config: &Config,
    standing: Option<ChallengeTokens>,
    now: OffsetDateTime,
) -> BTreeMap<String, RouteCheck> {
    if !config.check.route {
        return BTreeMap::new();
    }
    let store = StateDir::at(&config.state.dir.value);
    let mut routes: BTreeMap<String, RouteCheck> = match store.load_monitor() {
        Ok(monitor) => monitor.routes,
        Err(err) => {
            tracing::debug!("the last route checks cannot be read ({err:#}); every route is tried");
            BTreeMap::new()
        }
    };
    routes.retain(|name, _| config.certificates.iter().any(|c| c.name == *name));
    let due: Vec<&CertificateSpec> = config
        .certificates
        .iter()
        .filter(|spec| RouteCheck::due(routes.get(&spec.name), now))
        .collect();
    if due.is_empty() {
        return routes;
    }
    let Ok(store) = StateDir::create(&config.state.dir.value) else {
        return routes;
    };
    let _one_check = match store.route_lock() {
        Ok(lock) => lock,
        Err(err) => {
            tracing::debug!("the routes are left to another check: {err:#}");
            return routes;
        }
    };
    for (spec, checked) in try_routes(config, &store, &due, standing).await {
        tracing::debug!(certificate = %spec.name, ok = checked.is_ok(), "challenge route tried");
        routes.insert(
            spec.name.clone(),
            RouteCheck {
                at: now,
                problem: checked.err().map(|err| format!("{err:#}")),
            },
        );
    }
    routes
}

/// The preflight of each of `due` that can be tried now; one that cannot is left out.
async fn try_routes<'a>(
    config: &Config,
    store: &StateDir,
    due: &[&'a CertificateSpec],
    standing: Option<ChallengeTokens>,
) -> Vec<(&'a CertificateSpec, anyhow::Result<()>)> {
    let http_specs: Vec<&CertificateSpec> = due
        .iter()
        .copied()
        .filter(|s| s.challenge == ChallengeKind::Http01)
        .collect();
    let dns_specs: Vec<&CertificateSpec> = due
        .iter()
        .copied()
        .filter(|s| s.challenge == ChallengeKind::Dns01)
        .collect();
    let http = match http_specs.is_empty() {
        true => None,
        false => http_side(config, store, standing).await,
    };
    let dns = match dns_specs.is_empty() {
        true => None,
        false => Some(DnsSide::open_for_probes(config, store, dns_specs.iter().copied()).await),
    };
    // In a fleet, this node's own address: the names may lead to another node, which does not know this token.
    let address: Option<SocketAddr> = config
        .fleet
        .as_ref()
        .and_then(|f| f.advertise)
        .or(config.challenge.preflight_address);
    let outcomes = preflight_with(
        config,
        due,
        http.as_ref().map(|(side, _)| (side, Some(address))),
        dns.as_ref(),
    )
    .await;
    if let Some((side, _run_lock)) = http {
        side.stop().await;
    }
    outcomes
}

/// Where the test tokens are answered, and the run lock a one-shot check holds while it has the side port; none when
/// the routes cannot be tried now.
async fn http_side(
    config: &Config,
    store: &StateDir,
    standing: Option<ChallengeTokens>,
) -> Option<(ChallengeSide, Option<RunLock>)> {
    match (config.challenge.mode, standing) {
        // HAProxy answers `<token>.<thumbprint>` itself: the account's thumbprint, and nothing to listen on.
        (ChallengeMode::Stateless, _) => {
            let thumbprint = match Acme::existing(&config.acme, store).await {
                Ok(acme) => acme.thumbprint().to_owned(),
                Err(err) => {
                    tracing::debug!("the HTTP-01 routes are not tried: {err:#}");
                    return None;
                }
            };
            Some((ChallengeSide::over(ChallengeTokens::default(), &thumbprint, None), None))
        }
        // The daemon's own responder answers; its runs publish there too, each its own tokens.
        (ChallengeMode::SidePort, Some(tokens)) => Some((ChallengeSide::over(tokens, &random_token(), None), None)),
        (ChallengeMode::SidePort, None) => {
            let run_lock = match store.lock(std::time::Duration::ZERO) {
                Ok(lock) => lock,
                Err(_) => {
                    tracing::debug!("a run holds the side port's lock; the HTTP-01 routes are tried at a later check");
                    return None;
                }
            };
            match ChallengeSide::start(config, &random_token(), None).await {
                Ok(side) => Some((side, Some(run_lock))),
                Err(err) if in_use(&err) => {
                    tracing::debug!(
                        listen = %config.challenge.listen,
                        "the side port is held (by the daemon, which tries the routes itself)"
                    );
                    None
                }
                Err(err) => {
                    tracing::warn!("the HTTP-01 routes cannot be tried: {err:#}");
                    None
                }
            }
        }
    }
}
