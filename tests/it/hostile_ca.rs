//! A misbehaving CA (tests/harness/hostile_ca.rs, a proxy in front of Pebble): a chain without its intermediate, an
//! absurd Retry-After, a CA that never answers, one that answers 500, one that forgot the account. Whatever it does,
//! hapcert never panics (exit 101), what HAProxy serves and what is on disk change only for a verified certificate, the
//! exit code says what happened, the message says what to do, and the state is saved.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{CaMode, HostileCa, Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, show, stdout};

const SITE: (&str, &[&str]) = ("site", &["a.example.com"]);

/// A sandbox whose hapcert talks to the CA through the proxy (with `acme_extra` lines in `[acme]`), and a first,
/// honest issuance of SITE.
fn issued_through_proxy(acme_extra: &str) -> (Sandbox, HostileCa) {
    let sandbox = Sandbox::start();
    let ca = HostileCa::start(&sandbox);
    let config = ca
        .config(&sandbox, &[SITE])
        .replacen("[acme]\n", &format!("[acme]\n{acme_extra}"), 1);
    sandbox.write_config_text(&config);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    (sandbox, ca)
}

/// What is on disk and served, to compare after a failure.
struct Served {
    file: Vec<u8>,
    serial: String,
    reloads: usize,
}

fn served(sandbox: &Sandbox) -> Served {
    Served {
        file: fs::read(sandbox.cert_dir().join("site.pem")).unwrap(),
        serial: serial_hex(&sandbox.served_leaf("a.example.com")),
        reloads: sandbox.reload_count(),
    }
}

/// Nothing served or on disk changed, and the failure is in the saved state.
fn nothing_changed(sandbox: &Sandbox, before: &Served) {
    assert_eq!(
        fs::read(sandbox.cert_dir().join("site.pem")).unwrap(),
        before.file,
        "the file is byte for byte the same"
    );
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), before.serial);
    assert_eq!(sandbox.reload_count(), before.reloads, "no reload");
    assert_eq!(last_outcome(sandbox), "failed");
}

/// The outcome the saved state holds for SITE.
fn last_outcome(sandbox: &Sandbox) -> String {
    let status = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&status, 0);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    rows[0]["last_result"]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// No `[48, 130, ...]`: a message shows no byte array.
fn no_byte_array(text: &str) {
    let bytes = text.as_bytes();
    let debug_array = bytes.windows(2).any(|w| w[0] == b'[' && w[1].is_ascii_digit());
    assert!(!debug_array, "a byte array in the message:\n{text}");
}

#[test]
fn a_chain_without_its_intermediate_or_cut_short_is_never_deployed_and_the_message_says_why_in_words() {
    let (sandbox, ca) = issued_through_proxy("");
    let before = served(&sandbox);

    ca.set(CaMode::DropIntermediate);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "FAILED    site: the certificate the CA at {} issued failed verification, so it was not deployed: the \
             chain does not verify: it does not lead to a root in the system roots and trust_roots {}: no certificate \
             named 'CN=Pebble Intermediate CA",
            ca.directory_url(),
            sandbox.pebble_roots_file().display()
        )),
        "{}",
        show(&out)
    );
    assert!(text.contains("set [acme] trust_roots"), "{}", show(&out));
    no_byte_array(&text);
    nothing_changed(&sandbox, &before);

    // A download cut short: named in words (it used to be "missing section end marker: [45, 45, ...]").
    ca.set(CaMode::TruncateChain);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!(
            "FAILED    site: the CA at {} sent a chain that is not PEM: a block is cut short: its '-----END \
             CERTIFICATE-----' line is missing (the text was truncated); nothing was deployed",
            ca.directory_url()
        )),
        "{}",
        show(&out)
    );
    no_byte_array(&stdout(&out));
    nothing_changed(&sandbox, &before);

    // The CA mends its ways: the whole chain is deployed.
    ca.set(CaMode::Honest);
    assert_exit(&sandbox.hapcert(&["renew", "--force"]), 0);
    let renewed = serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem")));
    assert_ne!(renewed, before.serial);
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), renewed);
    // check, by the same rule, finds the served chain sound.
    let check = sandbox.hapcert(&["check"]);
    assert!(!stdout(&check).contains("does not verify"), "{}", show(&check));
}

#[test]
fn an_absurd_retry_after_from_the_ca_cannot_panic_hapcert_and_a_rate_limit_is_held_to_a_week() {
    let (sandbox, ca) = issued_through_proxy("");

    // ARI: every renewal window comes with a Retry-After of 2^64-1 seconds.
    ca.set(CaMode::AriRetryAfter("18446744073709551615".into()));
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(!show(&out).contains("panicked"), "{}", show(&out));
    let renewed = serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem")));
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), renewed);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    assert!(
        !show(&out).contains("panicked"),
        "no task panicked over the Retry-After: {}",
        show(&out)
    );
    assert_eq!(last_outcome(&sandbox), "renewed", "the state was saved");
    assert!(
        ca.seen().iter().any(|r| r.contains("renewalInfo")),
        "hapcert asked for a renewal window: {:?}",
        ca.seen()
    );

    // 429 on every new order, with a Retry-After of 10^20 seconds.
    let before = served(&sandbox);
    ca.set(CaMode::RateLimited("100000000000000000000".into()));
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let until = text
        .split("the CA is rate limiting until ")
        .nth(1)
        .and_then(|rest| rest.find('Z').map(|z| rest[..=z].to_owned()))
        .unwrap_or_else(|| panic!("no 'rate limiting until': {}", show(&out)));
    let until = time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{until:?}: {e}"));
    let week = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    assert!(
        until <= week + time::Duration::minutes(5) && until >= week - time::Duration::hours(1),
        "the Retry-After is held to a week: {until}"
    );
    nothing_changed(&sandbox, &before);
}

#[test]
fn a_ca_that_accepts_and_never_answers_fails_within_the_request_timeout() {
    let (sandbox, ca) = issued_through_proxy("request_timeout = \"2s\"\n");
    let before = served(&sandbox);

    ca.set(CaMode::Hang);
    let started = Instant::now();
    let out = sandbox.hapcert(&["renew", "--force"]);
    let took = started.elapsed();
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!(
            "the CA did not answer GET {} within 2s ([acme] request_timeout): it is down, overloaded or stuck; try \
             again later, or raise request_timeout",
            ca.directory_url()
        )),
        "{}",
        show(&out)
    );
    // Three tries of 2 s with 0.5 s and 1 s between them, and the rest of the run.
    assert!(took < Duration::from_secs(30), "renew took {took:?}");
    eprintln!("renew against a silent CA took {took:?}");
    ca.set(CaMode::Honest);
    nothing_changed(&sandbox, &before);
}

#[test]
fn an_order_that_does_not_finish_fails_at_its_deadline() {
    // The deadline is shorter than a request's timeout, so it is the order's deadline that ends the wait.
    let (sandbox, ca) = issued_through_proxy("order_deadline = \"3s\"\n");
    let before = served(&sandbox);

    ca.set(CaMode::HangNewOrder);
    let started = Instant::now();
    let out = sandbox.hapcert(&["renew", "--force"]);
    let took = started.elapsed();
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!(
            "FAILED    site: the order at {} did not finish within 3s ([acme] order_deadline); the CA is slow or \
             stuck: try again later, or raise order_deadline",
            ca.directory_url()
        )),
        "{}",
        show(&out)
    );
    assert!(took < Duration::from_secs(25), "renew took {took:?}");
    eprintln!("renew against a CA that never answers a new order took {took:?}");
    ca.set(CaMode::Honest);
    nothing_changed(&sandbox, &before);
}

#[test]
fn a_ca_that_answers_500_is_named_for_it_and_nothing_changes() {
    let (sandbox, ca) = issued_through_proxy("");
    let before = served(&sandbox);

    ca.set(CaMode::ServerError);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains(&format!(
            "the CA answered 500 Internal Server Error for GET {}",
            ca.directory_url()
        )),
        "{}",
        show(&out)
    );
    no_byte_array(&stdout(&out));
    nothing_changed(&sandbox, &before);
}

#[test]
fn a_ca_that_forgot_the_account_says_how_to_recover_and_the_recovery_works() {
    let (sandbox, ca) = issued_through_proxy("");
    let before = served(&sandbox);

    ca.set(CaMode::ForgetAccounts);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("the CA does not know the stored account")
            && stdout(&out).contains("move the account file aside"),
        "{}",
        show(&out)
    );
    nothing_changed(&sandbox, &before);

    // As the message says: the account file moved aside, the next run registers a new account and renews.
    let accounts = sandbox.state_dir().join("accounts");
    let file = fs::read_dir(&accounts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("an account file");
    fs::rename(&file, file.with_extension("json.old")).unwrap();
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert_ne!(serial_hex(&sandbox.served_leaf("a.example.com")), before.serial);
}
