use std::collections::BTreeSet;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::core::ari::AriWindow;
use crate::core::config::CertificateSpec;

const DAY: Duration = Duration::from_secs(86_400);
const ISSUED: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn spec(renew_before: Option<Duration>) -> CertificateSpec {
    CertificateSpec {
        renew_before,
        ..crate::testing::www_spec()
    }
}

fn facts(lifetime_days: u64) -> CertFacts {
    CertFacts {
        serial: "01".into(),
        names: BTreeSet::from(["example.com".to_owned(), "www.example.com".to_owned()]),
        not_before: ISSUED,
        not_after: ISSUED + DAY * lifetime_days as u32,
        key_type: Some(KeyType::EcdsaP256),
        key_matches: true,
        ari_id: Some("aki.serial".into()),
    }
}

fn at_days(days: f64) -> OffsetDateTime {
    ISSUED + Duration::from_secs_f64(days * 86_400.0)
}

#[test]
fn decision_table() {
    let good = facts(90);
    let mut one_name = facts(90);
    one_name.names.remove("www.example.com");
    let mut extra_name = facts(90);
    extra_name.names.insert("old.example.com".into());
    let mut rsa = facts(90);
    rsa.key_type = Some(KeyType::Rsa2048);
    let mut odd_key = facts(90);
    odd_key.key_type = None;
    let mut wrong_key = facts(90);
    wrong_key.key_matches = false;
    let mut expired_and_renamed = facts(90);
    expired_and_renamed.names.remove("example.com");

    let present = Local::Present;
    let none = None;
    let before_7d = Some(DAY * 7);
    let before_60d = Some(DAY * 60);

    // (what is on disk, renew_before, day since issuance, --force) => (due, reason pattern)
    #[allow(clippy::type_complexity)]
    let table: Vec<(Local, Option<Duration>, f64, bool, bool, &str)> = vec![
        (present(good.clone()), none, 10.0, true, true, "renewal forced"),
        (Local::Missing, none, 0.0, true, true, "renewal forced"),
        (Local::Missing, none, 0.0, false, true, "no certificate file yet"),
        (
            Local::Unreadable("permission denied".into()),
            none,
            0.0,
            false,
            true,
            "cannot be read: permission denied",
        ),
        (
            Local::Unparseable("holds no certificate".into()),
            none,
            0.0,
            false,
            true,
            "not a usable PEM: holds no certificate",
        ),
        (
            present(one_name),
            none,
            1.0,
            false,
            true,
            "names differ from the configured domains: missing www.example.com",
        ),
        (
            present(extra_name),
            none,
            1.0,
            false,
            true,
            "names differ from the configured domains: not configured old.example.com",
        ),
        (
            present(rsa),
            none,
            1.0,
            false,
            true,
            "the key is rsa-2048, the config asks for ecdsa-p256",
        ),
        (
            present(odd_key),
            none,
            1.0,
            false,
            true,
            "of a kind hapcert does not issue",
        ),
        (
            present(wrong_key),
            none,
            1.0,
            false,
            true,
            "does not belong to the certificate",
        ),
        (
            present(expired_and_renamed),
            none,
            91.0,
            false,
            true,
            "missing example.com",
        ),
        (
            present(good.clone()),
            none,
            90.0,
            false,
            true,
            "expired at 2026-04-01 00:00:00 UTC",
        ),
        (present(good.clone()), none, 120.0, false, true, "expired at"),
        // 90 days: due with 30 days (1/3) left, that is from day 60 on.
        (
            present(good.clone()),
            none,
            1.0,
            false,
            false,
            "89.0 days left, not due yet (renew with 1/3 of the lifetime left)",
        ),
        (
            present(good.clone()),
            none,
            59.9,
            false,
            false,
            "30.1 days left, not due yet",
        ),
        (
            present(good.clone()),
            none,
            60.0,
            false,
            true,
            "30.0 days left, inside the renewal window (renew with 1/3",
        ),
        (
            present(good.clone()),
            none,
            75.0,
            false,
            true,
            "15.0 days left, inside the renewal window",
        ),
        // renew_before replaces the fraction, in both directions.
        (
            present(good.clone()),
            before_7d,
            75.0,
            false,
            false,
            "15.0 days left, not due yet (renew_before = 7d)",
        ),
        (
            present(good.clone()),
            before_7d,
            83.0,
            false,
            true,
            "7.0 days left, inside the renewal window (renew_before = 7d)",
        ),
        (
            present(good.clone()),
            before_60d,
            29.0,
            false,
            false,
            "61.0 days left, not due yet (renew_before = 60d)",
        ),
        (
            present(good.clone()),
            before_60d,
            30.5,
            false,
            true,
            "59.5 days left, inside the renewal window",
        ),
        // Under 10 days of lifetime the window opens at half.
        (
            present(facts(6)),
            none,
            2.9,
            false,
            false,
            "3.1 days left, not due yet (renew with 1/2 of the lifetime left)",
        ),
        (
            present(facts(6)),
            none,
            3.0,
            false,
            true,
            "3.0 days left, inside the renewal window (renew with 1/2",
        ),
        (
            present(facts(10)),
            none,
            6.0,
            false,
            false,
            "4.0 days left, not due yet (renew with 1/3",
        ),
        (
            present(facts(10)),
            none,
            6.7,
            false,
            true,
            "inside the renewal window (renew with 1/3",
        ),
    ];

    for (i, (local, renew_before, day, force, want_due, want_reason)) in table.into_iter().enumerate() {
        let decision = decide(&spec(renew_before), &local, Known::default(), at_days(day), force);
        let reason = decision.reason.to_string();
        assert_eq!(decision.due, want_due, "row {i}: {reason}");
        assert!(
            reason.contains(want_reason),
            "row {i}: wanted {want_reason:?}, got {reason:?}"
        );
    }
}

#[test]
fn renew_at_is_reported_for_present_certificates_only() {
    let decision = decide(
        &spec(None),
        &Local::Present(facts(90)),
        Known::default(),
        at_days(1.0),
        false,
    );
    assert_eq!(decision.renew_at, Some(ISSUED + DAY * 60));
    assert_eq!(
        decide(&spec(None), &Local::Missing, Known::default(), at_days(1.0), false).renew_at,
        None
    );
}

fn window(start_day: f64, end_day: f64, renew_day: f64) -> AriWindow {
    AriWindow {
        cert_id: "aki.serial".into(),
        start: at_days(start_day),
        end: at_days(end_day),
        renew_at: at_days(renew_day),
        checked_at: ISSUED,
        next_check: ISSUED,
        explanation_url: None,
    }
}

#[test]
fn the_cas_window_replaces_the_lifetime_rule() {
    let present = Local::Present(facts(90));
    // The lifetime rule would wait for day 60; the CA says renew around day 30-32, and the moment picked is day 31.
    let ari = window(30.0, 32.0, 31.0);
    let before = decide(
        &spec(None),
        &present,
        Known {
            window: Some(&ari),
            revoked: false,
            ..Known::default()
        },
        at_days(30.5),
        false,
    );
    assert!(!before.due);
    assert_eq!(before.renew_at, Some(at_days(31.0)));
    assert!(
        before
            .reason
            .to_string()
            .contains("not due yet (the CA's renewal window"),
        "{}",
        before.reason
    );
    let after = decide(
        &spec(None),
        &present,
        Known {
            window: Some(&ari),
            revoked: false,
            ..Known::default()
        },
        at_days(31.0),
        false,
    );
    assert!(after.due);
    assert!(matches!(
        after.reason,
        Reason::WindowReached {
            rule: Rule::Ari { .. },
            ..
        }
    ));
    // The CA may also say later than the lifetime rule would: the CA wins (and renew_before, too, gives way).
    let late = window(70.0, 75.0, 72.0);
    assert!(
        !decide(
            &spec(Some(DAY * 30)),
            &present,
            Known {
                window: Some(&late),
                revoked: false,
                ..Known::default()
            },
            at_days(65.0),
            false
        )
        .due
    );
    // Never at or past expiry, whatever the window: at the latest a day before it (a tenth of a short lifetime).
    let bogus = window(100.0, 120.0, 110.0);
    assert_eq!(
        decide(
            &spec(None),
            &present,
            Known {
                window: Some(&bogus),
                revoked: false,
                ..Known::default()
            },
            at_days(1.0),
            false
        )
        .renew_at,
        Some(at_days(89.0))
    );
    let short = Local::Present(facts(6));
    let to_expiry = window(5.0, 6.0, 5.99);
    let known = Known {
        window: Some(&to_expiry),
        revoked: false,
        ..Known::default()
    };
    assert_eq!(
        decide(&spec(None), &short, known, at_days(1.0), false).renew_at,
        Some(at_days(5.4)),
        "a window that reaches the expiry of a 6-day certificate starts the renewal 0.6 days before it"
    );
    // Names, key and expiry checks come first: ARI does not hide a certificate that no longer fits the config.
    let mut renamed = facts(90);
    renamed.names.insert("old.example.com".into());
    let decision = decide(
        &spec(None),
        &Local::Present(renamed),
        Known {
            window: Some(&ari),
            revoked: false,
            ..Known::default()
        },
        at_days(1.0),
        false,
    );
    assert!(matches!(decision.reason, Reason::NamesDiffer { .. }));
}

#[test]
fn a_revoked_certificate_is_due_at_once() {
    let known = Known {
        revoked: true,
        ..Known::default()
    };
    let decision = decide(&spec(None), &Local::Present(facts(90)), known, at_days(1.0), false);
    assert!(decision.due);
    assert_eq!(decision.reason, Reason::Revoked);
}

#[test]
fn a_certificate_from_another_directory_is_due_at_once_and_says_both() {
    let known = Known {
        switched: Some(DirectorySwitch {
            issued_by: "https://acme-staging-v02.api.letsencrypt.org/directory",
            configured: "https://acme-v02.api.letsencrypt.org/directory",
        }),
        ..Known::default()
    };
    let decision = decide(&spec(None), &Local::Present(facts(90)), known, at_days(1.0), false);
    assert!(decision.due);
    assert_eq!(
        decision.reason.to_string(),
        "issued by https://acme-staging-v02.api.letsencrypt.org/directory; the config now names \
         https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(
        decision.renew_at,
        Some(at_days(60.0)),
        "the time rule still says when it would be due"
    );
}
