use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::check::render::{self, report};
use crate::core::config::{CheckConfig, KeyType, UnmanagedPolicy};

pub(super) const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

pub(super) fn check_config() -> CheckConfig {
    CheckConfig {
        endpoints: vec!["127.0.0.1:443".into()],
        endpoints_key: "[haproxy] verify",
        route: true,
        warn_days: None,
        crit_days: 7.0,
        max_run_age: Duration::from_secs(36 * 3600),
        ca_bundle: None,
        unmanaged: UnmanagedPolicy::Alert,
        ignore_paths: Vec::new(),
    }
}

/// A 90-day certificate with `left` days to go.
fn facts(serial: &str, left: f64) -> CertFacts {
    let not_after = NOW + time::Duration::seconds_f64(left * 86_400.0);
    CertFacts {
        serial: serial.into(),
        names: BTreeSet::from(["www.example.com".to_owned()]),
        not_before: not_after - time::Duration::days(90),
        not_after,
        key_type: Some(KeyType::EcdsaP256),
        key_matches: true,
        ari_id: None,
    }
}

pub(super) fn served(leaf: &[u8], serial: &str, left: f64) -> Served {
    let f = facts(serial, left);
    Served {
        leaf: leaf.to_vec(),
        serial: serial.into(),
        names: f.names,
        not_before: f.not_before,
        not_after: f.not_after,
        chain: Chain::Verifies,
        flaws: Vec::new(),
    }
}

fn probe(outcome: Result<Served, String>) -> Probe {
    Probe {
        endpoint: "127.0.0.1:443".into(),
        name: "www.example.com".into(),
        client: ClientKind::Any,
        outcome,
    }
}

fn observed(disk: Disk, probes: Vec<Probe>) -> Observed {
    Observed {
        name: "www".into(),
        file: PathBuf::from("/etc/haproxy/certs/www.pem"),
        names: vec!["www.example.com".into()],
        disk,
        probes,
        interrupted_deploy: None,
    }
}

/// The disk holds leaf `[1]`, serial "0b", with `left` days; the endpoint serves `served`.
fn judged(left: f64, served: Result<Served, String>) -> CertReport {
    let disk = Disk::Present {
        facts: facts("0b", left),
        leaf: vec![1],
    };
    judge_certificate(&check_config(), &observed(disk, vec![probe(served)]), NOW)
}

fn runs_ok() -> RunReport {
    judge_runs(
        &RunRecord::Read {
            last_run: Some(NOW - time::Duration::hours(2)),
            last_run_success: Some(NOW - time::Duration::hours(2)),
        },
        Duration::from_secs(36 * 3600),
        NOW,
    )
}

#[test]
fn thresholds_follow_the_lifetime_unless_set_and_short_lives_keep_a_warning_stage() {
    let check = check_config();
    let ninety = thresholds(&check, NOW, NOW + time::Duration::days(90));
    assert_eq!(
        ninety,
        Thresholds {
            warn_days: 30.0,
            crit_days: 7.0
        }
    );
    let six = thresholds(&check, NOW, NOW + time::Duration::days(6));
    assert_eq!(
        six,
        Thresholds {
            warn_days: 2.0,
            crit_days: 1.0
        }
    );
    let set = CheckConfig {
        warn_days: Some(21.0),
        crit_days: 10.0,
        ..check
    };
    assert_eq!(
        thresholds(&set, NOW, NOW + time::Duration::days(90)),
        Thresholds {
            warn_days: 21.0,
            crit_days: 10.0
        }
    );
}

#[test]
fn a_served_certificate_that_is_the_one_on_disk_with_time_left_is_ok() {
    let cert = judged(80.0, Ok(served(&[1], "0b", 80.0)));
    assert_eq!(cert.status, Status::Ok, "{cert:#?}");
    assert_eq!(cert.summary, "OK, 80.0 days left");
    let endpoint = &cert.endpoints[0];
    assert_eq!(endpoint.matches_disk, Some(true));
    assert_eq!(endpoint.chain_verifies, Some(true));
    assert_eq!(endpoint.name_covered, Some(true));
    assert_eq!(cert.served_matches_disk(), Some(true));
}

#[test]
fn near_expiry_warns_and_close_to_expiry_or_expired_is_critical() {
    let near = judged(20.0, Ok(served(&[1], "0b", 20.0)));
    assert_eq!(near.status, Status::Warning);
    assert!(
        near.summary
            .starts_with("expires in 20.0 days (2026-12-13 12:00:00 UTC)"),
        "{}",
        near.summary
    );

    let close = judged(3.0, Ok(served(&[1], "0b", 3.0)));
    assert_eq!(close.status, Status::Critical);
    assert!(close.summary.starts_with("expires in 3.0 days"), "{}", close.summary);

    let expired = judged(-2.0, Ok(served(&[1], "0b", -2.0)));
    assert_eq!(expired.status, Status::Critical);
    assert!(
        expired.summary.starts_with("expired 2.0 days ago"),
        "{}",
        expired.summary
    );
    // The expiry is said once, for the file: the same certificate served adds nothing.
    assert_eq!(expired.problems.len(), 1, "{:#?}", expired.problems);
}

#[test]
fn the_advice_for_a_file_haproxy_has_not_loaded_says_whether_a_run_will_deploy_it() {
    let disk = || Disk::Present {
        facts: facts("0b", 80.0),
        leaf: vec![1],
    };
    let advice = |interrupted: Option<&str>| {
        let mut seen = observed(disk(), vec![probe(Ok(served(&[2], "0a", 80.0)))]);
        seen.interrupted_deploy = interrupted.map(str::to_owned);
        judge_certificate(&check_config(), &seen, NOW).summary
    };
    // Only a deploy the state records as under way is one `hapcert run` finishes.
    let unfinished = advice(Some("0b"));
    assert!(
        unfinished.ends_with(
            "serves serial 0a but disk has 0b: hapcert was stopped in the middle of deploying it; `hapcert run` \
             finishes that deploy and verifies it, or puts the previous file back"
        ),
        "{unfinished}"
    );
    for other in [None, Some("0c")] {
        let text = advice(other);
        assert!(
            text.ends_with("no deploy of it by hapcert is unfinished; reload HAProxy"),
            "{other:?}: {text}"
        );
        assert!(!text.contains("hapcert run"), "{text}");
    }
}

#[test]
fn another_serial_served_is_critical_and_its_own_expiry_is_judged() {
    let cert = judged(80.0, Ok(served(&[2], "0a", -1.0)));
    assert_eq!(cert.status, Status::Critical);
    assert!(
        cert.summary
            .starts_with("127.0.0.1:443 (SNI www.example.com) serves serial 0a but disk has 0b"),
        "{}",
        cert.summary
    );
    assert!(cert.summary.ends_with("(and 1 more)"), "{}", cert.summary);
    assert!(
        cert.problems[1]
            .message
            .contains("serves serial 0a which expired 1.0 days ago"),
        "{:#?}",
        cert.problems
    );
    assert_eq!(cert.served_matches_disk(), Some(false));
    assert_eq!(cert.served_serial(), Some("0a"));
    assert_eq!(cert.days_left, Some(-1.0), "the fewest days of disk and wire");
}

#[test]
fn a_failed_handshake_an_uncovered_name_and_a_bad_chain_are_critical() {
    let down = judged(
        80.0,
        Err("cannot connect to 127.0.0.1:443: Connection refused (os error 111)".into()),
    );
    assert_eq!(down.status, Status::Critical);
    assert!(
        down.summary.starts_with(
            "127.0.0.1:443 (SNI www.example.com): cannot connect to 127.0.0.1:443: Connection refused (os error 111)"
        ),
        "{}",
        down.summary
    );
    assert_eq!(
        down.endpoints[0].error.as_deref(),
        Some("cannot connect to 127.0.0.1:443: Connection refused (os error 111)")
    );
    assert_eq!(down.served_matches_disk(), None);

    let mut default = served(&[1], "0b", 80.0);
    default.names = BTreeSet::from(["default.invalid".to_owned()]);
    let uncovered = judged(80.0, Ok(default));
    assert_eq!(uncovered.status, Status::Critical);
    assert!(
        uncovered
            .summary
            .contains("for default.invalid that does not cover www.example.com"),
        "{}",
        uncovered.summary
    );
    assert_eq!(uncovered.endpoints[0].name_covered, Some(false));

    let mut foreign = served(&[1], "0b", 80.0);
    foreign.chain = Chain::Fails("it does not lead to a root in ca_bundle /x.pem".into());
    let bad_chain = judged(80.0, Ok(foreign));
    assert_eq!(bad_chain.status, Status::Critical);
    assert!(
        bad_chain
            .summary
            .contains("the served chain does not verify: it does not lead"),
        "{}",
        bad_chain.summary
    );
    assert_eq!(bad_chain.endpoints[0].chain_verifies, Some(false));
}

#[test]
fn a_file_that_is_missing_or_broken_is_critical_and_one_this_user_may_not_read_is_unknown() {
    let check = check_config();
    let up = || vec![probe(Ok(served(&[1], "0b", 80.0)))];
    let missing = judge_certificate(&check, &observed(Disk::Missing, up()), NOW);
    assert_eq!(missing.status, Status::Critical);
    assert!(
        missing.summary.starts_with("/etc/haproxy/certs/www.pem is missing"),
        "{}",
        missing.summary
    );
    assert_eq!(missing.endpoints[0].matches_disk, None);

    let broken = judge_certificate(
        &check,
        &observed(Disk::Broken("the file holds no private key".into()), up()),
        NOW,
    );
    assert_eq!(broken.status, Status::Critical);

    let forbidden = judge_certificate(
        &check,
        &observed(Disk::Forbidden("Permission denied".into()), up()),
        NOW,
    );
    assert_eq!(forbidden.status, Status::Unknown);
    assert!(
        forbidden.summary.contains("run `hapcert check` as root"),
        "{}",
        forbidden.summary
    );
}

#[test]
fn roots_that_cannot_be_loaded_make_an_otherwise_good_certificate_unknown_but_never_hide_a_critical() {
    let mut unverified = served(&[1], "0b", 80.0);
    unverified.chain = Chain::NotChecked("cannot read ca_bundle /x.pem".into());
    assert_eq!(judged(80.0, Ok(unverified.clone())).status, Status::Unknown);
    unverified.not_after = NOW - time::Duration::days(1);
    let both = judged(3.0, Ok(unverified));
    assert_eq!(both.status, Status::Critical);
    assert_eq!(both.problems[0].status, Status::Critical, "worst first");
}

#[test]
fn wildcards_cover_one_label() {
    let names = BTreeSet::from(["*.example.com".to_owned(), "example.org".to_owned()]);
    assert!(covers(&names, "a.example.com"));
    assert!(covers(&names, "A.Example.COM."));
    assert!(covers(&names, "example.org"));
    assert!(!covers(&names, "example.com"));
    assert!(!covers(&names, "a.b.example.com"));
    assert!(!covers(&names, "www.example.org"));
}

#[test]
fn the_dead_mans_switch_trips_on_an_old_or_missing_success_and_says_what_to_do() {
    let max = Duration::from_secs(36 * 3600);
    assert_eq!(runs_ok().status, Status::Ok);
    assert_eq!(
        runs_ok().message,
        "last successful run 2.0 h ago (2026-11-23 10:00:00 UTC)"
    );

    let old = judge_runs(
        &RunRecord::Read {
            last_run: Some(NOW - time::Duration::hours(3)),
            last_run_success: Some(NOW - time::Duration::hours(37)),
        },
        max,
        NOW,
    );
    assert_eq!(old.status, Status::Critical);
    assert!(
        old.message.starts_with(
            "last successful run was 37.0 h ago (2026-11-21 23:00:00 UTC), longer than max_run_age 36h; the last \
             run, 3.0 h ago, did not succeed"
        ),
        "{}",
        old.message
    );
    assert!(
        old.message.contains("systemctl status hapcert.timer"),
        "{}",
        old.message
    );
    assert!(old.message.contains("journalctl -u hapcert"), "{}", old.message);
    assert_eq!(old.age_hours, Some(37.0));

    let stopped = judge_runs(
        &RunRecord::Read {
            last_run: Some(NOW - time::Duration::days(4)),
            last_run_success: Some(NOW - time::Duration::days(4)),
        },
        max,
        NOW,
    );
    assert!(
        stopped.message.starts_with("last successful run was 4.0 days ago"),
        "{}",
        stopped.message
    );
    assert!(!stopped.message.contains("did not succeed"), "{}", stopped.message);

    let never = judge_runs(
        &RunRecord::Read {
            last_run: None,
            last_run_success: None,
        },
        max,
        NOW,
    );
    assert_eq!(never.status, Status::Critical);
    assert!(
        never
            .message
            .starts_with("no successful run recorded yet: run `hapcert run`"),
        "{}",
        never.message
    );

    let damaged = judge_runs(&RunRecord::Damaged("state.json is damaged".into()), max, NOW);
    assert_eq!(damaged.status, Status::Critical);
    let denied = judge_runs(&RunRecord::Unreadable("Permission denied".into()), max, NOW);
    assert_eq!(denied.status, Status::Unknown);

    // A clock that went back is not an overdue run, but it is not silence either: the switch says it cannot tell.
    let recorded_at = |at: OffsetDateTime| {
        judge_runs(
            &RunRecord::Read {
                last_run: None,
                last_run_success: Some(at),
            },
            max,
            NOW,
        )
    };
    let ahead = recorded_at(NOW + time::Duration::hours(1));
    assert_eq!(ahead.status, Status::Warning);
    assert!(
        ahead
            .message
            .starts_with("the last successful run is recorded 1.0 h in the future")
            && ahead.message.contains("timedatectl"),
        "{}",
        ahead.message
    );
    assert_eq!(
        recorded_at(NOW + time::Duration::minutes(2)).status,
        Status::Ok,
        "within the clocks' skew"
    );
}

#[test]
fn the_summary_line_puts_problems_first_and_carries_perfdata() {
    let mut good = judged(80.0, Ok(served(&[1], "0b", 80.0)));
    good.name = "api".into();
    let bad = judged(80.0, Ok(served(&[2], "0a", 80.0)));
    let whole = report(runs_ok(), vec![good, bad], not_read(), Vec::new(), NOW);
    assert_eq!(whole.status, Status::Critical);
    assert_eq!(whole.exit_code, 2);
    let (text, perf) = whole.summary.split_once(" | ").expect("perfdata");
    assert!(
        text.starts_with(
            "HAPCERT CRITICAL - www: 127.0.0.1:443 (SNI www.example.com) serves serial 0a but disk has 0b"
        ),
        "{text}"
    );
    assert!(text.ends_with("; api: OK, 80.0 days left"), "{text}");
    assert_eq!(
        perf,
        "api_days=80.0;30.0;7.0 www_days=80.0;30.0;7.0 last_run_success_age_hours=2.0;;36.0"
    );

    let overdue = judge_runs(
        &RunRecord::Read {
            last_run: None,
            last_run_success: None,
        },
        Duration::from_secs(3600),
        NOW,
    );
    let whole = report(
        overdue,
        vec![judged(80.0, Ok(served(&[1], "0b", 80.0)))],
        not_read(),
        Vec::new(),
        NOW,
    );
    assert!(
        whole
            .summary
            .starts_with("HAPCERT CRITICAL - runs: no successful run recorded yet"),
        "{}",
        whole.summary
    );
    assert!(
        whole.summary.contains("; www: OK, 80.0 days left |"),
        "{}",
        whole.summary
    );
    assert!(!whole.summary.contains('\n'));

    let details = render::details(&whole);
    assert!(details.contains("www [OK] www.example.com\n"), "{details}");
    assert!(
        details.contains("  127.0.0.1:443 SNI www.example.com [OK]: serial 0b (same as disk), 80.0 days left, chain verifies, name covered\n"),
        "{details}"
    );
}

#[test]
fn many_good_certificates_are_counted_not_named() {
    let certs: Vec<CertReport> = (0..8)
        .map(|i| {
            let mut cert = judged(80.0 - f64::from(i), Ok(served(&[1], "0b", 80.0 - f64::from(i))));
            cert.name = format!("c{i}");
            cert
        })
        .collect();
    let whole = report(runs_ok(), certs, not_read(), Vec::new(), NOW);
    assert!(
        whole
            .summary
            .starts_with("HAPCERT OK - 8 certificates OK (fewest days left: c7, 73.0) | "),
        "{}",
        whole.summary
    );
}

#[test]
fn a_served_root_or_a_chain_out_of_order_warns_with_the_fix() {
    let mut sent = served(&[1], "0b", 80.0);
    sent.flaws = vec![
        Flaw::OutOfOrder {
            position: 0,
            issuer: "CN=R3".into(),
            next_subject: "CN=ISRG Root X1".into(),
        },
        Flaw::IncludesRoot {
            position: 1,
            subject: "CN=ISRG Root X1".into(),
        },
    ];
    let cert = judged(80.0, Ok(sent));
    assert_eq!(cert.status, Status::Warning, "{cert:#?}");
    let endpoint = &cert.endpoints[0];
    assert_eq!(endpoint.status, Status::Warning);
    assert_eq!(endpoint.chain_verifies, Some(true), "a flaw is not a chain that fails");
    assert_eq!(endpoint.chain_flaws.len(), 2);
    let messages: Vec<&str> = cert.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages.contains(
            &"127.0.0.1:443 (SNI www.example.com): the served chain is out of order: certificate 1 (issued by CN=R3) is \
              followed by CN=ISRG Root X1, which did not issue it; strict clients fail the handshake: put the \
              certificates in the file leaf first, then each one's issuer in turn"
        ) && messages.iter().any(|m| m.contains(
            "the served chain includes its root (certificate 2, CN=ISRG Root X1, self-signed)"
        ) && m.ends_with("remove the root from the certificate file")),
        "{messages:#?}"
    );
    assert!(cert.problems.iter().all(|p| p.status == Status::Warning));

    // In order, root left out: nothing to say.
    let clean = judged(80.0, Ok(served(&[1], "0b", 80.0)));
    assert!(
        clean.endpoints[0].chain_flaws.is_empty() && clean.problems.is_empty(),
        "{clean:#?}"
    );
}

fn not_read() -> InventoryReport {
    InventoryReport::not_read("not-configured", "not read")
}

#[test]
fn a_broken_route_warns_beside_the_other_findings_and_a_working_one_changes_nothing() {
    use crate::core::state::monitor::RouteCheck;
    let at = NOW - time::Duration::hours(3);
    let good = judged(80.0, Ok(served(&[1], "0b", 80.0)));
    let worked = with_route(good.clone(), Some(&RouteCheck { at, problem: None }));
    assert_eq!(
        (worked.status, &worked.summary, &worked.problems),
        (Status::Ok, &good.summary, &good.problems)
    );
    assert!(worked.route.as_ref().is_some_and(|r| r.ok && r.problem.is_none()));

    let broken = RouteCheck {
        at,
        problem: Some("http://www.example.com/.well-known/acme-challenge/x answered with a redirect".into()),
    };
    let warned = with_route(good, Some(&broken));
    assert_eq!(warned.status, Status::Warning);
    assert!(
        warned.summary.starts_with(
            "the challenge route is broken, so the next renewal would fail: http://www.example.com/.well-known/\
             acme-challenge/x answered with a redirect"
        ),
        "{}",
        warned.summary
    );
    assert_eq!(
        warned.route.as_ref().and_then(|r| r.problem.as_ref()),
        Some(&warned.problems[0].message)
    );

    // A CRITICAL stays CRITICAL and keeps its summary; the route is one more problem.
    let critical = judged(3.0, Ok(served(&[1], "0b", 3.0)));
    let both = with_route(critical.clone(), Some(&broken));
    assert_eq!((both.status, &both.summary), (Status::Critical, &critical.summary));
    assert_eq!(both.problems.len(), critical.problems.len() + 1);
}

#[test]
fn a_working_route_is_tried_again_after_a_day_and_a_broken_one_at_every_check() {
    use crate::core::state::monitor::RouteCheck;
    let worked = RouteCheck {
        at: NOW - time::Duration::hours(23),
        problem: None,
    };
    assert!(RouteCheck::due(None, NOW));
    assert!(!RouteCheck::due(Some(&worked), NOW));
    assert!(RouteCheck::due(Some(&worked), NOW + time::Duration::hours(1)));
    let broken = RouteCheck {
        at: NOW - time::Duration::minutes(5),
        problem: Some("refused".into()),
    };
    assert!(RouteCheck::due(Some(&broken), NOW));
    // A clock set back: tried, not trusted for a day from the future.
    let ahead = RouteCheck {
        at: NOW + time::Duration::hours(2),
        problem: None,
    };
    assert!(RouteCheck::due(Some(&ahead), NOW));
}
