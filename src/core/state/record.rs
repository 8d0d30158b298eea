//! How a run's results go into the state: each certificate's last outcome for `status`, its failures for the retry
//! schedule, the failed validations for the CA's limit, and the run's marks for the dead-man's switch and the metrics.

use time::OffsetDateTime;

use super::{LastResult, Outcome, State};
use crate::core::decision::Reason;
use crate::core::schedule::Failures;
use crate::core::time::format_rfc3339;

/// What a run did with one certificate, as far as the state is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// Not due: nothing to remember.
    NotDue,
    /// Due, but held back by the retry schedule or the CA's limits (or abandoned): not tried, and not a success.
    HeldBack,
    /// Deployed and seen served on the wire.
    Renewed { serial: &'a str, reason: &'a Reason },
    /// A certificate another node of the fleet ordered, deployed here and seen served on the wire.
    Adopted { serial: &'a str, from: &'a str },
    /// Issued and verified by a dry run; nothing deployed.
    DryRun { serial: &'a str },
    Failed {
        message: &'a str,
        rate_limited_until: Option<OffsetDateTime>,
        /// Names whose validation failed: they count against the CA's failed-authorization limit.
        failed_names: &'a [String],
    },
}

/// Nothing failed and nothing due was held back: what the dead-man's switch counts as a successful run.
pub fn all_ok<'a>(attempts: impl IntoIterator<Item = &'a Attempt<'a>>) -> bool {
    !attempts
        .into_iter()
        .any(|a| matches!(a, Attempt::Failed { .. } | Attempt::HeldBack))
}

impl State {
    /// Keeps each acted-on certificate's outcome for `status`, and (unless `dry_run`) its failures for the retry
    /// schedule.
    pub fn record(&mut self, attempts: &[(&str, Attempt<'_>)], now: OffsetDateTime, dry_run: bool) {
        for &(name, attempt) in attempts {
            let (outcome, serial, message) = match attempt {
                Attempt::NotDue | Attempt::HeldBack => continue,
                Attempt::Renewed { serial, reason } => (Outcome::Renewed, Some(serial), reason.to_string()),
                Attempt::Adopted { serial, from } => (
                    Outcome::Renewed,
                    Some(serial),
                    format!("adopted from the fleet (ordered by {from})"),
                ),
                Attempt::DryRun { serial } => (Outcome::DryRun, Some(serial), "dry run: not deployed".to_owned()),
                Attempt::Failed { message, .. } => (Outcome::Failed, None, message.to_owned()),
            };
            let entry = self.certificates.entry(name.to_owned()).or_default();
            if !dry_run {
                // The deploy under way, if any, has an outcome now.
                entry.deploying = None;
                match attempt {
                    Attempt::Renewed { .. } | Attempt::Adopted { .. } => {
                        entry.failures = Failures::default();
                        entry.revoked_serial = None;
                    }
                    Attempt::Failed {
                        rate_limited_until,
                        failed_names,
                        ..
                    } => {
                        entry.failures = entry.failures.after_failure(now, rate_limited_until);
                        self.failed_authorizations.record(failed_names, now);
                    }
                    _ => {}
                }
            }
            // The serial last seen served stays known across failed runs, for `status`.
            let verified_serial = match attempt {
                Attempt::Renewed { serial, .. } | Attempt::Adopted { serial, .. } => Some(serial.to_owned()),
                _ => entry.last.as_ref().and_then(|r| r.verified_serial.clone()),
            };
            entry.last = Some(LastResult {
                at: format_rfc3339(now),
                outcome,
                serial: serial.map(str::to_owned),
                message,
                verified_serial,
            });
        }
    }

    /// The run's marks: when it ended, whether it counts as successful for the dead-man's switch, and the renewal
    /// counters of the metrics.
    pub fn tally(&mut self, attempts: &[(&str, Attempt<'_>)], end: OffsetDateTime) {
        self.last_run = Some(end);
        if all_ok(attempts.iter().map(|(_, a)| a)) {
            self.last_run_success = Some(end);
        }
        for (_, attempt) in attempts {
            let result = match attempt {
                Attempt::Renewed { .. } => "success",
                Attempt::Failed { .. } => "failure",
                _ => continue,
            };
            *self.renewals.entry(result.to_owned()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const RENEWED: Attempt<'static> = Attempt::Renewed {
        serial: "01",
        reason: &Reason::Missing,
    };
    const FAILED: Attempt<'static> = Attempt::Failed {
        message: "no",
        rate_limited_until: None,
        failed_names: &[],
    };

    #[test]
    fn a_run_marks_its_end_and_counts_renewals_and_only_a_clean_one_feeds_the_dead_mans_switch() {
        let (first, second) = (datetime!(2026-03-01 00:00 UTC), datetime!(2026-03-02 00:00 UTC));
        let mut state = State::default();
        state.tally(&[("www", RENEWED), ("www", Attempt::NotDue)], first);
        assert_eq!((state.last_run, state.last_run_success), (Some(first), Some(first)));
        assert_eq!(state.renewals["success"], 1);

        state.tally(&[("www", RENEWED), ("www", FAILED), ("www", Attempt::HeldBack)], second);
        assert_eq!(state.last_run, Some(second));
        assert_eq!(state.last_run_success, Some(first), "a failure is not a successful run");
        assert_eq!((state.renewals["success"], state.renewals["failure"]), (2, 1));
    }

    #[test]
    fn an_outcome_ends_the_deploy_under_way_and_a_dry_run_or_an_untried_certificate_does_not() {
        let now = datetime!(2026-03-01 00:00 UTC);
        let under_way = || super::super::Deploying {
            serial: "02".into(),
            since: "2026-03-01T00:00:00Z".into(),
            replaces: None,
        };
        let mut state = State::default();
        for (attempt, dry_run, kept) in [
            (Attempt::NotDue, false, true),
            (Attempt::HeldBack, false, true),
            (FAILED, true, true),
            (RENEWED, false, false),
            (FAILED, false, false),
        ] {
            state.certificates.entry("www".into()).or_default().deploying = Some(under_way());
            state.record(&[("www", attempt)], now, dry_run);
            assert_eq!(
                state.certificates["www"].deploying.is_some(),
                kept,
                "{attempt:?} (dry run: {dry_run})"
            );
        }
    }

    #[test]
    fn a_failure_keeps_the_serial_last_verified_and_a_renewal_clears_the_failures() {
        let now = datetime!(2026-03-01 00:00 UTC);
        let mut state = State::default();
        state.record(&[("www", RENEWED)], now, false);
        state.record(&[("www", FAILED)], now, false);
        let www = &state.certificates["www"];
        assert_eq!(www.failures.consecutive, 1);
        let last = www.last.as_ref().unwrap();
        assert_eq!(
            (last.outcome, last.verified_serial.as_deref()),
            (Outcome::Failed, Some("01"))
        );

        state.record(&[("www", FAILED)], now, true);
        assert_eq!(
            state.certificates["www"].failures.consecutive, 1,
            "a dry run adds no failure"
        );
        state.record(&[("www", RENEWED)], now, false);
        assert_eq!(state.certificates["www"].failures.consecutive, 0);
    }
}
