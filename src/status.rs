//! `hapcert status`: per certificate, what is deployed, the next decision with its reason, and the last result. Reads
//! only; it changes nothing and takes no lock.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::core::ari::{AriWindow, RenewalInfo};
use crate::core::config::Config;
use crate::core::decision::Local;
use crate::core::pem::CertFacts;
use crate::core::schedule::Overrides;
use crate::core::state::monitor::{Source, WatchedCheck};
use crate::core::state::{CertState, LastResult, StateStorage};
use crate::core::survey::survey;
use crate::core::time::{days_left, format_rfc3339};
use crate::edge::store::StateDir;
use crate::edge::store::facts_cache::FactsCache;

#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub name: String,
    pub domains: Vec<String>,
    pub key_type: String,
    pub file: String,
    pub serial: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<f64>,
    pub due: bool,
    pub renew_at: Option<String>,
    pub reason: String,
    pub schedule: Schedule,
    /// Set when the certificate is due but held back: until when, and why.
    pub waiting: Option<Waiting>,
    pub consecutive_failures: u32,
    pub last_result: Option<LastResult>,
    /// From the last `hapcert check`: every endpoint served the serial on disk. `None`: not checked, or no answer.
    pub served_matches_disk: Option<bool>,
    /// When that check ran (RFC 3339).
    pub last_check: Option<String>,
    /// A certificate issued and verified, kept after its deploy failed: its serial, which the next run deploys
    /// without ordering again.
    pub issued_waiting: Option<String>,
}

/// Where the renewal moment comes from.
#[derive(Debug, Serialize)]
pub struct Schedule {
    /// "ari" or "fallback".
    pub source: &'static str,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    /// The moment picked inside the window.
    pub renew_at: Option<String>,
    pub next_check: Option<String>,
    pub explanation_url: Option<String>,
    /// Why the lifetime rule decides, when it does.
    pub fallback_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Waiting {
    pub until: String,
    pub why: String,
}

pub fn collect(config: &Config, now: OffsetDateTime) -> anyhow::Result<Vec<StatusRow>> {
    let store = StateDir::at(&config.state.dir.value);
    let state = store.load_state()?;
    let last_check = store.load_monitor()?.last_check;
    // Read only, as all of `status`: the runs keep the cache up to date.
    let mut facts_cache = FactsCache::load(&store);
    let on_disk: Vec<Local> = config
        .certificates
        .iter()
        .map(|spec| facts_cache.local(&spec.file.value))
        .collect();
    Ok(survey(
        config.certificates.iter().zip(&on_disk),
        &state,
        Some(&config.acme.directory),
        now,
        Overrides::default(),
    )
    .into_iter()
    .map(|entry| {
        let (spec, remembered, decision) = (entry.spec, entry.remembered, &entry.decision);
        let facts = entry.local.facts();
        let waiting = entry.held_back().map(|(until, why)| Waiting {
            until: format_rfc3339(until),
            why,
        });
        StatusRow {
            name: spec.name.clone(),
            domains: spec.domains.iter().map(|d| d.to_string()).collect(),
            key_type: spec.key_type.to_string(),
            file: spec.file.value.display().to_string(),
            serial: facts.map(|f| f.serial.clone()),
            not_after: facts.map(|f| format_rfc3339(f.not_after)),
            days_left: facts.map(|f| days_left(f.not_after, now)),
            due: decision.due,
            renew_at: decision.renew_at.map(format_rfc3339),
            reason: decision.reason.to_string(),
            schedule: schedule(facts, remembered, entry.known.window),
            waiting,
            consecutive_failures: remembered.failures.consecutive,
            last_result: remembered.last.clone(),
            served_matches_disk: last_check
                .as_ref()
                .and_then(|c| c.certificates.get(&spec.name)?.served_matches_disk),
            last_check: last_check.as_ref().map(|c| format_rfc3339(c.at)),
            issued_waiting: kept_serial(&store, &spec.name),
        }
    })
    .collect())
}

/// The serial of the certificate kept for `name` after its deploy failed, if there is one.
fn kept_serial(store: &StateDir, name: &str) -> Option<String> {
    let bytes = std::fs::read(store.kept_issued_path(name)).ok()?;
    Some(crate::core::pem::Bundle::parse(&bytes).ok()?.facts().ok()?.serial)
}

fn schedule(facts: Option<&CertFacts>, remembered: &CertState, window: Option<&AriWindow>) -> Schedule {
    if let Some(w) = window {
        return Schedule {
            source: "ari",
            window_start: Some(format_rfc3339(w.start)),
            window_end: Some(format_rfc3339(w.end)),
            renew_at: Some(format_rfc3339(w.renew_at)),
            next_check: Some(format_rfc3339(w.next_check)),
            explanation_url: w.explanation_url.clone(),
            fallback_reason: None,
        };
    }
    let (reason, next_check) = match (facts, &remembered.renewal_info) {
        (None, _) => ("no certificate deployed yet".to_owned(), None),
        (Some(f), _) if f.ari_id.is_none() => {
            ("the certificate has no authority key id, so no ARI id".to_owned(), None)
        }
        (Some(_), Some(RenewalInfo::NotOffered { next_check, .. })) => (
            "the CA offers no renewal information (ARI); lifetime rule".to_owned(),
            Some(format_rfc3339(*next_check)),
        ),
        (Some(_), _) => (
            "the CA's renewal window was not fetched yet for this certificate".to_owned(),
            None,
        ),
    };
    Schedule {
        source: "fallback",
        window_start: None,
        window_end: None,
        renew_at: None,
        next_check,
        explanation_url: None,
        fallback_reason: Some(reason),
    }
}

/// The operator's dashboard: one line per certificate, the reason last so that it may run long. `colour` marks what
/// needs attention (only on a terminal: a pipe or a log gets plain text).
pub fn render_table(rows: &[StatusRow], colour: bool) -> String {
    let header = [
        "NAME",
        "NAMES",
        "KEY",
        "NOT AFTER",
        "DAYS",
        "NEXT",
        "WHEN",
        "SERVED",
        "LAST",
        "FAILS",
        "WHY",
    ];
    let mut table: Vec<Vec<Cell>> = vec![header.iter().map(|h| Cell::plain(h.to_string())).collect()];
    for row in rows {
        let names = match row.domains.len() {
            0 => "-".to_owned(),
            1 => row.domains[0].clone(),
            n => format!("{} +{}", row.domains[0], n - 1),
        };
        let days = match row.days_left {
            Some(d) if d < 7.0 => Cell::marked(format!("{d:.1}"), Mark::Bad),
            Some(d) if row.due => Cell::marked(format!("{d:.1}"), Mark::Warn),
            Some(d) => Cell::plain(format!("{d:.1}")),
            None => Cell::marked("-".into(), Mark::Bad),
        };
        let (next, when) = match (&row.waiting, row.due) {
            (Some(w), _) => (Cell::marked("held back".into(), Mark::Bad), short_time(&w.until)),
            (None, true) => (Cell::marked("renew".into(), Mark::Warn), "next run".to_owned()),
            (None, false) => (
                Cell::plain("renew".into()),
                row.renew_at.as_deref().map_or("-".to_owned(), short_time),
            ),
        };
        let served = match (proven_by_run(row), row.served_matches_disk) {
            (true, _) => Cell::marked("verified".into(), Mark::Good),
            (false, Some(true)) => Cell::marked("match".into(), Mark::Good),
            (false, Some(false)) => Cell::marked("DIFFERS".into(), Mark::Bad),
            (false, None) if row.last_check.is_some() => Cell::marked("unknown".into(), Mark::Warn),
            (false, None) => Cell::plain("-".into()),
        };
        let last = match &row.last_result {
            Some(r) => {
                let text = format!("{} {}", r.outcome, short_time(&r.at));
                match r.outcome {
                    crate::core::state::Outcome::Failed => Cell::marked(text, Mark::Bad),
                    _ => Cell::plain(text),
                }
            }
            None => Cell::plain("-".into()),
        };
        let fails = match row.consecutive_failures {
            0 => Cell::plain("0".into()),
            n => Cell::marked(n.to_string(), Mark::Bad),
        };
        let why = match (&row.issued_waiting, &row.waiting) {
            (Some(serial), _) => format!("issued, waiting to deploy: serial {serial}{}", last_failure(row)),
            (None, Some(w)) => format!("{}; held back: {}", row.reason, w.why),
            (None, None) => row.reason.clone(),
        };
        table.push(vec![
            Cell::plain(row.name.clone()),
            Cell::plain(names),
            Cell::plain(row.key_type.clone()),
            Cell::plain(row.not_after.as_deref().map_or("-".to_owned(), short_time)),
            days,
            next,
            Cell::plain(when),
            served,
            last,
            fails,
            Cell::plain(why),
        ]);
    }
    layout(&table, colour)
}

/// Rows of cells as aligned columns, the last one as long as it is.
fn layout(table: &[Vec<Cell>], colour: bool) -> String {
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|col| table.iter().map(|r| r[col].text.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in table {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            let last = col + 1 == row.len();
            let pad = if last {
                0
            } else {
                widths[col] - cell.text.chars().count() + 2
            };
            line.push_str(&cell.paint(colour));
            line.push_str(&" ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What the last check found beyond hapcert's certificates, for `status`: read from `monitor.json`.
#[derive(Debug, Default)]
pub struct WatchedSections {
    /// When the last check ran; none before the first.
    pub checked_at: Option<OffsetDateTime>,
    pub items: Vec<WatchedCheck>,
    pub inventory_error: Option<String>,
    /// `[[watch]]` names the last check did not report (added since).
    pub unchecked: Vec<String>,
}

pub fn collect_watched(config: &Config) -> anyhow::Result<WatchedSections> {
    let last_check = StateDir::at(&config.state.dir.value).load_monitor()?.last_check;
    let Some(last) = last_check else {
        return Ok(WatchedSections {
            unchecked: config.watch.iter().map(|w| w.name.clone()).collect(),
            ..WatchedSections::default()
        });
    };
    let unchecked = config
        .watch
        .iter()
        .filter(|w| {
            !last
                .watched
                .iter()
                .any(|i| i.source == Source::Watch && i.name == w.name)
        })
        .map(|w| w.name.clone())
        .collect();
    Ok(WatchedSections {
        checked_at: Some(last.at),
        items: last.watched,
        inventory_error: last.inventory_error,
        unchecked,
    })
}

/// The sections after the certificates' table: HAProxy's inventory, then the `[[watch]]` endpoints, each as of the
/// last check; nothing when there is neither.
pub fn render_watched(sections: &WatchedSections, now: OffsetDateTime, colour: bool) -> String {
    let at = sections
        .checked_at
        .map_or("never".to_owned(), |at| short_time(&format_rfc3339(at)));
    let mut out = String::new();
    let inventory: Vec<&WatchedCheck> = sections.items.iter().filter(|i| i.source.is_inventory()).collect();
    if let Some(error) = &sections.inventory_error {
        out.push_str(&format!("\nHAProxy inventory (check at {at}): {error}\n"));
    } else if !inventory.is_empty() {
        out.push_str(&format!(
            "\nHAProxy inventory, not managed by hapcert (check at {at}):\n{}",
            watched_table(&inventory, now, colour)
        ));
    }
    let watched: Vec<&WatchedCheck> = sections.items.iter().filter(|i| i.source == Source::Watch).collect();
    if !watched.is_empty() || !sections.unchecked.is_empty() {
        out.push_str(&format!("\nwatched endpoints (check at {at}):\n"));
        if !watched.is_empty() {
            out.push_str(&watched_table(&watched, now, colour));
        }
        for name in &sections.unchecked {
            out.push_str(&format!("{name}: not checked yet; `hapcert check` probes it\n"));
        }
    }
    out
}

fn watched_table(items: &[&WatchedCheck], now: OffsetDateTime, colour: bool) -> String {
    let header = ["NAME", "SOURCE", "STATUS", "NOT AFTER", "DAYS", "WHY"];
    let mut table: Vec<Vec<Cell>> = vec![header.iter().map(|h| Cell::plain(h.to_string())).collect()];
    for item in items {
        let (label, mark) = match item.status {
            0 => ("OK", Mark::Good),
            1 => ("WARNING", Mark::Warn),
            2 => ("CRITICAL", Mark::Bad),
            _ => ("UNKNOWN", Mark::Warn),
        };
        let days = item
            .not_after
            .map_or("-".to_owned(), |at| format!("{:.1}", days_left(at, now)));
        let why = if item.status == 0 {
            String::new()
        } else {
            item.summary.clone()
        };
        table.push(vec![
            Cell::plain(item.name.clone()),
            Cell::plain(item.source.name().to_owned()),
            Cell::marked(label.to_owned(), mark),
            Cell::plain(
                item.not_after
                    .map_or("-".to_owned(), |at| short_time(&format_rfc3339(at))),
            ),
            Cell::plain(days),
            Cell::plain(why),
        ]);
    }
    layout(&table, colour)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    None,
    Good,
    Warn,
    Bad,
}

struct Cell {
    text: String,
    mark: Mark,
}

impl Cell {
    fn plain(text: String) -> Cell {
        Cell { text, mark: Mark::None }
    }

    fn marked(text: String, mark: Mark) -> Cell {
        Cell { text, mark }
    }

    fn paint(&self, colour: bool) -> String {
        let code = match self.mark {
            _ if !colour => return self.text.clone(),
            Mark::None => return self.text.clone(),
            Mark::Good => "32",
            Mark::Warn => "33",
            Mark::Bad => "1;31",
        };
        format!("\x1b[{code}m{}\x1b[0m", self.text)
    }
}

/// "2026-12-20 10:00Z" from RFC 3339: short enough for a table column, unambiguous about the zone.
fn short_time(rfc3339: &str) -> String {
    match OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(at) => {
            let format = format_description!("[year]-[month]-[day] [hour]:[minute]Z");
            at.to_offset(time::UtcOffset::UTC)
                .format(&format)
                .unwrap_or_else(|_| rfc3339.to_owned())
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// One block per certificate, with the whole schedule: for `status --long`; greps well and keeps long texts whole.
pub fn render_long(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let expiry = match (&row.not_after, row.days_left) {
            (Some(at), Some(days)) => format!("{at} ({days:.1} days left)"),
            _ => "-".into(),
        };
        let next = match (&row.waiting, row.due) {
            _ if row.issued_waiting.is_some() => format!(
                "issued, waiting to deploy: serial {} (the next run deploys it without ordering){}",
                row.issued_waiting.as_deref().unwrap_or_default(),
                last_failure(row)
            ),
            (Some(w), _) => format!("due, held back until {}: {}", w.until, w.why),
            (None, true) => "RENEW at the next run".to_owned(),
            (None, false) => format!("renew from {}", row.renew_at.as_deref().unwrap_or("-")),
        };
        let schedule = match row.schedule.source {
            "ari" => format!(
                "ARI window {} to {}, moment picked {}, next check {}{}",
                row.schedule.window_start.as_deref().unwrap_or("-"),
                row.schedule.window_end.as_deref().unwrap_or("-"),
                row.schedule.renew_at.as_deref().unwrap_or("-"),
                row.schedule.next_check.as_deref().unwrap_or("-"),
                row.schedule
                    .explanation_url
                    .as_deref()
                    .map(|u| format!(" (see {u})"))
                    .unwrap_or_default()
            ),
            _ => format!("fallback: {}", row.schedule.fallback_reason.as_deref().unwrap_or("-")),
        };
        let last = match &row.last_result {
            Some(last) if row.consecutive_failures > 1 => format!(
                "{} at {}: {} ({} consecutive failures)",
                last.outcome, last.at, last.message, row.consecutive_failures
            ),
            Some(last) => format!("{} at {}: {}", last.outcome, last.at, last.message),
            None => "none yet".into(),
        };
        out.push_str(&format!(
            "{name}\n  domains:   {domains}\n  key:       {key}\n  file:      {file}\n  serial:    {serial}\n  served:    {served}\n  expires:   {expiry}\n  schedule:  {schedule}\n  next:      {next}\n  why:       {reason}\n  last run:  {last}\n",
            name = row.name,
            domains = row.domains.join(", "),
            key = row.key_type,
            file = row.file,
            serial = row.serial.as_deref().unwrap_or("-"),
            served = served_line(row),
            reason = row.reason,
        ));
    }
    out
}

/// `; its deploy failed: <why>`, from the last run, when that is what it says.
fn last_failure(row: &StatusRow) -> String {
    match &row.last_result {
        Some(last) if last.outcome == crate::core::state::Outcome::Failed => {
            format!("; its deploy failed: {}", last.message)
        }
        _ => String::new(),
    }
}

/// The last run proved the file's certificate served on the wire, after the last check (or with no check yet): that
/// is the newest word on what HAProxy serves.
fn proven_by_run(row: &StatusRow) -> bool {
    let Some(last) = &row.last_result else { return false };
    let proven = last.verified_serial.is_some() && last.verified_serial == row.serial;
    let newer = match (&row.last_check, parse_time(&last.at)) {
        (None, _) => true,
        (Some(check), Some(run)) => parse_time(check).is_none_or(|check| run > check),
        (Some(_), None) => false,
    };
    proven && newer
}

fn parse_time(rfc3339: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(rfc3339, &Rfc3339).ok()
}

fn served_line(row: &StatusRow) -> String {
    let verified = row
        .last_result
        .as_ref()
        .and_then(|r| r.verified_serial.as_deref())
        .map_or("-".to_owned(), |s| format!("{s} (last verified on the wire)"));
    match (row.served_matches_disk, &row.last_check) {
        (Some(true), Some(at)) => format!("{verified}; the check at {at} found it matches the disk"),
        (Some(false), Some(at)) => format!("{verified}; the check at {at} found an endpoint serving another serial"),
        _ => verified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Outcome;

    fn row(name: &str, days_left: f64, due: bool) -> StatusRow {
        StatusRow {
            name: name.into(),
            domains: vec!["example.com".into(), "www.example.com".into()],
            key_type: "ecdsa-p256".into(),
            file: format!("/etc/haproxy/certs/{name}.pem"),
            serial: Some("0a".into()),
            not_after: Some("2026-12-20T10:00:00Z".into()),
            days_left: Some(days_left),
            due,
            renew_at: Some("2026-11-30T10:00:00Z".into()),
            reason: "not due yet".into(),
            schedule: schedule(None, &CertState::default(), None),
            waiting: None,
            consecutive_failures: 0,
            last_result: None,
            served_matches_disk: None,
            last_check: None,
            issued_waiting: None,
        }
    }

    #[test]
    fn served_says_verified_when_the_run_proved_it_after_the_last_check() {
        let verified = |check: Option<&str>, matches: Option<bool>| {
            let mut www = row("www", 80.0, false);
            www.last_result = Some(LastResult {
                at: "2026-11-23T09:00:00Z".into(),
                outcome: Outcome::Renewed,
                serial: Some("0a".into()),
                message: "renewed".into(),
                verified_serial: Some("0a".into()),
            });
            www.last_check = check.map(str::to_owned);
            www.served_matches_disk = matches;
            let table = render_table(&[www], false);
            table
                .lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .nth(10)
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            verified(None, None),
            "verified",
            "no check yet: the run's proof is the word"
        );
        assert_eq!(
            verified(Some("2026-11-23T08:00:00Z"), Some(false)),
            "verified",
            "an older check is stale"
        );
        assert_eq!(
            verified(Some("2026-11-23T10:00:00Z"), Some(false)),
            "DIFFERS",
            "a newer check wins"
        );
        assert_eq!(verified(Some("2026-11-23T10:00:00Z"), Some(true)), "match");
    }

    #[test]
    fn the_table_aligns_columns_and_colours_only_when_asked() {
        let mut failing = row("api", 3.0, true);
        failing.consecutive_failures = 2;
        failing.served_matches_disk = Some(false);
        failing.last_check = Some("2026-11-23T10:00:00Z".into());
        failing.last_result = Some(LastResult {
            at: "2026-11-23T09:00:00Z".into(),
            outcome: Outcome::Failed,
            serial: None,
            message: "the CA said no".into(),
            verified_serial: None,
        });
        failing.waiting = Some(Waiting {
            until: "2026-11-23T11:40:00Z".into(),
            why: "retry in 100 min".into(),
        });
        let rows = [row("www", 27.1, false), failing];

        let plain = render_table(&rows, false);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3, "{plain}");
        let at = |line: &str, word: &str| line.find(word).unwrap_or_else(|| panic!("no {word} in {line}"));
        // Every column starts where its header does.
        assert_eq!(at(lines[0], "DAYS"), at(lines[1], "27.1"));
        assert_eq!(at(lines[0], "DAYS"), at(lines[2], "3.0"));
        assert_eq!(at(lines[0], "WHEN"), at(lines[1], "2026-11-30 10:00Z"));
        assert_eq!(at(lines[0], "SERVED"), at(lines[2], "DIFFERS"));
        assert_eq!(at(lines[0], "FAILS"), at(lines[2], "2 "));
        assert!(lines[1].contains("example.com +1"), "{plain}");
        assert!(lines[2].contains("held back") && lines[2].ends_with("not due yet; held back: retry in 100 min"));
        assert!(!plain.contains('\x1b'));

        let coloured = render_table(&rows, true);
        assert!(coloured.contains("\x1b[1;31mDIFFERS\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[1;31m3.0\x1b[0m"), "{coloured}");
        assert!(
            !coloured.lines().nth(1).unwrap().contains('\x1b'),
            "a healthy row is not marked"
        );
    }

    #[test]
    fn the_watched_sections_list_the_inventory_then_the_endpoints_with_what_is_wrong() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let item = |source, name: &str, status, days: i64| WatchedCheck {
            source,
            name: name.into(),
            status,
            not_after: Some(now + time::Duration::days(days)),
            summary: format!("{name} is in trouble"),
        };
        let sections = WatchedSections {
            checked_at: Some(now),
            items: vec![
                item(Source::HaproxyCert, "/etc/haproxy/certs/shop.pem", 1, 10),
                item(Source::HaproxyCaFile, "/etc/haproxy/ca.pem", 0, 300),
                item(Source::Watch, "backend-api", 2, 3),
            ],
            inventory_error: None,
            unchecked: vec!["mail".into()],
        };
        assert_eq!(
            render_watched(&sections, now, false),
            "\nHAProxy inventory, not managed by hapcert (check at 2026-11-23 12:00Z):\n\
             NAME                         SOURCE           STATUS   NOT AFTER          DAYS   WHY\n\
             /etc/haproxy/certs/shop.pem  haproxy-cert     WARNING  2026-12-03 12:00Z  10.0   /etc/haproxy/certs/shop.pem is in trouble\n\
             /etc/haproxy/ca.pem          haproxy-ca-file  OK       2027-09-19 12:00Z  300.0\n\
             \n\
             watched endpoints (check at 2026-11-23 12:00Z):\n\
             NAME         SOURCE  STATUS    NOT AFTER          DAYS  WHY\n\
             backend-api  watch   CRITICAL  2026-11-26 12:00Z  3.0   backend-api is in trouble\n\
             mail: not checked yet; `hapcert check` probes it\n"
        );
        assert_eq!(render_watched(&WatchedSections::default(), now, false), "");
    }
}
