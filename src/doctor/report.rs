//! What `hapcert doctor` found, without any I/O: the checks in the order an operator fixes them, which check needs
//! which, the verdict of the whole, the clock's judgement, and the text and JSON it prints.

use std::time::Duration;

use serde::Serialize;

/// A verdict. The order matters: the worst one of a check's lines is the check's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Not looked at: a check it needs failed, or this host has nothing to look at (no systemd). Says why.
    Skip,
    Warn,
    Fail,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Skip => "SKIP",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// The checks, in the order they run and print: the order in which a new host gets ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The config file reads and validates.
    Config,
    /// The directories and files it names exist, with the rights hapcert needs.
    Files,
    /// The HAProxy version, and how a deploy reaches it.
    Haproxy,
    /// The Runtime API and the master socket answer.
    RuntimeApi,
    /// Something answers TLS on each verify endpoint.
    Verify,
    /// The preflight of each certificate: the challenge route works.
    Challenge,
    /// The CA's directory answers; what it offers.
    Ca,
    /// This host's clock against the CA's.
    Clock,
    Account,
    /// The systemd timer or the daemon's unit.
    Schedule,
    Metrics,
    Notify,
}

impl Check {
    pub const ALL: [Check; 12] = [
        Check::Config,
        Check::Files,
        Check::Haproxy,
        Check::RuntimeApi,
        Check::Verify,
        Check::Challenge,
        Check::Ca,
        Check::Clock,
        Check::Account,
        Check::Schedule,
        Check::Metrics,
        Check::Notify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Config => "config",
            Check::Files => "files",
            Check::Haproxy => "haproxy",
            Check::RuntimeApi => "runtime-api",
            Check::Verify => "verify",
            Check::Challenge => "challenge",
            Check::Ca => "ca",
            Check::Clock => "clock",
            Check::Account => "account",
            Check::Schedule => "schedule",
            Check::Metrics => "metrics",
            Check::Notify => "notify",
        }
    }

    /// The earlier checks this one means nothing without. Every check reads the config; only the clock needs another
    /// answer (the CA's `Date`). The rest are independent, so that one run lists every problem of a new host at once.
    fn needs(self) -> &'static [Check] {
        match self {
            Check::Config => &[],
            Check::Clock => &[Check::Config, Check::Ca],
            _ => &[Check::Config],
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub verdict: Verdict,
    /// What was looked at and what was found.
    pub subject: String,
    /// What to do about it; none when there is nothing to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: Check, subject: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict: Verdict::Ok,
            subject: subject.into(),
            fix: None,
        }
    }

    pub fn warn(check: Check, subject: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict: Verdict::Warn,
            subject: subject.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: Check, subject: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict: Verdict::Fail,
            subject: subject.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(check: Check, why: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict: Verdict::Skip,
            subject: why.into(),
            fix: None,
        }
    }
}

/// Every finding, in check order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Finding>,
}

impl Report {
    /// Why `check` cannot run: the first check it needs that failed or was itself skipped.
    pub fn blocked(&self, check: Check) -> Option<String> {
        check.needs().iter().find_map(|needed| match self.verdict_of(*needed) {
            Some(Verdict::Fail) => Some(format!("not checked: the {} check failed", needed.name())),
            Some(Verdict::Skip) => Some(format!("not checked: the {} check was skipped", needed.name())),
            _ => None,
        })
    }

    /// The worst verdict among `check`'s lines; none before it ran.
    pub fn verdict_of(&self, check: Check) -> Option<Verdict> {
        self.checks.iter().filter(|f| f.check == check).map(|f| f.verdict).max()
    }

    pub fn add(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.checks.extend(findings);
    }

    /// Whether the host is ready: no FAIL. A WARN names something to look at that does not stop a run (a clock a few
    /// seconds off, no timer enabled yet), so a script that provisions a host and then runs `hapcert doctor` goes on.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|f| f.verdict != Verdict::Fail)
    }

    /// One line per finding: the verdict, the check, what was found and, after `fix:`, what to do. The fixes of
    /// FAILs are then listed once more as the first thing to do, in order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for finding in &self.checks {
            out += &format!(
                "{:<4}  {:<11} {}",
                finding.verdict.label(),
                finding.check.name(),
                finding.subject
            );
            if let Some(fix) = &finding.fix {
                out += &format!("; fix: {fix}");
            }
            out.push('\n');
        }
        let count = |verdict| {
            Check::ALL
                .iter()
                .filter(|c| self.verdict_of(**c) == Some(verdict))
                .count()
        };
        let (fails, warns) = (count(Verdict::Fail), count(Verdict::Warn));
        out += &match (fails, warns) {
            (0, 0) => "ready: every check passed\n".to_owned(),
            (0, w) => format!("ready, with {w} warning(s) to look at\n"),
            (f, _) => {
                let first = self
                    .checks
                    .iter()
                    .find(|f| f.verdict == Verdict::Fail)
                    .expect("counted");
                format!(
                    "NOT ready: {f} check(s) failed; fix the first one first ({})\n",
                    first.check.name()
                )
            }
        };
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ready": self.ready(), "checks": self.checks })
    }
}

/// Above this, a clock is worth a WARN: the CA's `Date` has a one-second resolution, and the request takes a moment.
pub const SKEW_WARN: Duration = Duration::from_secs(5);
/// Above this, a FAIL.
pub const SKEW_FAIL: Duration = Duration::from_secs(60);

/// Judges this host's clock (`now`) against the CA's `Date` header.
pub fn judge_clock(ca_date: Option<time::OffsetDateTime>, now: time::OffsetDateTime) -> Finding {
    let Some(ca_date) = ca_date else {
        return Finding::warn(
            Check::Clock,
            "the CA's answer had no Date header, so the clock could not be compared",
            "check this host's time with `timedatectl` (NTP synchronized: yes)",
        );
    };
    let ahead = now - ca_date;
    let off = ahead.unsigned_abs();
    let direction = if ahead.is_negative() { "behind" } else { "ahead of" };
    let subject = format!(
        "this host's clock is {}s {direction} the CA's",
        ahead.whole_seconds().abs()
    );
    // Why it matters: ACME requests carry no client time (a JWS is fresh by the CA's nonce, not a timestamp), so the CA
    // accepts a skewed host and the harm is all on this side. The CA stamps a certificate's notBefore with its own
    // clock, so a host running behind finds a fresh certificate not valid yet and refuses to deploy it; and renewal
    // windows, Retry-After times and expiry are judged off by as much.
    let fix = "synchronize the clock with NTP (`timedatectl set-ntp true`, or chrony/systemd-timesyncd): a new \
               certificate's notBefore is the CA's now, and renewal windows are judged against this clock";
    if off > SKEW_FAIL {
        Finding::fail(Check::Clock, subject, fix)
    } else if off > SKEW_WARN {
        Finding::warn(Check::Clock, subject, fix)
    } else {
        Finding::ok(Check::Clock, subject)
    }
}

/// What `systemctl is-enabled` says of the timer and of the daemon's unit (`units` pairs each unit with its word:
/// `enabled`, `disabled`, `not-found`...). One of the two should run renewals; both at once is harmless (they share
/// the lock) but one does nothing useful.
pub fn judge_schedule(units: &[(String, String)]) -> Finding {
    let enabled: Vec<&str> = units
        .iter()
        .filter(|(_, state)| matches!(state.as_str(), "enabled" | "enabled-runtime" | "static" | "alias"))
        .map(|(unit, _)| unit.as_str())
        .collect();
    let states = units
        .iter()
        .map(|(unit, state)| format!("{unit} {state}"))
        .collect::<Vec<_>>()
        .join(", ");
    let installed = units.iter().any(|(_, state)| state != "not-found");
    match enabled.as_slice() {
        [_] => Finding::ok(Check::Schedule, states),
        [] if !installed => Finding::warn(
            Check::Schedule,
            format!("{states}: nothing renews on its own"),
            "install the units (the .deb does; or copy deploy/hapcert.service and deploy/hapcert.timer to \
             /etc/systemd/system), then `systemctl enable --now hapcert.timer`",
        ),
        [] => Finding::warn(
            Check::Schedule,
            format!("{states}: nothing renews on its own"),
            "`systemctl enable --now hapcert.timer` (a run twice a day) or `systemctl enable --now \
             hapcert-daemon.service` (renews, probes and serves /metrics)",
        ),
        _ => Finding::warn(
            Check::Schedule,
            format!("{states}: both renew"),
            "keep one: `systemctl disable --now hapcert.timer` when the daemon runs",
        ),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_failed_config_skips_everything_and_a_failed_ca_skips_the_clock() {
        let mut report = Report::default();
        report.add([Finding::fail(
            Check::Config,
            "cannot read /etc/hapcert/hapcert.toml",
            "pass --config",
        )]);
        for check in &Check::ALL[1..] {
            assert_eq!(
                report.blocked(*check).as_deref(),
                Some("not checked: the config check failed"),
                "{check:?}"
            );
        }

        let mut report = Report::default();
        report.add([Finding::ok(Check::Config, "read")]);
        report.add([Finding::fail(Check::Files, "no cert dir", "create it")]);
        assert_eq!(
            report.blocked(Check::Haproxy),
            None,
            "a missing directory stops no other check"
        );
        report.add([Finding::fail(Check::Ca, "no answer", "check the network")]);
        assert_eq!(
            report.blocked(Check::Clock).as_deref(),
            Some("not checked: the ca check failed")
        );
        assert_eq!(report.blocked(Check::Account), None);
    }

    #[test]
    fn the_worst_line_is_the_checks_verdict_and_only_a_fail_makes_the_host_not_ready() {
        let mut report = Report::default();
        report.add([
            Finding::ok(Check::Verify, "a answers"),
            Finding::warn(Check::Verify, "b is slow", "look"),
            Finding::ok(Check::Verify, "c answers"),
        ]);
        assert_eq!(report.verdict_of(Check::Verify), Some(Verdict::Warn));
        assert_eq!(report.verdict_of(Check::Ca), None);
        assert!(report.ready(), "a WARN leaves the host ready");
        report.add([Finding::skip(Check::Schedule, "no systemctl")]);
        assert!(report.ready(), "a SKIP too");
        report.add([Finding::fail(Check::Ca, "down", "wait")]);
        assert!(!report.ready());
    }

    #[test]
    fn rendering_gives_one_line_per_finding_with_its_fix_then_the_verdict() {
        let mut report = Report::default();
        report.add([
            Finding::ok(Check::Config, "/etc/hapcert/hapcert.toml: 2 certificates"),
            Finding::fail(
                Check::Verify,
                "nothing answers TLS on 127.0.0.1:443",
                "set `verify` to an address HAProxy's TLS frontend binds",
            ),
            Finding::skip(Check::Clock, "not checked: the ca check failed"),
            Finding::warn(Check::Schedule, "hapcert.timer disabled", "enable it"),
        ]);
        assert_eq!(
            report.render(),
            "OK    config      /etc/hapcert/hapcert.toml: 2 certificates\n\
             FAIL  verify      nothing answers TLS on 127.0.0.1:443; fix: set `verify` to an address HAProxy's TLS \
             frontend binds\n\
             SKIP  clock       not checked: the ca check failed\n\
             WARN  schedule    hapcert.timer disabled; fix: enable it\n\
             NOT ready: 1 check(s) failed; fix the first one first (verify)\n"
        );
        let json = report.to_json();
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][1]["check"], "verify");
        assert_eq!(json["checks"][1]["verdict"], "fail");
        assert_eq!(json["checks"][0].get("fix"), None);
        assert_eq!(json["checks"][3]["fix"], "enable it");
    }

    #[test]
    fn the_clock_is_ok_within_a_few_seconds_warned_within_a_minute_and_failed_beyond() {
        let ca = datetime!(2026-12-06 05:00:00 UTC);
        let at = |secs: i64| judge_clock(Some(ca), ca + time::Duration::seconds(secs));
        assert_eq!(at(2).verdict, Verdict::Ok);
        assert_eq!(at(2).subject, "this host's clock is 2s ahead of the CA's");
        assert_eq!(at(-30).verdict, Verdict::Warn);
        assert_eq!(at(-30).subject, "this host's clock is 30s behind the CA's");
        assert_eq!(at(600).verdict, Verdict::Fail);
        assert!(at(600).fix.unwrap().contains("notBefore"));
        assert_eq!(judge_clock(None, ca).verdict, Verdict::Warn);
    }

    #[test]
    fn one_enabled_unit_schedules_renewals() {
        let units = |timer: &str, daemon: &str| {
            vec![
                ("hapcert.timer".to_owned(), timer.to_owned()),
                ("hapcert-daemon.service".to_owned(), daemon.to_owned()),
            ]
        };
        let timer = judge_schedule(&units("enabled", "disabled"));
        assert_eq!(timer.verdict, Verdict::Ok);
        assert_eq!(timer.subject, "hapcert.timer enabled, hapcert-daemon.service disabled");
        assert_eq!(judge_schedule(&units("disabled", "enabled")).verdict, Verdict::Ok);
        let missing = judge_schedule(&units("not-found", "not-found"));
        assert!(missing.fix.unwrap().starts_with("install the units"));
        let none = judge_schedule(&units("disabled", "not-found"));
        assert_eq!(none.verdict, Verdict::Warn);
        assert!(none.fix.unwrap().contains("systemctl enable --now hapcert.timer"));
        let both = judge_schedule(&units("enabled", "enabled"));
        assert_eq!(both.verdict, Verdict::Warn);
        assert!(both.subject.ends_with("both renew"));
    }
}
