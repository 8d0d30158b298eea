//! The CA's side of a run: one session, made on first need; the renewal windows (ARI) that are stale; and the orders,
//! at most [`MAX_CONCURRENT_ORDERS`] at a time, each with a fresh key, its challenges answered by the run's HTTP-01
//! side or, for a DNS-01 certificate, its DNS provider (after that challenge's preflight), and what the CA sent
//! verified before anything is deployed.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::challenge::ChallengeSide;
use super::dns::DnsSide;
use super::progress::Progress;
use crate::core::ari;
use crate::core::challenge::{ChallengeKind, ChallengePublisher};
use crate::core::config::{CertificateSpec, Config};
use crate::core::keys::{csr_der, generate_key};
use crate::core::pem::Bundle;
use crate::core::state::State;
use crate::core::time::format_rfc3339;
use crate::core::trust::TrustRoots;
use crate::core::verify::{Verified, verify_issued};
use crate::edge::acme::{Acme, OrderGone, OrderOptions};
use crate::edge::http01::responder::ChallengeTokens;
use crate::edge::probe::NoTls;
use crate::edge::store::StateDir;
use crate::fanout;
use crate::fleet::Session;
use crate::fleet::orders::{Journaling, LockedOrder};
use rcgen::KeyPair;

/// Orders in flight at once. Enough to keep a CA busy; few enough not to look like abuse.
pub const MAX_CONCURRENT_ORDERS: usize = 8;

/// The CA session of a run, made on first need: a run with nothing due and every window fresh sends no request, and
/// one that only reads renewal windows registers no account.
pub(super) struct CaSession<'a> {
    config: &'a Config,
    store: &'a StateDir,
    acme: OnceCell<Arc<Acme>>,
    reader: OnceCell<Arc<Acme>>,
}

impl<'a> CaSession<'a> {
    pub(super) fn new(config: &'a Config, store: &'a StateDir) -> CaSession<'a> {
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
    pub(super) fn requests(&self) -> usize {
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
pub(super) async fn refresh_renewal_info(
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
    let answers = fanout::bounded(MAX_CONCURRENT_ORDERS, "renewal window", stale, move |(name, id)| {
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

/// Issues every due certificate with one account and one responder (the daemon's standing one, when given), at most
/// `MAX_CONCURRENT_ORDERS` at a time. One certificate's failure does not stop the others. Results come back in the order
/// of `orders`. Dropping the future drops the orders in flight, and with them their tokens.
pub(super) async fn issue_all(
    config: &Config,
    ca: &CaSession<'_>,
    orders: Vec<(CertificateSpec, Option<String>, Option<LockedOrder>)>,
    standing: Option<ChallengeTokens>,
    fleet: Option<Arc<Session>>,
    show_progress: bool,
) -> Vec<anyhow::Result<Verified>> {
    let shared_failure = |err: anyhow::Error| orders.iter().map(|_| Err(anyhow::anyhow!("{err:#}"))).collect();
    // Before any order: a certificate that could not be verified to a root would not be deployed.
    let loading = config.clone();
    let roots = match tokio::task::spawn_blocking(move || crate::edge::roots::load(&loading)).await {
        Ok(Ok(roots)) => Arc::new(roots),
        Ok(Err(why)) => {
            return shared_failure(anyhow::anyhow!(
                "cannot load the roots a new certificate must lead to: {why}; nothing was ordered"
            ));
        }
        Err(err) => return shared_failure(anyhow::anyhow!("loading the trusted roots failed: {err}")),
    };
    let acme = match ca.get().await {
        Ok(acme) => acme,
        Err(err) => return shared_failure(err),
    };
    let wants = |kind: ChallengeKind| orders.iter().any(|(spec, ..)| spec.challenge == kind);
    let side = match standing {
        _ if !wants(ChallengeKind::Http01) => None,
        Some(tokens) => Some(ChallengeSide::over(tokens, acme.thumbprint(), fleet)),
        None => match ChallengeSide::start(config, acme.thumbprint(), fleet).await {
            Ok(side) => Some(side),
            Err(err) => return shared_failure(err),
        },
    };
    let side = side.map(Arc::new);
    let dns = match wants(ChallengeKind::Dns01) {
        false => None,
        true => Some(Arc::new(
            DnsSide::open(config, ca.store, orders.iter().map(|(spec, ..)| spec)).await,
        )),
    };

    let unanswered = Arc::new(match config.challenge.preflight {
        true => unanswered_endpoints(&orders).await,
        false => HashMap::new(),
    });

    let progress = Progress::start(orders.len(), show_progress);
    // Every order's task is made before the first runs: each must share this one copy, not hold its own. A copy each
    // costs the config's size times the number of orders (600 MB for 1,000 certificates).
    let config = Arc::new(config.clone());
    let results = fanout::bounded(MAX_CONCURRENT_ORDERS, "issuance", orders, |(spec, replaces, locked)| {
        let (acme, side, dns, config, progress) = (
            acme.clone(),
            side.clone(),
            dns.clone(),
            config.clone(),
            progress.clone(),
        );
        let (roots, unanswered, store) = (roots.clone(), unanswered.clone(), ca.store.clone());
        async move {
            let order = Order {
                spec: &spec,
                replaces: replaces.as_deref(),
                locked: locked.as_ref(),
            };
            let sides = Sides {
                store: &store,
                http: side.as_deref(),
                dns: dns.as_deref(),
                unanswered: &unanswered,
            };
            let issued = answered_by(&config, &acme, order, sides, &roots).await;
            progress.finished(&spec.name);
            issued
        }
    })
    .await;
    progress.clear();

    if let Some(side) = side.and_then(|side| Arc::try_unwrap(side).ok()) {
        side.stop().await;
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("the issuance task ended abnormally"))))
        .collect()
}

/// One certificate to order: what it replaces, and the fleet's lock on it when there is one.
struct Order<'a> {
    spec: &'a CertificateSpec,
    replaces: Option<&'a str>,
    locked: Option<&'a LockedOrder>,
}

/// The certificate issued for `spec` by an earlier run whose deploy failed, when it can still be deployed: the
/// config's names and key type, valid now, leading to a trusted root. An issued certificate is a resource (the CA
/// counts duplicates); one that no longer fits is removed and a new one ordered.
fn kept_issued(store: &StateDir, spec: &CertificateSpec, roots: &TrustRoots) -> Option<Verified> {
    let path = store.kept_issued_path(&spec.name);
    let bytes = std::fs::read(&path).ok()?;
    let usable = Bundle::parse(&bytes)
        .map_err(|err| err.to_string())
        .and_then(|bundle| {
            verify_issued(&bundle, &spec.domain_set(), roots, OffsetDateTime::now_utc()).map_err(|err| err.to_string())
        })
        .and_then(|verified| match verified.facts().key_type == Some(spec.key_type) {
            true => Ok(verified),
            false => Err(format!("its key is not {}", spec.key_type)),
        });
    match usable {
        Ok(verified) => {
            tracing::info!(certificate = %spec.name, serial = %verified.facts().serial, "deploying the certificate an earlier run issued and could not deploy; nothing is ordered");
            Some(verified)
        }
        Err(why) => {
            tracing::info!(certificate = %spec.name, "the certificate kept from an earlier run no longer fits ({why}); ordering a new one");
            crate::edge::store::remove_durably(&path).ok();
            None
        }
    }
}

/// What a run's orders are answered and checked with.
struct Sides<'a> {
    store: &'a StateDir,
    http: Option<&'a ChallengeSide>,
    dns: Option<&'a DnsSide>,
    /// The `verify` endpoints nothing answers TLS on, with the cause.
    unanswered: &'a HashMap<String, NoTls>,
}

/// The `verify` endpoints of the due certificates that nothing answers TLS on, with the cause: checked once per run,
/// before any order, so that a certificate that could never be proven served is not issued only to be rolled back (and
/// issued again at every retry, against the CA's duplicate-certificate limit).
async fn unanswered_endpoints(
    orders: &[(CertificateSpec, Option<String>, Option<LockedOrder>)],
) -> HashMap<String, NoTls> {
    crate::edge::probe::verify_endpoints(orders.iter().map(|(spec, ..)| spec))
        .await
        .into_iter()
        .filter_map(|(endpoint, answered, _)| Some((endpoint, answered.err()?)))
        .collect()
}

/// Checks the profile and that the `verify` endpoints answer, runs the preflight of the certificate's challenge, and
/// issues it with that challenge.
async fn answered_by(
    config: &Config,
    acme: &Acme,
    order: Order<'_>,
    sides: Sides<'_>,
    roots: &TrustRoots,
) -> anyhow::Result<Verified> {
    let spec = order.spec;
    if let Some(profile) = &spec.profile {
        acme.check_profile(profile).context("nothing was ordered")?;
    }
    if let Some(kept) = kept_issued(sides.store, spec, roots) {
        return Ok(kept);
    }
    let preflight_failed = "preflight failed, nothing was ordered";
    if let Some(silent) = spec.verify.iter().find_map(|e| sides.unanswered.get(e)) {
        let problem = match silent.refused {
            // The commonest case, said with the one key to change.
            true => format!(
                "{}; a new certificate must be proven served there",
                silent.message(&spec.verify_key)
            ),
            false => format!(
                "nothing answers TLS on {}, where a new certificate must be proven served ({}); set {} to an address \
                 HAProxy's TLS frontend binds, like its public address:443",
                silent.endpoint, silent.why, spec.verify_key
            ),
        };
        return Err(anyhow::anyhow!("{problem}").context(preflight_failed));
    }
    match (spec.challenge, sides.http, sides.dns) {
        (ChallengeKind::Http01, Some(side), _) => {
            if config.challenge.preflight {
                side.preflight(config, spec).await.context(preflight_failed)?;
            }
            issue_one(config, acme, order, side, roots).await
        }
        (ChallengeKind::Dns01, _, Some(dns)) => {
            let answers = dns.answers(config, spec).context("nothing was ordered")?;
            if config.challenge.preflight {
                answers.preflight(spec).await.context(preflight_failed)?;
            }
            issue_one(config, acme, order, &answers, roots).await
        }
        (kind, ..) => anyhow::bail!("no {} side was opened for certificate {}", kind.name(), spec.name),
    }
}

async fn issue_one<P: ChallengePublisher>(
    config: &Config,
    acme: &Acme,
    order: Order<'_>,
    publisher: &P,
    roots: &TrustRoots,
) -> anyhow::Result<Verified> {
    let spec = order.spec;
    // An order a previous lock holder journaled is resumed, with its key, rather than placed again.
    let mut journaled = match order.locked {
        Some(locked) => locked.journaled().await?,
        None => None,
    };
    let chain = loop {
        let (key, resume) = match journaled.take() {
            Some((url, der)) => match KeyPair::try_from(der.as_slice()) {
                Ok(key) => (key, Some(url)),
                Err(err) => {
                    tracing::warn!(certificate = %spec.name, "the journaled order's key is unusable ({err}); ordering anew");
                    (
                        generate_key(spec.key_type).context("cannot generate a private key")?,
                        None,
                    )
                }
            },
            None => (
                generate_key(spec.key_type).context("cannot generate a private key")?,
                None,
            ),
        };
        if resume.is_none() {
            tracing::info!(certificate = %spec.name, names = spec.domains.len(), key_type = %spec.key_type, replaces = order.replaces, profile = spec.profile, "ordering");
        }
        let csr = csr_der(&spec.domains, &key).context("cannot build the CSR")?;
        let key_der = key.serialize_der();
        let options = OrderOptions {
            replaces: order.replaces,
            profile: spec.profile.as_deref(),
            resume: resume.as_deref(),
            preferred_chain: spec.preferred_chain.as_deref(),
        };
        let journal = Journaling {
            order: order.locked,
            key_der: &key_der,
        };
        let deadline = config.acme.order_deadline;
        let issued = tokio::time::timeout(deadline, acme.issue(&spec.domains, &csr, publisher, &journal, options))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the order at {} did not finish within {} ([acme] order_deadline); the CA is slow or stuck: try again \
                     later, or raise order_deadline",
                    config.acme.directory,
                    humantime::format_duration(deadline)
                )
            })?;
        match issued {
            Ok(chain) => break (chain, key),
            Err(err) if resume.is_some() && err.downcast_ref::<OrderGone>().is_some() => {
                tracing::warn!(certificate = %spec.name, "{err:#}; placing a new order");
                if let Some(locked) = order.locked {
                    locked.forget_journal().await?;
                }
            }
            Err(err) => match order.locked {
                Some(locked) => match locked.lost().await {
                    Some(fenced) => return Err(anyhow::Error::new(fenced).context(format!("{err:#}"))),
                    None => return Err(err),
                },
                None => return Err(err),
            },
        }
    };
    let (chain, key) = chain;

    let certs = <CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            anyhow::anyhow!(
                "the CA at {} sent a chain that is not PEM: {}; nothing was deployed",
                config.acme.directory,
                crate::core::pem::pem_syntax(&err)
            )
        })?;
    anyhow::ensure!(!certs.is_empty(), "the CA sent no certificate");
    let bundle = Bundle {
        certs,
        key: Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))),
    };
    let verified = verify_issued(&bundle, &spec.domain_set(), roots, OffsetDateTime::now_utc()).map_err(|err| {
        anyhow::anyhow!(
            "the certificate the CA at {} issued failed verification, so it was not deployed: {err}",
            config.acme.directory
        )
    })?;
    Ok(verified)
}
