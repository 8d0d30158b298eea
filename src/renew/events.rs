//! What a run tells the operator: one event per certificate it acted on, with what is served, what was expected, and
//! what to do. Pure: built from the run's items and the config.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::deploy::FailureKind;
use super::{Failure, Item, ItemResult};
use crate::core::config::{CertificateSpec, Config};
use crate::core::pem::CertFacts;
use crate::core::state::monitor::{Event, Source};
use crate::core::time::{days_left, format_time};
use crate::notify::EventKind;

/// The certificates the run acted on (tried to renew): a condition of theirs that the run did not raise again has
/// cleared. Certificates held back by the retry schedule were not acted on.
pub fn acted_on(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter(|i| matches!(i.result, ItemResult::Renewed(..) | ItemResult::Failed(_)))
        .map(|i| i.name.clone())
        .collect()
}

pub fn run_events(config: &Config, items: &[Item], now: OffsetDateTime) -> Vec<Event> {
    // Looked up by name once, so that a run over a thousand certificates stays linear.
    let specs: HashMap<&str, &CertificateSpec> = config.certificates.iter().map(|c| (c.name.as_str(), c)).collect();
    items
        .iter()
        .filter_map(|item| event(specs.get(item.name.as_str()).copied(), item, now))
        .collect()
}

fn event(spec: Option<&CertificateSpec>, item: &Item, now: OffsetDateTime) -> Option<Event> {
    let names: Vec<String> = spec
        .map(|s| s.domains.iter().map(|d| d.to_string()).collect())
        .unwrap_or_default();
    let name = &item.name;
    match &item.result {
        ItemResult::Renewed(facts, _) => Some(Event {
            kind: EventKind::Renewed,
            certificate: Some(name.clone()),
            source: Source::Managed,
            names,
            served_serial: Some(facts.serial.clone()),
            expected_serial: Some(facts.serial.clone()),
            days_left: Some(days_left(facts.not_after, now)),
            message: format!(
                "{name}: renewed; HAProxy serves serial {}, valid until {} ({:.1} days)",
                facts.serial,
                format_time(facts.not_after),
                days_left(facts.not_after, now)
            ),
        }),
        ItemResult::Failed(failure) => {
            let previous = item.previous.as_ref();
            let file = spec.map(|s| s.file.value.display().to_string()).unwrap_or_default();
            Some(Event {
                kind: kind_of(failure.kind),
                certificate: Some(name.clone()),
                source: Source::Managed,
                served_serial: failure
                    .served_serial
                    .clone()
                    .or_else(|| previous.map(|p| p.serial.clone())),
                expected_serial: failure.expected_serial.clone(),
                days_left: previous.map(|p| days_left(p.not_after, now)),
                message: failure_message(name, &names, &file, failure, previous, now),
                names,
            })
        }
        ItemResult::NotDue | ItemResult::DryRun(_) | ItemResult::Deferred { .. } | ItemResult::Elsewhere { .. } => None,
    }
}

fn kind_of(kind: FailureKind) -> EventKind {
    match kind {
        FailureKind::NotDeployed => EventKind::RenewalFailed,
        FailureKind::Refused => EventKind::Rollback,
        FailureKind::Unverified => EventKind::DeployUnverified,
    }
}

/// One line: what happened, what is served now, and what to do.
fn failure_message(
    name: &str,
    names: &[String],
    file: &str,
    failure: &Failure,
    previous: Option<&CertFacts>,
    now: OffsetDateTime,
) -> String {
    let served = match previous {
        Some(p) => format!(
            "HAProxy still serves serial {} ({:.1} days left)",
            p.serial,
            days_left(p.not_after, now)
        ),
        None => "no certificate was deployed for it before".to_owned(),
    };
    let expected = failure.expected_serial.as_deref().unwrap_or("-");
    match failure.kind {
        FailureKind::NotDeployed => format!(
            "{name}: renewal failed: {}. {served}; hapcert tries again on its retry schedule (`hapcert status` says \
             when). Fix the cause, then run `hapcert renew {name}`",
            failure.message
        ),
        FailureKind::Refused => format!(
            "{name}: HAProxy refused the new certificate (serial {expected}): {}. The previous files were put back; \
             {served}. Run HAProxy's check command by hand to see why, then `hapcert renew --force {name}`",
            failure.message
        ),
        FailureKind::Unverified => format!(
            "{name}: HAProxy did not serve the new certificate (serial {expected}) on the wire: {}. The previous \
             certificate was put back; {served}. Check that HAProxy loads {file} for {} (crt, crt-list, SNI), then run \
             `hapcert renew --force {name}`",
            failure.message,
            names.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;
    use crate::core::decision::{Decision, Reason};
    use crate::edge::haproxy::Applied;

    const NOW: OffsetDateTime = datetime!(2026-03-01 00:00 UTC);

    fn config() -> Config {
        let text = r#"
[acme]
directory = "https://ca.example/dir"

[[certificate]]
name = "www"
domains = ["example.com", "www.example.com"]

[[certificate]]
name = "api"
domains = ["api.example.com"]
"#;
        Config::parse(text, std::path::Path::new("/etc/hapcert/hapcert.toml")).unwrap()
    }

    fn facts(serial: &str, not_after: OffsetDateTime) -> CertFacts {
        CertFacts {
            serial: serial.into(),
            names: BTreeSet::new(),
            not_before: not_after - time::Duration::days(90),
            not_after,
            key_type: None,
            key_matches: true,
            ari_id: None,
        }
    }

    fn item(name: &str, result: ItemResult) -> Item {
        Item {
            name: name.into(),
            decision: Decision {
                due: true,
                reason: Reason::Missing,
                renew_at: None,
            },
            result,
            previous: Some(facts("01", datetime!(2026-03-21 00:00 UTC))),
        }
    }

    fn failure(kind: FailureKind, expected: Option<&str>, served: Option<&str>) -> ItemResult {
        ItemResult::Failed(Failure {
            kind,
            message: "it broke".into(),
            rate_limited_until: None,
            failed_names: Vec::new(),
            expected_serial: expected.map(str::to_owned),
            served_serial: served.map(str::to_owned),
        })
    }

    #[test]
    fn each_failure_kind_raises_its_event_with_what_is_served_and_what_was_expected() {
        let items = [
            item("www", failure(FailureKind::NotDeployed, None, None)),
            item("api", failure(FailureKind::Refused, Some("02"), None)),
            item("www", failure(FailureKind::Unverified, Some("03"), Some("09"))),
        ];
        let events = run_events(&config(), &items, NOW);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::RenewalFailed,
                EventKind::Rollback,
                EventKind::DeployUnverified
            ]
        );

        let failed = &events[0];
        assert_eq!(failed.certificate.as_deref(), Some("www"));
        assert_eq!(failed.names, ["example.com", "www.example.com"]);
        assert_eq!(
            failed.served_serial.as_deref(),
            Some("01"),
            "the previous one is still served"
        );
        assert_eq!(failed.expected_serial, None, "nothing was issued");
        assert_eq!(failed.days_left, Some(20.0));
        assert!(
            failed.message.contains("renewal failed: it broke"),
            "{}",
            failed.message
        );
        assert!(failed.message.contains("`hapcert renew www`"), "{}", failed.message);

        let refused = &events[1];
        assert_eq!(refused.names, ["api.example.com"]);
        assert_eq!(refused.expected_serial.as_deref(), Some("02"));
        assert_eq!(refused.served_serial.as_deref(), Some("01"));
        assert!(
            refused.message.contains("previous files were put back"),
            "{}",
            refused.message
        );

        let unverified = &events[2];
        assert_eq!(unverified.expected_serial.as_deref(), Some("03"));
        assert_eq!(
            unverified.served_serial.as_deref(),
            Some("09"),
            "what the endpoint showed"
        );
        assert!(
            unverified.message.contains("/etc/haproxy/certs/www.pem"),
            "{}",
            unverified.message
        );
    }

    #[test]
    fn a_renewal_raises_renewed_and_untouched_certificates_raise_nothing() {
        let new = facts("0a", datetime!(2026-05-30 00:00 UTC));
        let mut first_issue = item("api", failure(FailureKind::NotDeployed, None, None));
        first_issue.previous = None;
        let items = [
            item("www", ItemResult::Renewed(new, Applied::HotUpdated)),
            item("api", ItemResult::NotDue),
            item(
                "api",
                ItemResult::Deferred {
                    until: NOW,
                    why: "backoff".into(),
                },
            ),
            first_issue,
        ];
        let events = run_events(&config(), &items, NOW);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Renewed);
        assert_eq!(events[0].served_serial.as_deref(), Some("0a"));
        assert_eq!(events[0].days_left, Some(90.0));
        assert_eq!(events[1].kind, EventKind::RenewalFailed);
        assert_eq!(events[1].served_serial, None);
        assert_eq!(events[1].days_left, None);
        assert!(
            events[1].message.contains("no certificate was deployed"),
            "{}",
            events[1].message
        );
        assert_eq!(acted_on(&items), ["www", "api"]);
    }
}
