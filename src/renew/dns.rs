//! The DNS-01 side of a run: the providers its certificates use, opened once; the records a killed run left behind,
//! removed first; each certificate's answers published through its provider, settled on every authoritative server,
//! and removed when the CA has decided; and the preflight that adds and removes a probe record the same way before
//! anything is ordered.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;

use crate::core::challenge::{Challenge, ChallengeKind, ChallengePublisher};
use crate::core::config::{CertificateSpec, Config};
use crate::edge::dns::{Placement, Provider, wait_until_served};
use crate::edge::store::StateDir;
use crate::edge::store::dns_records::{AddedRecord, DnsJournal};

/// The providers of a run, by name (or why one cannot be used), and the journal of what they added.
pub struct DnsSide {
    providers: HashMap<String, Result<Arc<Provider>, String>>,
    journal: Arc<DnsJournal>,
}

impl DnsSide {
    /// Opens the providers that the DNS-01 certificates among `specs` use (reading their keys), after removing what
    /// an interrupted run left. A provider that cannot be opened fails only its own certificates.
    pub async fn open<'a>(
        config: &Config,
        store: &StateDir,
        specs: impl IntoIterator<Item = &'a CertificateSpec>,
    ) -> DnsSide {
        Self::open_with(config, DnsJournal::open(store), specs).await
    }

    /// [`DnsSide::open`] for `check`'s route check: its probe records go in a journal of their own
    /// ([`DnsJournal::open_probes`]), and only that journal's leftovers are removed, so that a check beside a run never
    /// touches the run's records. The caller holds the route lock, so one check at a time uses that journal.
    pub async fn open_for_probes<'a>(
        config: &Config,
        store: &StateDir,
        specs: impl IntoIterator<Item = &'a CertificateSpec>,
    ) -> DnsSide {
        Self::open_with(config, DnsJournal::open_probes(store), specs).await
    }

    async fn open_with<'a>(
        config: &Config,
        journal: DnsJournal,
        specs: impl IntoIterator<Item = &'a CertificateSpec>,
    ) -> DnsSide {
        let mut side = DnsSide {
            providers: HashMap::new(),
            journal: Arc::new(journal),
        };
        let used = specs
            .into_iter()
            .filter(|s| s.challenge == ChallengeKind::Dns01)
            .filter_map(|s| config.dns_provider(s));
        for provider in used {
            if !side.providers.contains_key(&provider.name) {
                let open = Provider::open(provider)
                    .await
                    .map(Arc::new)
                    .map_err(|err| format!("cannot use the DNS provider '{}': {err:#}", provider.name));
                side.providers.insert(provider.name.clone(), open);
            }
        }
        side.remove_leftovers(config).await;
        side
    }

    /// Removes the records the journal names: a run killed between adding a record and removing it left them.
    async fn remove_leftovers(&mut self, config: &Config) {
        let leftovers = match self.journal.list() {
            Ok(leftovers) => leftovers,
            Err(err) => {
                tracing::warn!("{err:#}");
                return;
            }
        };
        for leftover in leftovers {
            let provider = match self.providers.get(&leftover.provider) {
                Some(Ok(open)) => open.clone(),
                Some(Err(why)) => {
                    tracing::warn!(
                        record = leftover.record,
                        "cannot remove a TXT record a previous run left: {why}; the next run tries again"
                    );
                    continue;
                }
                None => match config.dns_providers.iter().find(|p| p.name == leftover.provider) {
                    Some(provider) => match Provider::open(provider).await {
                        Ok(open) => Arc::new(open),
                        Err(err) => {
                            tracing::warn!(
                                record = leftover.record,
                                "cannot remove a TXT record a previous run left: {err:#}; the next run tries again"
                            );
                            continue;
                        }
                    },
                    None => {
                        tracing::warn!(
                            record = leftover.record,
                            value = leftover.value,
                            "a previous run left this TXT record, and its [[dns_provider]] '{}' is gone from the config; remove the record by hand, then delete {}",
                            leftover.provider,
                            "dns-records.json in the state dir"
                        );
                        continue;
                    }
                },
            };
            let removed =
                match Placement::journaled(&leftover.challenge, &leftover.record, &leftover.zone, &leftover.primary) {
                    Ok(placement) => withdraw_one(&provider, &self.journal, &placement, &leftover).await,
                    Err(err) => Err(err),
                };
            match removed {
                Ok(Withdrawn::Removed) => tracing::info!(
                    record = leftover.record,
                    "removed a TXT record that an interrupted run left behind"
                ),
                Ok(Withdrawn::NotThere) => tracing::debug!(
                    record = leftover.record,
                    "a journaled TXT record is not in the zone (its update never took effect); forgotten"
                ),
                Err(err) => tracing::warn!(
                    record = leftover.record,
                    "cannot remove a TXT record a previous run left: {err:#}; the next run tries again"
                ),
            }
        }
    }

    /// The publisher of `spec`'s answers.
    pub fn answers(&self, config: &Config, spec: &CertificateSpec) -> anyhow::Result<DnsAnswers> {
        let name = &config
            .dns_provider(spec)
            .with_context(|| format!("certificate {} names no [[dns_provider]]", spec.name))?
            .name;
        let provider = match self.providers.get(name) {
            Some(Ok(open)) => open.clone(),
            Some(Err(why)) => anyhow::bail!("{why}"),
            None => anyhow::bail!("the DNS provider '{name}' was not opened"),
        };
        Ok(DnsAnswers {
            provider,
            journal: self.journal.clone(),
            placements: tokio::sync::Mutex::new(HashMap::new()),
        })
    }
}

/// A certificate's DNS-01 answers: TXT records through its provider.
pub struct DnsAnswers {
    provider: Arc<Provider>,
    journal: Arc<DnsJournal>,
    /// Where each name's record goes, found once: an apex and its wildcard share one challenge name, and the preflight
    /// and the order use the same.
    placements: tokio::sync::Mutex<HashMap<String, Placement>>,
}

/// One TXT value in place, and where.
pub struct PublishedRecord {
    placement: Placement,
    added: AddedRecord,
}

impl DnsAnswers {
    /// Adds `value` for `base` (a name without its wildcard label): noted in the journal first, so that a crash right
    /// after the update leaves a trace.
    async fn add(&self, base: &str, value: &str) -> anyhow::Result<PublishedRecord> {
        let placement = self.placement(base).await?;
        let added = AddedRecord {
            provider: self.provider.config.name.clone(),
            challenge: placement.chain[0].to_string(),
            record: placement.record().to_string(),
            zone: placement.zone.to_string(),
            primary: placement.primary.to_string(),
            value: value.to_owned(),
        };
        self.journal.add(&added)?;
        if let Err(err) = self.provider.add(&placement, value).await {
            // The update may have reached the primary even though its answer did not come back.
            if let Err(cleanup) = withdraw_one(&self.provider, &self.journal, &placement, &added).await {
                tracing::debug!("after a failed update, removing the value failed too: {cleanup:#}");
            }
            return Err(err);
        }
        tracing::debug!(record = added.record, zone = added.zone, "TXT record added");
        Ok(PublishedRecord { placement, added })
    }

    /// Where the challenge record of `base` goes, asked of the name servers only the first time.
    async fn placement(&self, base: &str) -> anyhow::Result<Placement> {
        let mut known = self.placements.lock().await;
        if let Some(placement) = known.get(base) {
            return Ok(placement.clone());
        }
        let placement = self.provider.locate(base).await?;
        known.insert(base.to_owned(), placement.clone());
        Ok(placement)
    }

    /// The DNS preflight: a probe value added at each name's challenge record with the same key, seen on every
    /// authoritative server, and removed. Nothing is ordered when it fails.
    pub async fn preflight(&self, spec: &CertificateSpec) -> anyhow::Result<()> {
        // The apex and its wildcard share one challenge name: one probe for both.
        let mut bases: Vec<&str> = spec.domains.iter().map(|d| d.base()).collect();
        bases.sort_unstable();
        bases.dedup();
        let mut probes = Vec::new();
        let mut outcome = Ok(());
        for base in bases {
            let value = format!("hapcert-preflight-{}", crate::edge::http01::preflight::random_token());
            match self.add(base, &value).await {
                Ok(probe) => probes.push(probe),
                Err(err) => {
                    outcome = Err(err.context(format!("cannot publish a TXT record for {base}")));
                    break;
                }
            }
        }
        if outcome.is_ok() {
            outcome = self.settle(&probes).await;
        }
        self.withdraw(probes).await;
        outcome
    }
}

impl ChallengePublisher for DnsAnswers {
    type Published = PublishedRecord;

    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Dns01
    }

    async fn publish(&self, challenge: Challenge<'_>) -> anyhow::Result<PublishedRecord> {
        self.add(challenge.identifier, challenge.dns_value)
            .await
            .with_context(|| format!("cannot publish the DNS-01 answer for {}", shown(&challenge)))
    }

    async fn settle(&self, published: &[PublishedRecord]) -> anyhow::Result<()> {
        let records: Vec<(&Placement, &str)> = published
            .iter()
            .map(|p| (&p.placement, p.added.value.as_str()))
            .collect();
        let config = &self.provider.config;
        wait_until_served(&records, config.propagation_timeout, config.propagation_interval).await
    }

    async fn withdraw(&self, published: Vec<PublishedRecord>) {
        for record in published {
            if let Err(err) = withdraw_one(&self.provider, &self.journal, &record.placement, &record.added).await {
                tracing::warn!(
                    record = record.added.record,
                    "cannot remove the challenge's TXT record: {err:#}; the next run tries again"
                );
            }
        }
    }
}

/// What became of a journaled value.
enum Withdrawn {
    Removed,
    /// The primary does not serve it: the update that was to add it never took effect (refused, or signed with a
    /// wrong key), or someone removed it.
    NotThere,
}

/// Removes one journaled value, then forgets it. A value the primary does not serve is only forgotten: a refused
/// update would otherwise stay in the journal, and be "removed" again at every run.
async fn withdraw_one(
    provider: &Provider,
    journal: &DnsJournal,
    placement: &Placement,
    added: &AddedRecord,
) -> anyhow::Result<Withdrawn> {
    let withdrawn = match provider.serves(placement, &added.value).await {
        Ok(false) => Withdrawn::NotThere,
        // Present, or the primary could not say: remove it.
        Ok(true) | Err(_) => {
            provider.remove(placement, &added.value).await?;
            tracing::debug!(record = added.record, "TXT record removed");
            Withdrawn::Removed
        }
    };
    journal.remove(added)?;
    Ok(withdrawn)
}

fn shown(challenge: &Challenge<'_>) -> String {
    match challenge.wildcard {
        true => format!("*.{}", challenge.identifier),
        false => challenge.identifier.to_owned(),
    }
}
