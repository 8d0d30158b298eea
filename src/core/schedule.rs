//! When a certificate that failed may be tried again. Pure: it takes `now` and what the state remembers.
//!
//! Three brakes, so that neither a daily timer nor a daemon hammers a CA that says no:
//! - our own backoff after consecutive failures: 1 min, 10 min, 100 min, then daily (Let's Encrypt's guidance);
//! - the CA's Retry-After on a `rateLimited` answer;
//! - a local count of failed authorizations per name in the last hour, stopped short of Let's Encrypt's limit of 5.
//!
//! `--force` lifts only our own backoff; the CA's limits need `--ignore-retry-after` as well.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::time::later;

/// Let's Encrypt allows 5 failed authorizations per name per account per hour. We stop at 4, leaving one for the
/// validation an operator runs by hand once the cause is fixed.
pub const FAILED_AUTHORIZATIONS_PER_HOUR: usize = 4;
const HOUR: Duration = Duration::from_secs(3600);

/// The longest a CA's `rateLimited` Retry-After is honoured: a week, Let's Encrypt's longest limit window. A longer
/// one, or an absurd one from a broken CA, holds the certificate back for a week, after which it is tried again.
pub const MAX_CA_RETRY_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The CA's Retry-After, at most [`MAX_CA_RETRY_AFTER`] from `now`.
pub fn bounded_retry_after(now: OffsetDateTime, until: OffsetDateTime) -> OffsetDateTime {
    until.min(later(now, MAX_CA_RETRY_AFTER))
}

/// The wait after the `n`th consecutive failure.
pub fn backoff(consecutive_failures: u32) -> Duration {
    match consecutive_failures {
        0 => Duration::ZERO,
        1 => Duration::from_secs(60),
        2 => Duration::from_secs(600),
        3 => Duration::from_secs(6000),
        _ => Duration::from_secs(86_400),
    }
}

/// A certificate's run of failures; the default is "no failure".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    pub consecutive: u32,
    /// Our backoff: no attempt before this.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
    /// The CA's Retry-After from a `rateLimited` answer.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ca_retry_after: Option<OffsetDateTime>,
}

impl Failures {
    pub fn after_failure(&self, now: OffsetDateTime, ca_retry_after: Option<OffsetDateTime>) -> Failures {
        let consecutive = self.consecutive.saturating_add(1);
        Failures {
            consecutive,
            next_attempt: Some(later(now, backoff(consecutive))),
            ca_retry_after: ca_retry_after
                .map(|until| bounded_retry_after(now, until))
                .or(self.ca_retry_after.filter(|at| *at > now)),
        }
    }
}

/// Failed authorizations per name, kept for an hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FailedAuthorizations(BTreeMap<String, Vec<i64>>);

impl FailedAuthorizations {
    pub fn record(&mut self, names: &[String], now: OffsetDateTime) {
        for name in names {
            self.0.entry(name.clone()).or_default().push(now.unix_timestamp());
        }
    }

    /// Takes in another node's failures (a fleet shares one CA budget): every failure either saw, once.
    pub fn merge(&mut self, other: &FailedAuthorizations) {
        for (name, times) in &other.0 {
            let mine = self.0.entry(name.clone()).or_default();
            mine.extend(times);
            mine.sort_unstable();
            mine.dedup();
        }
    }

    /// Forgets what is older than an hour.
    pub fn prune(&mut self, now: OffsetDateTime) {
        let cutoff = (now - HOUR).unix_timestamp();
        self.0.retain(|_, times| {
            times.retain(|t| *t > cutoff);
            !times.is_empty()
        });
    }

    /// The failures of `name` in the hour before `now`, oldest first.
    fn recent(&self, name: &str, now: OffsetDateTime) -> Vec<OffsetDateTime> {
        let cutoff = (now - HOUR).unix_timestamp();
        let mut times: Vec<OffsetDateTime> = self
            .0
            .get(name)
            .into_iter()
            .flatten()
            .filter(|t| **t > cutoff)
            .filter_map(|t| OffsetDateTime::from_unix_timestamp(*t).ok())
            .collect();
        times.sort();
        times
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub force: bool,
    pub ignore_retry_after: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Go,
    Wait { until: OffsetDateTime, why: Wait },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    Backoff { failures: u32 },
    CaRetryAfter,
    AuthorizationBudget { name: String, failures: usize },
}

/// May a due certificate for `names` be ordered now?
pub fn gate(
    failures: &Failures,
    authorizations: &FailedAuthorizations,
    names: &[String],
    now: OffsetDateTime,
    overrides: Overrides,
) -> Gate {
    if !overrides.ignore_retry_after {
        if let Some(until) = failures.ca_retry_after.filter(|at| *at > now) {
            return Gate::Wait {
                until,
                why: Wait::CaRetryAfter,
            };
        }
        for name in names {
            let recent = authorizations.recent(name, now);
            if recent.len() >= FAILED_AUTHORIZATIONS_PER_HOUR {
                // Free again when enough of them are an hour old.
                let until = recent[recent.len() - FAILED_AUTHORIZATIONS_PER_HOUR] + HOUR;
                return Gate::Wait {
                    until,
                    why: Wait::AuthorizationBudget {
                        name: name.clone(),
                        failures: recent.len(),
                    },
                };
            }
        }
    }
    if !overrides.force
        && let Some(until) = failures.next_attempt.filter(|at| *at > now)
    {
        return Gate::Wait {
            until,
            why: Wait::Backoff {
                failures: failures.consecutive,
            },
        };
    }
    Gate::Go
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Backoff { failures } => write!(
                f,
                "{failures} consecutive failure{} (retries after 1 min, 10 min, 100 min, then daily; --force tries now)",
                if *failures == 1 { "" } else { "s" }
            ),
            Wait::CaRetryAfter => {
                f.write_str("the CA is rate limiting (its Retry-After; --force --ignore-retry-after tries now)")
            }
            Wait::AuthorizationBudget { name, failures } => write!(
                f,
                "{name} failed validation {failures} times in the last hour; Let's Encrypt allows 5 (--force --ignore-retry-after tries now)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 03:00 UTC);
    const MIN: Duration = Duration::from_secs(60);

    fn names() -> Vec<String> {
        vec!["a.example".into(), "b.example".into()]
    }

    #[test]
    fn merged_ledgers_count_each_failure_once() {
        let mut mine = FailedAuthorizations::default();
        mine.record(&names(), T0);
        let mut theirs = mine.clone();
        theirs.record(&names()[..1], T0 + MIN);
        mine.merge(&theirs);
        mine.merge(&theirs);
        assert_eq!(mine.0["a.example"].len(), 2);
        assert_eq!(mine.0["b.example"].len(), 1);
    }

    fn may_go(failures: &Failures, now: OffsetDateTime) -> bool {
        gate(
            failures,
            &FailedAuthorizations::default(),
            &names(),
            now,
            Overrides::default(),
        ) == Gate::Go
    }

    #[test]
    fn consecutive_failures_back_off_1_10_100_minutes_then_daily() {
        let mut failures = Failures::default();
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert!(may_go(&failures, now));
            failures = failures.after_failure(now, None);
            let next = failures.next_attempt.unwrap();
            assert!(!may_go(&failures, next - Duration::from_secs(1)), "not a second early");
            waits.push((next - now).unsigned_abs());
            now = next;
        }
        assert_eq!(waits, [MIN, 10 * MIN, 100 * MIN, 1440 * MIN, 1440 * MIN, 1440 * MIN]);
    }

    #[test]
    fn a_daily_timer_against_a_failing_ca_asks_only_at_the_scheduled_times() {
        // A timer every 5 minutes for a day: each attempt fails. The attempts fall on the schedule and no more.
        let mut failures = Failures::default();
        let mut attempts = Vec::new();
        let mut now = T0;
        while now < T0 + Duration::from_secs(86_400) {
            if may_go(&failures, now) {
                attempts.push((now - T0).whole_minutes());
                failures = failures.after_failure(now, None);
            }
            now += 5 * MIN;
        }
        // 0, then +1 min (the next tick: 5), +10 (15), +100 (115), then daily.
        assert_eq!(attempts, [0, 5, 15, 115]);
    }

    #[test]
    fn force_lifts_our_backoff_but_not_the_cas_retry_after() {
        let failures = Failures::default().after_failure(T0, None);
        let force = Overrides {
            force: true,
            ignore_retry_after: false,
        };
        let none = FailedAuthorizations::default();
        assert_eq!(gate(&failures, &none, &names(), T0, force), Gate::Go);

        let until = T0 + Duration::from_secs(3 * 3600);
        let limited = Failures::default().after_failure(T0, Some(until));
        let at = T0 + MIN * 30;
        assert_eq!(
            gate(&limited, &none, &names(), at, force),
            Gate::Wait {
                until,
                why: Wait::CaRetryAfter
            }
        );
        let both = Overrides {
            force: true,
            ignore_retry_after: true,
        };
        assert_eq!(gate(&limited, &none, &names(), at, both), Gate::Go);
        // Without --force the CA's time is what is shown, since it is the later one.
        assert!(matches!(
            gate(&limited, &none, &names(), at, Overrides::default()),
            Gate::Wait {
                why: Wait::CaRetryAfter,
                ..
            }
        ));
        // Once it has passed, our own backoff (here long past too) applies.
        assert_eq!(gate(&limited, &none, &names(), until, Overrides::default()), Gate::Go);
    }

    #[test]
    fn a_later_failure_keeps_a_retry_after_that_has_not_passed() {
        let until = T0 + Duration::from_secs(3 * 3600);
        let limited = Failures::default().after_failure(T0, Some(until));
        let again = limited.after_failure(T0 + MIN * 10, None);
        assert_eq!(again.ca_retry_after, Some(until));
        let much_later = again.after_failure(until + MIN, None);
        assert_eq!(much_later.ca_retry_after, None);
    }

    #[test]
    fn failed_authorizations_stop_short_of_the_cas_hourly_limit() {
        let mut ledger = FailedAuthorizations::default();
        let failures = Failures::default();
        for i in 0..3 {
            ledger.record(&["b.example".to_owned()], T0 + MIN * (i * 10));
        }
        let now = T0 + MIN * 25;
        assert_eq!(gate(&failures, &ledger, &names(), now, Overrides::default()), Gate::Go);
        ledger.record(&["b.example".to_owned()], now);
        let Gate::Wait { until, why } = gate(&failures, &ledger, &names(), now, Overrides::default()) else {
            panic!("the fourth failure within the hour stops further orders")
        };
        assert_eq!(
            why,
            Wait::AuthorizationBudget {
                name: "b.example".into(),
                failures: 4
            }
        );
        // Free again when the oldest of the four is an hour old.
        assert_eq!(until, T0 + HOUR);
        assert_eq!(
            gate(&failures, &ledger, &names(), until, Overrides::default()),
            Gate::Go
        );
        // --force alone does not lift it; --ignore-retry-after does.
        let force = Overrides {
            force: true,
            ignore_retry_after: false,
        };
        assert!(matches!(
            gate(&failures, &ledger, &names(), now, force),
            Gate::Wait { .. }
        ));
        let both = Overrides {
            force: true,
            ignore_retry_after: true,
        };
        assert_eq!(gate(&failures, &ledger, &names(), now, both), Gate::Go);

        let later = T0 + HOUR + MIN * 15;
        ledger.prune(later);
        assert_eq!(
            ledger.recent("b.example", later).len(),
            2,
            "the failures at 20 and 25 minutes remain"
        );
    }

    #[test]
    fn the_cas_retry_after_holds_a_certificate_back_a_week_at_most() {
        let now = datetime!(2026-03-01 12:00 UTC);
        let far = time::PrimitiveDateTime::MAX.assume_utc();
        let failures = Failures::default().after_failure(now, Some(far));
        assert_eq!(failures.ca_retry_after, Some(now + MAX_CA_RETRY_AFTER));
        let soon = now + Duration::from_secs(3600);
        assert_eq!(
            Failures::default().after_failure(now, Some(soon)).ca_retry_after,
            Some(soon)
        );
        let many = Failures {
            consecutive: u32::MAX,
            ..Failures::default()
        };
        assert_eq!(
            many.after_failure(now, None).consecutive,
            u32::MAX,
            "a counter that is full stays full"
        );
    }
}
