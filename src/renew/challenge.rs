//! The HTTP-01 side of a run: the side-port responder (in side-port mode), and the preflight that fetches a test token
//! through the public path before anything is ordered. In stateless mode HAProxy answers `<token>.<thumbprint>` itself,
//! so hapcert listens nowhere and the preflight expects the same answer: one check serves both modes.
//!
//! A one-shot run opens the side port for its orders and closes it after them. The daemon keeps it open for its whole
//! life ([`StandingResponder`]), so that a health-checked challenge backend in HAProxy stays UP, and its runs publish
//! their tokens there.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::core::config::{CertificateSpec, ChallengeMode, Config};
use crate::edge::acme::Acme;
use crate::edge::http_server::Running;
use crate::edge::http01::preflight::{self, PreflightError};
use crate::edge::http01::responder::{self, ChallengeTokens};
use crate::edge::store::StateDir;
use crate::output::outln;

pub struct ChallengeSide {
    pub tokens: ChallengeTokens,
    thumbprint: String,
    /// The responder this side opened itself; none when it borrows a standing one, or in stateless mode.
    server: Option<Running>,
}

impl ChallengeSide {
    /// Opens the side port in side-port mode. `thumbprint` is the ACME account key's, which every key authorization ends in.
    pub async fn start(config: &Config, thumbprint: &str) -> anyhow::Result<ChallengeSide> {
        let tokens = ChallengeTokens::default();
        let server = match config.challenge.mode {
            ChallengeMode::Stateless => None,
            ChallengeMode::SidePort => {
                let listener = responder::bind(config.challenge.listen).await?;
                tracing::debug!(listen = %config.challenge.listen, "HTTP-01 responder up");
                Some(serve(listener, tokens.clone()))
            }
        };
        Ok(ChallengeSide {
            tokens,
            thumbprint: thumbprint.to_owned(),
            server,
        })
    }

    /// Publishes into a responder that is already up (the daemon's); [`ChallengeSide::stop`] leaves it up.
    pub fn over(standing: ChallengeTokens, thumbprint: &str) -> ChallengeSide {
        ChallengeSide {
            tokens: standing,
            thumbprint: thumbprint.to_owned(),
            server: None,
        }
    }

    /// Fetches a fresh token for every name of `spec` as the CA would. Errors name the first broken route.
    pub async fn preflight(&self, config: &Config, spec: &CertificateSpec) -> Result<(), PreflightError> {
        for domain in &spec.domains {
            let token = preflight::random_token();
            let expected = format!("{token}.{}", self.thumbprint);
            let _published = self
                .tokens
                .publish(&token, &expected)
                .expect("random tokens are base64url");
            tracing::debug!(certificate = %spec.name, %domain, "preflight: fetching a test token through the public path");
            preflight::fetch_token(domain.as_str(), config.challenge.preflight_address, &token, &expected).await?;
            tracing::debug!(certificate = %spec.name, %domain, "preflight: the challenge path works");
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

/// `hapcert preflight`: a test token fetched through the public path for every name of the named certificates (all,
/// with none), as the CA will; `false` when a route is broken.
pub async fn preflight_command(config: &Config, names: &[String], lock_timeout: Duration) -> anyhow::Result<bool> {
    crate::edge::host::host_check(config)?;
    let state = StateDir::create(&config.state.dir.value)?;
    let _lock = state.lock(lock_timeout)?;
    let acme = Acme::connect(&config.acme, &state).await?;
    let side = ChallengeSide::start(config, acme.thumbprint()).await?;
    let mut all_ok = true;
    for spec in config.select(names) {
        match side.preflight(config, spec).await {
            Ok(()) => outln!(
                "ok        {}: {}",
                spec.name,
                spec.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Err(err) => {
                all_ok = false;
                outln!("FAILED    {}: {err}", spec.name);
            }
        }
    }
    side.stop().await;
    Ok(all_ok)
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
