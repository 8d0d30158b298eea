//! The monitor's judgement, pure: what was found on disk and on the wire, and what the state says of the last runs, in;
//! a status per certificate, per endpoint and for the runs, with one line a person reads at 3 a.m., out. `now` is a
//! parameter, like everywhere in the core.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::chain::Chain;
use crate::core::chain::Flaw;
use crate::core::config::CheckConfig;
use crate::core::pem::CertFacts;
use crate::core::state::monitor::{RouteCheck, Source};
use crate::core::time::{days_left, format_rfc3339, format_time};
use crate::edge::probe::ClientKind;

mod watched;
pub use watched::{Loaded, Validity, WatchObserved, WatchedReport, judge_inventory, judge_watch, label};

/// The monitoring-plugin status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// The exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The monitoring plugins' order (`max_state`): CRITICAL over WARNING over UNKNOWN over OK. A certificate about to
    /// expire stays CRITICAL even if some other part could not be judged.
    pub fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// One thing wrong, with what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub status: Status,
    pub message: String,
}

/// The days-left thresholds of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub warn_days: f64,
    pub crit_days: f64,
}

/// `[check] warn_days`, else a third of the certificate's lifetime; `crit_days`, unless that leaves no room for a
/// warning (a third of the lifetime is `crit_days` or less, as for 6-day certificates): then a sixth of the lifetime,
/// so that a short-lived certificate is not CRITICAL all its life.
pub fn thresholds(check: &CheckConfig, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Thresholds {
    thresholds_with(check.warn_days, check.crit_days, not_before, not_after)
}

/// [`thresholds`] with the days given (a `[[watch]]` entry's own, or `[check]`'s).
pub fn thresholds_with(
    warn_days: Option<f64>,
    crit_days: f64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Thresholds {
    let lifetime_days = days(not_after - not_before);
    let crit_days = if lifetime_days / 3.0 <= crit_days {
        lifetime_days / 6.0
    } else {
        crit_days
    };
    Thresholds {
        warn_days: warn_days.unwrap_or(lifetime_days / 3.0),
        crit_days,
    }
}

/// The certificate file, as read.
#[derive(Debug, Clone)]
pub enum Disk {
    Present {
        facts: CertFacts,
        leaf: Vec<u8>,
    },
    Missing,
    /// Unreadable or unusable: what is wrong.
    Broken(String),
    /// This process may not read it; not the certificate's fault.
    Forbidden(String),
}

/// What an endpoint sent for one name.
#[derive(Debug, Clone)]
pub struct Served {
    pub leaf: Vec<u8>,
    pub serial: String,
    /// The leaf's DNS names (lower case).
    pub names: BTreeSet<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub chain: Chain,
    /// How the server orders its chain, beyond whether it verifies (`core::chain::flaws`).
    pub flaws: Vec<Flaw>,
}

/// One handshake: an endpoint, a name sent as SNI, the kind of client; what came back, or the error.
#[derive(Debug, Clone)]
pub struct Probe {
    pub endpoint: String,
    pub name: String,
    pub client: ClientKind,
    pub outcome: Result<Served, String>,
}

/// Everything found for one configured certificate.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: String,
    pub file: PathBuf,
    pub names: Vec<String>,
    pub disk: Disk,
    pub probes: Vec<Probe>,
    /// The serial of a deploy the state records as under way: a hapcert stopped before recording its outcome.
    pub interrupted_deploy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub name: String,
    pub status: Status,
    /// One line: the worst problem, or how long the certificate has left.
    pub summary: String,
    pub names: Vec<String>,
    pub file: String,
    pub disk: DiskReport,
    /// Absent when there is no usable certificate on disk.
    pub thresholds: Option<Thresholds>,
    pub endpoints: Vec<EndpointReport>,
    /// Every problem, worst first.
    pub problems: Vec<Problem>,
    /// The fewest days left of the certificate on disk and every one served.
    pub days_left: Option<f64>,
    /// The last try of its challenge route; none when the check does not try routes, or has not yet.
    pub route: Option<RouteReport>,
}

/// What the challenge-route preflight found last, for one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub checked_at: String,
    pub ok: bool,
    /// The problem it adds to the certificate, word for word; none when the route works.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// "present", "missing", "broken" or "forbidden".
    pub state: &'static str,
    pub error: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    /// The name sent as SNI.
    pub name: String,
    /// "any", "ecdsa-only" or "rsa-only": dual certificates are probed as each kind of client.
    pub client: &'static str,
    pub status: Status,
    /// The connection or TLS error, when the handshake failed.
    pub error: Option<String>,
    pub served_serial: Option<String>,
    pub disk_serial: Option<String>,
    pub matches_disk: Option<bool>,
    pub not_after: Option<String>,
    pub days_left: Option<f64>,
    pub chain_verifies: Option<bool>,
    /// Why the chain does not verify, or why it could not be verified.
    pub chain_error: Option<String>,
    /// What is wrong with how the chain is sent (a root included, out of order), one sentence each.
    pub chain_flaws: Vec<String>,
    pub name_covered: Option<bool>,
}

impl DiskReport {
    /// No usable certificate on disk: `state` and what is wrong.
    fn absent(state: &'static str, error: Option<&String>) -> DiskReport {
        DiskReport {
            state,
            error: error.cloned(),
            serial: None,
            not_before: None,
            not_after: None,
            days_left: None,
        }
    }
}

impl EndpointReport {
    /// Nothing judged yet: the endpoint, the name sent, the kind of client, the serial on disk to compare with.
    fn new(endpoint: &str, name: &str, client: &'static str, disk_serial: Option<String>) -> EndpointReport {
        EndpointReport {
            endpoint: endpoint.to_owned(),
            name: name.to_owned(),
            client,
            status: Status::Ok,
            error: None,
            served_serial: None,
            disk_serial,
            matches_disk: None,
            not_after: None,
            days_left: None,
            chain_verifies: None,
            chain_error: None,
            chain_flaws: Vec::new(),
            name_covered: None,
        }
    }

    /// The served certificate's serial and expiry.
    fn saw(&mut self, served: &Served, now: OffsetDateTime) {
        self.served_serial = Some(served.serial.clone());
        self.not_after = Some(format_rfc3339(served.not_after));
        self.days_left = Some(days_left(served.not_after, now));
    }
}

impl CertReport {
    /// Every endpoint that answered served the certificate on disk; `None` when none answered (or nothing is on disk).
    pub fn served_matches_disk(&self) -> Option<bool> {
        let seen: Vec<bool> = self.endpoints.iter().filter_map(|e| e.matches_disk).collect();
        if seen.is_empty() {
            None
        } else {
            Some(seen.iter().all(|m| *m))
        }
    }

    /// A serial served that is not the one on disk, else the one served.
    pub fn served_serial(&self) -> Option<&str> {
        let mut served = self.endpoints.iter().filter(|e| e.served_serial.is_some());
        let differing = served.clone().find(|e| e.matches_disk == Some(false));
        differing
            .or_else(|| served.next())
            .and_then(|e| e.served_serial.as_deref())
    }
}

/// One line for a report: its worst problem (and how many more as bad), or `ok` when there is none. `problems` are
/// worst first.
pub fn summarize<'a>(problems: impl IntoIterator<Item = &'a Problem>, ok: impl FnOnce() -> String) -> String {
    let problems: Vec<&Problem> = problems.into_iter().collect();
    match problems.first() {
        None => ok(),
        Some(first) => {
            let more = problems.iter().filter(|p| p.status == first.status).count() - 1;
            if more > 0 {
                format!("{} (and {more} more)", first.message)
            } else {
                first.message.clone()
            }
        }
    }
}

/// Judges one certificate.
pub fn judge_certificate(check: &CheckConfig, observed: &Observed, now: OffsetDateTime) -> CertReport {
    let mut problems = Vec::new();
    let file = observed.file.display().to_string();
    let (disk, disk_leaf, thresholds) = match &observed.disk {
        Disk::Present { facts, leaf } => {
            let limits = thresholds(check, facts.not_before, facts.not_after);
            if let Some(problem) = expiry_problem("", facts.not_before, facts.not_after, limits, now) {
                problems.push(problem);
            }
            if !facts.key_matches {
                problems.push(critical(format!(
                    "the private key in {file} does not belong to its certificate: HAProxy refuses the file at its \
                     next reload; run `hapcert renew {}`",
                    observed.name
                )));
            }
            let report = DiskReport {
                state: "present",
                error: None,
                serial: Some(facts.serial.clone()),
                not_before: Some(format_rfc3339(facts.not_before)),
                not_after: Some(format_rfc3339(facts.not_after)),
                days_left: Some(days_left(facts.not_after, now)),
            };
            (report, Some((leaf.as_slice(), facts.serial.as_str())), Some(limits))
        }
        Disk::Missing => {
            problems.push(critical(format!(
                "{file} is missing: run `hapcert run` to issue it, and see `hapcert status`"
            )));
            (DiskReport::absent("missing", None), None, None)
        }
        Disk::Broken(why) => {
            problems.push(critical(format!(
                "{file}: {why}; `hapcert renew {}` replaces it",
                observed.name
            )));
            (DiskReport::absent("broken", Some(why)), None, None)
        }
        Disk::Forbidden(why) => {
            problems.push(Problem {
                status: Status::Unknown,
                message: format!(
                    "cannot read {file} ({why}): run `hapcert check` as root, or as the user the timer runs hapcert as"
                ),
            });
            (DiskReport::absent("forbidden", Some(why)), None, None)
        }
    };

    let mut endpoints = Vec::new();
    for probe in &observed.probes {
        let interrupted = disk_leaf.is_some_and(|(_, serial)| observed.interrupted_deploy.as_deref() == Some(serial));
        let (report, found) = judge_probe(check, probe, disk_leaf, interrupted, now);
        problems.extend(found);
        endpoints.push(report);
    }
    // Worst first; among equals, the order found: the file, then each endpoint as configured.
    problems.sort_by_key(|p| std::cmp::Reverse(p.status.severity()));

    let status = problems.iter().fold(Status::Ok, |worst, p| worst.worst(p.status));
    let days_left = disk
        .days_left
        .into_iter()
        .chain(endpoints.iter().filter_map(|e| e.days_left))
        .reduce(f64::min);
    let summary = summarize(&problems, || ok_summary(days_left));
    CertReport {
        name: observed.name.clone(),
        status,
        summary,
        names: observed.names.clone(),
        file,
        disk,
        thresholds,
        endpoints,
        problems,
        days_left,
        route: None,
    }
}

fn ok_summary(days_left: Option<f64>) -> String {
    format!("OK, {:.1} days left", days_left.unwrap_or_default())
}

/// Adds what the last challenge-route preflight found to a judged certificate: a broken route is a WARNING (the
/// certificate is served, but its next renewal would fail), beside whatever else was found.
pub fn with_route(mut report: CertReport, route: Option<&RouteCheck>) -> CertReport {
    let Some(route) = route else { return report };
    let problem = route.problem.as_ref().map(|found| {
        format!(
            "the challenge route is broken, so the next renewal would fail: {found} (found {}; tried again at every \
             check until it works)",
            format_rfc3339(route.at)
        )
    });
    if let Some(message) = &problem {
        report.problems.push(Problem {
            status: Status::Warning,
            message: message.clone(),
        });
        report.problems.sort_by_key(|p| std::cmp::Reverse(p.status.severity()));
        report.status = report.status.worst(Status::Warning);
        let days_left = report.days_left;
        report.summary = summarize(&report.problems, || ok_summary(days_left));
    }
    report.route = Some(RouteReport {
        checked_at: format_rfc3339(route.at),
        ok: problem.is_none(),
        problem,
    });
    report
}

fn judge_probe(
    check: &CheckConfig,
    probe: &Probe,
    disk: Option<(&[u8], &str)>,
    interrupted: bool,
    now: OffsetDateTime,
) -> (EndpointReport, Vec<Problem>) {
    let at = format!("{} (SNI {})", probe.endpoint, probe.name);
    let at = match probe.client {
        ClientKind::Any => at,
        kind => format!("{at} as an {} client", client_name(kind)),
    };
    let mut report = EndpointReport::new(
        &probe.endpoint,
        &probe.name,
        client_name(probe.client),
        disk.map(|(_, serial)| serial.to_owned()),
    );
    let served = match &probe.outcome {
        Ok(served) => served,
        Err(error) => {
            report.status = Status::Critical;
            report.error = Some(error.clone());
            let problem = critical(format!(
                "{at}: {error}: is HAProxy running and listening there? (`systemctl status haproxy`)"
            ));
            return (report, vec![problem]);
        }
    };
    let mut problems = Vec::new();
    report.saw(served, now);

    let matches = disk.map(|(leaf, _)| leaf == served.leaf.as_slice());
    report.matches_disk = matches;
    if let (Some(false), Some((_, disk_serial))) = (matches, disk) {
        // A run finishes (or undoes) only a deploy it recorded as under way: any other file is not hapcert's to push.
        let advice = if interrupted {
            "hapcert was stopped in the middle of deploying it; `hapcert run` finishes that deploy and verifies it, or \
             puts the previous file back"
        } else {
            "that HAProxy has not loaded the file, and no deploy of it by hapcert is unfinished; reload HAProxy"
        };
        problems.push(critical(format!(
            "{at} serves serial {} but disk has {disk_serial}: {advice}",
            served.serial
        )));
    }

    let covered = covers(&served.names, &probe.name);
    report.name_covered = Some(covered);
    if !covered {
        let names: Vec<&str> = served.names.iter().map(String::as_str).collect();
        problems.push(critical(format!(
            "{at} serves a certificate for {} that does not cover {}: HAProxy picked another certificate (its \
             default?) for this name",
            if names.is_empty() {
                "no DNS name".to_owned()
            } else {
                names.join(", ")
            },
            probe.name
        )));
    }

    problems.extend(judge_chain(&at, served, &mut report));

    // The same certificate as on disk has had its expiry judged already; another one is judged here.
    if matches != Some(true) {
        let limits = thresholds(check, served.not_before, served.not_after);
        let what = format!("{at} serves serial {} which ", served.serial);
        if let Some(problem) = expiry_problem(&what, served.not_before, served.not_after, limits, now) {
            problems.push(problem);
        }
    }
    report.status = problems.iter().fold(Status::Ok, |worst, p| worst.worst(p.status));
    (report, problems)
}

/// Whether the served chain verifies, and how it is sent: the verdict into `report`, the problems out.
fn judge_chain(at: &str, served: &Served, report: &mut EndpointReport) -> Vec<Problem> {
    let mut problems = Vec::new();
    match &served.chain {
        Chain::Verifies => report.chain_verifies = Some(true),
        Chain::Fails(why) => {
            report.chain_verifies = Some(false);
            report.chain_error = Some(why.clone());
            problems.push(critical(format!("{at}: the served chain does not verify: {why}")));
        }
        Chain::NotChecked(why) => {
            report.chain_error = Some(why.clone());
            problems.push(Problem {
                status: Status::Unknown,
                message: format!("{at}: the chain was not verified: {why}"),
            });
        }
    }

    for flaw in &served.flaws {
        let what = flaw_message(flaw);
        report.chain_flaws.push(what.clone());
        problems.push(Problem {
            status: Status::Warning,
            message: format!("{at}: {what}"),
        });
    }

    problems
}

/// One flaw of a served chain, in words, with the fix. Positions are counted from 1, the leaf.
fn flaw_message(flaw: &Flaw) -> String {
    match flaw {
        Flaw::IncludesRoot { position, subject } => format!(
            "the served chain includes its root (certificate {}, {subject}, self-signed): clients must have the root \
             already, so sending it only adds bytes to every handshake, and some clients refuse a chain that carries \
             one; remove the root from the certificate file",
            position + 1
        ),
        Flaw::OutOfOrder {
            position,
            issuer,
            next_subject,
        } => format!(
            "the served chain is out of order: certificate {} (issued by {issuer}) is followed by {next_subject}, \
             which did not issue it; strict clients fail the handshake: put the certificates in the file leaf first, \
             then each one's issuer in turn",
            position + 1
        ),
    }
}

/// `prefix` names what expires ("" for the file on disk); the message starts with "expires" or "expired" after it.
fn expiry_problem(
    prefix: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    limits: Thresholds,
    now: OffsetDateTime,
) -> Option<Problem> {
    let finding = expiry_finding(&EXPIRES, not_before, not_after, limits, now)?;
    let advice = match finding.stage {
        Stage::NotYetValid => "clients reject it; is this host's clock right?",
        Stage::Expired => "clients reject it; `hapcert status` says why it was not renewed, `hapcert run` renews it",
        Stage::Critical => {
            "renewal has failed; see `hapcert status` and `journalctl -u hapcert` (without systemd: the mail of the \
             cron job)"
        }
        Stage::Warning => "it should have been renewed by now; see `hapcert status`",
    };
    Some(Problem {
        status: finding.status(),
        message: format!("{prefix}{}: {advice}", finding.what),
    })
}

/// How far along its validity something is, when that is worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    NotYetValid,
    Expired,
    Critical,
    Warning,
}

/// What is said of a date's coming or passing: "expires in" / "expired", or a CRL's "next update".
pub(crate) struct Words {
    pub coming: &'static str,
    pub past: &'static str,
}

pub(crate) const EXPIRES: Words = Words {
    coming: "expires in",
    past: "expired",
};

/// The stage, and the words for it without advice: "expires in 3.0 days (...), within the critical threshold of 7.0
/// days".
pub(crate) struct Finding {
    pub stage: Stage,
    pub what: String,
}

impl Finding {
    pub fn status(&self) -> Status {
        match self.stage {
            Stage::Warning => Status::Warning,
            _ => Status::Critical,
        }
    }
}

pub(crate) fn expiry_finding(
    words: &Words,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    limits: Thresholds,
    now: OffsetDateTime,
) -> Option<Finding> {
    let left = days(not_after - now);
    let when = format_time(not_after);
    let (stage, what) = if now < not_before {
        (
            Stage::NotYetValid,
            format!("is not valid before {}", format_time(not_before)),
        )
    } else if left <= 0.0 {
        (Stage::Expired, format!("{} {:.1} days ago ({when})", words.past, -left))
    } else if left < limits.crit_days {
        let what = format!(
            "{} {left:.1} days ({when}), within the critical threshold of {:.1} days",
            words.coming, limits.crit_days
        );
        (Stage::Critical, what)
    } else if left < limits.warn_days {
        let what = format!(
            "{} {left:.1} days ({when}), within the warning threshold of {:.1} days",
            words.coming, limits.warn_days
        );
        (Stage::Warning, what)
    } else {
        return None;
    };
    Some(Finding { stage, what })
}

/// Whether a certificate for `names` is valid for `host`: an exact name, or a wildcard for exactly one more label
/// (`*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`).
pub fn covers(names: &BTreeSet<String>, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => name == host,
        }
    })
}

/// How far in the future a recorded run may be before it is reported: clocks of one host disagree by less.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The dead-man's switch: what the state says of the runs.
#[derive(Debug, Clone)]
pub enum RunRecord {
    Read {
        last_run: Option<OffsetDateTime>,
        last_run_success: Option<OffsetDateTime>,
    },
    /// state.json is damaged: no run can work until it is fixed.
    Damaged(String),
    /// This process may not read the state.
    Unreadable(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub status: Status,
    pub message: String,
    pub last_run_success: Option<String>,
    pub last_run: Option<String>,
    /// `[check] max_run_age`, like "36h".
    pub max_run_age: String,
    pub max_run_age_hours: f64,
    /// Hours since the last successful run.
    pub age_hours: Option<f64>,
}

/// CRITICAL when the last successful run is older than `max_run_age`, or none was ever recorded: a stopped timer, a
/// dead daemon, or runs that keep failing all mean that nothing will renew the certificates.
/// The runs' judgment with the fleet's store in it: unreachable, renewals cannot happen (serving goes on), so WARNING,
/// and CRITICAL once a certificate is within its critical threshold.
pub fn with_fleet_store(runs: RunReport, unreachable: Option<&str>, certificates: &[CertReport]) -> RunReport {
    let Some(why) = unreachable else {
        return runs;
    };
    let urgent = certificates.iter().any(|c| match (&c.thresholds, c.days_left) {
        (Some(limits), Some(days)) => days <= limits.crit_days,
        _ => false,
    });
    let status = if urgent { Status::Critical } else { Status::Warning };
    let said = format!(
        "fleet store unreachable ({why}): this node serves what it has, and renews nothing until etcd answers (or a \
         certificate is within [fleet] emergency_days)"
    );
    let message = match runs.status {
        Status::Ok => said,
        _ => format!("{}; {said}", runs.message),
    };
    RunReport {
        status: runs.status.worst(status),
        message,
        ..runs
    }
}

pub fn judge_runs(record: &RunRecord, max_run_age: Duration, now: OffsetDateTime) -> RunReport {
    let max = hours_or_humantime(max_run_age);
    let what_to_do = "is the timer running? see `systemctl status hapcert.timer` and `journalctl -u hapcert` (or \
                      `journalctl -u hapcert-daemon` in daemon mode; without systemd, the cron line of \
                      deploy/hapcert.cron and the mail cron sends)";
    let report =
        |status, message: String, last_run: Option<OffsetDateTime>, success: Option<OffsetDateTime>| RunReport {
            status,
            message,
            last_run_success: success.map(format_rfc3339),
            last_run: last_run.map(format_rfc3339),
            max_run_age: max.clone(),
            max_run_age_hours: round1(max_run_age.as_secs_f64() / 3600.0),
            age_hours: success.map(|at| round1((now - at).as_seconds_f64() / 3600.0)),
        };
    let (last_run, success) = match record {
        RunRecord::Damaged(why) => {
            return report(
                Status::Critical,
                format!("the state cannot be read, so no run can work: {why}"),
                None,
                None,
            );
        }
        RunRecord::Unreadable(why) => {
            return report(
                Status::Unknown,
                format!("cannot tell when hapcert last ran: {why}; run `hapcert check` as root"),
                None,
                None,
            );
        }
        RunRecord::Read {
            last_run,
            last_run_success,
        } => (*last_run, *last_run_success),
    };
    let failed_since = |success: Option<OffsetDateTime>| match last_run {
        Some(at) if success.is_none_or(|s| at > s) => format!(
            "; the last run, {} ago, did not succeed: see `hapcert status`",
            ago(now - at)
        ),
        _ => String::new(),
    };
    match success {
        None => report(
            Status::Critical,
            format!(
                "no successful run recorded yet{}: run `hapcert run`, then enable the timer (`systemctl enable --now \
                 hapcert.timer`, or without systemd the cron line of deploy/hapcert.cron); {what_to_do}",
                failed_since(None)
            ),
            last_run,
            None,
        ),
        // A clock that ran ahead when the run was recorded (or went back since) would keep the switch quiet until real
        // time caught up: say so rather than count it as fresh.
        Some(at) if at - now > CLOCK_SKEW => report(
            Status::Warning,
            format!(
                "the last successful run is recorded {} in the future ({}): this host's clock ran ahead or went back, \
                 so the age of the runs cannot be told; check the clock (`timedatectl`), then run `hapcert run`",
                ago(at - now),
                format_time(at)
            ),
            last_run,
            Some(at),
        ),
        Some(at) if now - at > max_run_age => report(
            Status::Critical,
            format!(
                "last successful run was {} ago ({}), longer than max_run_age {max}{}: {what_to_do}",
                ago(now - at),
                format_time(at),
                failed_since(Some(at))
            ),
            last_run,
            Some(at),
        ),
        Some(at) => report(
            Status::Ok,
            format!("last successful run {} ago ({})", ago(now - at), format_time(at)),
            last_run,
            Some(at),
        ),
    }
}

/// The whole check, judged.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub status: Status,
    pub exit_code: u8,
    /// The first line `check` prints.
    pub summary: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    pub runs: RunReport,
    pub certificates: Vec<CertReport>,
    /// What HAProxy has loaded beyond hapcert's certificates.
    pub inventory: InventoryReport,
    /// The `[[watch]]` endpoints, in the order written.
    pub watched: Vec<WatchedReport>,
}

/// HAProxy's inventory: whether it was read, and each certificate, CA file and CRL hapcert does not manage.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryReport {
    /// "read", "not-configured" (no Runtime API or master socket), "ignored" (`[check] unmanaged = "ignore"`) or
    /// "failed".
    pub state: &'static str,
    /// The worst of the items; UNKNOWN when it could not be read.
    pub status: Status,
    pub message: String,
    pub items: Vec<WatchedReport>,
}

impl InventoryReport {
    /// Not read, for `why` (not configured, or ignored): OK.
    pub fn not_read(state: &'static str, why: &str) -> InventoryReport {
        InventoryReport {
            state,
            status: Status::Ok,
            message: why.to_owned(),
            items: Vec::new(),
        }
    }

    /// HAProxy did not answer: UNKNOWN, with why and what to check.
    pub fn failed(why: &str) -> InventoryReport {
        InventoryReport {
            state: "failed",
            status: Status::Unknown,
            message: format!(
                "HAProxy's inventory could not be read ({why}): is HAProxy running, and is [haproxy] runtime_api (or \
                 master_socket) its admin socket?"
            ),
            items: Vec::new(),
        }
    }

    /// Read: `items` judged; `ignored` entries matched `[check] ignore_paths`.
    pub fn read(items: Vec<WatchedReport>, ignored: usize) -> InventoryReport {
        let status = items.iter().fold(Status::Ok, |worst, item| worst.worst(item.status));
        let count = |source: Source| items.iter().filter(|i| i.source == source).count();
        let mut message = format!(
            "{} certificates, {} CA files and {} CRLs loaded by HAProxy that hapcert does not manage",
            count(Source::HaproxyCert),
            count(Source::HaproxyCaFile),
            count(Source::HaproxyCrlFile)
        );
        if ignored > 0 {
            message.push_str(&format!(" ({ignored} more left out by [check] ignore_paths)"));
        }
        InventoryReport {
            state: "read",
            status,
            message,
            items,
        }
    }
}

fn critical(message: String) -> Problem {
    Problem {
        status: Status::Critical,
        message,
    }
}

fn client_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Any => "any",
        ClientKind::EcdsaOnly => "ecdsa-only",
        ClientKind::RsaOnly => "rsa-only",
    }
}

fn days(span: time::Duration) -> f64 {
    span.as_seconds_f64() / 86_400.0
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// "36h" as an operator writes it in the config, when it is whole hours.
fn hours_or_humantime(span: Duration) -> String {
    if span.as_secs().is_multiple_of(3600) {
        format!("{}h", span.as_secs() / 3600)
    } else {
        humantime::format_duration(span).to_string()
    }
}

/// "5.0 h", "3.2 days": enough to act on.
fn ago(span: time::Duration) -> String {
    let hours = span.as_seconds_f64() / 3600.0;
    if hours >= 48.0 {
        format!("{:.1} days", hours / 24.0)
    } else if hours >= 1.0 {
        format!("{hours:.1} h")
    } else {
        format!("{} min", span.whole_minutes().max(0))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watched_tests;
