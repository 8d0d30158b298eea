//! `hapcert check` against a real HAProxy 2.6: each case's exit code and summary line, the JSON report, what
//! `monitor.json` keeps, and the dead-man's switch on a doctored `state.json`. The certificates come from small CAs made
//! here; HAProxy serves them from the sandbox's cert directory.

use std::fs;
use std::process::Output;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::harness::{MonitorCa, Sandbox, assert_exit, closed_port, rfc3339, serial_hex, show, stdout};

fn first_line(out: &Output) -> String {
    stdout(out).lines().next().unwrap_or_default().to_owned()
}

fn assert_line_starts(out: &Output, start: &str) {
    assert!(
        first_line(out).starts_with(start),
        "expected a summary line starting with\n{start}\n{}",
        show(out)
    );
}

fn recent_runs(now: OffsetDateTime) -> Value {
    let an_hour_ago = rfc3339(now - Duration::hours(1));
    json!({ "last_run": an_hour_ago, "last_run_success": an_hour_ago })
}

#[test]
fn check_gives_each_case_its_exit_code_and_summary_against_a_real_haproxy() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert check test CA");
    let other = MonitorCa::new("another CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let roots = roots.display().to_string();

    let now = OffsetDateTime::now_utc();
    let day = Duration::days(1);
    let good = ca.issue(&["good.example.com"], now - 10 * day, now + 80 * day);
    let near = ca.issue(&["near.example.com"], now - 70 * day, now + 20 * day);
    let expired = ca.issue(&["expired.example.com"], now - 92 * day, now - 2 * day);
    let loaded = ca.issue(&["differ.example.com"], now - 10 * day, now + 80 * day);
    let renewed = ca.issue(&["differ.example.com"], now - day, now + 89 * day);
    let foreign = other.issue(&["foreign.example.com"], now - 10 * day, now + 80 * day);
    for (file, cert) in [
        ("good.pem", &good),
        ("near.pem", &near),
        ("expired.pem", &expired),
        ("differ.pem", &loaded),
        ("foreign.pem", &foreign),
    ] {
        sandbox.put_cert(file, cert);
    }
    sandbox.reload_haproxy();
    // What a deploy whose reload never happened leaves behind: a new file HAProxy has not loaded.
    sandbox.put_cert("differ.pem", &renewed);
    assert_eq!(
        sandbox.served_leaf_unverified("expired.example.com"),
        expired.leaf_der,
        "HAProxy serves the expired certificate"
    );
    sandbox.write_state(&recent_runs(now));

    let https = sandbox.https_endpoint();
    let check = |certs: &[(&str, &str)], endpoints: &[String], args: &[&str]| {
        sandbox.write_config_text(&sandbox.check_config(endpoints, &roots, "", certs));
        sandbox.hapcert(args)
    };
    let on_haproxy = std::slice::from_ref(&https);
    let good_cert = ("good", "good.example.com");

    // All good.
    let out = check(&[good_cert], on_haproxy, &["check"]);
    assert_exit(&out, 0);
    assert_eq!(
        first_line(&out),
        "HAPCERT OK - good: OK, 80.0 days left | good_days=80.0;30.0;7.0 last_run_success_age_hours=1.0;;36.0",
        "{}",
        show(&out)
    );
    let table = stdout(&sandbox.hapcert(&["status"]));
    let row = table.lines().find(|l| l.starts_with("good ")).expect(&table);
    assert!(row.contains(" match "), "{table}");
    let details = stdout(&out);
    assert!(
        details.contains("runs [OK]: last successful run 1.0 h ago"),
        "{details}"
    );
    assert!(
        details.contains(&format!(
            "  {https} SNI good.example.com [OK]: serial {} (same as disk), 80.0 days left, chain verifies, name covered",
            serial_hex(&good.leaf_der)
        )),
        "{details}"
    );

    // Near expiry: a third of its 90 days is left no more.
    let out = check(&[good_cert, ("near", "near.example.com")], on_haproxy, &["check"]);
    assert_exit(&out, 1);
    assert_line_starts(&out, "HAPCERT WARNING - near: expires in 20.0 days (");
    assert!(
        first_line(&out).contains("within the warning threshold of 30.0 days"),
        "{}",
        show(&out)
    );
    assert!(
        first_line(&out).contains("; good: OK, 80.0 days left |"),
        "{}",
        show(&out)
    );

    // Expired, and served all the same.
    let out = check(&[("expired", "expired.example.com")], on_haproxy, &["check"]);
    assert_exit(&out, 2);
    assert_line_starts(&out, "HAPCERT CRITICAL - expired: expired 2.0 days ago (");

    // Disk and wire disagree.
    let out = check(&[("differ", "differ.example.com")], on_haproxy, &["check"]);
    assert_exit(&out, 2);
    assert_line_starts(
        &out,
        &format!(
            "HAPCERT CRITICAL - differ: {https} (SNI differ.example.com) serves serial {} but disk has {}",
            serial_hex(&loaded.leaf_der),
            serial_hex(&renewed.leaf_der)
        ),
    );
    // The operator's table shows what the check found.
    let table = stdout(&sandbox.hapcert(&["status"]));
    let row = table.lines().find(|l| l.starts_with("differ ")).expect(&table);
    assert!(row.contains(" DIFFERS "), "{table}");

    // A chain from a CA that is not in ca_bundle.
    let out = check(&[("foreign", "foreign.example.com")], on_haproxy, &["check"]);
    assert_exit(&out, 2);
    assert_line_starts(
        &out,
        &format!(
            "HAPCERT CRITICAL - foreign: {https} (SNI foreign.example.com): the served chain does not verify: it does \
             not lead to a root in ca_bundle {roots}"
        ),
    );

    // The endpoint is down: the connect error is in the line.
    let down = format!("127.0.0.1:{}", closed_port());
    let out = check(&[good_cert], std::slice::from_ref(&down), &["check"]);
    assert_exit(&out, 2);
    assert_line_starts(
        &out,
        &format!(
            "HAPCERT CRITICAL - good: {down} (SNI good.example.com): HAProxy is not listening on {down}; if it binds \
             another address, set [check] endpoints"
        ),
    );

    // --json: the summary line, then the report.
    let out = check(
        &[good_cert, ("differ", "differ.example.com")],
        on_haproxy,
        &["check", "--json"],
    );
    assert_exit(&out, 2);
    let text = stdout(&out);
    let (summary, json) = text.split_once('\n').unwrap();
    assert!(summary.starts_with("HAPCERT CRITICAL - differ: "), "{}", show(&out));
    let report: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON after the summary: {e}\n{text}"));
    assert_eq!(report["status"], "CRITICAL");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["summary"], summary);
    assert_eq!(report["runs"]["status"], "OK");
    let certs = report["certificates"].as_array().unwrap();
    let (good_report, differ) = (&certs[0], &certs[1]);
    assert_eq!(good_report["name"], "good");
    assert_eq!(good_report["status"], "OK");
    assert_eq!(good_report["endpoints"][0]["matches_disk"], true);
    assert_eq!(differ["name"], "differ");
    assert_eq!(differ["status"], "CRITICAL");
    assert_eq!(differ["disk"]["state"], "present");
    assert_eq!(differ["disk"]["serial"], serial_hex(&renewed.leaf_der));
    assert_eq!(differ["disk"]["days_left"], 89.0);
    assert_eq!(differ["thresholds"], json!({ "warn_days": 30.0, "crit_days": 7.0 }));
    let wire = &differ["endpoints"][0];
    assert_eq!(wire["endpoint"], https.as_str());
    assert_eq!(wire["name"], "differ.example.com");
    assert_eq!(wire["client"], "any");
    assert_eq!(wire["status"], "CRITICAL");
    assert_eq!(wire["error"], Value::Null);
    assert_eq!(wire["served_serial"], serial_hex(&loaded.leaf_der));
    assert_eq!(wire["disk_serial"], serial_hex(&renewed.leaf_der));
    assert_eq!(wire["matches_disk"], false);
    assert_eq!(wire["days_left"], 80.0);
    assert_eq!(wire["chain_verifies"], true);
    assert_eq!(wire["name_covered"], true);
    assert_eq!(differ["problems"][0]["status"], "CRITICAL");

    // The result is remembered for status, the metrics and the notifications.
    let last = &sandbox.monitor_json()["last_check"];
    assert_eq!(last["status"], 2);
    assert_eq!(last["certificates"]["good"]["status"], 0);
    assert_eq!(last["certificates"]["good"]["served_matches_disk"], true);
    assert_eq!(last["certificates"]["differ"]["status"], 2);
    assert_eq!(last["certificates"]["differ"]["served_matches_disk"], false);
}

#[test]
fn the_dead_mans_switch_trips_when_the_last_successful_run_is_too_old() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert check test CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let roots = roots.display().to_string();
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
    let https = [sandbox.https_endpoint()];
    let certs = [("good", "good.example.com")];
    let check = |extra: &str| {
        sandbox.write_config_text(&sandbox.check_config(&https, &roots, extra, &certs));
        sandbox.hapcert(&["check"])
    };

    // The timer stopped 40 hours ago.
    let stopped = rfc3339(now - Duration::hours(40));
    sandbox.write_state(&json!({ "last_run": stopped, "last_run_success": stopped }));
    let out = check("");
    assert_exit(&out, 2);
    let line = first_line(&out);
    assert!(
        line.starts_with("HAPCERT CRITICAL - runs: last successful run was 40.0 h ago ("),
        "{}",
        show(&out)
    );
    assert!(line.contains("longer than max_run_age 36h"), "{}", show(&out));
    assert!(line.contains("systemctl status hapcert.timer"), "{}", show(&out));
    assert!(line.contains("journalctl -u hapcert"), "{}", show(&out));
    assert!(line.contains("; good: OK, 80.0 days left |"), "{}", show(&out));
    assert!(
        line.ends_with("last_run_success_age_hours=40.0;;36.0"),
        "{}",
        show(&out)
    );

    // Within a longer max_run_age it is fine.
    let out = check("max_run_age = \"48h\"");
    assert_exit(&out, 0);
    assert_line_starts(&out, "HAPCERT OK - good: OK, 80.0 days left |");

    // Runs that keep failing trip it too, and the line says the last one did not succeed.
    sandbox.write_state(&json!({ "last_run": rfc3339(now - Duration::hours(2)), "last_run_success": stopped }));
    let out = check("");
    assert_exit(&out, 2);
    assert!(
        first_line(&out).contains("the last run, 2.0 h ago, did not succeed"),
        "{}",
        show(&out)
    );

    // A recent success: no complaint.
    sandbox.write_state(&recent_runs(now));
    let out = check("");
    assert_exit(&out, 0);
    assert_line_starts(&out, "HAPCERT OK - good: OK, 80.0 days left |");

    // No run ever recorded.
    fs::remove_file(sandbox.state_dir().join("state.json")).unwrap();
    let out = check("");
    assert_exit(&out, 2);
    assert_line_starts(
        &out,
        "HAPCERT CRITICAL - runs: no successful run recorded yet: run `hapcert run`",
    );
}

#[test]
fn dual_certificates_issued_by_pebble_are_checked_as_each_kind_of_client() {
    let sandbox = Sandbox::start();
    let roots = sandbox.dir().join("pebble-root.pem");
    fs::write(&roots, sandbox.pebble_root_pem()).unwrap();
    let dual =
        "[[certificate]]\nname = \"dual\"\ndomains = [\"d.example.com\"]\nkey_types = [\"ecdsa-p256\", \"rsa-2048\"]\n";
    let config = sandbox.check_config(&[sandbox.https_endpoint()], &roots.display().to_string(), "", &[]);
    sandbox.write_config_text(&format!("{config}\n{dual}"));
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    // The run leaves its state; the dead-man's switch is not what this test is about.
    let path = sandbox.state_dir().join("state.json");
    let mut state: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    state["last_run_success"] = json!(rfc3339(OffsetDateTime::now_utc()));
    sandbox.write_state(&state);

    let out = sandbox.hapcert(&["check", "--json"]);
    assert_exit(&out, 0);
    assert_line_starts(&out, "HAPCERT OK - dual.ecdsa: OK, ");
    let text = stdout(&out);
    let report: Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
    for (cert, client) in report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["ecdsa-only", "rsa-only"])
    {
        let wire = &cert["endpoints"][0];
        assert_eq!(wire["client"], client, "{cert:#}");
        assert_eq!(wire["matches_disk"], true, "{cert:#}");
        assert_eq!(wire["chain_verifies"], true, "{cert:#}");
    }
}

/// Issue 18: an HAProxy bound to one address is named once, in `[haproxy] verify`; `check` probes it there, and a
/// refused connection, in `check` and in `run`, names the key to set.
#[test]
fn haproxy_verify_alone_moves_the_check_and_a_refused_connection_names_it() {
    let sandbox = Sandbox::start();
    let ca = MonitorCa::new("hapcert check test CA");
    let roots = sandbox.dir().join("check-roots.pem");
    fs::write(&roots, &ca.root_pem).unwrap();
    let now = OffsetDateTime::now_utc();
    let good = ca.issue(
        &["good.example.com"],
        now - Duration::days(10),
        now + Duration::days(80),
    );
    sandbox.put_cert("good.pem", &good);
    sandbox.reload_haproxy();
    sandbox.write_state(&recent_runs(now));
    let https = sandbox.https_endpoint();
    // No [check] endpoints: the base config's [haproxy] verify is HAProxy's TLS frontend.
    let config = format!(
        "{}\n[check]\nca_bundle = {:?}\n\n[[certificate]]\nname = \"good\"\ndomains = [\"good.example.com\"]\n",
        sandbox.base_config(),
        roots.display().to_string()
    );
    assert!(config.contains(&format!("verify = [\"{https}\"]")), "{config}");
    sandbox.write_config_text(&config);
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "  {https} SNI good.example.com [OK]: serial {}",
            serial_hex(&good.leaf_der)
        )),
        "{}",
        show(&out)
    );
    let summary = stdout(&sandbox.hapcert(&["check-config"]));
    assert!(
        summary.contains(&format!(
            "monitor:     `hapcert check` probes {https} (from [haproxy] verify)"
        )),
        "{summary}"
    );

    // HAProxy binds another address than the one written: one message, naming the one key.
    let down = format!("127.0.0.1:{}", closed_port());
    let moved = config.replace(&format!("verify = [\"{https}\"]"), &format!("verify = [\"{down}\"]"));
    sandbox.write_config_text(&moved);
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    let wanted = format!("HAProxy is not listening on {down}; if it binds another address, set [haproxy] verify");
    assert_line_starts(
        &out,
        &format!("HAPCERT CRITICAL - good: {down} (SNI good.example.com): {wanted}"),
    );
    let out = sandbox.hapcert(&["check-config"]);
    assert!(
        stdout(&out).contains(&format!("verify:      WARNING: {wanted}")),
        "{}",
        show(&out)
    );

    // A run with a certificate due says the same before it orders anything.
    let due = format!("{moved}\n[[certificate]]\nname = \"new\"\ndomains = [\"new.example.com\"]\n");
    sandbox.write_config_text(&due);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    assert!(
        show(&out).contains(&format!("preflight failed, nothing was ordered: {wanted}")),
        "{}",
        show(&out)
    );
    assert!(
        !sandbox.pebble_log().contains("Added order"),
        "{}",
        sandbox.pebble_log()
    );
}
