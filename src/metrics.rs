//! Prometheus metrics: rendered from what hapcert remembers (`state.json`, `monitor.json`) and the files on disk, in
//! the text exposition format; written for node_exporter's textfile collector, and served by the daemon.
//!
//! [`snapshot`] gathers (I/O), [`render_snapshot`] writes the text (pure).

use std::fmt::Write;

use anyhow::Context;
use time::OffsetDateTime;

use crate::core::config::{Config, FileOwner};
use crate::core::decision::Local;
use crate::core::schedule::Overrides;
use crate::core::state::State;
use crate::core::state::StateStorage;
use crate::core::state::monitor::{LastCheck, WatchedCheck};
use crate::core::survey::survey;
use crate::edge::store::StateDir;
use crate::edge::store::facts_cache::FactsCache;

/// Everything the metrics say, gathered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// In config order.
    pub certificates: Vec<CertificateMetrics>,
    pub last_run: Option<OffsetDateTime>,
    pub last_run_success: Option<OffsetDateTime>,
    pub renewals_success: u64,
    pub renewals_failure: u64,
    /// The last check: when, and its status (0..3).
    pub last_check: Option<(OffsetDateTime, u8)>,
    /// What the last check watched beyond hapcert's certificates: HAProxy's inventory and `[[watch]]`.
    pub watched: Vec<WatchedCheck>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertificateMetrics {
    pub name: String,
    /// Of the certificate on disk; none when there is no usable one.
    pub not_after: Option<OffsetDateTime>,
    /// When the renewal is (or was) due; none when there is no usable certificate.
    pub renewal_due: Option<OffsetDateTime>,
    pub consecutive_failures: u32,
    /// From the last check; none when it had no answer to compare, or no check ran.
    pub served_matches_disk: Option<bool>,
    /// The certificate's status in the last check (0..3).
    pub check_status: Option<u8>,
}

/// The metrics text for `config` at `now`, from the files: what the daemon's `/metrics` serves, whoever last changed
/// them (a run by hand, a check).
pub fn render(config: &Config, now: OffsetDateTime) -> anyhow::Result<String> {
    Ok(render_snapshot(&snapshot(config, now)?))
}

/// Writes the metrics to `[metrics] textfile` after a check: from the files, as [`render`].
pub fn write_textfile(config: &Config, now: OffsetDateTime) {
    if config.metrics.textfile.is_some() {
        write_text(config, snapshot(config, now).map(|s| render_snapshot(&s)));
    }
}

/// Writes the metrics to `[metrics] textfile` after a run, from the state it saved and what its files hold now
/// (`on_disk`, in config order): only the last check is read from its file.
pub fn write_textfile_after_run(config: &Config, state: &State, on_disk: &[Local], now: OffsetDateTime) {
    if config.metrics.textfile.is_some() {
        let store = StateDir::at(&config.state.dir.value);
        let text = store
            .load_monitor()
            .map(|monitor| render_snapshot(&gather(config, state, on_disk, monitor.last_check.as_ref(), now)));
        write_text(config, text);
    }
}

/// Writes `text` to `[metrics] textfile`, atomically. A failure is logged, never returned: metrics must not fail a run
/// or a check.
fn write_text(config: &Config, text: anyhow::Result<String>) {
    let Some(textfile) = &config.metrics.textfile else {
        return;
    };
    let path = &textfile.value;
    let written = text.and_then(|text| {
        // 0644: node_exporter runs as its own user and must read it; nothing in it is secret.
        crate::edge::store::write_atomic(path, text.as_bytes(), 0o644, FileOwner::default())
            .with_context(|| format!("cannot write {} ([metrics] textfile)", path.display()))
    });
    if let Err(err) = written {
        tracing::warn!("metrics not written: {err:#}");
    }
}

/// Reads the state, the last check and each certificate file. A damaged `state.json` or `monitor.json` is an error:
/// metrics made up of defaults would say "all is well".
pub fn snapshot(config: &Config, now: OffsetDateTime) -> anyhow::Result<Snapshot> {
    let store = StateDir::at(&config.state.dir.value);
    let state = store.load_state()?;
    let monitor = store.load_monitor()?;
    // Read only: the runs keep the cache up to date.
    let mut facts_cache = FactsCache::load(&store);
    let on_disk: Vec<Local> = config
        .certificates
        .iter()
        .map(|spec| facts_cache.local(&spec.file.value))
        .collect();
    Ok(gather(config, &state, &on_disk, monitor.last_check.as_ref(), now))
}

/// What the metrics say of the state, the files (`on_disk`, in config order) and the last check. Pure.
pub fn gather(
    config: &Config,
    state: &State,
    on_disk: &[Local],
    last_check: Option<&LastCheck>,
    now: OffsetDateTime,
) -> Snapshot {
    let surveyed = survey(
        config.certificates.iter().zip(on_disk),
        state,
        Some(&config.acme.directory),
        now,
        Overrides::default(),
    );
    let certificates = surveyed
        .iter()
        .map(|entry| {
            let decision = &entry.decision;
            // Due for a reason other than time (names changed, revoked): due now. Without a certificate, `renew_at` is
            // none.
            let renewal_due = match decision.renew_at {
                Some(at) if decision.due => Some(at.min(now)),
                at => at,
            };
            let name = &entry.spec.name;
            let checked = last_check.and_then(|c| c.certificates.get(name));
            CertificateMetrics {
                name: name.clone(),
                not_after: entry.local.facts().map(|f| f.not_after),
                renewal_due,
                consecutive_failures: entry.remembered.failures.consecutive,
                served_matches_disk: checked.and_then(|c| c.served_matches_disk),
                check_status: checked.map(|c| c.status),
            }
        })
        .collect();
    Snapshot {
        certificates,
        last_run: state.last_run,
        last_run_success: state.last_run_success,
        renewals_success: state.renewals.get("success").copied().unwrap_or(0),
        renewals_failure: state.renewals.get("failure").copied().unwrap_or(0),
        last_check: last_check.map(|c| (c.at, c.status)),
        watched: last_check.map(|c| c.watched.clone()).unwrap_or_default(),
    }
}

/// The text exposition format (version 0.0.4): a HELP and a TYPE line for every family, then its samples.
pub fn render_snapshot(snapshot: &Snapshot) -> String {
    let mut out = Metrics::default();
    let certs = &snapshot.certificates;

    out.per_certificate(
        "hapcert_certificate_not_after_seconds",
        "When the certificate on disk expires, in Unix time.",
        certs,
        |c| c.not_after.map(|at| at.unix_timestamp()),
    );
    out.per_certificate(
        "hapcert_certificate_renewal_due_seconds",
        "When the certificate on disk is (or was) due for renewal, in Unix time: the CA's ARI moment or the lifetime rule.",
        certs,
        |c| c.renewal_due.map(|at| at.unix_timestamp()),
    );
    out.per_certificate(
        "hapcert_certificate_served_matches_disk",
        "1 when every endpoint served the certificate on disk at the last check, 0 when one served another; absent when \
         none answered.",
        certs,
        |c| c.served_matches_disk.map(i64::from),
    );
    out.per_certificate(
        "hapcert_certificate_check_status",
        "The certificate's status at the last check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        certs,
        |c| c.check_status.map(i64::from),
    );
    out.per_certificate(
        "hapcert_consecutive_failures",
        "Failed renewal attempts of the certificate since its last success.",
        certs,
        |c| Some(i64::from(c.consecutive_failures)),
    );
    out.family(
        "hapcert_last_run_success_timestamp_seconds",
        "gauge",
        "When the last run in which nothing failed ended, in Unix time; 0 when none is recorded.",
    );
    out.sample("", snapshot.last_run_success.map_or(0, |at| at.unix_timestamp()));
    out.family(
        "hapcert_last_run_timestamp_seconds",
        "gauge",
        "When the last run ended, whatever its outcome, in Unix time; 0 when none is recorded.",
    );
    out.sample("", snapshot.last_run.map_or(0, |at| at.unix_timestamp()));
    out.family("hapcert_renewals_total", "counter", "Renewals attempted, by result.");
    out.sample(
        "{result=\"success\"}",
        i64::try_from(snapshot.renewals_success).unwrap_or(i64::MAX),
    );
    out.sample(
        "{result=\"failure\"}",
        i64::try_from(snapshot.renewals_failure).unwrap_or(i64::MAX),
    );
    out.family(
        "hapcert_check_status",
        "gauge",
        "The status of the last check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; absent before the first check.",
    );
    if let Some((_, status)) = snapshot.last_check {
        out.sample("", i64::from(status));
    }
    out.family(
        "hapcert_last_check_timestamp_seconds",
        "gauge",
        "When the last check ran, in Unix time; 0 when none has.",
    );
    out.sample("", snapshot.last_check.map_or(0, |(at, _)| at.unix_timestamp()));
    out.per_watched(
        "hapcert_watched_not_after_seconds",
        "When a certificate hapcert watches and does not issue expires, in Unix time, at the last check: source \
         haproxy-cert (loaded by HAProxy), haproxy-ca-file (its earliest certificate), haproxy-crl-file (its Next \
         Update), or watch (a [[watch]] endpoint).",
        &snapshot.watched,
        |w| w.not_after.map(|at| at.unix_timestamp()),
    );
    out.per_watched(
        "hapcert_watched_status",
        "The status of a watched certificate, CA file, CRL or endpoint at the last check: 0 OK, 1 WARNING, 2 \
         CRITICAL, 3 UNKNOWN.",
        &snapshot.watched,
        |w| Some(i64::from(w.status)),
    );
    out.text
}

/// The fleet's families, from what the daemon's watch sees: whether the store is up, the live nodes, and per
/// certificate how many nodes acknowledged serving its current serial.
pub fn render_fleet(store_up: bool, nodes_alive: usize, serving: &[(String, usize)]) -> String {
    let mut out = Metrics::default();
    out.family(
        "hapcert_fleet_store_up",
        "gauge",
        "Whether this node's watch on the fleet's store (etcd) is up.",
    );
    out.sample("", i64::from(store_up));
    out.family(
        "hapcert_fleet_nodes_alive",
        "gauge",
        "Fleet nodes whose membership lease is alive.",
    );
    out.sample("", nodes_alive as i64);
    out.family(
        "hapcert_fleet_certificate_nodes_serving",
        "gauge",
        "Fleet nodes that acknowledged serving the certificate's current serial, proven on the wire.",
    );
    for (certificate, nodes) in serving {
        out.sample(
            &format!("{{certificate=\"{}\"}}", escape_label(certificate)),
            *nodes as i64,
        );
    }
    out.text
}

#[derive(Default)]
struct Metrics {
    text: String,
    family: &'static str,
}

impl Metrics {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A sample of the current family; `labels` is "" or a whole `{...}`.
    fn sample(&mut self, labels: &str, value: i64) {
        let _ = writeln!(self.text, "{}{labels} {value}", self.family);
    }

    fn named(&mut self, name: &str, value: i64) {
        self.sample(&format!("{{name=\"{}\"}}", escape_label(name)), value);
    }

    /// A gauge with one sample per watched thing that has a `value`, labelled with its name and source.
    fn per_watched(
        &mut self,
        name: &'static str,
        help: &str,
        watched: &[WatchedCheck],
        value: impl Fn(&WatchedCheck) -> Option<i64>,
    ) {
        self.family(name, "gauge", help);
        for item in watched {
            if let Some(value) = value(item) {
                let labels = format!(
                    "{{name=\"{}\",source=\"{}\"}}",
                    escape_label(&item.name),
                    item.source.name()
                );
                self.sample(&labels, value);
            }
        }
    }

    /// A gauge with one sample per certificate that has a `value`, labelled with its name.
    fn per_certificate(
        &mut self,
        name: &'static str,
        help: &str,
        certs: &[CertificateMetrics],
        value: impl Fn(&CertificateMetrics) -> Option<i64>,
    ) {
        self.family(name, "gauge", help);
        for cert in certs {
            if let Some(value) = value(cert) {
                self.named(&cert.name, value);
            }
        }
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// HELP text escapes backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::monitor::Source;
    use time::macros::datetime;

    fn known_state() -> Snapshot {
        Snapshot {
            certificates: vec![
                CertificateMetrics {
                    name: "www".into(),
                    not_after: Some(datetime!(2027-01-01 00:00 UTC)),
                    renewal_due: Some(datetime!(2026-12-01 00:00 UTC)),
                    consecutive_failures: 2,
                    served_matches_disk: Some(false),
                    check_status: Some(2),
                },
                CertificateMetrics {
                    name: "odd\"name\\".into(),
                    not_after: None,
                    renewal_due: None,
                    consecutive_failures: 0,
                    served_matches_disk: None,
                    check_status: None,
                },
            ],
            last_run: Some(datetime!(2026-11-23 12:00 UTC)),
            last_run_success: Some(datetime!(2026-11-22 12:00 UTC)),
            renewals_success: 7,
            renewals_failure: 0,
            last_check: Some((datetime!(2026-11-23 12:05 UTC), 2)),
            watched: vec![
                WatchedCheck {
                    source: Source::Watch,
                    name: "backend-api".into(),
                    status: 2,
                    not_after: Some(datetime!(2026-11-26 12:00 UTC)),
                    summary: "expires in 3.0 days".into(),
                },
                WatchedCheck {
                    source: Source::HaproxyCaFile,
                    name: "/etc/haproxy/ca.pem".into(),
                    status: 3,
                    not_after: None,
                    summary: "HAProxy did not say".into(),
                },
            ],
        }
    }

    fn samples(text: &str) -> Vec<prometheus_parse::Sample> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("parses").samples
    }

    fn value(samples: &[prometheus_parse::Sample], metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{metric}: {other:?}"),
            })
    }

    #[test]
    fn every_series_of_a_known_state() {
        let text = render_snapshot(&known_state());
        let samples = samples(&text);
        let www = Some(("name", "www"));
        let at = |t: OffsetDateTime| Some(t.unix_timestamp() as f64);
        assert_eq!(
            value(&samples, "hapcert_certificate_not_after_seconds", www),
            at(datetime!(2027-01-01 00:00 UTC))
        );
        assert_eq!(
            value(&samples, "hapcert_certificate_renewal_due_seconds", www),
            at(datetime!(2026-12-01 00:00 UTC))
        );
        assert_eq!(
            value(&samples, "hapcert_certificate_served_matches_disk", www),
            Some(0.0)
        );
        assert_eq!(value(&samples, "hapcert_certificate_check_status", www), Some(2.0));
        assert_eq!(value(&samples, "hapcert_consecutive_failures", www), Some(2.0));
        assert_eq!(
            value(&samples, "hapcert_last_run_success_timestamp_seconds", None),
            at(datetime!(2026-11-22 12:00 UTC))
        );
        assert_eq!(
            value(&samples, "hapcert_renewals_total", Some(("result", "success"))),
            Some(7.0)
        );
        assert_eq!(
            value(&samples, "hapcert_renewals_total", Some(("result", "failure"))),
            Some(0.0)
        );
        assert_eq!(value(&samples, "hapcert_check_status", None), Some(2.0));

        // Watched ones are labelled with their source; one without a date has only its status.
        let watched = |metric: &str, name: &str, source: &str| {
            samples
                .iter()
                .find(|s| {
                    s.metric == metric && s.labels.get("name") == Some(name) && s.labels.get("source") == Some(source)
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) => v,
                    ref other => panic!("{metric}: {other:?}"),
                })
        };
        assert_eq!(
            watched("hapcert_watched_not_after_seconds", "backend-api", "watch"),
            at(datetime!(2026-11-26 12:00 UTC))
        );
        assert_eq!(watched("hapcert_watched_status", "backend-api", "watch"), Some(2.0));
        assert_eq!(
            watched(
                "hapcert_watched_not_after_seconds",
                "/etc/haproxy/ca.pem",
                "haproxy-ca-file"
            ),
            None
        );
        assert_eq!(
            watched("hapcert_watched_status", "/etc/haproxy/ca.pem", "haproxy-ca-file"),
            Some(3.0)
        );

        // A certificate with nothing on disk and no check has only its failure count; its name is escaped.
        let odd: Vec<&str> = text.lines().filter(|l| l.contains("odd")).collect();
        assert_eq!(
            odd,
            ["hapcert_consecutive_failures{name=\"odd\\\"name\\\\\"} 0"],
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_and_nothing_recorded_reads_as_zero_or_absent() {
        let text = render_snapshot(&Snapshot::default());
        for family in [
            "hapcert_certificate_not_after_seconds",
            "hapcert_certificate_renewal_due_seconds",
            "hapcert_certificate_served_matches_disk",
            "hapcert_last_run_success_timestamp_seconds",
            "hapcert_renewals_total",
            "hapcert_consecutive_failures",
            "hapcert_check_status",
            "hapcert_watched_not_after_seconds",
            "hapcert_watched_status",
        ] {
            assert!(text.contains(&format!("# HELP {family} ")), "{family}\n{text}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}\n{text}");
        }
        assert!(text.contains("# TYPE hapcert_renewals_total counter"));
        let samples = samples(&text);
        assert_eq!(
            value(&samples, "hapcert_last_run_success_timestamp_seconds", None),
            Some(0.0)
        );
        assert_eq!(value(&samples, "hapcert_check_status", None), None);
        assert_eq!(
            value(&samples, "hapcert_renewals_total", Some(("result", "failure"))),
            Some(0.0)
        );
    }
}
