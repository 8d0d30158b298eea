//! `hapcert doctor` against the sandbox's Pebble and HAProxy 2.6: a ready host, then each thing a new host gets wrong
//! (no config, no cert directory, a verify endpoint nothing answers on, a redirect over the challenge path, a CA out of
//! reach, no Runtime API socket), each named with its fix, and exit 1.

use std::process::Output;

use crate::harness::{Sandbox, WebhookSink, assert_exit, closed_port, frontend_redirect_shadowing, show, stdout};

/// The lines of `check` (`OK    ca ...`), verdict first.
fn lines_of(out: &Output, check: &str) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|line| {
            line.get(6..)
                .is_some_and(|rest| rest.split_whitespace().next() == Some(check))
        })
        .map(str::to_owned)
        .collect()
}

/// The only line of `check`.
fn line_of(out: &Output, check: &str) -> String {
    match lines_of(out, check).as_slice() {
        [line] => line.clone(),
        other => panic!("expected one {check} line, got {other:?}\n{}", show(out)),
    }
}

fn assert_line(out: &Output, check: &str, starts: &str, contains: &[&str]) {
    let line = line_of(out, check);
    assert!(line.starts_with(starts), "expected `{starts}...`\n{}", show(out));
    for part in contains {
        assert!(
            line.contains(part),
            "expected {part:?} in the {check} line\n{}",
            show(out)
        );
    }
}

fn certificate(name: &str, domain: &str) -> String {
    format!("\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{domain}\"]\n")
}

#[test]
fn a_ready_host_passes_every_check_and_names_the_paths_a_deploy_takes() {
    let sandbox = Sandbox::start();
    let sink = WebhookSink::start();
    let admin = sandbox.haproxy_admin_sock().display().to_string();
    let master = sandbox.haproxy_master_sock().display().to_string();
    let notify = format!("\n[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n", sink.url());
    sandbox.write_config_text(&sandbox.runtime_config(&(certificate("www", "www.example.com") + &notify)));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 0);
    let config = sandbox.config_path().display().to_string();
    assert_line(
        &out,
        "config",
        "OK    config      ",
        &[&config, "1 certificate(s), side-port challenge"],
    );
    assert_line(&out, "files", "OK    files       ", &["can be written"]);
    // A second line, a WARN, is this host's own haproxy.service loading other files than the sandbox's check.
    let haproxy = lines_of(&out, "haproxy");
    assert!(
        haproxy[0].starts_with("OK    haproxy     HAProxy 2.6.")
            && haproxy[0].contains(" -v`);")
            && haproxy[0].contains(&format!("hot updates through the Runtime API at {admin}"))
            && haproxy[0].contains(&format!("reloads through the master socket {master}")),
        "{}",
        show(&out)
    );
    assert!(
        haproxy[1..]
            .iter()
            .all(|l| l.starts_with("WARN  haproxy     the haproxy service loads")),
        "{}",
        show(&out)
    );
    let sockets = lines_of(&out, "runtime-api");
    assert_eq!(sockets.len(), 2, "{}", show(&out));
    assert!(sockets[0].starts_with(&format!("OK    runtime-api {admin} answers `show ssl cert`")));
    assert!(sockets[1].starts_with(&format!("OK    runtime-api master socket {master} answers `show proc`")));
    assert_line(
        &out,
        "verify",
        &format!("OK    verify      127.0.0.1:{} answers TLS", sandbox.https_port()),
        &[],
    );
    assert_line(
        &out,
        "challenge",
        "OK    challenge   www: www.example.com (http-01) answered through the public path",
        &[],
    );
    assert_line(
        &out,
        "ca",
        &format!("OK    ca          {} answers; ", sandbox.acme_directory()),
        &[],
    );
    assert_line(&out, "clock", "OK    clock       this host's clock is ", &["the CA's"]);
    assert_line(
        &out,
        "account",
        "OK    account     none yet for ",
        &["the first order makes one"],
    );
    // The sandbox host has no hapcert units: a WARN or, without systemctl, not checked; never a FAIL.
    let schedule = line_of(&out, "schedule");
    assert!(
        schedule.starts_with("WARN  schedule    ") || schedule.starts_with("SKIP  schedule    "),
        "{}",
        show(&out)
    );
    assert_line(&out, "metrics", "OK    metrics     no [metrics] textfile", &[]);
    assert_line(
        &out,
        "notify",
        "OK    notify      webhook http://127.0.0.1:",
        &["nothing sent"],
    );
    assert!(
        sink.requests().is_empty(),
        "doctor sent a notification without --notify-test"
    );
    assert!(
        stdout(&out).lines().last().unwrap().starts_with("ready"),
        "{}",
        show(&out)
    );
    let account = sandbox.hapcert(&["account", "show"]);
    assert!(
        stdout(&account).starts_with("no account yet"),
        "doctor made an account:\n{}",
        show(&account)
    );

    // The same as JSON, and a test through the channel when asked.
    let out = sandbox.hapcert(&["doctor", "--json", "--notify-test"]);
    assert_exit(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["ready"], true, "{}", show(&out));
    let checks = report["checks"].as_array().unwrap();
    let mut order: Vec<&str> = checks.iter().map(|c| c["check"].as_str().unwrap()).collect();
    order.dedup();
    assert_eq!(
        order,
        [
            "config",
            "files",
            "haproxy",
            "runtime-api",
            "verify",
            "challenge",
            "ca",
            "clock",
            "account",
            "schedule",
            "metrics",
            "notify"
        ]
    );
    assert!(checks.iter().all(|c| c["verdict"] != "fail"), "{}", show(&out));
    assert_eq!(sink.requests().len(), 1, "one test notification");
    let notify = checks.iter().find(|c| c["check"] == "notify").unwrap();
    assert!(
        notify["subject"].as_str().unwrap().ends_with("a test was delivered"),
        "{notify}"
    );

    // Once a run made the account, doctor shows it.
    assert_exit(&sandbox.hapcert(&["renew", "--force"]), 0);
    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 0);
    assert_line(&out, "account", "OK    account     https://127.0.0.1:", &["(created "]);
}

#[test]
fn without_a_config_every_other_check_is_skipped() {
    let sandbox = Sandbox::start();
    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    let config = sandbox.config_path().display().to_string();
    assert_line(
        &out,
        "config",
        &format!("FAIL  config      no config file at {config}; fix: copy the example"),
        &["--config PATH"],
    );
    for check in [
        "files",
        "haproxy",
        "verify",
        "challenge",
        "ca",
        "clock",
        "account",
        "notify",
    ] {
        assert_line(&out, check, "SKIP  ", &["not checked: the config check failed"]);
    }
}

#[test]
fn a_missing_cert_dir_is_named_with_its_fix_and_the_other_checks_still_run() {
    let sandbox = Sandbox::start();
    let cert_dir = sandbox.cert_dir().display().to_string();
    let missing = sandbox.dir().join("no-such-certs").display().to_string();
    let config = sandbox.base_config() + &certificate("www", "www.example.com");
    assert!(config.contains(&format!("cert_dir = \"{cert_dir}\"")));
    sandbox.write_config_text(&config.replace(
        &format!("cert_dir = \"{cert_dir}\""),
        &format!("cert_dir = \"{missing}\""),
    ));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    assert_line(
        &out,
        "files",
        &format!("FAIL  files       haproxy.cert_dir: directory {missing} does not exist; fix: create it"),
        &[],
    );
    assert_line(&out, "ca", "OK    ca          ", &[]);
    assert!(
        stdout(&out).contains("NOT ready: 1 check(s) failed; fix the first one first (files)"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_verify_endpoint_nothing_answers_on_is_named_with_its_fix() {
    let sandbox = Sandbox::start();
    let silent = format!("127.0.0.1:{}", closed_port());
    sandbox.write_config_text(
        &(sandbox.base_config() + &certificate("www", "www.example.com") + &format!("verify = [\"{silent}\"]\n")),
    );

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    assert_line(
        &out,
        "verify",
        &format!("FAIL  verify      HAProxy is not listening on {silent}; a run orders nothing until it does"),
        &["fix: if it binds another address, set `verify` in [[certificate]] \"www\"; else start HAProxy"],
    );
}

#[test]
fn a_redirect_over_the_challenge_path_is_named_with_its_fix() {
    let sandbox = Sandbox::start();
    sandbox.set_http_frontend(&frontend_redirect_shadowing(&sandbox.ports()));
    sandbox.write_config_text(&(sandbox.base_config() + &certificate("www", "www.example.com")));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    assert_line(
        &out,
        "challenge",
        "FAIL  challenge   www: http://www.example.com/.well-known/acme-challenge/",
        &[
            "with a redirect to https://www.example.com/",
            "fix: give it `unless { path_beg /.well-known/acme-challenge/ }` (see `hapcert haproxy-config`)",
        ],
    );
    assert!(
        !sandbox.pebble_log().contains("Added order"),
        "doctor ordered:\n{}",
        sandbox.pebble_log()
    );
}

#[test]
fn a_ca_out_of_reach_is_named_with_its_fix_and_the_clock_is_not_judged() {
    let sandbox = Sandbox::start();
    let directory = sandbox.acme_directory();
    let gone = format!("https://127.0.0.1:{}/dir", closed_port());
    let config = sandbox.base_config() + &certificate("www", "www.example.com");
    sandbox.write_config_text(&config.replace(&directory, &gone));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    assert_line(
        &out,
        "ca",
        &format!("FAIL  ca          the CA does not answer: cannot reach the ACME directory {gone}"),
        &[&format!(
            "fix: check the way to {gone} from this host (DNS, a firewall, a proxy)"
        )],
    );
    assert_line(&out, "clock", "SKIP  clock       not checked: the ca check failed", &[]);
    assert_line(&out, "challenge", "OK    challenge   ", &[]);
}

#[test]
fn a_runtime_api_socket_haproxy_does_not_open_is_named_with_its_fix() {
    let sandbox = Sandbox::start();
    sandbox.remove_admin_socket();
    let admin = sandbox.haproxy_admin_sock().display().to_string();
    sandbox.write_config_text(&sandbox.runtime_config(&certificate("www", "www.example.com")));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 1);
    let sockets = lines_of(&out, "runtime-api");
    assert!(
        sockets[0].starts_with(&format!(
            "FAIL  runtime-api cannot connect to HAProxy's runtime API at {admin}: "
        )) && sockets[0].ends_with(&format!(
            "fix: start HAProxy with `stats socket {admin} mode 600 level admin` in its global section, or correct \
             [haproxy] runtime_api"
        )),
        "{}",
        show(&out)
    );
    // The master socket still answers: the failure is the admin socket's alone.
    assert!(
        sockets[1].starts_with("OK    runtime-api master socket "),
        "{}",
        show(&out)
    );
}

#[test]
fn beside_a_running_daemon_the_held_side_port_is_a_warning_not_a_failure() {
    let sandbox = Sandbox::start();
    sandbox.write_config_text(&(sandbox.base_config() + &certificate("www", "www.example.com")));
    let mut daemon = sandbox.start_daemon(&[]);
    daemon.wait_for_log("next renewal pass", std::time::Duration::from_secs(60));

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 0);
    assert_line(
        &out,
        "challenge",
        &format!(
            "WARN  challenge   the side port 127.0.0.1:{} is held (by the daemon, or a run); the route was not tried",
            sandbox.side_port()
        ),
        &["fix: the daemon's runs check it before every order"],
    );
    assert_line(&out, "account", "OK    account     https://127.0.0.1:", &["(created "]);
    daemon.signal(libc::SIGTERM);
    daemon.wait_exit(std::time::Duration::from_secs(30));
}

#[test]
fn in_stateless_mode_the_route_is_checked_with_the_accounts_thumbprint_once_there_is_one() {
    let sandbox = Sandbox::start();
    let stateless = sandbox
        .base_config()
        .replacen("[challenge]\n", "[challenge]\nmode = \"stateless\"\n", 1)
        + &certificate("www", "www.example.com");
    sandbox.write_config_text(&stateless);

    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 0);
    assert_line(
        &out,
        "challenge",
        "WARN  challenge   stateless mode and no account yet: HAProxy has no thumbprint to answer with",
        &["fix: `hapcert haproxy-config` makes the account and prints the lines haproxy.cfg needs"],
    );

    let snippet = sandbox.hapcert(&[
        "haproxy-config",
        "--bind",
        &format!("127.0.0.1:{}", sandbox.http_port()),
    ]);
    assert_exit(&snippet, 0);
    sandbox.set_http_frontend(&stdout(&snippet));
    // HAProxy answers the token itself: nothing of hapcert's needs the side port.
    let _occupied = std::net::TcpListener::bind(("127.0.0.1", sandbox.side_port())).unwrap();
    let out = sandbox.hapcert(&["doctor"]);
    assert_exit(&out, 0);
    assert_line(
        &out,
        "challenge",
        "OK    challenge   www: www.example.com (http-01) answered through the public path",
        &[],
    );
}
