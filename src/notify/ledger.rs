//! The repeat ledger, pure: given what was announced before, what a run or check observed now, and which conditions
//! it looked at, which channel is told what. No clock (`now` is a parameter), no I/O.
//!
//! A condition is one problem of one certificate (or of hapcert itself), keyed by certificate and family. Kinds of one
//! family replace each other (warning becomes critical, renewal-failed becomes rollback), so a change of kind is news
//! rather than a second condition. `renewed`, `test` and the fleet's alerts are one-shot: told every time, remembered
//! never.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{EventKind, Scope};
use crate::core::config::NotifyChannel;
use crate::core::state::monitor::{Condition, Event, Ledger, Source, Told};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Firing,
    Resolved,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        }
    }
}

/// One message for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The channel's id (`NotifyChannel::id`).
    pub channel: String,
    pub event: Event,
    pub status: Phase,
    /// The condition to update once the channel has it; none for one-shot events.
    pub condition: Option<String>,
}

/// Kinds that replace each other within one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Raised by a run: renewal-failed, deploy-unverified, rollback.
    Renewal,
    /// Raised by a check: warning, critical.
    Expiry,
    /// Raised by a check, about hapcert itself.
    RunOverdue,
    /// Raised by a check: a certificate's challenge route is broken. Apart from its expiry, so that each resolves
    /// on its own.
    Route,
}

impl Family {
    fn of(kind: EventKind) -> Option<Family> {
        match kind {
            EventKind::RenewalFailed | EventKind::DeployUnverified | EventKind::Rollback => Some(Family::Renewal),
            EventKind::Warning | EventKind::Critical => Some(Family::Expiry),
            EventKind::RunOverdue => Some(Family::RunOverdue),
            EventKind::ChallengeRoute => Some(Family::Route),
            // One-shot: the fleet's alerts say what happened at one moment; nothing later says it is over.
            EventKind::Renewed | EventKind::Test | EventKind::FleetLagging | EventKind::FleetEmergency => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Renewal => "renewal",
            Family::Expiry => "expiry",
            Family::RunOverdue => "run-overdue",
            Family::Route => "route",
        }
    }
}

/// Within a family, which observation wins when one source reports two for the same certificate.
fn severity(kind: EventKind) -> u8 {
    match kind {
        EventKind::Rollback | EventKind::Critical => 3,
        EventKind::DeployUnverified => 2,
        _ => 1,
    }
}

/// The ledger key of the condition `event` raises; none for one-shot events.
fn condition_key(event: &Event) -> Option<String> {
    let family = Family::of(event.kind)?;
    let certificate = event.certificate.as_deref().unwrap_or("-");
    // hapcert's own keep the keys they had before there were other sources; a watch may share a certificate's name.
    Some(match event.source {
        Source::Managed => format!("{certificate}/{}", family.name()),
        source => format!("{}:{certificate}/{}", source.name(), family.name()),
    })
}

/// Whether `scope` looked at the condition: one it looked at and did not observe has cleared.
fn in_scope(condition: &Condition, scope: &Scope) -> bool {
    let event = &condition.event;
    let certificate = event.certificate.as_deref();
    let listed = |certificates: &[String]| certificate.is_some_and(|c| certificates.iter().any(|l| l == c));
    match (Family::of(event.kind), scope) {
        (Some(Family::Renewal), Scope::Run { certificates }) => event.source.is_managed() && listed(certificates),
        (
            Some(Family::Expiry),
            Scope::Check {
                certificates,
                watched,
                inventory,
            },
        ) => match event.source {
            Source::Managed => listed(certificates),
            Source::Watch => listed(watched),
            _ => *inventory,
        },
        (Some(Family::RunOverdue), Scope::Check { .. }) => true,
        (Some(Family::Route), Scope::Check { certificates, .. }) => event.source.is_managed() && listed(certificates),
        _ => false,
    }
}

impl Ledger {
    /// What to tell whom, and the ledger with `observed` taken in (conditions raised, changed, or marked cleared). The
    /// returned ledger records no delivery: pass each one that succeeded to [`Ledger::record`], so a channel that
    /// failed is tried again next time.
    pub fn plan(
        &self,
        channels: &[NotifyChannel],
        observed: Vec<Event>,
        scope: &Scope,
        now: OffsetDateTime,
    ) -> (Ledger, Vec<Delivery>) {
        let mut next = self.clone();
        let mut deliveries = Vec::new();

        let mut by_condition: BTreeMap<String, Event> = BTreeMap::new();
        for event in observed {
            match condition_key(&event) {
                None => {
                    for channel in channels.iter().filter(|c| c.wants(event.kind)) {
                        deliveries.push(Delivery {
                            channel: channel.id.clone(),
                            event: event.clone(),
                            status: Phase::Firing,
                            condition: None,
                        });
                    }
                }
                Some(key) => match by_condition.get(&key) {
                    Some(kept) if severity(kept.kind) >= severity(event.kind) => {}
                    _ => {
                        by_condition.insert(key, event);
                    }
                },
            }
        }

        for (key, event) in &by_condition {
            let condition = match next.conditions.get_mut(key) {
                Some(held) if held.cleared.is_none() => {
                    held.event = event.clone();
                    held
                }
                // New, or back after it cleared: everyone hears of it afresh.
                _ => {
                    next.conditions.insert(
                        key.clone(),
                        Condition {
                            event: event.clone(),
                            since: now,
                            told: BTreeMap::new(),
                            cleared: None,
                        },
                    );
                    next.conditions.get_mut(key).expect("just inserted")
                }
            };
            for channel in channels.iter().filter(|c| c.wants(event.kind)) {
                let due = match condition.told.get(&channel.id) {
                    None => true,
                    Some(told) => told.kind != event.kind || now - told.at >= channel.repeat,
                };
                if due {
                    deliveries.push(Delivery {
                        channel: channel.id.clone(),
                        event: event.clone(),
                        status: Phase::Firing,
                        condition: Some(key.clone()),
                    });
                }
            }
        }

        next.conditions.retain(|key, condition| {
            if by_condition.contains_key(key) || (condition.cleared.is_none() && !in_scope(condition, scope)) {
                return true;
            }
            condition.cleared.get_or_insert(now);
            // A channel that is no longer configured cannot be told; one that is, hears it is over, whatever it
            // wants now, since it heard it began.
            condition.told.retain(|id, _| channels.iter().any(|c| &c.id == id));
            for id in condition.told.keys() {
                deliveries.push(Delivery {
                    channel: id.clone(),
                    event: resolved_event(&condition.event),
                    status: Phase::Resolved,
                    condition: Some(key.clone()),
                });
            }
            !condition.told.is_empty()
        });

        (next, deliveries)
    }

    /// Remembers that `delivery` reached its channel at `now`. A delivery the ledger no longer calls for (the condition
    /// changed meanwhile, through another hapcert process) changes nothing.
    pub fn record(&mut self, delivery: &Delivery, now: OffsetDateTime) {
        let Some(key) = &delivery.condition else { return };
        let Some(condition) = self.conditions.get_mut(key) else {
            return;
        };
        match delivery.status {
            Phase::Firing if condition.cleared.is_none() && condition.event.kind == delivery.event.kind => {
                condition.told.insert(
                    delivery.channel.clone(),
                    Told {
                        at: now,
                        kind: delivery.event.kind,
                    },
                );
            }
            Phase::Resolved if condition.cleared.is_some() => {
                condition.told.remove(&delivery.channel);
                if condition.told.is_empty() {
                    self.conditions.remove(key);
                }
            }
            _ => {}
        }
    }
}

/// The message that says a condition is over: its kind and names stay; the figures of the problem are stale, so they go.
fn resolved_event(event: &Event) -> Event {
    Event {
        served_serial: None,
        expected_serial: None,
        days_left: None,
        message: format!("{} has cleared (it was: {})", event.kind, event.message),
        ..event.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;
    use crate::core::config::NotifyKind;

    const T0: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);
    const HOUR: time::Duration = time::Duration::HOUR;

    fn channel(id: &str, events: &[EventKind], repeat_hours: u64) -> NotifyChannel {
        NotifyChannel {
            id: id.to_owned(),
            kind: NotifyKind::Exec {
                command: "true".to_owned(),
            },
            events: if events.is_empty() {
                EventKind::default_set()
            } else {
                events.iter().copied().collect::<BTreeSet<_>>()
            },
            repeat: Duration::from_secs(repeat_hours * 3600),
            timeout: Duration::from_secs(30),
        }
    }

    fn event(kind: EventKind, certificate: Option<&str>) -> Event {
        Event {
            kind,
            certificate: certificate.map(str::to_owned),
            source: Source::Managed,
            names: vec!["www.example.com".to_owned()],
            served_serial: Some("0a".to_owned()),
            expected_serial: Some("0b".to_owned()),
            days_left: Some(3.0),
            message: format!("{kind} observed"),
        }
    }

    fn check(certificates: &[&str]) -> Scope {
        Scope::Check {
            certificates: certificates.iter().map(|c| c.to_string()).collect(),
            watched: Vec::new(),
            inventory: false,
        }
    }

    fn run(certificates: &[&str]) -> Scope {
        Scope::Run {
            certificates: certificates.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Plans, then records every delivery as delivered except those to `failing`; returns what was planned.
    fn step(
        ledger: &mut Ledger,
        channels: &[NotifyChannel],
        observed: Vec<Event>,
        scope: Scope,
        now: OffsetDateTime,
        failing: &[&str],
    ) -> Vec<(String, EventKind, Phase)> {
        let (mut next, deliveries) = ledger.plan(channels, observed, &scope, now);
        for delivery in &deliveries {
            if !failing.contains(&delivery.channel.as_str()) {
                next.record(delivery, now);
            }
        }
        *ledger = next;
        deliveries
            .into_iter()
            .map(|d| (d.channel, d.event.kind, d.status))
            .collect()
    }

    fn firing(channel: &str, kind: EventKind) -> (String, EventKind, Phase) {
        (channel.to_owned(), kind, Phase::Firing)
    }

    fn resolved(channel: &str, kind: EventKind) -> (String, EventKind, Phase) {
        (channel.to_owned(), kind, Phase::Resolved)
    }

    #[test]
    fn a_new_condition_is_told_to_every_channel_that_wants_it() {
        let channels = [
            channel("a", &[], 24),
            channel("b", &[EventKind::Renewed], 24),
            channel("c", &[EventKind::Critical], 24),
        ];
        let mut ledger = Ledger::default();
        let told = step(
            &mut ledger,
            &channels,
            vec![event(EventKind::Critical, Some("www"))],
            check(&["www"]),
            T0,
            &[],
        );
        assert_eq!(
            told,
            [firing("a", EventKind::Critical), firing("c", EventKind::Critical)]
        );
        let condition = &ledger.conditions["www/expiry"];
        assert_eq!(condition.since, T0);
        assert_eq!(
            condition.told["a"],
            Told {
                at: T0,
                kind: EventKind::Critical
            }
        );
    }

    #[test]
    fn a_condition_that_holds_is_told_again_only_after_the_repeat_interval() {
        let channels = [channel("daily", &[], 24), channel("hourly", &[], 1)];
        let mut ledger = Ledger::default();
        let critical = || vec![event(EventKind::Critical, Some("www"))];
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0, &[]).len(),
            2
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR / 2, &[]),
            []
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR, &[]),
            [firing("hourly", EventKind::Critical)]
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR * 23, &[]),
            [firing("hourly", EventKind::Critical)]
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR * 24, &[]),
            [
                firing("daily", EventKind::Critical),
                firing("hourly", EventKind::Critical)
            ]
        );
        // The condition keeps its start, and the latest observation.
        assert_eq!(ledger.conditions["www/expiry"].since, T0);
    }

    #[test]
    fn a_change_of_kind_is_news() {
        let channels = [channel("a", &[], 24)];
        let mut ledger = Ledger::default();
        step(
            &mut ledger,
            &channels,
            vec![event(EventKind::Warning, Some("www"))],
            check(&["www"]),
            T0,
            &[],
        );
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                vec![event(EventKind::Critical, Some("www"))],
                check(&["www"]),
                T0 + HOUR,
                &[]
            ),
            [firing("a", EventKind::Critical)]
        );
        assert_eq!(ledger.conditions.len(), 1, "{ledger:?}");

        step(
            &mut ledger,
            &channels,
            vec![event(EventKind::RenewalFailed, Some("www"))],
            run(&["www"]),
            T0,
            &[],
        );
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                vec![event(EventKind::Rollback, Some("www"))],
                run(&["www"]),
                T0 + HOUR,
                &[]
            ),
            [firing("a", EventKind::Rollback)]
        );
        assert_eq!(ledger.conditions.len(), 2, "{ledger:?}");
    }

    #[test]
    fn a_broken_route_is_a_condition_apart_from_the_expiry_and_resolves_on_its_own() {
        let channels = [channel("a", &[], 24)];
        let mut ledger = Ledger::default();
        let both = vec![
            event(EventKind::Warning, Some("www")),
            event(EventKind::ChallengeRoute, Some("www")),
        ];
        assert_eq!(
            step(&mut ledger, &channels, both, check(&["www"]), T0, &[]),
            [firing("a", EventKind::Warning), firing("a", EventKind::ChallengeRoute)]
        );
        assert_eq!(ledger.conditions.len(), 2, "{ledger:?}");
        // The route fixed, the certificate still near expiry: only the route resolves.
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                vec![event(EventKind::Warning, Some("www"))],
                check(&["www"]),
                T0 + HOUR,
                &[]
            ),
            [resolved("a", EventKind::ChallengeRoute)]
        );
        // A run does not look at routes: it leaves the condition alone.
        step(
            &mut ledger,
            &channels,
            vec![event(EventKind::ChallengeRoute, Some("www"))],
            check(&["www"]),
            T0 + 2 * HOUR,
            &[],
        );
        assert!(step(&mut ledger, &channels, Vec::new(), run(&["www"]), T0 + 3 * HOUR, &[]).is_empty());
    }

    #[test]
    fn a_cleared_condition_is_resolved_to_those_told_then_forgotten() {
        let channels = [
            channel("a", &[], 24),
            channel("warnings-only", &[EventKind::Warning], 24),
        ];
        let mut ledger = Ledger::default();
        step(
            &mut ledger,
            &channels,
            vec![event(EventKind::Critical, Some("www"))],
            check(&["www"]),
            T0,
            &[],
        );
        let (_, deliveries) = ledger.plan(&channels, vec![], &check(&["www"]), T0 + HOUR);
        assert_eq!(deliveries.len(), 1);
        let delivery = &deliveries[0];
        assert_eq!(
            (delivery.channel.as_str(), delivery.event.kind, delivery.status),
            ("a", EventKind::Critical, Phase::Resolved)
        );
        assert_eq!(
            delivery.event.message,
            "critical has cleared (it was: critical observed)"
        );
        assert_eq!(delivery.event.days_left, None);

        step(&mut ledger, &channels, vec![], check(&["www"]), T0 + HOUR, &[]);
        assert!(ledger.conditions.is_empty(), "{ledger:?}");
        assert_eq!(
            step(&mut ledger, &channels, vec![], check(&["www"]), T0 + HOUR * 2, &[]),
            []
        );
    }

    #[test]
    fn watched_and_unmanaged_conditions_are_their_own_and_resolve_only_when_looked_at() {
        let channels = [channel("a", &[], 24)];
        let mut ledger = Ledger::default();
        let of = |source: Source, name: &str| Event {
            source,
            ..event(EventKind::Critical, Some(name))
        };
        // A watch named like a managed certificate is another condition.
        let observed = vec![
            event(EventKind::Critical, Some("www")),
            of(Source::Watch, "www"),
            of(Source::HaproxyCert, "/etc/haproxy/certs/bought.pem"),
        ];
        let scope = |inventory: bool| Scope::Check {
            certificates: vec!["www".into()],
            watched: vec!["www".into()],
            inventory,
        };
        assert_eq!(step(&mut ledger, &channels, observed, scope(true), T0, &[]).len(), 3);
        let keys: Vec<&str> = ledger.conditions.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "haproxy-cert:/etc/haproxy/certs/bought.pem/expiry",
                "watch:www/expiry",
                "www/expiry"
            ]
        );
        // HAProxy did not answer: its conditions stay; the watch's has cleared.
        let told = step(
            &mut ledger,
            &channels,
            vec![event(EventKind::Critical, Some("www"))],
            scope(false),
            T0 + HOUR,
            &[],
        );
        assert_eq!(told, [("a".to_owned(), EventKind::Critical, Phase::Resolved)]);
        assert_eq!(ledger.conditions.len(), 2);
        let told = step(
            &mut ledger,
            &channels,
            vec![event(EventKind::Critical, Some("www"))],
            scope(true),
            T0 + HOUR,
            &[],
        );
        assert_eq!(told, [("a".to_owned(), EventKind::Critical, Phase::Resolved)]);
        assert_eq!(ledger.conditions.keys().collect::<Vec<_>>(), ["www/expiry"]);
    }

    #[test]
    fn a_condition_nobody_was_told_of_clears_silently() {
        let channels = [channel("renewed-only", &[EventKind::Renewed], 24)];
        let mut ledger = Ledger::default();
        let observed = vec![event(EventKind::RenewalFailed, Some("www"))];
        assert_eq!(step(&mut ledger, &channels, observed, run(&["www"]), T0, &[]), []);
        assert_eq!(ledger.conditions.len(), 1);
        assert_eq!(step(&mut ledger, &channels, vec![], run(&["www"]), T0 + HOUR, &[]), []);
        assert!(ledger.conditions.is_empty(), "{ledger:?}");
    }

    #[test]
    fn conditions_outside_the_scope_are_untouched() {
        let channels = [channel("a", &[], 24)];
        let mut ledger = Ledger::default();
        let observed = vec![
            event(EventKind::Critical, Some("www")),
            event(EventKind::Warning, Some("api")),
            event(EventKind::RunOverdue, None),
        ];
        step(&mut ledger, &channels, observed, check(&["www", "api"]), T0, &[]);
        step(
            &mut ledger,
            &channels,
            vec![event(EventKind::RenewalFailed, Some("www"))],
            run(&["www"]),
            T0,
            &[],
        );
        assert_eq!(ledger.conditions.len(), 4, "{ledger:?}");
        let before = ledger.clone();

        // A run that acted on www says nothing of www's expiry, of api, or of the dead-man's switch; nor does a run
        // that acted on api say anything of www's renewal.
        assert_eq!(step(&mut ledger, &channels, vec![], run(&["api"]), T0 + HOUR, &[]), []);
        // A check of api alone says nothing of www; it does look at the dead-man's switch.
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                vec![event(EventKind::Warning, Some("api"))],
                check(&["api"]),
                T0 + HOUR,
                &[]
            ),
            [resolved("a", EventKind::RunOverdue)]
        );
        assert_eq!(ledger.conditions["www/expiry"], before.conditions["www/expiry"]);
        assert_eq!(ledger.conditions["www/renewal"], before.conditions["www/renewal"]);
        assert!(!ledger.conditions.contains_key("-/run-overdue"));

        // `notify test` clears nothing.
        assert_eq!(step(&mut ledger, &channels, vec![], Scope::Test, T0 + HOUR, &[]), []);
        assert_eq!(ledger.conditions.len(), 3);

        // The run that acted on www and had no trouble: its renewal condition is over.
        assert_eq!(
            step(&mut ledger, &channels, vec![], run(&["www"]), T0 + HOUR, &[]),
            [resolved("a", EventKind::RenewalFailed)]
        );
        assert_eq!(
            ledger.conditions.keys().collect::<Vec<_>>(),
            ["api/expiry", "www/expiry"]
        );
    }

    #[test]
    fn a_failed_delivery_is_tried_again_next_time() {
        let channels = [channel("good", &[], 24), channel("flaky", &[], 24)];
        let mut ledger = Ledger::default();
        let critical = || vec![event(EventKind::Critical, Some("www"))];
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0, &["flaky"]).len(),
            2
        );
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                critical(),
                check(&["www"]),
                T0 + HOUR,
                &["flaky"]
            ),
            [firing("flaky", EventKind::Critical)]
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR * 2, &[]),
            [firing("flaky", EventKind::Critical)]
        );
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR * 3, &[]),
            []
        );

        // The resolution, too: it stays until the channel has it, even when nothing looks at the certificate again.
        assert_eq!(
            step(
                &mut ledger,
                &channels,
                vec![],
                check(&["www"]),
                T0 + HOUR * 4,
                &["flaky"]
            )
            .len(),
            2
        );
        assert_eq!(
            step(&mut ledger, &channels, vec![], run(&[]), T0 + HOUR * 5, &[]),
            [resolved("flaky", EventKind::Critical)]
        );
        assert!(ledger.conditions.is_empty(), "{ledger:?}");
    }

    #[test]
    fn a_condition_back_before_its_resolution_got_through_starts_afresh() {
        let channels = [channel("good", &[], 24), channel("flaky", &[], 24)];
        let mut ledger = Ledger::default();
        let critical = || vec![event(EventKind::Critical, Some("www"))];
        step(&mut ledger, &channels, critical(), check(&["www"]), T0, &[]);
        step(&mut ledger, &channels, vec![], check(&["www"]), T0 + HOUR, &["flaky"]);
        assert_eq!(
            step(&mut ledger, &channels, critical(), check(&["www"]), T0 + HOUR * 2, &[]),
            [
                firing("good", EventKind::Critical),
                firing("flaky", EventKind::Critical)
            ]
        );
        assert_eq!(ledger.conditions["www/expiry"].since, T0 + HOUR * 2);
        assert_eq!(ledger.conditions["www/expiry"].cleared, None);
    }

    #[test]
    fn one_shot_events_are_always_told_and_never_remembered() {
        let channels = [channel("a", &[EventKind::Renewed], 24), channel("b", &[], 24)];
        let mut ledger = Ledger::default();
        for hour in 0..2 {
            assert_eq!(
                step(
                    &mut ledger,
                    &channels,
                    vec![event(EventKind::Renewed, Some("www"))],
                    run(&["www"]),
                    T0 + HOUR * hour,
                    &[]
                ),
                [firing("a", EventKind::Renewed)]
            );
        }
        assert!(ledger.conditions.is_empty());
    }

    #[test]
    fn the_worst_of_one_family_wins() {
        let channels = [channel("a", &[], 24)];
        let mut ledger = Ledger::default();
        let observed = vec![
            event(EventKind::RenewalFailed, Some("www")),
            event(EventKind::Rollback, Some("www")),
            event(EventKind::DeployUnverified, Some("www")),
        ];
        assert_eq!(
            step(&mut ledger, &channels, observed, run(&["www"]), T0, &[]),
            [firing("a", EventKind::Rollback)]
        );
    }

    #[test]
    fn a_removed_channel_is_not_told_of_the_resolution() {
        let mut ledger = Ledger::default();
        step(
            &mut ledger,
            &[channel("old", &[], 24)],
            vec![event(EventKind::Critical, Some("www"))],
            check(&["www"]),
            T0,
            &[],
        );
        let now = [channel("new", &[], 24)];
        assert_eq!(step(&mut ledger, &now, vec![], check(&["www"]), T0 + HOUR, &[]), []);
        assert!(ledger.conditions.is_empty(), "{ledger:?}");
    }

    #[test]
    fn the_ledger_survives_json() {
        let mut ledger = Ledger::default();
        step(
            &mut ledger,
            &[channel("a", &[], 24), channel("b", &[], 24)],
            vec![event(EventKind::Critical, Some("www"))],
            check(&["www"]),
            T0,
            &[],
        );
        step(
            &mut ledger,
            &[channel("a", &[], 24)],
            vec![],
            check(&["www"]),
            T0,
            &["a"],
        );
        let json = serde_json::to_string(&ledger).unwrap();
        assert_eq!(serde_json::from_str::<Ledger>(&json).unwrap(), ledger);
        assert!(json.contains("\"cleared\":\"2025-06-01T12:00:00Z\""), "{json}");
    }
}
