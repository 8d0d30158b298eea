//! The HTTP-01 side of a run: the side-port responder (in side-port mode), and the preflight that fetches a test token
//! through the public path before anything is ordered. In stateless mode HAProxy answers `<token>.<thumbprint>` itself,
//! so hapcert listens nowhere and the preflight expects the same answer: one check serves both modes.
//!
//! A one-shot run opens the side port for its orders and closes it after them. The daemon keeps it open for its whole
//! life ([`StandingResponder`]), so that a health-checked challenge backend in HAProxy stays UP, and its runs publish
//! their tokens there.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::core::challenge::{Challenge, ChallengeKind, ChallengePublisher};
use crate::core::config::{CertificateSpec, ChallengeMode, Config};
use crate::edge::acme::Acme;
use crate::edge::http_server::Running;
use crate::edge::http01::preflight;
use crate::edge::http01::responder::{self, ChallengeTokens, TokenGuard};
use crate::edge::store::StateDir;
use crate::fleet::Session;
use crate::output::outln;

pub struct ChallengeSide {
    pub tokens: ChallengeTokens,
    thumbprint: String,
    /// The responder this side opened itself; none when it borrows a standing one, or in stateless mode.
    server: Option<Running>,
    /// In a fleet, tokens are also published in the shared store, where every node's daemon answers them.
    fleet: Option<Arc<Session>>,
}

impl ChallengeSide {
    /// Opens the side port in side-port mode. `thumbprint` is the ACME account key's, which every key authorization ends in.
    /// In a fleet, a side port already taken (by this node's daemon) is left to its holder, which answers the tokens
    /// published in the store.
    pub async fn start(
        config: &Config,
        thumbprint: &str,
        fleet: Option<Arc<Session>>,
    ) -> anyhow::Result<ChallengeSide> {
        let tokens = ChallengeTokens::default();
        let server = match config.challenge.mode {
            ChallengeMode::Stateless => None,
            ChallengeMode::SidePort => match responder::bind(config.challenge.listen).await {
                Ok(listener) => {
                    tracing::debug!(listen = %config.challenge.listen, "HTTP-01 responder up");
                    Some(serve(listener, tokens.clone()))
                }
                Err(err) if fleet.is_some() && in_use(&err) => {
                    tracing::info!(listen = %config.challenge.listen, "the side port is held (by this node's daemon); the tokens go through the fleet's store, where it answers them");
                    None
                }
                Err(err) => return Err(err),
            },
        };
        Ok(ChallengeSide {
            tokens,
            thumbprint: thumbprint.to_owned(),
            server,
            fleet,
        })
    }

    /// Publishes into a responder that is already up (the daemon's); [`ChallengeSide::stop`] leaves it up.
    pub fn over(standing: ChallengeTokens, thumbprint: &str, fleet: Option<Arc<Session>>) -> ChallengeSide {
        ChallengeSide {
            tokens: standing,
            thumbprint: thumbprint.to_owned(),
            server: None,
            fleet,
        }
    }

    /// Publishes `key_authorization` for `token` here and, in a fleet, in the store.
    async fn publish_answer(&self, token: &str, key_authorization: &str) -> anyhow::Result<Published> {
        let local = self.tokens.publish(token, key_authorization)?;
        let Some(session) = &self.fleet else {
            return Ok(Published {
                _local: local,
                shared: None,
            });
        };
        session
            .store
            .publish_token(token, key_authorization, session.lease())
            .await
            .map_err(|err| anyhow::anyhow!("cannot publish the challenge token to the fleet: {err}"))?;
        Ok(Published {
            _local: local,
            shared: Some((session.clone(), token.to_owned())),
        })
    }

    /// Fetches a fresh token for every name of `spec` as the CA would. Errors name the first broken route.
    /// In a fleet, through every live node's advertised address, so that one broken node is found before the CA is
    /// asked.
    pub async fn preflight(&self, config: &Config, spec: &CertificateSpec) -> anyhow::Result<()> {
        let routes: Vec<(String, Option<SocketAddr>)> = match &self.fleet {
            None => vec![(String::new(), config.challenge.preflight_address)],
            Some(session) => fleet_routes(session, config.challenge.preflight_address).await?,
        };
        for domain in &spec.domains {
            let token = preflight::random_token();
            let expected = format!("{token}.{}", self.thumbprint);
            let published = self.publish_answer(&token, &expected).await?;
            self.settle(std::slice::from_ref(&published)).await?;
            for (node, address) in &routes {
                tracing::debug!(certificate = %spec.name, %domain, node, "preflight: fetching a test token through the public path");
                preflight::fetch_token(domain.as_str(), *address, &token, &expected)
                    .await
                    .map_err(|err| match node.as_str() {
                        "" => anyhow::Error::new(err),
                        node => anyhow::Error::new(err).context(format!("through fleet node {node}")),
                    })?;
            }
            tracing::debug!(certificate = %spec.name, %domain, "preflight: the challenge path works");
        }
        Ok(())
    }

    /// Fetches a fresh token for every name of `spec` through `address` alone (`None`: each name's own address), and
    /// publishes it only here, never in a fleet's store: `check`'s route check of this node.
    pub async fn preflight_through(&self, spec: &CertificateSpec, address: Option<SocketAddr>) -> anyhow::Result<()> {
        for domain in &spec.domains {
            let token = preflight::random_token();
            let expected = format!("{token}.{}", self.thumbprint);
            // Random and unknown to any CA: a run answering its own tokens beside it never meets this one.
            let _published = self.tokens.publish(&token, &expected)?;
            preflight::fetch_token(domain.as_str(), address, &token, &expected).await?;
        }
        Ok(())
    }

    pub async fn stop(self) {
        if let Some(server) = self.server {
            server.stop().await;
            tracing::debug!("HTTP-01 responder down");
        }
    }
}

/// How long a token published in the fleet's store is given to reach the other nodes before the CA is told to look.
const WATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(150);

/// Every live node's advertised address ([fleet] advertise), by node name.
/// With no node announced (no daemon runs), the configured preflight address.
async fn fleet_routes(session: &Session, own: Option<SocketAddr>) -> anyhow::Result<Vec<(String, Option<SocketAddr>)>> {
    let members = session
        .store
        .members()
        .await
        .map_err(|err| anyhow::anyhow!("cannot list the fleet's nodes for the preflight: {err}"))?;
    let mut routes = Vec::new();
    for (node, member) in members {
        match member.advertise.as_deref().map(str::parse::<SocketAddr>) {
            Some(Ok(address)) => routes.push((node, Some(address))),
            Some(Err(_)) | None => {
                tracing::warn!(
                    node,
                    "this fleet node advertises no address ([fleet] advertise); the preflight cannot reach it"
                )
            }
        }
    }
    // A one-shot run's own node is no member: it is checked through its own advertised address too.
    let node = session.store.node();
    if !routes.iter().any(|(name, _)| name == node) {
        match session.config.advertise {
            Some(address) => routes.push((node.to_owned(), Some(address))),
            None if routes.is_empty() => routes.push((String::new(), own)),
            None => {}
        }
    }
    Ok(routes)
}

/// Whether binding failed because something already listens there.
pub fn in_use(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// An answer published for one challenge: withdrawn from here and from the fleet's store when dropped.
pub struct Published {
    _local: TokenGuard,
    shared: Option<(Arc<Session>, String)>,
}

impl Drop for Published {
    fn drop(&mut self) {
        if let Some((session, token)) = self.shared.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = session.store.remove_token(&token).await {
                    tracing::debug!("cannot withdraw a challenge token from the fleet: {err}; its lease will");
                }
            });
        }
    }
}

/// The HTTP-01 answers of a run: in memory, and in a fleet also in the store.
impl ChallengePublisher for ChallengeSide {
    type Published = Published;

    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn publish(&self, challenge: Challenge<'_>) -> impl Future<Output = anyhow::Result<Published>> + Send {
        self.publish_answer(challenge.token, challenge.key_authorization)
    }

    /// In memory, an answer is served as soon as it is published; the other nodes of a fleet learn of one through
    /// their watch, a few milliseconds behind the write.
    async fn settle(&self, published: &[Published]) -> anyhow::Result<()> {
        if published.iter().any(|p| p.shared.is_some()) {
            tokio::time::sleep(WATCH_DELAY).await;
        }
        Ok(())
    }

    async fn withdraw(&self, published: Vec<Published>) {
        drop(published);
    }
}

/// `hapcert preflight`: for every name of the named certificates (all, with none), a test token fetched through the
/// public path as the CA will (HTTP-01), or a probe TXT record added, seen on every authoritative server, and removed
/// (DNS-01); `false` when one fails.
pub async fn preflight_command(config: &Config, names: &[String], lock_timeout: Duration) -> anyhow::Result<bool> {
    crate::edge::host::host_check(config)?;
    let state = StateDir::create(&config.state.dir.value)?;
    let _lock = state.lock(lock_timeout)?;
    let specs: Vec<&CertificateSpec> = config.select(names).collect();
    let thumbprint = match specs.iter().any(|s| s.challenge == ChallengeKind::Http01) {
        false => String::new(),
        true => {
            crate::fleet::account::use_fleets(config, &state).await?;
            Acme::connect(&config.acme, &state).await?.thumbprint().to_owned()
        }
    };
    let mut all_ok = true;
    for (spec, checked) in preflight_each(config, &state, &specs, &thumbprint).await? {
        match checked {
            Ok(()) => outln!(
                "ok        {}: {} ({})",
                spec.name,
                spec.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                spec.challenge.name()
            ),
            Err(err) => {
                all_ok = false;
                outln!("FAILED    {}: {err:#}", spec.name);
            }
        }
    }
    Ok(all_ok)
}

/// The preflight of each of `specs`, in order, with its outcome: what `hapcert preflight` prints and `doctor` judges.
/// `thumbprint` ends the HTTP-01 test answers: in stateless mode HAProxy answers with the account's, so it must be that
/// one; in side-port mode hapcert answers itself, and any will do. The error is one that stops every HTTP-01 check
/// (the side port cannot be opened: [`in_use`] tells when something holds it).
pub async fn preflight_each<'a>(
    config: &Config,
    state: &StateDir,
    specs: &[&'a CertificateSpec],
    thumbprint: &str,
) -> anyhow::Result<Vec<(&'a CertificateSpec, anyhow::Result<()>)>> {
    let http = match specs.iter().any(|s| s.challenge == ChallengeKind::Http01) {
        false => None,
        true => Some(ChallengeSide::start(config, thumbprint, None).await?),
    };
    let dns_specs = specs.iter().copied().filter(|s| s.challenge == ChallengeKind::Dns01);
    let dns = match dns_specs.clone().next() {
        None => None,
        Some(_) => Some(super::dns::DnsSide::open(config, state, dns_specs).await),
    };
    let outcomes = preflight_with(config, specs, http.as_ref().map(|side| (side, None)), dns.as_ref()).await;
    if let Some(side) = http {
        side.stop().await;
    }
    Ok(outcomes)
}

/// The preflight of each of `specs` through sides already open: `http` with the address to fetch through (`None`:
/// the run's routes), `dns`. A certificate whose challenge has no side here is left out. What a run's preflight, `hapcert
/// preflight`, `doctor` and `check`'s daily route check share.
pub async fn preflight_with<'a>(
    config: &Config,
    specs: &[&'a CertificateSpec],
    http: Option<(&ChallengeSide, Option<Option<SocketAddr>>)>,
    dns: Option<&super::dns::DnsSide>,
) -> Vec<(&'a CertificateSpec, anyhow::Result<()>)> {
    let mut outcomes = Vec::new();
    for spec in specs {
        let checked = match (http, dns) {
            (Some((side, None)), _) if spec.challenge == ChallengeKind::Http01 => side.preflight(config, spec).await,
            (Some((side, Some(address))), _) if spec.challenge == ChallengeKind::Http01 => {
                side.preflight_through(spec, address).await
            }
            (_, Some(dns)) if spec.challenge == ChallengeKind::Dns01 => match dns.answers(config, spec) {
                Ok(answers) => answers.preflight(spec).await,
                Err(err) => Err(err),
            },
            _ => continue,
        };
        outcomes.push((*spec, checked));
    }
    outcomes
}

/// The daemon's side port: open from start to shutdown, answering only the tokens its runs publish.
pub struct StandingResponder {
    listen: SocketAddr,
    tokens: ChallengeTokens,
    server: Running,
}

impl StandingResponder {
    /// Serves on `listener`, which was bound to `listen` (binding is separate, so that a reload can bind the new port
    /// before it lets go of the old one).
    pub fn start(listener: TcpListener, listen: SocketAddr) -> StandingResponder {
        let tokens = ChallengeTokens::default();
        tracing::info!(%listen, "HTTP-01 responder up for the daemon's life");
        StandingResponder {
            listen,
            server: serve(listener, tokens.clone()),
            tokens,
        }
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Where a run publishes its tokens.
    pub fn tokens(&self) -> ChallengeTokens {
        self.tokens.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
        tracing::info!(listen = %self.listen, "HTTP-01 responder down");
    }
}

/// The responder on `listener`, answering the tokens published in `tokens`.
fn serve(listener: TcpListener, tokens: ChallengeTokens) -> Running {
    Running::spawn(|shutdown| responder::serve(listener, tokens, shutdown))
}
