//! `hapcert daemon` against a real Pebble and HAProxy: it renews a short-lived certificate by itself, serves /metrics
//! and /healthz, survives a broken config on SIGHUP and takes a fixed one, and on SIGTERM mid-order leaves the deployed
//! PEM as it was.

use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::{
    HttpResponse, Sandbox, SandboxOptions, assert_exit, free_port, leaf_der_from_pem_file, serial_hex, try_http_get,
    validity,
};

fn certificate(name: &str, domains: &[&str]) -> String {
    let domains: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "\n[[certificate]]\nname = {name:?}\ndomains = [{}]\n",
        domains.join(", ")
    )
}

fn daemon_table(metrics_port: u16, extra: &str) -> String {
    format!("\n[daemon]\nlisten = \"127.0.0.1:{metrics_port}\"\njitter = \"0s\"\n{extra}")
}

fn get(port: u16, path: &str) -> Option<HttpResponse> {
    try_http_get(&format!("http://127.0.0.1:{port}{path}")).ok()
}

/// The serial HAProxy hands out for `sni`, without verifying anything: an expired certificate is still an answer.
fn served_serial(sandbox: &Sandbox, sni: &str) -> String {
    serial_hex(&sandbox.served_leaf_unverified(sni))
}

fn disk_serial(sandbox: &Sandbox, name: &str) -> Option<String> {
    let path = sandbox.cert_dir().join(format!("{name}.pem"));
    path.exists().then(|| serial_hex(&leaf_der_from_pem_file(&path)))
}

#[test]
fn the_daemon_renews_a_short_lived_certificate_by_itself_and_serves_metrics_and_health() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        cert_validity_secs: Some(90),
        ..Default::default()
    });
    let metrics_port = free_port();
    let config = sandbox.base_config()
        + &daemon_table(metrics_port, "probe_interval = \"10s\"\n")
        + &certificate("site", &["a.example.com"]);
    sandbox.write_config_text(&config);
    let mut daemon = sandbox.start_daemon(&[]);

    daemon.wait_for("the first certificate served", Duration::from_secs(60), |_| {
        disk_serial(&sandbox, "site").is_some_and(|disk| served_serial(&sandbox, "a.example.com") == disk)
    });
    let first = disk_serial(&sandbox, "site").unwrap();

    // Healthy from the start (a new daemon has max_run_age for its first successful run); once the first pass has
    // ended, it says when that was.
    daemon.wait_for(
        "/healthz naming the first successful run",
        Duration::from_secs(30),
        |_| {
            get(metrics_port, "/healthz")
                .is_some_and(|r| r.status == 200 && r.text().starts_with("ok\nlast successful run: 20"))
        },
    );
    let metrics = get(metrics_port, "/metrics").expect("/metrics answers");
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(get(metrics_port, "/nothing-here").unwrap().status, 404);
    // The served text is the metrics of the certificate on disk, as a scraper parses it.
    let lines = metrics.text().lines().map(|l| Ok(l.to_owned())).collect::<Vec<_>>();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("/metrics parses");
    let not_after = scrape
        .samples
        .iter()
        .find(|s| s.metric == "hapcert_certificate_not_after_seconds" && s.labels.get("name") == Some("site"))
        .unwrap_or_else(|| panic!("no not_after for site in {}", metrics.text()));
    let expected = validity(&leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem"))).1;
    assert!(
        matches!(not_after.value, prometheus_parse::Value::Gauge(v) if v as i64 == expected.unix_timestamp()),
        "{:?} is not {expected}",
        not_after.value
    );

    // Pebble's 90-second certificate: its ARI window (or the lifetime rule, half of a short lifetime) makes it due
    // within the lifetime, and the daemon wakes for it on its own.
    let renewed_within = Duration::from_secs(180);
    daemon.wait_for("a renewal without --force", renewed_within, |_| {
        disk_serial(&sandbox, "site")
            .is_some_and(|disk| disk != first && served_serial(&sandbox, "a.example.com") == disk)
    });
    let log = daemon.log();
    assert!(!log.contains("renewal forced"), "{log}");
    assert!(
        log.contains("next renewal pass: site"),
        "the wake plan names the certificate: {log}"
    );
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "{}", daemon.log());
    assert!(daemon.log().contains("hapcert daemon stopped"));
    assert!(get(metrics_port, "/healthz").is_none(), "the metrics port is closed");

    let status = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&status, 0);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["last_result"]["outcome"], "renewed", "{rows:#}");
    let pem = fs::read(sandbox.cert_dir().join("site.pem")).unwrap();
    let on_disk = hapcert::core::pem::Bundle::parse(&pem).unwrap().facts().unwrap().serial;
    assert_eq!(rows[0]["serial"], serde_json::json!(on_disk), "{rows:#}");
    assert_eq!(
        rows[0]["last_result"]["verified_serial"],
        serde_json::json!(on_disk),
        "{rows:#}"
    );
    // Which rule timed it: Pebble 2.6 offers ARI, whose window (a day either side of the 2/3 point, whatever the
    // lifetime) hapcert caps at the expiry.
    eprintln!("schedule after the renewal: {:#}", rows[0]["schedule"]);
}

#[test]
fn sighup_with_a_broken_config_keeps_the_daemon_running_and_a_fixed_one_is_taken() {
    let sandbox = Sandbox::start();
    let metrics_port = free_port();
    let good = sandbox.base_config() + &daemon_table(metrics_port, "") + &certificate("site", &["a.example.com"]);
    sandbox.write_config_text(&good);
    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for("/healthz answering 200", Duration::from_secs(60), |_| {
        get(metrics_port, "/healthz").is_some_and(|r| r.status == 200)
    });

    let broken = sandbox.base_config()
        + &daemon_table(metrics_port, "probe_interval = \"soon\"\n")
        + &certificate("site", &["a.example.com"]);
    sandbox.write_config_text(&broken);
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("the new config is not used", Duration::from_secs(20));
    let log = daemon.log();
    assert!(
        log.contains("daemon.probe_interval: 'soon' is not a duration"),
        "the log names the problem: {log}"
    );
    assert!(daemon.is_running());
    let health = get(metrics_port, "/healthz").expect("/healthz still answers");
    assert_eq!(health.status, 200, "{}", health.text());

    let fixed = good + &certificate("other", &["b.example.com"]);
    sandbox.write_config_text(&fixed);
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("config reloaded", Duration::from_secs(20));
    daemon.wait_for("the new certificate served", Duration::from_secs(60), |_| {
        disk_serial(&sandbox, "other").is_some_and(|disk| served_serial(&sandbox, "b.example.com") == disk)
    });

    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        daemon.log()
    );
}

#[test]
fn sigterm_mid_order_leaves_the_deployed_pem_intact() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[("site", &["a.example.com"])]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let pem = sandbox.cert_dir().join("site.pem");
    let before = fs::read(&pem).unwrap();
    let served_before = served_serial(&sandbox, "a.example.com");

    // HAProxy forwards the challenge path to the side port. Something that accepts there and never answers holds the
    // CA's validation (until HAProxy's 10 s server timeout); the daemon's own responder listens elsewhere, unused.
    let _silent = TcpListener::bind(("127.0.0.1", sandbox.side_port())).expect("bind the silent side port");
    let side = format!("listen = \"127.0.0.1:{}\"", sandbox.side_port());
    assert!(sandbox.base_config().contains(&side));
    let elsewhere = format!("listen = \"127.0.0.1:{}\"\npreflight = false", free_port());
    // A second name makes the certificate due at once (its names differ from the configured ones).
    let config = sandbox.base_config().replace(&side, &elsewhere)
        + &daemon_table(free_port(), "")
        + &certificate("site", &["a.example.com", "b.example.com"]);
    sandbox.write_config_text(&config);

    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for_log("ordering", Duration::from_secs(30));
    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "{}", daemon.log());
    eprintln!("the daemon stopped {:?} after SIGTERM", signalled.elapsed());
    let log = daemon.log();
    assert!(log.contains("order abandoned"), "{log}");
    assert!(!log.contains("deployed and verified"), "{log}");

    assert_eq!(fs::read(&pem).unwrap(), before, "the PEM is byte for byte the same");
    let leftovers: Vec<String> = fs::read_dir(sandbox.cert_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_eq!(served_serial(&sandbox, "a.example.com"), served_before);
}

/// The daemon's route of a monitor.json entry: what its last try of `name`'s challenge route found.
fn route_problem(sandbox: &Sandbox, name: &str) -> Option<serde_json::Value> {
    let text = fs::read_to_string(sandbox.state_dir().join("monitor.json")).ok()?;
    let monitor: serde_json::Value = serde_json::from_str(&text).ok()?;
    let route = monitor["routes"].get(name)?.clone();
    Some(route["problem"].clone())
}

/// Issue 18: the daemon's probes try the challenge route through the daemon's own responder (which holds the side
/// port); a one-shot `check` beside it leaves the route to the daemon and reports what the daemon found.
#[test]
fn the_daemons_probe_finds_a_broken_challenge_route_through_its_own_responder_and_sees_it_fixed() {
    use crate::harness::frontend_redirect_shadowing;
    let sandbox = Sandbox::start();
    let metrics_port = free_port();
    let config = sandbox.base_config()
        + &daemon_table(metrics_port, "probe_interval = \"2s\"\n")
        + &certificate("site", &["a.example.com"]);
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    // Broken after issuance; nothing is due, so only the probe can find it.
    let working = sandbox.http_frontend();
    sandbox.set_http_frontend(&frontend_redirect_shadowing(&sandbox.ports()));
    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for("the probe finding the route broken", Duration::from_secs(60), |_| {
        route_problem(&sandbox, "site").is_some_and(|p| p.as_str().is_some_and(|p| p.contains("with a redirect")))
    });
    assert!(
        daemon
            .log()
            .contains("the challenge route is broken, so the next renewal would fail"),
        "{}",
        daemon.log()
    );
    // The side port is the daemon's: a one-shot check does not take it, and says what the daemon found.
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("HAPCERT WARNING - site: the challenge route is broken"),
        "{}",
        crate::harness::show(&out)
    );

    sandbox.set_http_frontend(&working);
    daemon.wait_for("the probe finding the route fixed", Duration::from_secs(60), |_| {
        route_problem(&sandbox, "site").is_some_and(|p| p.is_null())
    });
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        daemon.log()
    );
}
