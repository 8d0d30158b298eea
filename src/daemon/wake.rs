//! When the daemon wakes next, and what for. Pure: it takes what each certificate waits for, when the daemon last did
//! each thing, the `[daemon]` intervals, a random number for the jitter, and `now`.
//!
//! A renewal pass comes at the earliest moment any certificate may be acted on (its renewal moment, the end of its
//! backoff or of the CA's Retry-After), plus a jitter drawn once per pass, so that a fleet does not renew in the same
//! second; and at the latest `recheck_interval` after the last pass, which looks at the renewal windows again. A probe
//! comes every `probe_interval`.

use std::time::Duration;

use time::OffsetDateTime;

use crate::core::config::DaemonConfig;
use crate::core::decision::Decision;
use crate::core::schedule::Gate;
use crate::core::time::{format_rfc3339, later};

/// The shortest time between two renewal passes, whatever is due: a certificate that stays due (its run could not
/// take the lock, or the CA's window lies in the past) must not make the daemon spin.
pub const MIN_PASS_GAP: Duration = Duration::from_secs(60);

/// The earliest moment a certificate may be acted on, and why then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcoming {
    pub name: String,
    pub at: OffsetDateTime,
    pub why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Due and free to go.
    Due,
    /// Due, but the retry schedule or the CA holds it back until then.
    HeldBack,
    /// Its renewal moment: the CA's (ARI) or the lifetime rule's.
    RenewalMoment,
}

/// What a certificate waits for, from its decision and (when due) its gate.
pub fn upcoming(name: &str, decision: &Decision, gate: Option<&Gate>, now: OffsetDateTime) -> Upcoming {
    let (at, why) = match (decision.due, decision.renew_at) {
        (true, _) => match gate {
            Some(Gate::Wait { until, .. }) => (*until, Why::HeldBack),
            _ => (now, Why::Due),
        },
        (false, Some(at)) => (at, Why::RenewalMoment),
        // Not due and nothing to time: only a present certificate is not due, and it has a moment. Look again now.
        (false, None) => (now, Why::Due),
    };
    Upcoming {
        name: name.to_owned(),
        at,
        why,
    }
}

/// What the daemon does next, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub pass_at: OffsetDateTime,
    /// For the log and `systemctl status`.
    pub pass_reason: String,
    pub probe_at: OffsetDateTime,
}

impl Plan {
    pub fn wake_at(&self) -> OffsetDateTime {
        self.pass_at.min(self.probe_at)
    }

    /// How long to sleep from `now`.
    pub fn sleep_from(&self, now: OffsetDateTime) -> Duration {
        (self.wake_at() - now).try_into().unwrap_or(Duration::ZERO)
    }

    /// (renewal pass due, probe due) at `now`.
    pub fn due(&self, now: OffsetDateTime) -> (bool, bool) {
        (now >= self.pass_at, now >= self.probe_at)
    }
}

/// The next pass and probe. `jitter_unit` is in [0, 1): the fraction of `[daemon] jitter` added to the certificates'
/// moments; draw it once per pass, so that the target does not move at every wake.
pub fn plan(
    upcoming: &[Upcoming],
    last_pass: OffsetDateTime,
    last_probe: OffsetDateTime,
    daemon: &DaemonConfig,
    jitter_unit: f64,
) -> Plan {
    let recheck = later(last_pass, daemon.recheck_interval);
    let jitter = daemon.jitter.mul_f64(jitter_unit.clamp(0.0, 1.0));
    let earliest = upcoming.iter().min_by_key(|u| u.at);
    let (pass_at, pass_reason) = match earliest {
        Some(u) if later(u.at, jitter) < recheck => {
            let why = match u.why {
                Why::Due => "is due",
                Why::HeldBack => "may be tried again",
                Why::RenewalMoment => "reaches its renewal moment",
            };
            (
                later(u.at, jitter),
                format!(
                    "{} {why} at {} (+{} jitter)",
                    u.name,
                    format_rfc3339(u.at),
                    humantime::format_duration(Duration::from_secs(jitter.as_secs()))
                ),
            )
        }
        _ => (recheck, "recheck of the renewal windows".to_owned()),
    };
    let floor = later(last_pass, MIN_PASS_GAP);
    Plan {
        pass_at: pass_at.max(floor),
        pass_reason,
        probe_at: later(last_probe, daemon.probe_interval),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::core::decision::Reason;
    use crate::core::schedule::Wait;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn daemon(jitter: Duration) -> DaemonConfig {
        DaemonConfig {
            listen: None,
            probe_interval: 5 * MINUTE,
            recheck_interval: 12 * HOUR,
            jitter,
            control: None,
        }
    }

    fn at(name: &str, at: OffsetDateTime) -> Upcoming {
        Upcoming {
            name: name.into(),
            at,
            why: Why::RenewalMoment,
        }
    }

    fn decision(due: bool, renew_at: Option<OffsetDateTime>) -> Decision {
        Decision {
            due,
            reason: Reason::Missing,
            renew_at,
        }
    }

    #[test]
    fn the_earliest_certificate_wins_with_its_jitter_and_the_probe_keeps_its_own_beat() {
        let certs = [at("late", NOW + 10 * HOUR), at("soon", NOW + 2 * HOUR)];
        let plan = plan(&certs, NOW, NOW, &daemon(10 * MINUTE), 0.5);
        assert_eq!(plan.pass_at, NOW + 2 * HOUR + 5 * MINUTE);
        assert!(
            plan.pass_reason.starts_with("soon reaches its renewal moment"),
            "{}",
            plan.pass_reason
        );
        assert_eq!(plan.probe_at, NOW + 5 * MINUTE);
        assert_eq!(plan.wake_at(), NOW + 5 * MINUTE);
        assert_eq!(plan.sleep_from(NOW + MINUTE), 4 * MINUTE);
        assert_eq!(plan.due(NOW + 5 * MINUTE), (false, true));
        assert_eq!(plan.due(NOW + 3 * HOUR), (true, true));
    }

    #[test]
    fn renewal_windows_are_looked_at_again_within_the_recheck_interval() {
        let certs = [at("far", NOW + 40 * 24 * HOUR)];
        let plan = plan(&certs, NOW, NOW, &daemon(Duration::ZERO), 0.9);
        assert_eq!(plan.pass_at, NOW + 12 * HOUR);
        assert_eq!(plan.pass_reason, "recheck of the renewal windows");
        let nothing = super::plan(&[], NOW, NOW, &daemon(Duration::ZERO), 0.0);
        assert_eq!(nothing.pass_at, NOW + 12 * HOUR);
    }

    #[test]
    fn a_certificate_that_stays_due_does_not_make_the_daemon_spin() {
        let certs = [at("stuck", NOW - HOUR)];
        let plan = plan(&certs, NOW, NOW, &daemon(Duration::ZERO), 0.0);
        assert_eq!(plan.pass_at, NOW + MIN_PASS_GAP);
        assert_eq!(
            plan.sleep_from(NOW + HOUR),
            Duration::ZERO,
            "a moment passed is no negative sleep"
        );
    }

    #[test]
    fn each_certificate_waits_for_its_moment_its_backoff_or_nothing() {
        let moment = upcoming("a", &decision(false, Some(NOW + HOUR)), None, NOW);
        assert_eq!((moment.at, moment.why), (NOW + HOUR, Why::RenewalMoment));

        let go = upcoming("b", &decision(true, Some(NOW - HOUR)), Some(&Gate::Go), NOW);
        assert_eq!((go.at, go.why), (NOW, Why::Due));

        let held = Gate::Wait {
            until: NOW + 10 * MINUTE,
            why: Wait::Backoff { failures: 2 },
        };
        let backoff = upcoming("c", &decision(true, None), Some(&held), NOW);
        assert_eq!((backoff.at, backoff.why), (NOW + 10 * MINUTE, Why::HeldBack));

        let certs = [backoff, at("d", NOW + HOUR)];
        let plan = plan(&certs, NOW - 5 * MINUTE, NOW, &daemon(Duration::ZERO), 0.0);
        assert_eq!(plan.pass_at, NOW + 10 * MINUTE);
        assert!(
            plan.pass_reason.starts_with("c may be tried again"),
            "{}",
            plan.pass_reason
        );
    }

    #[test]
    fn a_moment_at_the_end_of_time_plans_the_recheck_and_does_not_panic() {
        let end_of_time = time::PrimitiveDateTime::MAX.assume_utc();
        let certs = [at("absurd", end_of_time)];
        let plan = plan(&certs, NOW, NOW, &daemon(10 * MINUTE), 0.9);
        assert_eq!(plan.pass_at, NOW + 12 * HOUR);
    }
}
