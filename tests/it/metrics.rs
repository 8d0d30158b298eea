//! The metrics textfile after a `check` against a real HAProxy, with a doctored `state.json` whose counters are known:
//! parsed as a scraper parses it, every series holds the value that state calls for.

use std::fs;

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::harness::{MonitorCa, Sandbox, assert_exit, file_mode, rfc3339, show, validity};

fn value(samples: &[Sample], metric: &str, label: Option<(&str, &str)>) -> f64 {
    let found = samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
    match found.map(|s| &s.value) {
        Some(Value::Gauge(v)) | Some(Value::Counter(v)) | Some(Value::Untyped(v)) => *v,
        other => panic!("{metric} {label:?}: {other:?} in {samples:#?}"),
    }
}

#[test]
fn the_textfile_holds_every_series_with_the_values_of_a_known_state() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert metrics test CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let textfile = sandbox.dir().join("node-exporter").join("hapcert.prom");
    fs::create_dir(textfile.parent().unwrap()).unwrap();

    // 90-day lifetimes, so the lifetime rule's renewal moment is 30 days before expiry, to the second.
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    let good = ca.issue(&["good.example.com"], now - 10 * day, now + 80 * day);
    let loaded = ca.issue(&["differ.example.com"], now - 10 * day, now + 80 * day);
    let renewed = ca.issue(&["differ.example.com"], now - day, now + 89 * day);
    sandbox.put_cert("good.pem", &good);
    sandbox.put_cert("differ.pem", &loaded);
    sandbox.reload_haproxy();
    sandbox.put_cert("differ.pem", &renewed);

    let success = now - Duration::hours(3);
    sandbox.write_state(&json!({
        "last_run": rfc3339(now - Duration::hours(1)),
        "last_run_success": rfc3339(success),
        "renewals": { "success": 5, "failure": 2 },
        "certificates": { "differ": { "failures": { "consecutive": 3 } } },
    }));
    let extra = format!("[metrics]\ntextfile = {:?}\n", textfile.display().to_string());
    let certs = [("good", "good.example.com"), ("differ", "differ.example.com")];
    sandbox.write_config_text(&sandbox.check_config(
        &[sandbox.https_endpoint()],
        &roots.display().to_string(),
        &extra,
        &certs,
    ));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);

    assert_eq!(file_mode(&textfile), 0o644, "node_exporter must read it");
    let text = fs::read_to_string(&textfile).unwrap();
    let samples = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("the textfile does not parse: {e}\n{text}"))
        .samples;
    let good_name = Some(("name", "good"));
    let differ_name = Some(("name", "differ"));
    let unix = |at: OffsetDateTime| at.unix_timestamp() as f64;
    let (_, good_not_after) = validity(&good.leaf_der);
    let (_, differ_not_after) = validity(&renewed.leaf_der);

    assert_eq!(
        value(&samples, "hapcert_certificate_not_after_seconds", good_name),
        unix(good_not_after),
        "{text}"
    );
    assert_eq!(
        value(&samples, "hapcert_certificate_not_after_seconds", differ_name),
        unix(differ_not_after)
    );
    assert_eq!(
        value(&samples, "hapcert_certificate_renewal_due_seconds", good_name),
        unix(good_not_after - 30 * day),
        "{text}"
    );
    assert_eq!(
        value(&samples, "hapcert_certificate_renewal_due_seconds", differ_name),
        unix(differ_not_after - 30 * day)
    );
    assert_eq!(
        value(&samples, "hapcert_certificate_served_matches_disk", good_name),
        1.0
    );
    assert_eq!(
        value(&samples, "hapcert_certificate_served_matches_disk", differ_name),
        0.0
    );
    assert_eq!(
        value(&samples, "hapcert_last_run_success_timestamp_seconds", None),
        success.unix_timestamp() as f64
    );
    assert_eq!(
        value(&samples, "hapcert_renewals_total", Some(("result", "success"))),
        5.0
    );
    assert_eq!(
        value(&samples, "hapcert_renewals_total", Some(("result", "failure"))),
        2.0
    );
    assert_eq!(value(&samples, "hapcert_consecutive_failures", good_name), 0.0);
    assert_eq!(value(&samples, "hapcert_consecutive_failures", differ_name), 3.0);
    assert_eq!(value(&samples, "hapcert_check_status", None), 2.0);
    assert_eq!(value(&samples, "hapcert_certificate_check_status", good_name), 0.0);
    assert_eq!(value(&samples, "hapcert_certificate_check_status", differ_name), 2.0);
    assert!(value(&samples, "hapcert_last_check_timestamp_seconds", None) >= now.unix_timestamp() as f64);
    assert!(
        text.contains("# TYPE hapcert_renewals_total counter\n"),
        "{text}\n{}",
        show(&out)
    );
}
