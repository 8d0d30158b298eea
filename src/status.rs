//! `hapcert status`: per certificate, what is deployed, the next decision with its reason, and the last result. Reads
//! only; it changes nothing and takes no lock.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::ari::{AriWindow, RenewalInfo};
use crate::config::Config;
use crate::decision::decide;
use crate::pem::CertFacts;
use crate::renew::load_on_disk;
use crate::schedule::{Gate, Overrides};
use crate::store::{CertState, LastResult, StateDir};

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
    let state = StateDir::at(&config.state.dir.value).load_state()?;
    let none = CertState::default();
    Ok(config
        .certificates
        .iter()
        .map(|spec| {
            let deployed = load_on_disk(spec);
            let remembered = state.certificates.get(&spec.name).unwrap_or(&none);
            let facts = deployed.local.facts();
            let known = remembered.known(facts);
            let decision = decide(spec, &deployed.local, known, now, false);
            let names: Vec<String> = spec.domains.iter().map(|d| d.to_string()).collect();
            let waiting = match state.gate(spec, now, Overrides::default()) {
                Gate::Wait { until, why } if decision.due => Some(Waiting {
                    until: format_rfc3339(until),
                    why: why.to_string(),
                }),
                _ => None,
            };
            StatusRow {
                name: spec.name.clone(),
                domains: names,
                key_type: spec.key_type.to_string(),
                file: spec.file.value.display().to_string(),
                serial: facts.map(|f| f.serial.clone()),
                not_after: facts.map(|f| format_rfc3339(f.not_after)),
                days_left: facts.map(|f| ((f.not_after - now).as_seconds_f64() / 86_400.0 * 10.0).round() / 10.0),
                due: decision.due,
                renew_at: decision.renew_at.map(format_rfc3339),
                reason: decision.reason.to_string(),
                schedule: schedule(facts, remembered, known.window),
                waiting,
                consecutive_failures: remembered.failures.consecutive,
                last_result: remembered.last.clone(),
            }
        })
        .collect())
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

/// One block per certificate: fits a terminal, greps well, and keeps long reasons whole.
pub fn render(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let expiry = match (&row.not_after, row.days_left) {
            (Some(at), Some(days)) => format!("{at} ({days:.1} days left)"),
            _ => "-".into(),
        };
        let next = match (&row.waiting, row.due) {
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
            served = row.last_result.as_ref().and_then(|r| r.verified_serial.as_deref()).map_or("-".to_owned(), |s| format!("{s} (last verified on the wire)")),
            reason = row.reason,
        ));
    }
    out
}

/// "2026-04-01 00:00:00 UTC", for messages.
pub fn format_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// RFC 3339, for state files and JSON.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}
