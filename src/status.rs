//! `hapcert status`: per certificate, what is deployed, the next decision with its reason, and the last result. Reads
//! only; it changes nothing and takes no lock.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::config::Config;
use crate::decision::{Local, decide};
use crate::renew::load_on_disk;
use crate::store::{LastResult, StateDir};

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
    pub last_result: Option<LastResult>,
}

pub fn collect(config: &Config, now: OffsetDateTime) -> anyhow::Result<Vec<StatusRow>> {
    let results = StateDir::at(&config.state.dir.value).load_results()?;
    Ok(config
        .certificates
        .iter()
        .map(|spec| {
            let deployed = load_on_disk(spec);
            let decision = decide(spec, &deployed.local, now, false);
            let facts = match &deployed.local {
                Local::Present(facts) => Some(facts),
                _ => None,
            };
            StatusRow {
                name: spec.name.clone(),
                domains: spec.domains.iter().map(|d| d.to_string()).collect(),
                key_type: spec.key_type.to_string(),
                file: spec.file.value.display().to_string(),
                serial: facts.map(|f| f.serial.clone()),
                not_after: facts.map(|f| format_rfc3339(f.not_after)),
                days_left: facts.map(|f| ((f.not_after - now).as_seconds_f64() / 86_400.0 * 10.0).round() / 10.0),
                due: decision.due,
                renew_at: decision.renew_at.map(format_rfc3339),
                reason: decision.reason.to_string(),
                last_result: results.certificates.get(&spec.name).cloned(),
            }
        })
        .collect())
}

/// One block per certificate: fits a terminal, greps well, and keeps long reasons whole.
pub fn render(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let expiry = match (&row.not_after, row.days_left) {
            (Some(at), Some(days)) => format!("{at} ({days:.1} days left)"),
            _ => "-".into(),
        };
        let next = if row.due {
            "RENEW at the next run".to_owned()
        } else {
            format!("renew from {}", row.renew_at.as_deref().unwrap_or("-"))
        };
        let last = match &row.last_result {
            Some(last) => format!("{} at {}: {}", last.outcome, last.at, last.message),
            None => "none yet".into(),
        };
        out.push_str(&format!(
            "{name}\n  domains:   {domains}\n  key:       {key}\n  file:      {file}\n  serial:    {serial}\n  served:    {served}\n  expires:   {expiry}\n  next:      {next}\n  why:       {reason}\n  last run:  {last}\n",
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
