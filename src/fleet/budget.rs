//! One CA budget for the fleet: each certificate's renewal window (ARI) and retry schedule, and the failed-authorization
//! ledger, live in the store, so that one node's renewal-window fetch serves every node and one node's failures hold
//! every node back. A run takes them in after converging (before it asks the CA anything) and gives back what changed
//! at its end.
//!
//! Merging: of two renewal windows, the fresher; of two retry schedules, the one written after this node's own last
//! attempt (the latest outcome anywhere in the fleet wins); of two ledgers, every failure either saw.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::{Entry, SharedSchedule};
use super::session::Session;
use crate::core::ari::RenewalInfo;
use crate::core::config::Config;
use crate::core::schedule::{FailedAuthorizations, Failures};
use crate::core::state::State;
use crate::core::time::format_rfc3339;
use crate::edge::etcd::{Compare, TxnOp};

/// Attempts at writing the shared ledger when another node writes it at the same time.
const LEDGER_ATTEMPTS: usize = 3;

/// What was taken in, to give back only what changed.
#[derive(Default)]
pub struct Budget {
    seen: BTreeMap<String, (Option<RenewalInfo>, Failures)>,
    ledger: FailedAuthorizations,
    ledger_revision: i64,
}

/// Merges the fleet's budget into `state`. An unreachable store merges nothing (the local budget applies).
pub async fn take_in(session: &Session, state: &mut State) -> Budget {
    let mut budget = Budget::default();
    let layout = session.store.layout();
    let read = async {
        let schedules = session
            .store
            .client()
            .get_prefix(layout.schedules().as_bytes(), None)
            .await?;
        let ledger = session.store.client().get(layout.authz_failures().as_bytes()).await?;
        Ok::<_, crate::edge::etcd::EtcdError>((schedules, ledger))
    };
    let (schedules, ledger) = match read.await {
        Ok(read) => read,
        Err(err) => {
            tracing::warn!("cannot read the fleet's CA budget: {err}; this node's own schedule applies");
            return budget;
        }
    };
    for kv in &schedules.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        let (Entry::Schedule(name), Ok(shared)) = (
            layout.classify(&key),
            serde_json::from_slice::<SharedSchedule>(&kv.value),
        ) else {
            continue;
        };
        merge(state, name, &shared);
        let entry = state.remembered(name);
        budget
            .seen
            .insert(name.to_owned(), (entry.renewal_info.clone(), entry.failures.clone()));
    }
    if let Some(kv) = ledger
        && let Ok(shared) = serde_json::from_slice::<FailedAuthorizations>(&kv.value)
    {
        state.failed_authorizations.merge(&shared);
        budget.ledger = shared;
        budget.ledger_revision = kv.mod_revision;
    }
    budget
}

/// The shared schedule of certificate `name` into `state`. Pure.
pub fn merge(state: &mut State, name: &str, shared: &SharedSchedule) {
    let entry = state.certificates.entry(name.to_owned()).or_default();
    entry.renewal_info = RenewalInfo::fresher(entry.renewal_info.as_ref(), shared.renewal_info.as_ref()).cloned();
    let own_last = entry
        .last
        .as_ref()
        .and_then(|l| OffsetDateTime::parse(&l.at, &Rfc3339).ok());
    let theirs = OffsetDateTime::parse(&shared.at, &Rfc3339).ok();
    if own_last.is_none_or(|own| theirs.is_some_and(|theirs| theirs > own)) {
        entry.failures = shared.failures.clone();
    }
}

/// Writes back each configured certificate's window and schedule that differ from what was taken in, and the ledger
/// when it gained failures.
pub async fn give_back(config: &Config, session: &Session, state: &State, budget: Budget, now: OffsetDateTime) {
    let layout = session.store.layout();
    for spec in &config.certificates {
        let entry = state.remembered(&spec.name);
        let mine = (entry.renewal_info.clone(), entry.failures.clone());
        if budget.seen.get(&spec.name) == Some(&mine) {
            continue;
        }
        let shared = SharedSchedule {
            renewal_info: mine.0,
            failures: mine.1,
            by: session.store.node().to_owned(),
            at: format_rfc3339(now),
        };
        let value = serde_json::to_vec(&shared).expect("a schedule serializes");
        if let Err(err) = session
            .store
            .client()
            .put(layout.schedule(&spec.name).as_bytes(), &value, None)
            .await
        {
            tracing::warn!(certificate = %spec.name, "cannot share the CA budget: {err}");
        }
    }
    let mut ledger = state.failed_authorizations.clone();
    ledger.prune(now);
    let (mut known, mut revision) = (budget.ledger, budget.ledger_revision);
    known.prune(now);
    for _ in 0..LEDGER_ATTEMPTS {
        let mut merged = known.clone();
        merged.merge(&ledger);
        if merged == known {
            return;
        }
        let key = layout.authz_failures().into_bytes();
        let value = serde_json::to_vec(&merged).expect("a ledger serializes");
        let written = session
            .store
            .client()
            .txn(
                &[Compare::ModRevision {
                    key: key.clone(),
                    revision,
                }],
                &[TxnOp::Put {
                    key: key.clone(),
                    value,
                    lease: None,
                }],
                &[TxnOp::Get { key }],
            )
            .await;
        match written {
            Ok(outcome) if outcome.succeeded => return,
            // Another node wrote it meanwhile: take theirs in, and try again.
            Ok(outcome) => {
                let current = outcome.got();
                revision = current.as_ref().map_or(0, |kv| kv.mod_revision);
                known = current
                    .and_then(|kv| serde_json::from_slice(&kv.value).ok())
                    .unwrap_or_default();
            }
            Err(err) => {
                tracing::warn!("cannot share the failed-authorization ledger: {err}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{LastResult, Outcome};
    use time::macros::datetime;

    fn shared(at: &str, consecutive: u32) -> SharedSchedule {
        SharedSchedule {
            renewal_info: None,
            failures: Failures {
                consecutive,
                ..Default::default()
            },
            by: "lb2".into(),
            at: at.into(),
        }
    }

    #[test]
    fn the_latest_outcome_in_the_fleet_wins() {
        let mut state = State::default();
        merge(&mut state, "www", &shared("2026-12-05T10:00:00Z", 2));
        assert_eq!(
            state.remembered("www").failures.consecutive,
            2,
            "nothing of its own: the fleet's"
        );

        state.certificates.get_mut("www").unwrap().last = Some(LastResult {
            at: format_rfc3339(datetime!(2026-12-05 11:00 UTC)),
            outcome: Outcome::Renewed,
            serial: None,
            message: String::new(),
            verified_serial: None,
        });
        state.certificates.get_mut("www").unwrap().failures = Failures::default();
        merge(&mut state, "www", &shared("2026-12-05T10:30:00Z", 3));
        assert_eq!(
            state.remembered("www").failures.consecutive,
            0,
            "this node's later success stands"
        );
        merge(&mut state, "www", &shared("2026-12-05T12:00:00Z", 1));
        assert_eq!(
            state.remembered("www").failures.consecutive,
            1,
            "a later failure elsewhere holds it back"
        );
    }
}
