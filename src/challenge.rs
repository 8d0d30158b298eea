//! The HTTP-01 side of a run: the side-port responder (in side-port mode), and the preflight that fetches a test token
//! through the public path before anything is ordered. In stateless mode HAProxy answers `<token>.<thumbprint>` itself,
//! so hapcert listens nowhere and the preflight expects the same answer: one check serves both modes.

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{CertificateSpec, ChallengeMode, Config};
use crate::preflight::{self, PreflightError};
use crate::responder::{self, ChallengeTokens};

pub struct ChallengeSide {
    pub tokens: ChallengeTokens,
    thumbprint: String,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl ChallengeSide {
    /// Opens the side port in side-port mode. `thumbprint` is the ACME account key's, which every key authorization ends in.
    pub async fn start(config: &Config, thumbprint: &str) -> anyhow::Result<ChallengeSide> {
        let tokens = ChallengeTokens::default();
        let server = match config.challenge.mode {
            ChallengeMode::Stateless => None,
            ChallengeMode::SidePort => {
                let listener = responder::bind(config.challenge.listen).await?;
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(responder::serve(listener, tokens.clone(), async {
                    stopped.await.ok();
                }));
                tracing::debug!(listen = %config.challenge.listen, "HTTP-01 responder up");
                Some((stop, task))
            }
        };
        Ok(ChallengeSide {
            tokens,
            thumbprint: thumbprint.to_owned(),
            server,
        })
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
            preflight::check(domain.as_str(), config.challenge.preflight_address, &token, &expected).await?;
            tracing::debug!(certificate = %spec.name, %domain, "preflight: the challenge path works");
        }
        Ok(())
    }

    pub async fn stop(self) {
        if let Some((stop, task)) = self.server {
            stop.send(()).ok();
            task.await.ok();
            tracing::debug!("HTTP-01 responder down");
        }
    }
}
