//! Notifications end to end: the real sources (`hapcert check` against a real HAProxy 2.6, `hapcert renew` against
//! Pebble or an unreachable CA, the dead-man's switch on `state.json`) through the real `hapcert` binary to a real
//! webhook receiver on loopback. Each step counts exactly the POSTs that arrived and reads their `event`, `status` and
//! `certificate`: a new condition is told once, a repeat within `repeat` is held back, and its end is told once as
//! `resolved`.
//!
//! Every `hapcert` here delivers before it exits, so the sink holds every POST once the command has returned: no waits.

use std::fs;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::harness::{
    MonitorCa, Sandbox, WebhookSink, assert_exit, closed_port, frontend_redirect_shadowing, leaf_der_from_pem_file,
    rfc3339, serial_hex, show, stdout,
};

/// A `[[notify]]` webhook table; `extra` adds keys (`events`, `repeat`).
fn webhook_table(sink: &WebhookSink, extra: &str) -> String {
    format!(
        "\n[[notify]]\nkind = \"webhook\"\nurl = {}\n{extra}\n",
        serde_json::to_string(&sink.url()).unwrap()
    )
}

/// A state.json whose last run succeeded an hour ago: the dead-man's switch stays quiet.
fn recent_runs(now: OffsetDateTime) -> Value {
    let an_hour_ago = rfc3339(now - Duration::hours(1));
    json!({ "last_run": an_hour_ago, "last_run_success": an_hour_ago })
}

/// The bodies the sink has received, after checking that there are exactly `count` of them, all POSTed as JSON.
#[track_caller]
fn exactly(sink: &WebhookSink, count: usize, context: &str) -> Vec<Value> {
    let requests = sink.requests();
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert_eq!(
        bodies.len(),
        count,
        "{context}: expected {count} POST(s), got {}: {bodies:#?}",
        bodies.len()
    );
    for request in &requests {
        assert_eq!(request.method, "POST", "{context}");
        assert_eq!(request.header("content-type"), Some("application/json"), "{context}");
    }
    bodies
}

/// (event, status, certificate) of a payload.
fn triple(body: &Value) -> (&str, &str, Value) {
    (
        body["event"].as_str().unwrap_or_else(|| panic!("no event in {body}")),
        body["status"].as_str().unwrap_or_else(|| panic!("no status in {body}")),
        body["certificate"].clone(),
    )
}

#[test]
fn a_check_alerts_once_holds_back_the_repeat_and_announces_the_recovery() {
    let sandbox = Sandbox::start();
    let sink = WebhookSink::start();
    let ca = MonitorCa::new("hapcert alerts test CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();

    // What a deploy whose reload never happened leaves behind: HAProxy serves one certificate, the disk has another.
    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    let loaded = ca.issue(&["differ.example.com"], now - 10 * day, now + 80 * day);
    let renewed = ca.issue(&["differ.example.com"], now - day, now + 89 * day);
    sandbox.put_cert("differ.pem", &loaded);
    sandbox.reload_haproxy();
    sandbox.put_cert("differ.pem", &renewed);
    let (loaded_serial, renewed_serial) = (serial_hex(&loaded.leaf_der), serial_hex(&renewed.leaf_der));
    assert_eq!(sandbox.served_leaf_unverified("differ.example.com"), loaded.leaf_der);
    sandbox.write_state(&recent_runs(now));

    // The default repeat (24 h): nothing in this test may be told twice.
    let config = sandbox.check_config(
        &[sandbox.https_endpoint()],
        &roots.display().to_string(),
        "",
        &[("differ", "differ.example.com")],
    );
    sandbox.write_config_text(&(config + &webhook_table(&sink, "")));

    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    assert!(
        stdout(&out).starts_with("HAPCERT CRITICAL - differ: "),
        "{}",
        show(&out)
    );
    let bodies = exactly(&sink, 1, "the first CRITICAL check");
    let alert = &bodies[0];
    assert_eq!(triple(alert), ("critical", "firing", json!("differ")), "{alert:#}");
    assert_eq!(alert["names"], json!(["differ.example.com"]), "{alert:#}");
    assert_eq!(alert["served_serial"], loaded_serial.as_str(), "{alert:#}");
    assert_eq!(alert["expected_serial"], renewed_serial.as_str(), "{alert:#}");
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.starts_with("differ: ")
            && message.contains(&format!("serves serial {loaded_serial} but disk has {renewed_serial}")),
        "{alert:#}"
    );
    assert!(
        alert["text"].as_str().unwrap().contains("] CRITICAL differ: differ: "),
        "{alert:#}"
    );

    // The same condition right after: the repeat interval has not passed.
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    exactly(&sink, 1, "the second CRITICAL check");

    // The reload that was missed: HAProxy now serves what the disk has.
    sandbox.reload_haproxy();
    assert_eq!(sandbox.served_leaf_unverified("differ.example.com"), renewed.leaf_der);
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("HAPCERT OK - differ: OK, "), "{}", show(&out));
    let bodies = exactly(&sink, 2, "the check that found it fixed");
    let resolved = &bodies[1];
    assert_eq!(
        triple(resolved),
        ("critical", "resolved", json!("differ")),
        "{resolved:#}"
    );
    assert_eq!(resolved["served_serial"], Value::Null, "{resolved:#}");
    assert_eq!(resolved["days_left"], Value::Null, "{resolved:#}");
    assert!(
        resolved["message"]
            .as_str()
            .unwrap()
            .starts_with("critical has cleared (it was: differ: "),
        "{resolved:#}"
    );

    // Over is over: nothing more, and the ledger has forgotten it.
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    exactly(&sink, 2, "the check after the recovery");
    let conditions = &sandbox.monitor_json()["notifications"]["conditions"];
    assert_eq!(conditions, &json!({}), "{conditions:#}");
}

#[test]
fn a_failed_renewal_alerts_and_the_renewal_that_works_resolves_it_and_is_announced() {
    let sandbox = Sandbox::start();
    let alerts = WebhookSink::start();
    let renewals = WebhookSink::start();
    let channels = webhook_table(&alerts, "") + &webhook_table(&renewals, "events = [\"renewed\"]");
    let site = "\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n";
    let good_config = sandbox.base_config() + site + &channels;
    sandbox.write_config_text(&good_config);
    let pem = sandbox.cert_dir().join("site.pem");

    // The first issuance: announced to the channel that wants renewals only.
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let first_serial = serial_hex(&leaf_der_from_pem_file(&pem));
    exactly(&alerts, 0, "the first issuance, to the default channel");
    let bodies = exactly(&renewals, 1, "the first issuance, to the renewals channel");
    assert_eq!(
        triple(&bodies[0]),
        ("renewed", "firing", json!("site")),
        "{:#}",
        bodies[0]
    );
    assert_eq!(bodies[0]["served_serial"], first_serial.as_str());

    // The CA cannot be reached: a directory on a port nothing listens on (the account is made afresh for it, so the
    // failure is the account's; each such run spends a few seconds on hapcert's retries).
    let closed = format!("https://127.0.0.1:{}/dir", closed_port());
    sandbox.write_config_text(&good_config.replace(&sandbox.acme_directory(), &closed));
    let refused = format!("{closed}: client error (Connect): tcp connect error: Connection refused");
    let out = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("FAILED    site: ") && stdout(&out).contains(&refused),
        "{}",
        show(&out)
    );
    let bodies = exactly(&alerts, 1, "the failed renewal, to the default channel");
    let failed = &bodies[0];
    assert_eq!(
        triple(failed),
        ("renewal-failed", "firing", json!("site")),
        "{failed:#}"
    );
    assert_eq!(failed["names"], json!(["a.example.com"]), "{failed:#}");
    assert_eq!(failed["served_serial"], first_serial.as_str(), "{failed:#}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with("site: renewal failed: ") && message.contains(&refused),
        "{failed:#}"
    );
    exactly(&renewals, 1, "the failed renewal, to the renewals channel");

    // Failing again at once: the same condition, within the repeat interval.
    let out = sandbox.hapcert(&["renew", "--force", "--ignore-retry-after", "site"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("FAILED    site: ") && stdout(&out).contains(&refused),
        "{}",
        show(&out)
    );
    exactly(&alerts, 1, "the second failed renewal, to the default channel");
    exactly(&renewals, 1, "the second failed renewal, to the renewals channel");

    // The CA is back; the retry schedule may hold a plain run back, so by hand, past it.
    sandbox.write_config_text(&good_config);
    let out = sandbox.hapcert(&["renew", "--force", "--ignore-retry-after", "site"]);
    assert_exit(&out, 0);
    let second_serial = serial_hex(&leaf_der_from_pem_file(&pem));
    assert_ne!(second_serial, first_serial);
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), second_serial);
    let bodies = exactly(&alerts, 2, "the renewal that worked, to the default channel");
    let resolved = &bodies[1];
    assert_eq!(
        triple(resolved),
        ("renewal-failed", "resolved", json!("site")),
        "{resolved:#}"
    );
    assert!(
        resolved["message"]
            .as_str()
            .unwrap()
            .starts_with("renewal-failed has cleared (it was: site: renewal failed: "),
        "{resolved:#}"
    );
    let bodies = exactly(&renewals, 2, "the renewal that worked, to the renewals channel");
    assert_eq!(
        triple(&bodies[1]),
        ("renewed", "firing", json!("site")),
        "{:#}",
        bodies[1]
    );
    assert_eq!(bodies[1]["served_serial"], second_serial.as_str());

    // A run with nothing due acts on nothing: it neither repeats nor resolves anything.
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    exactly(&alerts, 2, "a run with nothing due, to the default channel");
    exactly(&renewals, 2, "a run with nothing due, to the renewals channel");
    let conditions = &sandbox.monitor_json()["notifications"]["conditions"];
    assert_eq!(conditions, &json!({}), "{conditions:#}");
}

#[test]
fn the_dead_mans_switch_alerts_once_without_a_certificate_and_resolves() {
    let sandbox = Sandbox::start();
    let sink = WebhookSink::start();
    let ca = MonitorCa::new("hapcert alerts test CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let now = OffsetDateTime::now_utc();
    sandbox.put_cert(
        "good.pem",
        &ca.issue(
            &["good.example.com"],
            now - Duration::days(10),
            now + Duration::days(80),
        ),
    );
    sandbox.reload_haproxy();
    let config = sandbox.check_config(
        &[sandbox.https_endpoint()],
        &roots.display().to_string(),
        "",
        &[("good", "good.example.com")],
    );
    sandbox.write_config_text(&(config + &webhook_table(&sink, "")));

    // The timer stopped 40 hours ago; max_run_age is 36 h by default.
    let stopped = rfc3339(now - Duration::hours(40));
    sandbox.write_state(&json!({ "last_run": stopped, "last_run_success": stopped }));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    assert!(
        stdout(&out).starts_with("HAPCERT CRITICAL - runs: last successful run was 40.0 h ago ("),
        "{}",
        show(&out)
    );
    let bodies = exactly(&sink, 1, "the check that found the runs overdue");
    let overdue = &bodies[0];
    assert_eq!(triple(overdue), ("run-overdue", "firing", Value::Null), "{overdue:#}");
    assert_eq!(overdue["names"], json!([]), "{overdue:#}");
    let message = overdue["message"].as_str().unwrap();
    assert!(
        message.starts_with("last successful run was 40.0 h ago (") && message.contains("max_run_age 36h"),
        "{overdue:#}"
    );
    assert!(
        overdue["text"]
            .as_str()
            .unwrap()
            .contains("] RUN-OVERDUE hapcert: last successful run"),
        "{overdue:#}"
    );

    // Still overdue: held back.
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    exactly(&sink, 1, "the second overdue check");

    // A run succeeds again.
    sandbox.write_state(&recent_runs(now));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    let bodies = exactly(&sink, 2, "the check after a successful run");
    assert_eq!(
        triple(&bodies[1]),
        ("run-overdue", "resolved", Value::Null),
        "{:#}",
        bodies[1]
    );

    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    exactly(&sink, 2, "the check after the recovery");
}

/// `monitor.json`'s last try of `name`'s challenge route.
fn route_of(sandbox: &Sandbox, name: &str) -> Value {
    let text = fs::read_to_string(sandbox.state_dir().join("monitor.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["routes"][name].clone()
}

/// Issue 18: a challenge route broken after issuance showed only when the renewal window opened. Now the next check
/// tries it (a real HTTP-01 preflight through HAProxy's port 80), says WARNING with the preflight's finding, and tells
/// it as a condition of its own, resolved once the route works again; a working route is tried once a day.
#[test]
fn a_challenge_route_broken_after_issuance_warns_at_the_next_check_and_resolves_once_fixed() {
    let sandbox = Sandbox::start();
    let sink = WebhookSink::start();
    sandbox.write_config(&[("www", &["www.example.com"])]);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let config = fs::read_to_string(sandbox.config_path()).unwrap() + &webhook_table(&sink, "");
    sandbox.write_config_text(&config);

    // After issuance, a redirect comes to shadow the challenge path.
    let working = sandbox.http_frontend();
    sandbox.set_http_frontend(&frontend_redirect_shadowing(&sandbox.ports()));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    let line = stdout(&out).lines().next().unwrap_or_default().to_owned();
    assert!(
        line.starts_with("HAPCERT WARNING - www: the challenge route is broken, so the next renewal would fail: ")
            && line.contains("with a redirect to https://www.example.com/"),
        "{}",
        show(&out)
    );
    let bodies = exactly(&sink, 1, "the check that found the route broken");
    assert_eq!(
        triple(&bodies[0]),
        ("challenge-route", "firing", json!("www")),
        "{:#}",
        bodies[0]
    );
    assert!(
        bodies[0]["message"]
            .as_str()
            .unwrap()
            .contains("with a redirect to https://www.example.com/"),
        "{:#}",
        bodies[0]
    );
    let broken = route_of(&sandbox, "www");
    assert!(broken["problem"].is_string(), "{broken}");

    // Still broken: tried again at once, and not told twice within the repeat interval.
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    exactly(&sink, 1, "the check that found it still broken");
    assert_ne!(
        route_of(&sandbox, "www")["at"],
        broken["at"],
        "a broken route is tried at every check"
    );

    // Fixed: OK, and the condition resolves on its own.
    sandbox.set_http_frontend(&working);
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("  challenge route [OK]: worked at "),
        "{}",
        show(&out)
    );
    let bodies = exactly(&sink, 2, "the check that found the route fixed");
    assert_eq!(
        triple(&bodies[1]),
        ("challenge-route", "resolved", json!("www")),
        "{:#}",
        bodies[1]
    );

    // A working route is not fetched again within the day.
    let worked = route_of(&sandbox, "www");
    assert!(worked.get("problem").is_none(), "{worked}");
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    assert_eq!(
        route_of(&sandbox, "www"),
        worked,
        "the route was tried again within the day"
    );
}
