//! Renewal timing from the CA's renewal information (ARI, RFC 9773). Pure: the caller fetches, passes `now` and a
//! random number, and stores the result.
//!
//! The CA suggests a window; the client picks one moment uniformly at random inside it, so that a fleet does not renew
//! all at once, and keeps that moment for as long as the window stays the same, so that every run agrees on it. The CA
//! is not asked again before its Retry-After.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::time::later;

/// How long to wait before looking again at a CA whose directory has no `renewalInfo`.
pub const NOT_OFFERED_RECHECK: Duration = Duration::from_secs(24 * 3600);
/// The CA's Retry-After for a renewal window is kept within these bounds: at least a minute, so that a CA answering 0
/// is not asked at every run of a busy daemon, and at most a day, so that a window the CA moves (a mass revocation) is
/// seen within a day, and an absurd value cannot push the next look past any date.
pub const ARI_RETRY_AFTER: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// What the state knows of a certificate's renewal information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum RenewalInfo {
    Ari(AriWindow),
    /// The CA's directory has no `renewalInfo`: the lifetime rule decides.
    NotOffered {
        #[serde(with = "time::serde::rfc3339")]
        checked_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        next_check: OffsetDateTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriWindow {
    /// The certificate the window is for: a new certificate has a window of its own.
    pub cert_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// The moment picked inside the window.
    #[serde(with = "time::serde::rfc3339")]
    pub renew_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Not to be asked again before this (the CA's Retry-After).
    #[serde(with = "time::serde::rfc3339")]
    pub next_check: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
}

/// What the CA answered for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggested {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub explanation_url: Option<String>,
    pub retry_after: Duration,
}

impl RenewalInfo {
    /// The window for the certificate `cert_id`, if the state holds one for it.
    pub fn window_for(&self, cert_id: &str) -> Option<&AriWindow> {
        match self {
            RenewalInfo::Ari(window) if window.cert_id == cert_id => Some(window),
            _ => None,
        }
    }

    /// When the CA was last asked.
    pub fn checked_at(&self) -> OffsetDateTime {
        match self {
            RenewalInfo::Ari(window) => window.checked_at,
            RenewalInfo::NotOffered { checked_at, .. } => *checked_at,
        }
    }

    /// Of two answers about the same certificate (from two nodes of a fleet), the fresher one.
    pub fn fresher<'a>(a: Option<&'a RenewalInfo>, b: Option<&'a RenewalInfo>) -> Option<&'a RenewalInfo> {
        match (a, b) {
            (Some(a), Some(b)) if b.checked_at() > a.checked_at() => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }

    fn next_check(&self) -> OffsetDateTime {
        match self {
            RenewalInfo::Ari(window) => window.next_check,
            RenewalInfo::NotOffered { next_check, .. } => *next_check,
        }
    }
}

/// Whether to ask the CA now about certificate `cert_id`: never asked, asked about another certificate, or the
/// Retry-After has passed.
pub fn needs_check(known: Option<&RenewalInfo>, cert_id: &str, now: OffsetDateTime) -> bool {
    match known {
        None => true,
        Some(RenewalInfo::Ari(window)) if window.cert_id != cert_id => true,
        Some(info) => now >= info.next_check(),
    }
}

/// Stores the CA's answer. `unit` is a random number in [0, 1) that places the moment in the window; it is used only
/// when the window is new, so that an unchanged window keeps its moment.
pub fn record(
    known: Option<&RenewalInfo>,
    cert_id: &str,
    answer: Suggested,
    now: OffsetDateTime,
    unit: f64,
) -> RenewalInfo {
    let kept = known
        .and_then(|k| k.window_for(cert_id))
        .filter(|w| w.start == answer.start && w.end == answer.end)
        .map(|w| w.renew_at);
    let renew_at = kept.unwrap_or_else(|| pick(answer.start, answer.end, unit));
    RenewalInfo::Ari(AriWindow {
        cert_id: cert_id.to_owned(),
        start: answer.start,
        end: answer.end,
        renew_at,
        checked_at: now,
        next_check: later(now, answer.retry_after.clamp(ARI_RETRY_AFTER.0, ARI_RETRY_AFTER.1)),
        explanation_url: answer.explanation_url,
    })
}

pub fn record_not_offered(now: OffsetDateTime) -> RenewalInfo {
    RenewalInfo::NotOffered {
        checked_at: now,
        next_check: later(now, NOT_OFFERED_RECHECK),
    }
}

/// A moment in [start, end), `unit` of the way in. A window that ends before it starts is read as its start.
fn pick(start: OffsetDateTime, end: OffsetDateTime, unit: f64) -> OffsetDateTime {
    let span = (end - start).max(time::Duration::ZERO);
    start + span * unit.clamp(0.0, 1.0)
}

/// A uniform random number in [0, 1) from the system's CSPRNG (53 bits, an f64's precision).
pub fn random_unit() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn answer(start: OffsetDateTime, end: OffsetDateTime, retry_after_h: u64) -> Suggested {
        Suggested {
            start,
            end,
            explanation_url: None,
            retry_after: Duration::from_secs(retry_after_h * 3600),
        }
    }

    const START: OffsetDateTime = datetime!(2026-12-20 00:00 UTC);
    const END: OffsetDateTime = datetime!(2026-12-22 00:00 UTC);

    #[test]
    fn of_two_nodes_answers_the_fresher_one_is_kept() {
        let older = record(None, "a.b", answer(START, END, 6), datetime!(2026-11-23 12:00 UTC), 0.5);
        let newer = record(None, "a.b", answer(START, END, 6), datetime!(2026-11-23 13:00 UTC), 0.1);
        assert_eq!(RenewalInfo::fresher(Some(&older), Some(&newer)), Some(&newer));
        assert_eq!(RenewalInfo::fresher(Some(&newer), Some(&older)), Some(&newer));
        assert_eq!(RenewalInfo::fresher(None, Some(&older)), Some(&older));
        assert_eq!(RenewalInfo::fresher(Some(&older), None), Some(&older));
    }

    #[test]
    fn the_moment_is_inside_the_window_for_any_random_number() {
        let now = datetime!(2026-11-23 12:00 UTC);
        for unit in [0.0, 0.25, 0.5, 0.999_999, random_unit(), random_unit()] {
            let RenewalInfo::Ari(w) = record(None, "a.b", answer(START, END, 6), now, unit) else {
                panic!("an ARI window")
            };
            assert!(w.renew_at >= START && w.renew_at < END, "{unit}: {}", w.renew_at);
        }
        let RenewalInfo::Ari(w) = record(None, "a.b", answer(START, END, 6), now, 0.5) else {
            panic!()
        };
        assert_eq!(w.renew_at, datetime!(2026-12-21 00:00 UTC));
    }

    #[test]
    fn random_units_spread_over_the_window() {
        let units: Vec<f64> = (0..2000).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let low = units.iter().filter(|u| **u < 0.5).count();
        assert!((800..1200).contains(&low), "{low} of 2000 below one half");
    }

    #[test]
    fn the_moment_is_stable_across_runs_while_the_window_is_the_same() {
        let first_run = datetime!(2026-11-23 12:00 UTC);
        let first = record(None, "a.b", answer(START, END, 6), first_run, 0.1);
        // A later run gets the same window: the moment stays, whatever the new random number.
        let later_run = first_run + Duration::from_secs(7 * 3600);
        let again = record(Some(&first), "a.b", answer(START, END, 6), later_run, 0.9);
        assert_eq!(
            first.window_for("a.b").unwrap().renew_at,
            again.window_for("a.b").unwrap().renew_at
        );
        assert_eq!(again.window_for("a.b").unwrap().checked_at, later_run);
        // The CA moves the window (say, ahead of a mass revocation): a new moment inside the new one.
        let moved = record(
            Some(&again),
            "a.b",
            answer(datetime!(2026-11-24 00:00 UTC), datetime!(2026-11-24 06:00 UTC), 6),
            later_run,
            0.5,
        );
        assert_eq!(
            moved.window_for("a.b").unwrap().renew_at,
            datetime!(2026-11-24 03:00 UTC)
        );
        // A new certificate does not inherit the old one's moment.
        let renewed = record(Some(&again), "c.d", answer(START, END, 6), later_run, 0.5);
        assert_eq!(
            renewed.window_for("c.d").unwrap().renew_at,
            datetime!(2026-12-21 00:00 UTC)
        );
        assert!(renewed.window_for("a.b").is_none());
    }

    #[test]
    fn the_ca_is_asked_again_only_after_retry_after() {
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(needs_check(None, "a.b", now));
        let known = record(None, "a.b", answer(START, END, 6), now, 0.5);
        assert!(!needs_check(Some(&known), "a.b", now));
        assert!(!needs_check(
            Some(&known),
            "a.b",
            now + Duration::from_secs(6 * 3600 - 1)
        ));
        assert!(needs_check(Some(&known), "a.b", now + Duration::from_secs(6 * 3600)));
        // Another certificate (the renewed one) is asked about at once.
        assert!(needs_check(Some(&known), "c.d", now));

        let none = record_not_offered(now);
        assert!(!needs_check(Some(&none), "a.b", now + Duration::from_secs(3600)));
        assert!(needs_check(Some(&none), "a.b", now + NOT_OFFERED_RECHECK));
    }

    #[test]
    fn an_absurd_retry_after_is_held_to_a_day_and_a_zero_one_to_a_minute() {
        let now = datetime!(2026-11-23 12:00 UTC);
        let next_check = |retry_after: Duration| match record(
            None,
            "a.b",
            Suggested {
                retry_after,
                ..answer(START, END, 0)
            },
            now,
            0.5,
        ) {
            RenewalInfo::Ari(window) => window.next_check,
            other => panic!("{other:?}"),
        };
        // Before: `now + Duration::MAX` panicked ("overflow adding duration to date"), after the new certificate was
        // already served and before the state was saved.
        assert_eq!(next_check(Duration::MAX), now + Duration::from_secs(24 * 3600));
        assert_eq!(
            next_check(Duration::from_secs(u64::MAX / 4)),
            now + Duration::from_secs(24 * 3600)
        );
        assert_eq!(next_check(Duration::ZERO), now + Duration::from_secs(60));
        assert_eq!(
            next_check(Duration::from_secs(6 * 3600)),
            now + Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let now = datetime!(2026-11-23 12:00 UTC);
        for info in [
            record(None, "a.b", answer(START, END, 6), now, 0.3),
            record_not_offered(now),
        ] {
            let json = serde_json::to_string(&info).unwrap();
            assert_eq!(serde_json::from_str::<RenewalInfo>(&json).unwrap(), info);
        }
    }
}
