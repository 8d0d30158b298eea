//! `/healthz`: is the daemon doing its job? Pure: it takes what the loop is doing, the last successful run, and `now`.
//!
//! Unhealthy when the last successful run is older than `[check] max_run_age` (the dead-man's switch of `check`, so
//! both agree), or when the loop is stuck: busy with one pass for longer than its orders' deadlines allow
//! ([`pass_limit`]), or asleep well past its wake time.

use std::time::Duration;

use time::OffsetDateTime;

use crate::core::config::Config;
use crate::core::time::format_rfc3339;
use crate::renew::MAX_CONCURRENT_ORDERS;

/// A probe that takes longer is stuck: its handshakes have timeouts well below it.
pub const BUSY_LIMIT: Duration = Duration::from_secs(3600);
/// What a renewal pass may take beyond its orders: the account, the renewal windows (each request within
/// `request_timeout`), hooks, HAProxy's check and reload, and the handshakes that prove a deploy.
pub const PASS_MARGIN: Duration = Duration::from_secs(20 * 60);

/// The longest a renewal pass can take before it is stuck: its orders run [`MAX_CONCURRENT_ORDERS`] at a time, each
/// within `[acme] order_deadline`, plus [`PASS_MARGIN`]. A pass older than this is past every deadline hapcert sets.
pub fn pass_limit(config: &Config) -> Duration {
    let rounds = config.certificates.len().div_ceil(MAX_CONCURRENT_ORDERS).max(1);
    config.acme.order_deadline.saturating_mul(rounds as u32) + PASS_MARGIN
}
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
    pass_limit: Duration,
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
            let (what, limit, why) = match activity {
                Activity::Renewing { .. } => (
                    "renewal pass",
                    pass_limit,
                    "its orders' deadlines ([acme] order_deadline) and the margin",
                ),
                _ => ("probe", BUSY_LIMIT, "a probe's"),
            };
            if now - since > limit {
                problems.push(format!(
                    "the loop is stuck: a {what} has run since {}, longer than {} ({why})",
                    format_rfc3339(since),
                    humantime::format_duration(limit)
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
    /// One round of orders with the default deadline.
    const PASS: Duration = Duration::from_secs(30 * 60);

    fn sleeping() -> Activity {
        Activity::Sleeping { until: NOW + HOUR }
    }

    #[test]
    fn a_recent_successful_run_and_a_loop_on_time_are_healthy() {
        let health = judge(
            sleeping(),
            Some(NOW - 2 * HOUR),
            NOW - 48 * HOUR,
            MAX_RUN_AGE,
            PASS,
            NOW,
        );
        assert!(health.healthy);
        assert_eq!(
            health.text,
            "ok\nlast successful run: 2026-03-02T10:00:00Z\nnext wake: 2026-03-02T13:00:00Z\n"
        );
    }

    #[test]
    fn an_old_successful_run_is_unhealthy_as_the_dead_mans_switch_says() {
        let health = judge(
            sleeping(),
            Some(NOW - 37 * HOUR),
            NOW - 48 * HOUR,
            MAX_RUN_AGE,
            PASS,
            NOW,
        );
        assert!(!health.healthy);
        assert!(
            health
                .text
                .starts_with("unhealthy: the last successful run is older than max_run_age (1day 12h)")
        );
        // A daemon that just started gets max_run_age to make its first successful run.
        assert!(judge(sleeping(), None, NOW - HOUR, MAX_RUN_AGE, PASS, NOW).healthy);
        assert!(!judge(sleeping(), None, NOW - 37 * HOUR, MAX_RUN_AGE, PASS, NOW).healthy);
    }

    #[test]
    fn a_loop_that_overslept_or_hangs_in_a_pass_is_stuck() {
        let recent = Some(NOW - HOUR);
        let overslept = Activity::Sleeping {
            until: NOW - LATE_LIMIT - HOUR,
        };
        let text = judge(overslept, recent, NOW - 48 * HOUR, MAX_RUN_AGE, PASS, NOW).text;
        assert!(
            text.starts_with("unhealthy: the loop is stuck: it should have woken at"),
            "{text}"
        );
        let hanging = Activity::Renewing { since: NOW - 2 * HOUR };
        assert!(!judge(hanging, recent, NOW - 48 * HOUR, MAX_RUN_AGE, PASS, NOW).healthy);
        let busy = Activity::Probing { since: NOW - HOUR / 2 };
        assert!(judge(busy, recent, NOW - 48 * HOUR, MAX_RUN_AGE, PASS, NOW).healthy);
    }

    #[test]
    fn a_pass_is_stuck_once_past_its_orders_deadlines_and_the_margin() {
        let recent = Some(NOW - HOUR);
        let config = crate::core::config::Config::parse(
            "[acme]\ndirectory = \"letsencrypt\"\norder_deadline = \"5m\"\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n",
            std::path::Path::new("/etc/hapcert/hapcert.toml"),
        )
        .unwrap();
        let limit = pass_limit(&config);
        assert_eq!(limit, Duration::from_secs(5 * 60) + PASS_MARGIN);
        let within = Activity::Renewing {
            since: NOW - limit + Duration::from_secs(60),
        };
        assert!(judge(within, recent, NOW - 48 * HOUR, MAX_RUN_AGE, limit, NOW).healthy);
        let past = Activity::Renewing {
            since: NOW - limit - Duration::from_secs(60),
        };
        let health = judge(past, recent, NOW - 48 * HOUR, MAX_RUN_AGE, limit, NOW);
        assert!(!health.healthy);
        assert!(
            health.text.starts_with(
                "unhealthy: the loop is stuck: a renewal pass has run since 2026-03-02T11:34:00Z, longer than 25m \
                 (its orders' deadlines ([acme] order_deadline) and the margin)"
            ),
            "{}",
            health.text
        );
        // Nine certificates are two rounds of orders.
        let mut nine = config.clone();
        nine.certificates = vec![config.certificates[0].clone(); 9];
        assert_eq!(pass_limit(&nine), Duration::from_secs(10 * 60) + PASS_MARGIN);
    }
}
