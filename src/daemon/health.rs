//! `/healthz`: is the daemon doing its job? Pure: it takes what the loop is doing, the last successful run, and `now`.
//!
//! Unhealthy when the last successful run is older than `[check] max_run_age` (the dead-man's switch of `check`, so
//! both agree), or when the loop is stuck: busy with one pass for far too long, or asleep well past its wake time.

use std::time::Duration;

use time::OffsetDateTime;

use crate::core::time::format_rfc3339;

/// A renewal pass or a probe that takes longer is stuck: orders, hooks and handshakes all have timeouts well below it.
pub const BUSY_LIMIT: Duration = Duration::from_secs(3600);
/// A loop that has not woken this long after its wake time is stuck.
pub const LATE_LIMIT: Duration = Duration::from_secs(300);

/// What the daemon's loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Renewing { since: OffsetDateTime },
    Probing { since: OffsetDateTime },
    Sleeping { until: OffsetDateTime },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// `ok` or `unhealthy` on the first line, then what it rests on.
    pub text: String,
}

pub fn judge(
    activity: Activity,
    last_run_success: Option<OffsetDateTime>,
    started: OffsetDateTime,
    max_run_age: Duration,
    now: OffsetDateTime,
) -> Health {
    let mut problems = Vec::new();
    let run_line = match last_run_success {
        Some(at) => {
            if now - at > max_run_age {
                problems.push(format!(
                    "the last successful run is older than max_run_age ({})",
                    humantime::format_duration(max_run_age)
                ));
            }
            format!("last successful run: {}", format_rfc3339(at))
        }
        None => {
            if now - started > max_run_age {
                problems.push(format!(
                    "no successful run in the {} since the daemon started",
                    humantime::format_duration(max_run_age)
                ));
            }
            "last successful run: none yet".to_owned()
        }
    };
    let activity_line = match activity {
        Activity::Renewing { since } | Activity::Probing { since } => {
            let what = match activity {
                Activity::Renewing { .. } => "renewal pass",
                _ => "probe",
            };
            if now - since > BUSY_LIMIT {
                problems.push(format!(
                    "the loop is stuck: a {what} has run since {}",
                    format_rfc3339(since)
                ));
            }
            format!("busy: {what} since {}", format_rfc3339(since))
        }
        Activity::Sleeping { until } => {
            if now - until > LATE_LIMIT {
                problems.push(format!(
                    "the loop is stuck: it should have woken at {}",
                    format_rfc3339(until)
                ));
            }
            format!("next wake: {}", format_rfc3339(until))
        }
    };
    let healthy = problems.is_empty();
    let mut text = if healthy {
        "ok\n".to_owned()
    } else {
        format!("unhealthy: {}\n", problems.join("; "))
    };
    text.push_str(&format!("{run_line}\n{activity_line}\n"));
    Health { healthy, text }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);
    const MAX_RUN_AGE: Duration = Duration::from_secs(36 * 3600);

    fn sleeping() -> Activity {
        Activity::Sleeping { until: NOW + HOUR }
    }

    #[test]
    fn a_recent_successful_run_and_a_loop_on_time_are_healthy() {
        let health = judge(sleeping(), Some(NOW - 2 * HOUR), NOW - 48 * HOUR, MAX_RUN_AGE, NOW);
        assert!(health.healthy);
        assert_eq!(
            health.text,
            "ok\nlast successful run: 2026-03-02T10:00:00Z\nnext wake: 2026-03-02T13:00:00Z\n"
        );
    }

    #[test]
    fn an_old_successful_run_is_unhealthy_as_the_dead_mans_switch_says() {
        let health = judge(sleeping(), Some(NOW - 37 * HOUR), NOW - 48 * HOUR, MAX_RUN_AGE, NOW);
        assert!(!health.healthy);
        assert!(
            health
                .text
                .starts_with("unhealthy: the last successful run is older than max_run_age (1day 12h)")
        );
        // A daemon that just started gets max_run_age to make its first successful run.
        assert!(judge(sleeping(), None, NOW - HOUR, MAX_RUN_AGE, NOW).healthy);
        assert!(!judge(sleeping(), None, NOW - 37 * HOUR, MAX_RUN_AGE, NOW).healthy);
    }

    #[test]
    fn a_loop_that_overslept_or_hangs_in_a_pass_is_stuck() {
        let recent = Some(NOW - HOUR);
        let overslept = Activity::Sleeping {
            until: NOW - LATE_LIMIT - HOUR,
        };
        let text = judge(overslept, recent, NOW - 48 * HOUR, MAX_RUN_AGE, NOW).text;
        assert!(
            text.starts_with("unhealthy: the loop is stuck: it should have woken at"),
            "{text}"
        );
        let hanging = Activity::Renewing { since: NOW - 2 * HOUR };
        assert!(!judge(hanging, recent, NOW - 48 * HOUR, MAX_RUN_AGE, NOW).healthy);
        let busy = Activity::Probing { since: NOW - HOUR / 2 };
        assert!(judge(busy, recent, NOW - 48 * HOUR, MAX_RUN_AGE, NOW).healthy);
    }
}
