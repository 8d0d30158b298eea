//! The report as text, in the monitoring-plugin shape: one summary line (`HAPCERT <STATUS> - ... | perfdata`) that
//! Nagios, Icinga or Zabbix show as is, then one block per certificate with a line per file and endpoint. Pure.

use std::fmt::Write;

use time::OffsetDateTime;

use super::judge::{CertReport, CheckReport, EndpointReport, InventoryReport, RunReport, Status, WatchedReport, label};

/// Puts the parts together: the status is the worst of them, and the summary line says so.
pub fn report(
    runs: RunReport,
    certificates: Vec<CertReport>,
    inventory: InventoryReport,
    watched: Vec<WatchedReport>,
    now: OffsetDateTime,
) -> CheckReport {
    let status = certificates
        .iter()
        .map(|cert| cert.status)
        .chain(watched.iter().map(|w| w.status))
        .fold(runs.status.worst(inventory.status), Status::worst);
    let mut report = CheckReport {
        status,
        exit_code: status.code(),
        summary: String::new(),
        checked_at: now,
        runs,
        certificates,
        inventory,
        watched,
    };
    report.summary = summary_line(&report);
    report
}

/// Beyond this many certificates that are fine, the summary counts them instead of naming each.
const OK_NAMED: usize = 5;

/// `HAPCERT CRITICAL - www: ...; api: OK, 80.2 days left | www_days=3.0;30.0;7.0 ...`: the problems first (the runs,
/// then the certificates, worst first), then the certificates that are fine.
pub fn summary_line(report: &CheckReport) -> String {
    let mut parts = Vec::new();
    if report.runs.status != Status::Ok {
        parts.push(format!("runs: {}", report.runs.message));
    }
    // Each troubled one, worst first: hapcert's certificates, the watched endpoints, then HAProxy's inventory. The
    // watched ones' messages name them already.
    let mut troubled: Vec<(Status, String)> = report
        .certificates
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| (c.status, format!("{}: {}", c.name, c.summary)))
        .collect();
    let inventory = &report.inventory;
    if inventory.state == "failed" {
        troubled.push((inventory.status, format!("inventory: {}", inventory.message)));
    }
    let watched = report.watched.iter().chain(&inventory.items);
    troubled.extend(
        watched
            .clone()
            .filter(|w| w.status != Status::Ok)
            .map(|w| (w.status, w.summary.clone())),
    );
    troubled.sort_by_key(|(status, _)| std::cmp::Reverse(status.severity()));
    parts.extend(troubled.into_iter().map(|(_, part)| part));
    let fine: Vec<&CertReport> = report.certificates.iter().filter(|c| c.status == Status::Ok).collect();
    if fine.len() <= OK_NAMED {
        parts.extend(fine.iter().map(|c| format!("{}: {}", c.name, c.summary)));
    } else if let Some(soonest) = fine
        .iter()
        .filter(|c| c.days_left.is_some())
        .min_by(|a, b| a.days_left.partial_cmp(&b.days_left).expect("days are finite"))
    {
        let counted = if parts.is_empty() { "certificates" } else { "more" };
        parts.push(format!(
            "{} {counted} OK (fewest days left: {}, {:.1})",
            fine.len(),
            soonest.name,
            soonest.days_left.unwrap_or_default()
        ));
    }
    let fine_watched: Vec<&WatchedReport> = report.watched.iter().filter(|w| w.status == Status::Ok).collect();
    if fine_watched.len() <= OK_NAMED {
        parts.extend(
            fine_watched
                .iter()
                .map(|w| format!("{}: {}", label(w.source, &w.name), w.summary)),
        );
    } else {
        parts.push(format!("{} watched OK", fine_watched.len()));
    }
    let fine_inventory = inventory.items.iter().filter(|w| w.status == Status::Ok).count();
    if fine_inventory > 0 {
        parts.push(format!("{fine_inventory} unmanaged in HAProxy OK"));
    }
    if parts.is_empty() {
        parts.push("no certificate configured".to_owned());
    }
    let mut line = format!("HAPCERT {} - {}", report.status.label(), parts.join("; "));
    let perfdata = perfdata(report);
    if !perfdata.is_empty() {
        line.push_str(" | ");
        line.push_str(&perfdata);
    }
    // One line, whatever a message holds.
    line.replace(['\n', '\r'], " ")
}

/// `name_days=left;warn;crit` per certificate, and the hours since the last successful run with max_run_age as critical.
fn perfdata(report: &CheckReport) -> String {
    let mut out = Vec::new();
    for cert in &report.certificates {
        if let (Some(left), Some(limits)) = (cert.days_left, cert.thresholds) {
            out.push(format!(
                "{}={left:.1};{:.1};{:.1}",
                perf_label(&format!("{}_days", cert.name)),
                limits.warn_days,
                limits.crit_days
            ));
        }
    }
    for watched in &report.watched {
        if let (Some(left), Some(limits)) = (watched.days_left, watched.thresholds) {
            out.push(format!(
                "{}={left:.1};{:.1};{:.1}",
                perf_label(&format!("watch_{}_days", watched.name)),
                limits.warn_days,
                limits.crit_days
            ));
        }
    }
    if let Some(age) = report.runs.age_hours {
        out.push(format!(
            "last_run_success_age_hours={age:.1};;{:.1}",
            report.runs.max_run_age_hours
        ));
    }
    out.join(" ")
}

/// A perfdata label is quoted when it holds anything but letters, digits, `.`, `-` and `_`.
fn perf_label(label: &str) -> String {
    if label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        label.to_owned()
    } else {
        format!("'{}'", label.replace('\'', "''").replace('=', "_"))
    }
}

/// The lines after the summary: the runs, then per certificate its file, each endpoint, and every problem.
pub fn details(report: &CheckReport) -> String {
    let mut out = String::new();
    let runs = &report.runs;
    let _ = writeln!(out, "runs [{}]: {}", runs.status.label(), runs.message);
    for cert in &report.certificates {
        let _ = writeln!(out, "{} [{}] {}", cert.name, cert.status.label(), cert.names.join(", "));
        let disk = &cert.disk;
        let file_line = match (&disk.serial, &disk.not_after, disk.days_left) {
            (Some(serial), Some(not_after), Some(left)) => {
                let limits = cert
                    .thresholds
                    .map(|t| format!(" (warning below {:.1}, critical below {:.1})", t.warn_days, t.crit_days))
                    .unwrap_or_default();
                format!("serial {serial}, not after {not_after}, {left:.1} days left{limits}")
            }
            _ => format!(
                "{}{}",
                disk.state,
                disk.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        };
        let _ = writeln!(out, "  file {}: {file_line}", cert.file);
        for endpoint in &cert.endpoints {
            let _ = writeln!(out, "  {}", endpoint_line(endpoint, true));
        }
        if let Some(route) = cert.route.as_ref().filter(|r| r.ok) {
            let _ = writeln!(out, "  challenge route [OK]: worked at {}", route.checked_at);
        }
        for problem in &cert.problems {
            let _ = writeln!(out, "  {}: {}", problem.status.label(), problem.message);
        }
    }
    let inventory = &report.inventory;
    let _ = writeln!(out, "inventory [{}]: {}", inventory.status.label(), inventory.message);
    for item in &inventory.items {
        watched_lines(&mut out, item);
    }
    for item in &report.watched {
        watched_lines(&mut out, item);
    }
    out
}

/// One watched thing: its status and dates, each certificate of a CA file, its handshake, its problems.
fn watched_lines(out: &mut String, item: &WatchedReport) {
    let dates = match (item.not_after, item.days_left) {
        (Some(at), Some(left)) => format!(
            "not after {}, {left:.1} days left",
            crate::core::time::format_rfc3339(at)
        ),
        _ => "no date read".to_owned(),
    };
    let _ = writeln!(
        out,
        "{} [{}]: {dates}",
        label(item.source, &item.name),
        item.status.label()
    );
    if item.entries.len() > 1 {
        for entry in &item.entries {
            let _ = writeln!(
                out,
                "  {} [{}]: {}",
                entry.subject.as_deref().unwrap_or("(no subject)"),
                entry.status.label(),
                match (&entry.not_after, entry.days_left) {
                    (Some(at), Some(left)) => format!("not after {at}, {left:.1} days left"),
                    _ => "no date read".to_owned(),
                }
            );
        }
    }
    if let Some(endpoint) = &item.endpoint {
        let _ = writeln!(out, "  {}", endpoint_line(endpoint, false));
    }
    for problem in &item.problems {
        let _ = writeln!(out, "  {}: {}", problem.status.label(), problem.message);
    }
}

/// `127.0.0.1:443 SNI www.example.com [OK]: serial 0a (same as disk), 80.0 days left, chain verifies, name covered`.
/// `managed`: compared with the file on disk (a `[[watch]]` has none).
fn endpoint_line(endpoint: &EndpointReport, managed: bool) -> String {
    let client = if endpoint.client == "any" {
        String::new()
    } else {
        format!(" ({} client)", endpoint.client)
    };
    let facts = match (&endpoint.error, &endpoint.served_serial) {
        (Some(error), _) => error.clone(),
        (None, Some(serial)) => {
            let disk = match endpoint.matches_disk {
                _ if !managed => String::new(),
                Some(true) => " (same as disk)".to_owned(),
                Some(false) => format!(
                    " (DIFFERS from disk {})",
                    endpoint.disk_serial.as_deref().unwrap_or("-")
                ),
                None => " (nothing on disk to compare)".to_owned(),
            };
            let chain = match (endpoint.chain_verifies, &endpoint.chain_error) {
                (Some(true), _) => "chain verifies".to_owned(),
                (Some(false), Some(why)) => format!("chain does NOT verify ({why})"),
                (_, Some(why)) => format!("chain not verified ({why})"),
                _ => "chain not verified".to_owned(),
            };
            let covered = match endpoint.name_covered {
                Some(true) => "name covered",
                Some(false) => "name NOT covered",
                None => "no name checked (an address)",
            };
            format!(
                "serial {serial}{disk}, {:.1} days left, {chain}, {covered}",
                endpoint.days_left.unwrap_or_default()
            )
        }
        (None, None) => "nothing served".to_owned(),
    };
    format!(
        "{} SNI {}{client} [{}]: {facts}",
        endpoint.endpoint,
        endpoint.name,
        endpoint.status.label()
    )
}
