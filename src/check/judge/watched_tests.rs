//! The judgement of HAProxy's inventory and of the `[[watch]]` endpoints.

use time::{Duration, OffsetDateTime};

use super::tests::{NOW, check_config, served};
use super::*;
use crate::core::config::{StartTls, UnmanagedPolicy};

fn days(n: f64) -> OffsetDateTime {
    NOW + Duration::seconds_f64(n * 86_400.0)
}

/// A 90-day certificate with `left` days to go.
fn validity(subject: &str, left: f64) -> Validity {
    Validity {
        subject: Some(subject.into()),
        not_before: Some(days(left - 90.0)),
        not_after: Some(days(left)),
    }
}

fn loaded(source: Source, name: &str, validity: Vec<Validity>) -> Loaded {
    Loaded {
        source,
        name: name.into(),
        validity,
        unreadable: None,
    }
}

#[test]
fn unmanaged_certificates_ca_files_and_crls_are_judged_by_the_thresholds_and_named_by_path() {
    let inventory = [
        loaded(
            Source::HaproxyCert,
            "/etc/haproxy/certs/bought.pem",
            vec![validity("CN=shop", 10.0)],
        ),
        loaded(
            Source::HaproxyCert,
            "/etc/haproxy/certs/old.pem",
            vec![validity("CN=old", -2.0)],
        ),
        loaded(
            Source::HaproxyCert,
            "/etc/haproxy/certs/fine.pem",
            vec![validity("CN=fine", 80.0)],
        ),
        loaded(
            Source::HaproxyCaFile,
            "/etc/haproxy/clients-ca.pem",
            vec![validity("CN=Old Client CA", 5.0), validity("CN=New Client CA", 700.0)],
        ),
        loaded(
            Source::HaproxyCrlFile,
            "/etc/haproxy/clients.crl",
            vec![Validity {
                subject: Some("CN=Client CA".into()),
                not_before: Some(days(-6.0)),
                not_after: Some(days(-0.5)),
            }],
        ),
    ];
    let report = judge_inventory(&check_config(), &inventory, NOW);
    assert_eq!(report.state, "read");
    assert_eq!(report.status, Status::Critical);
    assert_eq!(
        report.message,
        "3 certificates, 1 CA files and 1 CRLs loaded by HAProxy that hapcert does not manage"
    );
    let status: Vec<(&str, Status)> = report.items.iter().map(|i| (i.name.as_str(), i.status)).collect();
    assert_eq!(
        status,
        [
            ("/etc/haproxy/certs/bought.pem", Status::Warning),
            ("/etc/haproxy/certs/old.pem", Status::Critical),
            ("/etc/haproxy/certs/fine.pem", Status::Ok),
            ("/etc/haproxy/clients-ca.pem", Status::Critical),
            ("/etc/haproxy/clients.crl", Status::Critical),
        ]
    );
    let summary = |i: usize| report.items[i].summary.clone();
    assert!(
        summary(0).starts_with(
            "unmanaged certificate /etc/haproxy/certs/bought.pem expires in 10.0 days (2026-12-03 12:00:00 UTC), within \
             the warning threshold of 30.0 days: hapcert does not manage it"
        ),
        "{}",
        summary(0)
    );
    assert!(summary(1).starts_with("unmanaged certificate /etc/haproxy/certs/old.pem expired 2.0 days ago"));
    assert_eq!(summary(2), "OK, 80.0 days left");
    assert!(
        summary(3).starts_with(
            "unmanaged CA file /etc/haproxy/clients-ca.pem: the certificate CN=Old Client CA expires in 5.0 days"
        ),
        "{}",
        summary(3)
    );
    assert_eq!(report.items[3].entries.len(), 2);
    assert_eq!(report.items[3].days_left, Some(5.0));
    assert!(
        summary(4).starts_with("unmanaged CRL /etc/haproxy/clients.crl went past its Next Update 0.5 days ago"),
        "{}",
        summary(4)
    );
}

#[test]
fn ignore_paths_leaves_entries_out_and_warn_keeps_them_below_critical() {
    let mut check = check_config();
    check.ignore_paths = vec![glob::Pattern::new("/etc/haproxy/old/*.pem").unwrap()];
    check.unmanaged = UnmanagedPolicy::Warn;
    let inventory = [
        loaded(
            Source::HaproxyCert,
            "/etc/haproxy/old/2019.pem",
            vec![validity("CN=a", -400.0)],
        ),
        loaded(
            Source::HaproxyCert,
            "/etc/haproxy/certs/expired.pem",
            vec![validity("CN=b", -1.0)],
        ),
    ];
    let report = judge_inventory(&check, &inventory, NOW);
    assert_eq!(report.items.len(), 1);
    assert_eq!(report.items[0].name, "/etc/haproxy/certs/expired.pem");
    assert_eq!(report.items[0].status, Status::Warning);
    assert!(
        report.message.ends_with("(1 more left out by [check] ignore_paths)"),
        "{}",
        report.message
    );
}

#[test]
fn an_entry_haproxy_would_not_describe_is_unknown_not_ok() {
    let mut entry = loaded(Source::HaproxyCert, "/etc/haproxy/certs/x.pem", Vec::new());
    entry.unreadable = Some("show ssl cert answered: Unknown".into());
    let report = judge_inventory(&check_config(), &[entry], NOW);
    assert_eq!(report.items[0].status, Status::Unknown);
    assert_eq!(report.status, Status::Unknown);
}

fn watch(outcome: Result<Served, String>) -> WatchObserved {
    WatchObserved {
        name: "backend-api".into(),
        endpoint: "10.0.0.5:443".into(),
        sni: "www.example.com".into(),
        starttls: None,
        warn_days: None,
        crit_days: None,
        outcome,
    }
}

#[test]
fn a_watched_endpoint_is_judged_by_its_days_chain_and_name_with_its_own_thresholds() {
    let check = check_config();
    let ok = judge_watch(&check, &watch(Ok(served(&[1], "0a", 80.0))), NOW);
    assert_eq!((ok.status, ok.summary.as_str()), (Status::Ok, "OK, 80.0 days left"));
    assert_eq!(ok.endpoint.as_ref().unwrap().name_covered, Some(true));

    let soon = judge_watch(&check, &watch(Ok(served(&[1], "0a", 3.0))), NOW);
    assert_eq!(soon.status, Status::Critical);
    assert!(
        soon.summary.starts_with(
            "watch backend-api 10.0.0.5:443 (SNI www.example.com) sends serial 0a which expires in 3.0 days"
        ),
        "{}",
        soon.summary
    );

    // Its own thresholds: 3 days left is only a warning below crit_days = 2.
    let mut relaxed = watch(Ok(served(&[1], "0a", 3.0)));
    relaxed.crit_days = Some(2.0);
    relaxed.warn_days = Some(5.0);
    let relaxed = judge_watch(&check, &relaxed, NOW);
    assert_eq!(relaxed.status, Status::Warning);
    assert_eq!(relaxed.thresholds.map(|t| (t.warn_days, t.crit_days)), Some((5.0, 2.0)));

    let mut other_name = watch(Ok(served(&[1], "0a", 80.0)));
    other_name.sni = "api.internal".into();
    let other_name = judge_watch(&check, &other_name, NOW);
    assert_eq!(other_name.status, Status::Critical);
    assert!(
        other_name.summary.contains("does not cover api.internal"),
        "{}",
        other_name.summary
    );

    // By address, no name is checked: HAProxy's `verify required` checks none either.
    let mut by_address = watch(Ok(served(&[1], "0a", 80.0)));
    by_address.sni = "10.0.0.5".into();
    let by_address = judge_watch(&check, &by_address, NOW);
    assert_eq!(by_address.status, Status::Ok);
    assert_eq!(by_address.endpoint.unwrap().name_covered, None);

    let mut untrusted = served(&[1], "0a", 80.0);
    untrusted.chain = Chain::Fails("it does not lead to a root in the system roots".into());
    let untrusted = judge_watch(&check, &watch(Ok(untrusted)), NOW);
    assert_eq!(untrusted.status, Status::Critical);
    assert!(
        untrusted.summary.contains("the served chain does not verify"),
        "{}",
        untrusted.summary
    );
}

#[test]
fn a_watched_endpoint_that_does_not_answer_is_critical_with_what_to_check() {
    let mut down = watch(Err("cannot connect to 10.0.0.5:25: Connection refused".into()));
    down.starttls = Some(StartTls::Smtp);
    down.endpoint = "10.0.0.5:25".into();
    let report = judge_watch(&check_config(), &down, NOW);
    assert_eq!(report.status, Status::Critical);
    assert_eq!(
        report.summary,
        "watch backend-api 10.0.0.5:25 (SNI www.example.com, STARTTLS smtp): cannot connect to 10.0.0.5:25: \
         Connection refused: is the service up, and is this its TLS port?"
    );
}

#[test]
fn a_long_lived_certificate_warns_at_30_days_not_at_a_third_of_its_life() {
    let year = Validity {
        subject: Some("CN=bought".into()),
        not_before: Some(days(-300.0)),
        not_after: Some(days(65.0)),
    };
    let root = Validity {
        subject: Some("CN=Root".into()),
        not_before: Some(days(-3650.0)),
        not_after: Some(days(3650.0)),
    };
    let report = judge_inventory(
        &check_config(),
        &[
            loaded(Source::HaproxyCert, "/a.pem", vec![year]),
            loaded(Source::HaproxyCaFile, "/ca.pem", vec![root]),
        ],
        NOW,
    );
    assert_eq!(report.items[0].status, Status::Ok, "{:?}", report.items[0].problems);
    assert_eq!(report.items[0].thresholds.map(|t| t.warn_days), Some(30.0));
    assert_eq!(report.items[1].status, Status::Ok, "{:?}", report.items[1].problems);
}
