//! The ACME life cycle beyond first issuance, against a real Pebble: the CA's renewal windows (ARI) and `replaces`,
//! revocation, the account's key rollover, contact update and deactivation, and the retry schedule across runs.

use std::fs;
use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::{Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, show, stderr, stdout};

const SITE: (&str, &[&str]) = ("site", &["a.example.com"]);

fn pem_path(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.cert_dir().join(format!("{name}.pem"))
}

fn disk_serial(sandbox: &Sandbox, name: &str) -> String {
    serial_hex(&leaf_der_from_pem_file(&pem_path(sandbox, name)))
}

/// The ARI id of the deployed certificate, as hapcert computes it (AKI.serial).
fn ari_id(sandbox: &Sandbox, name: &str) -> String {
    let bytes = fs::read(pem_path(sandbox, name)).unwrap();
    let facts = hapcert::core::pem::Bundle::parse(&bytes).unwrap().facts().unwrap();
    facts.ari_id.expect("Pebble's certificates carry an AKI")
}

fn status_json(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn time_of(value: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time"), &Rfc3339).unwrap()
}

fn state_json(sandbox: &Sandbox) -> serde_json::Value {
    serde_json::from_slice(&fs::read(sandbox.state_dir().join("state.json")).unwrap()).unwrap()
}

/// Trace of the ACME client's requests only: every request with its decoded payload.
const ACME_TRACE: &str = "info,hapcert::edge::acme::http=trace";

fn requests_to(log: &str, path: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("request to the CA") && l.contains(path))
        .map(str::to_owned)
        .collect()
}

#[test]
fn status_shows_the_cas_window_and_the_renewal_sends_replaces() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    let first = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&first, 0);
    let old_id = ari_id(&sandbox, "site");
    assert!(
        !requests_to(&stderr(&first), "/renewalInfo/").is_empty(),
        "the new certificate's window is fetched in the same run: {}",
        show(&first)
    );

    let rows = status_json(&sandbox);
    let schedule = &rows[0]["schedule"];
    assert_eq!(schedule["source"], "ari", "{rows:#}");
    let (start, end, moment) = (
        time_of(&schedule["window_start"]),
        time_of(&schedule["window_end"]),
        time_of(&schedule["renew_at"]),
    );
    assert!(start <= moment && moment <= end, "{rows:#}");
    assert_eq!(
        time_of(&rows[0]["renew_at"]),
        moment,
        "the decision uses the ARI moment"
    );
    let text = stdout(&sandbox.hapcert(&["status", "--long"]));
    assert!(text.contains("schedule:  ARI window "), "{text}");

    let renewal = sandbox.hapcert(&["--log-level", ACME_TRACE, "renew", "site", "--force"]);
    assert_exit(&renewal, 0);
    let log = stderr(&renewal);
    let orders = requests_to(&log, r#""identifiers":"#);
    assert_eq!(orders.len(), 1, "{}", show(&renewal));
    assert!(
        orders[0].contains(&format!(r#""replaces":"{old_id}""#)),
        "the order names the certificate it replaces ({old_id}): {}",
        orders[0]
    );
    assert!(
        !log.contains("ordering without `replaces`"),
        "Pebble took the replaces: {log}"
    );
    assert_ne!(ari_id(&sandbox, "site"), old_id);
}

#[test]
fn the_renewal_moment_is_stable_across_runs_and_ari_is_asked_again_only_after_retry_after() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let moment = status_json(&sandbox)[0]["schedule"]["renew_at"].clone();
    let next_check = time_of(&status_json(&sandbox)[0]["schedule"]["next_check"]);
    assert!(
        next_check > OffsetDateTime::now_utc(),
        "Pebble's Retry-After lies ahead"
    );

    // Runs before the Retry-After: no renewalInfo request, and the same moment.
    for _ in 0..2 {
        let run = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
        assert_exit(&run, 0);
        assert!(
            !stderr(&run).contains("request to the CA"),
            "nothing is asked while the window is fresh: {}",
            show(&run)
        );
        assert_eq!(status_json(&sandbox)[0]["schedule"]["renew_at"], moment);
    }

    // Once the Retry-After has passed (the state's clock is moved back), the CA is asked again, the window is the
    // same, and so is the moment: it is not drawn anew.
    let path = sandbox.state_dir().join("state.json");
    let mut state = state_json(&sandbox);
    state["certificates"]["site"]["renewal_info"]["next_check"] = "2020-01-01T00:00:00Z".into();
    fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let run = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&run, 0);
    let asked = requests_to(&stderr(&run), &ari_id(&sandbox, "site"));
    assert_eq!(asked.len(), 1, "one renewalInfo request: {}", show(&run));
    let after = status_json(&sandbox);
    assert_eq!(after[0]["schedule"]["renew_at"], moment);
    assert!(time_of(&after[0]["schedule"]["next_check"]) > OffsetDateTime::now_utc());
}

#[test]
fn a_window_that_has_opened_renews_without_force_and_with_replaces() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let (old_serial, old_id) = (disk_serial(&sandbox, "site"), ari_id(&sandbox, "site"));

    // The moment picked in the window has come (the state is moved; the CA is not asked again before Retry-After).
    let path = sandbox.state_dir().join("state.json");
    let mut state = state_json(&sandbox);
    state["certificates"]["site"]["renewal_info"]["renew_at"] = "2020-01-01T00:00:00Z".into();
    fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let rows = status_json(&sandbox);
    assert_eq!(rows[0]["due"], true, "{rows:#}");
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("the CA's renewal window"),
        "{rows:#}"
    );

    let run = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&run, 0);
    assert!(stdout(&run).contains("renewed   site:"), "{}", show(&run));
    let orders = requests_to(&stderr(&run), r#""identifiers":"#);
    assert!(
        orders[0].contains(&format!(r#""replaces":"{old_id}""#)),
        "{}",
        orders[0]
    );
    assert_ne!(disk_serial(&sandbox, "site"), old_serial);
    assert_eq!(
        serial_hex(&sandbox.served_leaf("a.example.com")),
        disk_serial(&sandbox, "site")
    );
}

#[test]
fn a_failing_ca_is_asked_only_at_the_scheduled_times_across_runs() {
    let mut sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    sandbox.stop_pebble();

    let first = sandbox.hapcert(&["run"]);
    assert_exit(&first, 1);
    assert!(stdout(&first).contains("FAILED    site:"), "{}", show(&first));
    let failures = &state_json(&sandbox)["certificates"]["site"]["failures"];
    assert_eq!(failures["consecutive"], 1);
    let next = time_of(&failures["next_attempt"]);
    let wait = next - OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::seconds(30) && wait <= time::Duration::seconds(60),
        "{wait}"
    );

    // The next run comes before the scheduled time: the CA is not contacted at all, and the run still fails.
    let second = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&second, 1);
    assert!(
        stdout(&second).contains("waiting   site: due, but not tried before"),
        "{}",
        show(&second)
    );
    assert!(stdout(&second).contains("1 consecutive failure"), "{}", show(&second));
    assert!(!stderr(&second).contains("request to the CA"), "{}", show(&second));
    assert_eq!(
        state_json(&sandbox)["certificates"]["site"]["failures"]["consecutive"],
        1
    );
    let rows = status_json(&sandbox);
    assert_eq!(
        rows[0]["waiting"]["until"].as_str().map(|s| time_of(&s.into())),
        Some(next)
    );
    assert_eq!(rows[0]["consecutive_failures"], 1);

    // --force is the operator's "now": it tries, fails again, and the wait grows to 10 minutes.
    let forced = sandbox.hapcert(&["renew", "site", "--force"]);
    assert_exit(&forced, 1);
    let failures = &state_json(&sandbox)["certificates"]["site"]["failures"];
    assert_eq!(failures["consecutive"], 2);
    let wait = time_of(&failures["next_attempt"]) - OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::minutes(9) && wait <= time::Duration::minutes(10),
        "{wait}"
    );
}

#[test]
fn revoking_the_deployed_certificate_then_the_next_run_replaces_it_with_a_new_key() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let old_serial = disk_serial(&sandbox, "site");
    let old_key = key_of(&sandbox, "site");
    assert_eq!(sandbox.cert_status(&old_serial)["Status"], "Valid");

    let out = sandbox.hapcert(&["revoke", "site", "--reason", "keyCompromise"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!("revoked   site: serial {old_serial}")),
        "{}",
        show(&out)
    );
    let status = sandbox.cert_status(&old_serial);
    assert_eq!(status["Status"], "Revoked", "{status:#}");
    assert_eq!(status["Reason"], 1, "keyCompromise is reason 1: {status:#}");
    let rows = status_json(&sandbox);
    assert_eq!(rows[0]["due"], true);
    assert_eq!(rows[0]["last_result"]["outcome"], "revoked");

    let run = sandbox.hapcert(&["renew", "site", "--force"]);
    assert_exit(&run, 0);
    let new_serial = disk_serial(&sandbox, "site");
    assert_ne!(new_serial, old_serial);
    assert_ne!(key_of(&sandbox, "site"), old_key, "a fresh key");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), new_serial);
    assert_eq!(sandbox.cert_status(&new_serial)["Status"], "Valid");
    assert_eq!(
        status_json(&sandbox)[0]["due"],
        false,
        "the revocation is forgotten once replaced"
    );

    let unknown = sandbox.hapcert(&["revoke", "nope"]);
    assert_exit(&unknown, 2);
}

fn key_of(sandbox: &Sandbox, name: &str) -> String {
    let pem = fs::read_to_string(pem_path(sandbox, name)).unwrap();
    let start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    pem[start..].to_owned()
}

fn account_file(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.state_dir().join("accounts");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().next().expect("an account file")
}

#[test]
fn account_rollover_keeps_the_account_under_a_new_key_that_orders_work_with() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let path = account_file(&sandbox);
    let before: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

    let out = sandbox.hapcert(&["account", "rollover"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("confirmed by the CA"), "{}", show(&out));
    let after: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(after["url"], before["url"], "the same account");
    assert_ne!(
        after["credentials"]["key_pkcs8"], before["credentials"]["key_pkcs8"],
        "a new key"
    );
    assert_eq!(crate::harness::file_mode(&path), 0o600);
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no pending key is left once the CA took it");

    let renewal = sandbox.hapcert(&["renew", "site", "--force"]);
    assert_exit(&renewal, 0);
    assert!(
        !stderr(&renewal).contains("created an ACME account"),
        "{}",
        show(&renewal)
    );
}

#[test]
fn account_contacts_are_updated_and_deactivation_is_confirmed_by_the_ca() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    let out = sandbox.hapcert(&["account", "update", "--contact", "night-shift@example.com"]);
    assert_exit(&out, 0);
    let shown = stdout(&sandbox.hapcert(&["account", "show"]));
    assert!(shown.contains("mailto:night-shift@example.com"), "{shown}");
    assert_exit(
        &sandbox.hapcert(&["account", "update", "--contact", "not an address"]),
        2,
    );

    // No terminal to ask on, and no --yes: nothing happens.
    let refused = sandbox.hapcert(&["account", "deactivate"]);
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("pass --yes"), "{}", show(&refused));

    let url = serde_json::from_slice::<serde_json::Value>(&fs::read(account_file(&sandbox)).unwrap()).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sandbox.hapcert(&["account", "deactivate", "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!("deactivated: account {url}; the CA now refuses its key")),
        "{}",
        show(&out)
    );
    assert!(stdout(&sandbox.hapcert(&["account", "show"])).contains("no account yet"));

    // The next order makes a new account.
    let renewal = sandbox.hapcert(&["renew", "site", "--force"]);
    assert_exit(&renewal, 0);
    assert!(
        stderr(&renewal).contains("created an ACME account"),
        "{}",
        show(&renewal)
    );
}

#[test]
fn staging_is_refused_where_it_would_deploy_and_a_dry_run_against_production_uses_staging() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE]);
    let out = sandbox.hapcert(&["--staging", "run"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--staging would deploy untrusted staging certificates"),
        "{}",
        show(&out)
    );

    // The config names Let's Encrypt's production directory; a dry run goes to staging (unreachable here) and says so.
    let text = fs::read_to_string(sandbox.config_path()).unwrap().replace(
        &format!("directory = \"{}\"", sandbox.acme_directory()),
        "directory = \"letsencrypt\"",
    );
    sandbox.write_config_text(&text);
    let dry = sandbox.hapcert(&["renew", "--dry-run"]);
    assert!(
        stdout(&dry).contains("dry run: using Let's Encrypt's staging directory (https://acme-staging-v02.api.letsencrypt.org/directory) instead of production; nothing is deployed"),
        "{}",
        show(&dry)
    );
    assert!(!pem_path(&sandbox, "site").exists(), "nothing deployed");
}

#[test]
fn a_dropped_connection_to_the_ca_is_retried_within_the_run() {
    let sandbox = Sandbox::start();
    // hapcert reaches Pebble through a relay that drops its first two connections.
    let relay = crate::harness::FlakyRelay::start(sandbox.pebble_port(), 2);
    sandbox.write_config(&[SITE]);
    let text = fs::read_to_string(sandbox.config_path()).unwrap().replace(
        &sandbox.acme_directory(),
        &sandbox
            .acme_directory()
            .replace(&sandbox.pebble_port().to_string(), &relay.port.to_string()),
    );
    sandbox.write_config_text(&text);

    let out = sandbox.hapcert(&["--log-level", "debug", "run"]);
    assert_exit(&out, 0);
    assert!(relay.connections() >= 3, "the relay was used");
    assert_eq!(
        stderr(&out).matches("the CA did not answer; asking again").count(),
        2,
        "{}",
        show(&out)
    );
    assert_eq!(
        serial_hex(&sandbox.served_leaf("a.example.com")),
        disk_serial(&sandbox, "site")
    );
}

#[test]
fn failed_validations_are_counted_per_name_against_the_cas_hourly_limit() {
    use crate::harness::frontend_redirect_shadowing;
    let sandbox = Sandbox::start();
    // The challenge path is shadowed by a redirect, and the preflight that would catch it is off: the CA's validation
    // fails, as it would on a real misconfiguration.
    sandbox.set_http_frontend(&frontend_redirect_shadowing(&sandbox.ports()));
    let text = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n",
        sandbox
            .base_config()
            .replace("[challenge]\n", "[challenge]\npreflight = false\n")
    );
    sandbox.write_config_text(&text);

    for attempt in 1..=4 {
        let out = sandbox.hapcert(&["renew", "site", "--force"]);
        assert_exit(&out, 1);
        assert!(
            stdout(&out).contains("validation failed: a.example.com:"),
            "{}",
            show(&out)
        );
        let ledger = &state_json(&sandbox)["failed_authorizations"]["a.example.com"];
        assert_eq!(ledger.as_array().map(Vec::len), Some(attempt), "{ledger}");
    }
    // Four failures within the hour: --force alone no longer orders; the CA is not asked.
    let out = sandbox.hapcert(&["--log-level", ACME_TRACE, "renew", "site", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("a.example.com failed validation 4 times in the last hour"),
        "{}",
        show(&out)
    );
    assert!(!stderr(&out).contains("request to the CA"), "{}", show(&out));
}
