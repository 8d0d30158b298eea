//! The judgement of what `check` watches and hapcert does not issue, pure: the certificates, CA files and CRLs HAProxy
//! has loaded (its inventory), and the `[[watch]]` endpoints. The same thresholds as for hapcert's own certificates;
//! the advice differs, since hapcert cannot renew any of these.

use serde::Serialize;
use time::OffsetDateTime;

use super::{
    EXPIRES, EndpointReport, InventoryReport, Problem, Served, Stage, Status, Thresholds, Words, covers, critical,
    expiry_finding, judge_chain, summarize, thresholds_with,
};
use crate::core::config::{CheckConfig, StartTls, UnmanagedPolicy};
use crate::core::state::monitor::Source;
use crate::core::time::{days_left, format_rfc3339};

/// A CRL is not valid beyond its Next Update: clients it verifies are refused after it.
const NEXT_UPDATE: Words = Words {
    coming: "reaches its Next Update in",
    past: "went past its Next Update",
};

/// One entry of HAProxy's inventory, as read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: Source,
    /// As HAProxy names it: a path, or a crt-store alias.
    pub name: String,
    /// Each certificate in it (a CA file holds several), or a CRL's Last and Next Update.
    pub validity: Vec<Validity>,
    /// Why it could not be read, when it could not.
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Validity {
    /// The certificate's subject, or a CRL's issuer.
    pub subject: Option<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

/// One `[[watch]]` endpoint, and what its handshake found.
#[derive(Debug, Clone)]
pub struct WatchObserved {
    pub name: String,
    pub endpoint: String,
    pub sni: String,
    pub starttls: Option<StartTls>,
    pub warn_days: Option<f64>,
    pub crit_days: Option<f64>,
    pub outcome: Result<Served, String>,
}

/// The verdict on one watched certificate, CA file, CRL or endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct WatchedReport {
    pub source: Source,
    pub name: String,
    pub status: Status,
    /// One line: the worst problem, or how long it has left.
    pub summary: String,
    /// The earliest Not After (a CRL's Next Update).
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    pub days_left: Option<f64>,
    pub thresholds: Option<Thresholds>,
    /// The inventory: each certificate of the file (several for a CA file), or the CRL.
    pub entries: Vec<EntryReport>,
    /// A `[[watch]]`: its handshake.
    pub endpoint: Option<EndpointReport>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    pub subject: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<f64>,
    pub status: Status,
}

/// Judges HAProxy's inventory: each entry not left out by `[check] ignore_paths` (matched against the name HAProxy
/// gives, a path or a crt-store alias).
pub fn judge_inventory(check: &CheckConfig, loaded: &[Loaded], now: OffsetDateTime) -> InventoryReport {
    let (ignored, kept): (Vec<&Loaded>, Vec<&Loaded>) = loaded
        .iter()
        .partition(|entry| check.ignore_paths.iter().any(|glob| glob.matches(&entry.name)));
    let items = kept.iter().map(|entry| judge_loaded(check, entry, now)).collect();
    InventoryReport::read(items, ignored.len())
}

/// Judges one inventory entry against the thresholds, under `[check] unmanaged`: with `warn`, nothing is worse than
/// WARNING.
fn judge_loaded(check: &CheckConfig, loaded: &Loaded, now: OffsetDateTime) -> WatchedReport {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let label = label(loaded.source, &loaded.name);
    if let Some(why) = &loaded.unreadable {
        problems.push(Problem {
            status: Status::Unknown,
            message: format!("{label}: HAProxy did not say what it holds: {why}"),
        });
    }
    let mut soonest: Option<(OffsetDateTime, Thresholds)> = None;
    for validity in &loaded.validity {
        let Some(not_after) = validity.not_after else {
            entries.push(EntryReport {
                subject: validity.subject.clone(),
                not_after: None,
                days_left: None,
                status: Status::Unknown,
            });
            continue;
        };
        // Without a start, the lifetime is taken as 90 days, Let's Encrypt's longest.
        let not_before = validity.not_before.unwrap_or(not_after - time::Duration::days(90));
        let limits = watched_thresholds(check.warn_days, check.crit_days, not_before, not_after);
        let words = if loaded.source == Source::HaproxyCrlFile {
            &NEXT_UPDATE
        } else {
            &EXPIRES
        };
        let finding = expiry_finding(words, not_before, not_after, limits, now);
        let status = finding.as_ref().map_or(Status::Ok, |f| f.status());
        if let Some(finding) = finding {
            let of = match (loaded.source, &validity.subject) {
                (Source::HaproxyCaFile, Some(subject)) => format!(": the certificate {subject}"),
                _ => String::new(),
            };
            problems.push(Problem {
                status,
                message: format!(
                    "{label}{of} {}: {}",
                    finding.what,
                    inventory_advice(loaded.source, finding.stage)
                ),
            });
        }
        if soonest.is_none_or(|(at, _)| not_after < at) {
            soonest = Some((not_after, limits));
        }
        entries.push(EntryReport {
            subject: validity.subject.clone(),
            not_after: Some(format_rfc3339(not_after)),
            days_left: Some(days_left(not_after, now)),
            status,
        });
    }
    if check.unmanaged == UnmanagedPolicy::Warn {
        for problem in &mut problems {
            if problem.status == Status::Critical {
                problem.status = Status::Warning;
            }
        }
    }
    finish(loaded.source, &loaded.name, soonest, entries, None, problems, now)
}

/// What to do about an unmanaged certificate, CA file or CRL at `stage`: hapcert cannot renew it.
fn inventory_advice(source: Source, stage: Stage) -> &'static str {
    match (source, stage) {
        (_, Stage::NotYetValid) => "clients reject it until then; is this host's clock right?",
        (Source::HaproxyCaFile, _) => {
            "HAProxy verifies client (or server) certificates against it, and refuses them once it has expired; put \
             the CA's new certificate in the file and reload HAProxy, or list the file in [check] ignore_paths"
        }
        (Source::HaproxyCrlFile, _) => {
            "HAProxy refuses the client certificates it checks against an out-of-date CRL; fetch a fresh CRL from \
             its CA into the file and reload HAProxy, or list the file in [check] ignore_paths"
        }
        (_, Stage::Expired) => {
            "clients reject it; hapcert does not manage it: replace it where it was bought, or let hapcert issue it \
             (a [[certificate]] with this file), or list it in [check] ignore_paths if HAProxy should not load it"
        }
        _ => {
            "hapcert does not manage it: renew it where it was bought, or let hapcert issue it (a [[certificate]] \
             with this file), or list it in [check] ignore_paths"
        }
    }
}

/// Judges one `[[watch]]` endpoint: the handshake, the chain, the name, the days left.
pub fn judge_watch(check: &CheckConfig, observed: &WatchObserved, now: OffsetDateTime) -> WatchedReport {
    let starttls = observed
        .starttls
        .map(|p| format!(", STARTTLS {}", p.name()))
        .unwrap_or_default();
    let at = format!(
        "{} {} (SNI {}{starttls})",
        label(Source::Watch, &observed.name),
        observed.endpoint,
        observed.sni
    );
    let mut report = EndpointReport::new(&observed.endpoint, &observed.sni, "any", None);
    let served = match &observed.outcome {
        Ok(served) => served,
        Err(error) => {
            report.status = Status::Critical;
            report.error = Some(error.clone());
            let problem = critical(format!(
                "{at}: {error}: is the service up, and is this its TLS port{}?",
                if observed.starttls.is_some() {
                    ""
                } else {
                    " (or does it need starttls)"
                }
            ));
            return finish(
                Source::Watch,
                &observed.name,
                None,
                Vec::new(),
                Some(report),
                vec![problem],
                now,
            );
        }
    };
    let mut problems = Vec::new();
    report.saw(served, now);

    // A client that connects by address checks no name (HAProxy's `verify required` without `sni` or `verifyhost`
    // does not): a name is judged only when there is one.
    if observed.sni.parse::<std::net::IpAddr>().is_err() {
        let covered = covers(&served.names, &observed.sni);
        report.name_covered = Some(covered);
        if !covered {
            let names: Vec<&str> = served.names.iter().map(String::as_str).collect();
            problems.push(critical(format!(
                "{at} sends a certificate for {} that does not cover {}: clients that check the name refuse it; set \
                 sni to the name clients ask for, or fix the server's certificate",
                if names.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    names.join(", ")
                },
                observed.sni
            )));
        }
    }
    problems.extend(judge_chain(&at, served, &mut report));

    let limits = watched_thresholds(
        observed.warn_days.or(check.warn_days),
        observed.crit_days.unwrap_or(check.crit_days),
        served.not_before,
        served.not_after,
    );
    if let Some(finding) = expiry_finding(&EXPIRES, served.not_before, served.not_after, limits, now) {
        let advice = match finding.stage {
            Stage::NotYetValid => "clients reject it until then; is this host's (or the server's) clock right?",
            Stage::Expired => "clients reject it; hapcert does not manage it: renew it where it is issued",
            _ => "hapcert does not manage it: renew it where it is issued, before it expires",
        };
        problems.push(Problem {
            status: finding.status(),
            message: format!("{at} sends serial {} which {}: {advice}", served.serial, finding.what),
        });
    }
    report.status = problems.iter().fold(Status::Ok, |worst, p| worst.worst(p.status));
    finish(
        Source::Watch,
        &observed.name,
        Some((served.not_after, limits)),
        Vec::new(),
        Some(report),
        problems,
        now,
    )
}

/// The thresholds of what hapcert watches and does not renew: as its own, except that without `warn_days` the
/// warning comes with a third of the lifetime left *or 30 days*, whichever is less. A third suits what is renewed at a
/// third; a certificate bought for a year, or a CA valid for twenty, would be a warning for months or for ever.
fn watched_thresholds(
    warn_days: Option<f64>,
    crit_days: f64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Thresholds {
    let third = (not_after - not_before).as_seconds_f64() / 86_400.0 / 3.0;
    thresholds_with(
        Some(warn_days.unwrap_or(third.min(MOST_WARNING_DAYS))),
        crit_days,
        not_before,
        not_after,
    )
}

/// The latest warning without `warn_days`: a third of a 90-day lifetime.
const MOST_WARNING_DAYS: f64 = 30.0;

/// How a watched thing is named in messages: "unmanaged certificate /etc/haproxy/certs/shop.pem", "watch backend-api".
pub fn label(source: Source, name: &str) -> String {
    let kind = match source {
        Source::Managed => "certificate",
        Source::HaproxyCert => "unmanaged certificate",
        Source::HaproxyCaFile => "unmanaged CA file",
        Source::HaproxyCrlFile => "unmanaged CRL",
        Source::Watch => "watch",
    };
    format!("{kind} {name}")
}

/// The report, from its problems (worst first) and the soonest date.
fn finish(
    source: Source,
    name: &str,
    soonest: Option<(OffsetDateTime, Thresholds)>,
    entries: Vec<EntryReport>,
    endpoint: Option<EndpointReport>,
    mut problems: Vec<Problem>,
    now: OffsetDateTime,
) -> WatchedReport {
    problems.sort_by_key(|p| std::cmp::Reverse(p.status.severity()));
    let status = problems.iter().fold(Status::Ok, |worst, p| worst.worst(p.status));
    let days = soonest.map(|(at, _)| days_left(at, now));
    let summary = summarize(&problems, || match days {
        Some(days) => format!("OK, {days:.1} days left"),
        None => "OK, holds no certificate".to_owned(),
    });
    WatchedReport {
        source,
        name: name.to_owned(),
        status,
        summary,
        not_after: soonest.map(|(at, _)| at),
        days_left: days,
        thresholds: soonest.map(|(_, limits)| limits),
        entries,
        endpoint,
        problems,
    }
}
