//! What a run does differently in a fleet, before it orders: take each due certificate's lock (or leave it to the node
//! that holds it), and look at the store again once the lock is held, since another node may have renewed it between
//! this run's convergence and its lock. Cut off from the store, only what is about to expire is ordered, alone.

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::converge::{Adopted, converge, is_newer};
use super::{Due, Item, ItemResult};
use crate::core::config::EventKind;
use crate::core::config::{Config, FileOwner};
use crate::core::decision::Local;
use crate::core::state::State;
use crate::core::state::monitor::{Event, Source};
use crate::core::time::{format_rfc3339, later};
use crate::edge::store::StateDir;
use crate::fleet::FleetMode;
use crate::fleet::Session;
use crate::fleet::orders::{LockedOrder, Taken};

/// What a fleet run works with before it orders.
pub(super) struct Run<'a> {
    pub config: &'a Config,
    pub owner: FileOwner,
    pub store: &'a StateDir,
    /// A renewal asked for by hand (`--force`, or names): it waits a little for a lock another node is letting go.
    pub by_hand: bool,
    pub now: OffsetDateTime,
}

impl Run<'_> {
    /// Cut off from the store: only what is about to expire, with an alert. Through it: the locks taken, what the fleet
    /// has newer adopted (or ordered here when it cannot be used here), and the fleet's account in place.
    pub(super) async fn before_ordering(
        &self,
        fleet: &FleetMode,
        due: Vec<Due>,
        items: &mut [Item],
        state: &mut State,
        on_disk: &mut [Local],
    ) -> Prepared {
        let session = match fleet {
            FleetMode::Cut { emergency_days, why } => {
                let due = outside_emergency(due, items, *emergency_days, why, self.now);
                let alerts = emergency_events(&due, why);
                return Prepared {
                    due,
                    alerts,
                    ..Prepared::default()
                };
            }
            FleetMode::Coordinated(_) if due.is_empty() => return Prepared::default(),
            FleetMode::Coordinated(session) => session,
        };
        let (mut due, mut locked, newer) = claim(session, due, items, self.by_hand, self.now).await;
        let mut adopted = Vec::new();
        if !newer.is_empty() {
            let names: Vec<String> = newer.iter().map(|d| d.spec.name.clone()).collect();
            let (config, owner, store) = (self.config, self.owner, self.store);
            adopted = converge(config, owner, store, state, on_disk, session, Some(&names)).await;
            for d in newer {
                match locked.remove(&d.spec.name) {
                    Some(order) if adopted.iter().any(|a| a.name == d.spec.name) => order.release().await,
                    order => {
                        tracing::warn!(certificate = %d.spec.name, "the fleet's certificate cannot be used here (see above); this node orders its own");
                        if let Some(order) = order {
                            locked.insert(d.spec.name.clone(), order);
                        }
                        due.push(d);
                    }
                }
            }
        }
        if !due.is_empty()
            && let Err(err) = crate::fleet::account::ensure(self.config, self.store, session).await
        {
            for d in due.drain(..) {
                super::not_ordered(&d, items, format!("cannot use the fleet's ACME account: {err:#}"));
            }
        }
        Prepared {
            due,
            locked,
            alerts: Vec::new(),
            adopted,
        }
    }
}

/// What a fleet run orders, and what it did before.
#[derive(Default)]
pub(super) struct Prepared {
    pub due: Vec<Due>,
    pub locked: HashMap<String, LockedOrder>,
    pub alerts: Vec<Event>,
    pub adopted: Vec<Adopted>,
}

/// The loud alert for what [`outside_emergency`] lets through: `fleet-emergency`, through `[[notify]]`.
fn emergency_events(due: &[Due], why: &str) -> Vec<Event> {
    due.iter()
        .map(|d| Event {
            kind: EventKind::FleetEmergency,
            certificate: Some(d.spec.name.clone()),
            source: Source::Managed,
            names: d.spec.domains.iter().map(|n| n.to_string()).collect(),
            served_serial: None,
            expected_serial: None,
            days_left: None,
            message: format!(
                "the fleet's store cannot be reached ({why}) and {} expires within [fleet] emergency_days: this node \
                 orders it alone. Other nodes may do the same; the fleet settles on one certificate once etcd is back. \
                 Bring etcd back (see `hapcert check`)",
                d.spec.name
            ),
        })
        .collect()
}

/// Keeps only the due certificates served now and within `emergency_days` of expiry, ordered alone with a loud
/// warning; the others are held back until the store answers again.
fn outside_emergency(
    due: Vec<Due>,
    items: &mut [Item],
    emergency_days: f64,
    why: &str,
    now: OffsetDateTime,
) -> Vec<Due> {
    due.into_iter()
        .filter(|d| {
            let days_left = items[d.index]
                .previous
                .as_ref()
                .map(|facts| crate::core::time::days_left(facts.not_after, now));
            // Nothing served yet is no outage to prevent, and ordering it alone would order it on every node.
            match days_left {
                _ if days_left.is_none_or(|days| days > emergency_days) => {
                    tracing::warn!(certificate = %d.spec.name, days_left = ?days_left, "due, but the fleet's store cannot be reached: not renewed alone until within {emergency_days} days of expiry");
                    items[d.index].result = ItemResult::Deferred {
                        until: later(now, std::time::Duration::from_secs(300)),
                        why: format!("the fleet's store cannot be reached ({why}); a node renews alone only within [fleet] emergency_days ({emergency_days}) of expiry"),
                    };
                    false
                }
                _ => {
                    tracing::error!(certificate = %d.spec.name, "EMERGENCY: the fleet's store cannot be reached and the certificate expires within {emergency_days} days: this node orders it alone; the fleet settles on one certificate once the store is back");
                    true
                }
            }
        })
        .collect()
}

/// Takes the lock of each due certificate. A certificate another node holds is left to it (the watch brings what it
/// publishes, and the daemon tries again a lease later), unless `wait`: a renewal asked for by hand waits a little for
/// a holder about to let go (after adopting, say) or whose lease is about to run out, a lease's length and a second for
/// etcd to notice. Returns what is still to be ordered, the locks held (by name, for both lists), and what the fleet
/// has newer (to adopt, not order).
async fn claim(
    session: &Arc<Session>,
    due: Vec<Due>,
    items: &mut [Item],
    wait: bool,
    now: OffsetDateTime,
) -> (Vec<Due>, HashMap<String, LockedOrder>, Vec<Due>) {
    let mut keep = Vec::new();
    let mut locked = HashMap::new();
    let mut adopted = Vec::new();
    let retry = later(now, session.config.lease_ttl);
    let patience = if wait {
        session.config.lease_ttl + std::time::Duration::from_secs(1)
    } else {
        std::time::Duration::ZERO
    };
    let deadline = tokio::time::Instant::now() + patience;
    let mut waiting = due;
    loop {
        let mut busy = Vec::new();
        for d in waiting {
            let name = d.spec.name.clone();
            let order = match LockedOrder::take(session, &name).await {
                Ok(Taken::Locked(order)) => order,
                Ok(Taken::Busy { holder }) => {
                    busy.push((d, holder));
                    continue;
                }
                Err(err) => {
                    tracing::warn!(certificate = %name, "cannot take the fleet's lock: {err:#}; not ordered now");
                    items[d.index].result = ItemResult::Deferred {
                        until: retry,
                        why: format!("cannot take the fleet's lock: {err:#}"),
                    };
                    continue;
                }
            };
            match session.store.shared_cert(&name).await {
                // Still locked: if it cannot be adopted here after all, this node orders it.
                Ok(Some(shared)) if is_newer(&shared, items[d.index].previous.as_ref()) => {
                    tracing::info!(certificate = %name, serial = %shared.serial, by = %shared.issued_by, at = %shared.issued_at, "the fleet has a newer certificate than this node; adopting it instead of ordering");
                    locked.insert(name, order);
                    adopted.push(d);
                }
                Ok(_) => {
                    tracing::debug!(certificate = %name, since = %format_rfc3339(now), "holding the fleet's lock");
                    locked.insert(name, order);
                    keep.push(d);
                }
                Err(err) => {
                    order.release().await;
                    items[d.index].result = ItemResult::Deferred {
                        until: retry,
                        why: format!("cannot read the fleet's store: {err:#}"),
                    };
                }
            }
        }
        if busy.is_empty() || tokio::time::Instant::now() >= deadline {
            for (d, holder) in busy {
                tracing::info!(certificate = %d.spec.name, holder = %holder, "due, but {holder} is renewing it; this node adopts what it publishes");
                items[d.index].result = ItemResult::Elsewhere { holder, until: retry };
            }
            return (keep, locked, adopted);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        waiting = busy.into_iter().map(|(d, _)| d).collect();
    }
}
