//! What `check` watches beyond hapcert's own certificates, against real parts: HAProxy 2.6's inventory (the
//! certificates, CA file and CRL it loaded, read over its admin socket), a TLS backend served by `openssl s_server`, and
//! an SMTP server with STARTTLS (the harness's sink). Each through the `hapcert` binary: its exit code and lines, the
//! JSON report, the metrics textfile, `status`, a real webhook receiver, and the alert rules under promtool.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::harness::{
    MonitorCa, OpensslServer, Sandbox, SmtpSink, WebhookSink, assert_exit, rfc3339, show, stdout, validity,
};

fn recent_runs(now: OffsetDateTime) -> Value {
    let an_hour_ago = rfc3339(now - Duration::hours(1));
    json!({ "last_run": an_hour_ago, "last_run_success": an_hour_ago })
}

/// The summary line and the JSON report of `check --json`.
fn report(out: &std::process::Output) -> (String, Value) {
    let text = stdout(out);
    let (summary, json) = text
        .split_once('\n')
        .unwrap_or_else(|| panic!("no report: {}", show(out)));
    let report = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON after the summary: {e}\n{text}"));
    (summary.to_owned(), report)
}

/// Each watched item of a report by name: (source, status, summary, days left).
fn items(list: &Value) -> BTreeMap<String, (String, String, String, Option<f64>)> {
    list.as_array()
        .expect("a list of items")
        .iter()
        .map(|item| {
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
            (
                text("name"),
                (
                    text("source"),
                    text("status"),
                    text("summary"),
                    item["days_left"].as_f64(),
                ),
            )
        })
        .collect()
}

fn samples(path: &Path) -> Vec<Sample> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()))
        .samples
}

/// The value of `metric{name, source}`, if there is that series.
fn watched(samples: &[Sample], metric: &str, name: &str, source: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("name") == Some(name) && s.labels.get("source") == Some(source))
        .map(|s| match s.value {
            Metric::Gauge(v) => v,
            ref other => panic!("{metric}: {other:?}"),
        })
}

fn unix(at: OffsetDateTime) -> Option<f64> {
    Some(at.unix_timestamp() as f64)
}

#[test]
fn check_reports_every_certificate_ca_file_and_crl_haproxy_loaded_besides_hapcerts_own() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert inventory test CA");
    let roots = sandbox.dir().join("roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);

    // hapcert's own, and three more in the same directory that nobody told hapcert about.
    sandbox.put_cert(
        "www.pem",
        &ca.issue(&["www.example.com"], now - 10 * day, now + 80 * day),
    );
    let bought = ca.issue(&["shop.example.com"], now - 80 * day, now + 10 * day);
    let bought_path = sandbox.put_cert("bought.pem", &bought);
    let old_path = sandbox.put_cert(
        "old.pem",
        &ca.issue(&["old.example.com"], now - 92 * day, now - 2 * day),
    );
    let fine_path = sandbox.put_cert(
        "fine.pem",
        &ca.issue(&["fine.example.com"], now - 10 * day, now + 80 * day),
    );
    // A client CA file whose first certificate expires in 5 days, and a CRL due again in 20.
    let ca_file = sandbox.dir().join("clients-ca.pem");
    let client_ca = ca.issue(&["client-ca.example.com"], now - 85 * day, now + 5 * day);
    fs::write(&ca_file, format!("{}{}", client_ca.cert_pem, ca.root_pem)).unwrap();
    let crl_file = sandbox.dir().join("clients.crl");
    fs::write(&crl_file, ca.crl(now - 10 * day, now + 20 * day)).unwrap();
    let cfg = sandbox.haproxy_cfg_text();
    let bind = format!(
        " ssl ca-file {} crl-file {} verify optional crt ",
        ca_file.display(),
        crl_file.display()
    );
    sandbox.set_haproxy_cfg(&cfg.replacen(" ssl crt ", &bind, 1));
    sandbox.reload_haproxy();
    // HAProxy's own default certificate is the first `crt` of the bind line.
    let default_pem = cfg
        .split(" ssl crt ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the bind line's default certificate")
        .to_owned();
    sandbox.write_state(&recent_runs(now));

    let textfile = sandbox.dir().join("hapcert.prom");
    let config = |check: &str| {
        let extra = format!("{check}\n[metrics]\ntextfile = {:?}\n", textfile.display().to_string());
        let text = sandbox.check_config(
            &[sandbox.https_endpoint()],
            &roots.display().to_string(),
            &extra,
            &[("www", "www.example.com")],
        );
        let socket = format!(
            "[haproxy]\nruntime_api = {:?}\n",
            sandbox.haproxy_admin_sock().display().to_string()
        );
        sandbox.write_config_text(&text.replacen("[haproxy]\n", &socket, 1));
    };

    config("");
    let out = sandbox.hapcert(&["check", "--json"]);
    assert_exit(&out, 2);
    let (summary, json) = report(&out);
    let path = |p: &Path| p.display().to_string();
    assert!(
        summary.starts_with(&format!(
            "HAPCERT CRITICAL - unmanaged certificate {} expired 2.0 days ago",
            path(&old_path)
        )),
        "{}",
        show(&out)
    );
    assert_eq!(json["inventory"]["state"], "read", "{json:#}");
    let found = items(&json["inventory"]["items"]);
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    let mut expected = vec![
        path(&bought_path),
        path(&old_path),
        path(&fine_path),
        default_pem.clone(),
        path(&ca_file),
        path(&crl_file),
    ];
    expected.sort();
    assert_eq!(
        names, expected,
        "hapcert's own www.pem is not in the inventory; everything else is"
    );

    let (source, status, said, days) = &found[&path(&bought_path)];
    assert_eq!(
        (source.as_str(), status.as_str(), *days),
        ("haproxy-cert", "WARNING", Some(10.0))
    );
    assert!(
        said.starts_with(&format!(
            "unmanaged certificate {} expires in 10.0 days",
            path(&bought_path)
        )),
        "{said}"
    );
    assert!(said.contains("hapcert does not manage it"), "{said}");
    let (_, status, said, _) = &found[&path(&old_path)];
    assert_eq!(status, "CRITICAL", "{said}");
    assert_eq!(found[&path(&fine_path)].1, "OK");
    assert_eq!(
        found[&default_pem].1, "OK",
        "the default certificate counts too: {:?}",
        found[&default_pem]
    );
    let (source, status, said, days) = &found[&path(&ca_file)];
    assert_eq!(
        (source.as_str(), status.as_str(), *days),
        ("haproxy-ca-file", "CRITICAL", Some(5.0))
    );
    assert!(
        said.contains("the certificate /CN=client-ca.example.com expires in 5.0 days"),
        "{said}"
    );
    let (source, status, _, days) = &found[&path(&crl_file)];
    assert_eq!(
        (source.as_str(), status.as_str(), *days),
        ("haproxy-crl-file", "OK", Some(20.0))
    );
    assert_eq!(
        json["certificates"][0]["status"], "OK",
        "hapcert's own certificate is judged as before"
    );

    // The same in the metrics textfile, and in `status`.
    let metrics = samples(&textfile);
    let at = |p: &Path| watched(&metrics, "hapcert_watched_status", &path(p), "haproxy-cert");
    assert_eq!(
        (at(&bought_path), at(&old_path), at(&fine_path)),
        (Some(1.0), Some(2.0), Some(0.0))
    );
    assert_eq!(
        watched(
            &metrics,
            "hapcert_watched_not_after_seconds",
            &path(&bought_path),
            "haproxy-cert"
        ),
        unix(validity(&bought.leaf_der).1)
    );
    assert_eq!(
        watched(&metrics, "hapcert_watched_status", &path(&ca_file), "haproxy-ca-file"),
        Some(2.0)
    );
    let status = sandbox.hapcert(&["status"]);
    assert_exit(&status, 0);
    let text = stdout(&status);
    assert!(text.contains("HAProxy inventory, not managed by hapcert"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&path(&bought_path)))
        .expect("a line for bought.pem");
    assert!(line.contains("haproxy-cert") && line.contains("WARNING"), "{line}");

    // `warn` keeps the inventory below CRITICAL; ignore_paths leaves old.pem out.
    config("unmanaged = \"warn\"\nignore_paths = [\"*/old.pem\"]");
    let out = sandbox.hapcert(&["check", "--json"]);
    assert_exit(&out, 1);
    let (_, json) = report(&out);
    let found = items(&json["inventory"]["items"]);
    assert!(!found.contains_key(&path(&old_path)), "{found:?}");
    assert_eq!(found[&path(&ca_file)].1, "WARNING");
    let message = json["inventory"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("(1 more left out by [check] ignore_paths)"),
        "{message}"
    );

    // `ignore` does not ask HAProxy at all.
    config("unmanaged = \"ignore\"");
    let out = sandbox.hapcert(&["check", "--json"]);
    assert_exit(&out, 0);
    let (_, json) = report(&out);
    assert_eq!(json["inventory"]["state"], "ignored");
}

#[test]
fn a_watched_backend_and_an_smtp_server_drive_check_metrics_status_and_a_resolved_notification() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert internal CA");
    let roots = sandbox.dir().join("internal-ca.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    sandbox.put_cert(
        "www.pem",
        &ca.issue(&["www.example.com"], now - 10 * day, now + 80 * day),
    );
    sandbox.reload_haproxy();
    sandbox.write_state(&recent_runs(now));

    // A backend whose certificate expires in 3 days, and a mail server with STARTTLS.
    let expiring = ca.issue(&["backend.internal"], now - 87 * day, now + 3 * day);
    let mut backend = OpensslServer::start(sandbox.dir(), &expiring.pem);
    let mail_cert = ca.issue(&["mail.example.com"], now - 10 * day, now + 80 * day);
    let mail = SmtpSink::serving(&mail_cert.pem);
    let sink = WebhookSink::start();
    let textfile = sandbox.dir().join("hapcert.prom");
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let roots_path = roots.display().to_string();
    let extra = format!(
        "[metrics]\ntextfile = {textfile}\n\n[[notify]]\nkind = \"webhook\"\nurl = {url}\n\n\
         [[watch]]\nname = \"backend\"\nendpoint = {backend}\nsni = \"backend.internal\"\nca_bundle = {roots}\n\n\
         [[watch]]\nname = \"mail\"\nendpoint = {mail}\nsni = \"mail.example.com\"\nstarttls = \"smtp\"\nca_bundle = {roots}\n",
        textfile = q(&textfile.display().to_string()),
        url = q(&sink.url()),
        backend = q(&backend.endpoint()),
        mail = q(&format!("127.0.0.1:{}", mail.port())),
        roots = q(&roots_path),
    );
    let text = sandbox.check_config(
        &[sandbox.https_endpoint()],
        &roots_path,
        &extra,
        &[("www", "www.example.com")],
    );
    sandbox.write_config_text(&text);

    let out = sandbox.hapcert(&["check", "--json"]);
    assert_exit(&out, 2);
    let (summary, json) = report(&out);
    let serial = crate::harness::serial_hex(&expiring.leaf_der);
    assert!(
        summary.starts_with(&format!(
            "HAPCERT CRITICAL - watch backend {} (SNI backend.internal) sends serial {serial} which expires in 3.0 days",
            backend.endpoint()
        )),
        "{}",
        show(&out)
    );
    assert!(summary.contains("watch mail: OK, 80.0 days left"), "{summary}");
    assert!(
        summary.contains("watch_backend_days=3.0;"),
        "perfdata for the watched: {summary}"
    );
    let found = items(&json["watched"]);
    assert_eq!(found["backend"].1, "CRITICAL");
    assert_eq!(found["mail"].1, "OK", "{:?}", found["mail"]);
    let mail_endpoint = &json["watched"][1]["endpoint"];
    assert_eq!(mail_endpoint["chain_verifies"], true, "{mail_endpoint:#}");
    assert_eq!(mail_endpoint["name_covered"], true, "{mail_endpoint:#}");

    let posts = sink.bodies();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        (
            &posts[0]["event"],
            &posts[0]["status"],
            &posts[0]["certificate"],
            &posts[0]["source"]
        ),
        (&json!("critical"), &json!("firing"), &json!("backend"), &json!("watch"))
    );

    let metrics = samples(&textfile);
    assert_eq!(
        watched(&metrics, "hapcert_watched_status", "backend", "watch"),
        Some(2.0)
    );
    assert_eq!(watched(&metrics, "hapcert_watched_status", "mail", "watch"), Some(0.0));
    assert_eq!(
        watched(&metrics, "hapcert_watched_not_after_seconds", "backend", "watch"),
        unix(validity(&expiring.leaf_der).1)
    );
    assert_eq!(
        watched(&metrics, "hapcert_watched_not_after_seconds", "mail", "watch"),
        unix(validity(&mail_cert.leaf_der).1)
    );
    let status = stdout(&sandbox.hapcert(&["status"]));
    assert!(status.contains("watched endpoints"), "{status}");
    let line = status
        .lines()
        .find(|l| l.starts_with("backend "))
        .expect("a line for the backend");
    assert!(line.contains("CRITICAL") && line.contains("3.0"), "{line}");

    // The backend gets a fresh certificate: OK, and the webhook hears that it resolved.
    let fresh = ca.issue(&["backend.internal"], now - day, now + 89 * day);
    backend.restart(&fresh.pem);
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    let posts = sink.bodies();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert_eq!(
        (
            &posts[1]["event"],
            &posts[1]["status"],
            &posts[1]["certificate"],
            &posts[1]["source"]
        ),
        (
            &json!("critical"),
            &json!("resolved"),
            &json!("backend"),
            &json!("watch")
        )
    );
    let metrics = samples(&textfile);
    assert_eq!(
        watched(&metrics, "hapcert_watched_status", "backend", "watch"),
        Some(0.0)
    );
    assert_eq!(
        watched(&metrics, "hapcert_watched_not_after_seconds", "backend", "watch"),
        unix(validity(&fresh.leaf_der).1)
    );
}

/// deploy/hapcert-alerts.yml passes `promtool check rules`, and its rules for watched certificates fire as meant, by
/// promtool's own rule tests: a backend 3 days from expiry, a CRL due in 3 days (left to the status rule), and a
/// CRITICAL status.
#[test]
fn the_alert_rules_pass_promtool_and_fire_for_watched_certificates() {
    let promtool = std::env::var("HAPCERT_PROMTOOL").unwrap_or_else(|_| {
        panic!("HAPCERT_PROMTOOL is not set: run scripts/test, which unpacks promtool into target/tools/prometheus")
    });
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hapcert-alerts.yml");
    let check = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {promtool}: {e}; run scripts/test, which unpacks promtool into target/tools/prometheus")
        });
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let dir = tempfile::tempdir().unwrap();
    let three_days = 3 * 86_400 + 7_200;
    let tests = format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hapcert_watched_not_after_seconds{{name="backend",source="watch",instance="lb1"}}'
        values: '{three_days}x180'
      - series: 'hapcert_watched_not_after_seconds{{name="/etc/haproxy/clients.crl",source="haproxy-crl-file",instance="lb1"}}'
        values: '{three_days}x180'
      - series: 'hapcert_watched_status{{name="backend",source="watch",instance="lb1"}}'
        values: '2x180'
    alert_rule_test:
      - eval_time: 2h
        alertname: HapcertWatchedCertificateExpiresVerySoon
        exp_alerts:
          - exp_labels: {{severity: critical, name: backend, source: watch, instance: lb1}}
            exp_annotations:
              summary: "watch backend on lb1 expires in 3d 0h 0m 0s"
              description: "Less than a week left on a certificate hapcert does not renew. When it expires, clients (or HAProxy's health checks, for a backend) refuse it. `hapcert check` on the host says which and where."
      - eval_time: 2h
        alertname: HapcertWatchedCritical
        exp_alerts:
          - exp_labels: {{severity: critical, name: backend, source: watch, instance: lb1}}
            exp_annotations:
              summary: "watch backend on lb1 is CRITICAL"
              description: "At the last `hapcert check`: expired or about to, a CRL past its Next Update, or for a [[watch]] endpoint a failed handshake, a chain that does not verify or a name not covered. Run `hapcert check` on the host: its lines name the file or endpoint and the fix."
"#,
        rules = rules.display()
    );
    let file = dir.path().join("tests.yml");
    fs::write(&file, tests).unwrap();
    let run = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
