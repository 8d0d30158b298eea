//! hapcert against each Pebble the harness offers (2.4, 2.6, the newest Debian has), and against a CA that requires
//! External Account Binding.

use std::fs;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::harness::{
    PebbleVersion, Sandbox, SandboxOptions, assert_exit, leaf_der_from_pem_file, serial_hex, show, stderr, stdout,
    validity,
};

const SITE: (&str, &[&str]) = ("site", &["a.example.com"]);
const EAB_KID: &str = "kid-hapcert";

/// An HMAC key as a CA hands it out: base64url without padding. `fill` makes different keys.
fn hmac_key(fill: u8) -> String {
    URL_SAFE_NO_PAD.encode([fill; 32])
}

fn pem_serial(sandbox: &Sandbox, name: &str) -> String {
    serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join(format!("{name}.pem"))))
}

/// The base config with `extra` lines added to its `[acme]` table, plus the certificate `SITE`.
fn write_config_with_acme_lines(sandbox: &Sandbox, extra: &str) {
    let base = sandbox.base_config();
    assert!(
        base.starts_with("[acme]\n"),
        "the base config starts with [acme]: {base}"
    );
    let (name, domains) = SITE;
    let text = format!(
        "[acme]\n{extra}{}\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{}\"]\n",
        &base["[acme]\n".len()..],
        domains.join("\", \"")
    );
    sandbox.write_config_text(&text);
}

fn eab_lines(kid: &str, hmac_key: &str) -> String {
    format!("eab_kid = \"{kid}\"\neab_hmac_key = \"{hmac_key}\"\n")
}

/// Issues `SITE` with `hapcert run` and checks that HAProxy serves it and that Pebble holds it as valid.
fn issues_and_serves(sandbox: &Sandbox) -> String {
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let serial = pem_serial(sandbox, "site");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), serial);
    let status = sandbox.cert_status(&serial);
    assert_eq!(status["Status"], "Valid", "{status}");
    serial
}

fn has_key(json: &serde_json::Value, key: &str) -> bool {
    json.get(key).is_some()
}

#[test]
fn pebble_2_4_offers_neither_ari_nor_profiles_and_hapcert_issues_against_it() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        pebble: PebbleVersion::V2_4,
        ..Default::default()
    });
    let directory = sandbox.directory();
    assert!(!has_key(&directory, "renewalInfo"), "{directory:#}");
    assert!(!has_key(&directory["meta"], "profiles"), "{directory:#}");
    assert_eq!(directory["meta"]["externalAccountRequired"], false, "{directory:#}");

    sandbox.write_config(&[SITE]);
    let serial = issues_and_serves(&sandbox);
    // cert_status takes a serial in any case and with leading zeros; Pebble's Serial field has neither.
    let status = sandbox.cert_status(&format!("00{}", serial.to_uppercase()));
    assert_eq!(status["Serial"], serial.trim_start_matches('0'), "{status}");
    assert!(
        sandbox
            .pebble_log()
            .contains(&format!("Issued certificate serial {serial}")),
        "Pebble logs the serial it issued:\n{}",
        sandbox.pebble_log()
    );
}

#[test]
fn pebble_2_6_offers_ari_but_no_profiles() {
    let sandbox = Sandbox::start();
    let directory = sandbox.directory();
    let acme_root = sandbox.acme_directory().replace("/dir", "");
    assert_eq!(
        directory["renewalInfo"],
        format!("{acme_root}/draft-ietf-acme-ari-03/renewalInfo"),
        "{directory:#}"
    );
    assert!(!has_key(&directory["meta"], "profiles"), "{directory:#}");
}

#[test]
fn the_latest_pebble_offers_ari_and_the_configured_profiles() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        pebble: PebbleVersion::Latest,
        profiles: vec![
            ("shortlived".to_owned(), 6 * 24 * 3600),
            ("tlsserver".to_owned(), 30 * 24 * 3600),
        ],
        ..Default::default()
    });
    let directory = sandbox.directory();
    assert!(has_key(&directory, "renewalInfo"), "{directory:#}");
    let names: Vec<&str> = directory["meta"]["profiles"]
        .as_object()
        .unwrap_or_else(|| panic!("no meta.profiles object: {directory:#}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["default", "shortlived", "tlsserver"], "{directory:#}");
}

#[test]
fn the_latest_pebble_issues_with_the_sandbox_lifetime_through_its_default_profile() {
    let lifetime = 7 * 24 * 3600;
    let sandbox = Sandbox::start_with(SandboxOptions {
        pebble: PebbleVersion::Latest,
        cert_validity_secs: Some(lifetime),
        ..Default::default()
    });
    sandbox.write_config(&[SITE]);
    issues_and_serves(&sandbox);
    let (not_before, not_after) = validity(&sandbox.served_leaf("a.example.com"));
    // Pebble ends the validity one second before notBefore + lifetime.
    let issued_for = (not_after - not_before).whole_seconds();
    assert!(
        (lifetime as i64 - 1..=lifetime as i64).contains(&issued_for),
        "issued for {issued_for} s, wanted {lifetime} s"
    );
}

#[test]
fn eab_with_the_right_key_creates_the_account_and_haproxy_serves_the_certificate() {
    let key = hmac_key(7);
    let sandbox = Sandbox::start_with(SandboxOptions {
        eab_keys: vec![(EAB_KID.to_owned(), key.clone())],
        ..Default::default()
    });
    assert_eq!(sandbox.directory()["meta"]["externalAccountRequired"], true);

    write_config_with_acme_lines(&sandbox, &eab_lines(EAB_KID, &key));
    issues_and_serves(&sandbox);
}

#[test]
fn eab_with_a_wrong_key_or_key_id_fails_with_exit_1_and_says_the_binding_was_rejected() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        eab_keys: vec![(EAB_KID.to_owned(), hmac_key(7))],
        ..Default::default()
    });
    for (kid, key) in [(EAB_KID, hmac_key(8)), ("kid-unknown", hmac_key(7))] {
        write_config_with_acme_lines(&sandbox, &eab_lines(kid, &key));
        // --force: the first refusal put the certificate on the retry schedule.
        let out = sandbox.hapcert(&["renew", "site", "--force"]);
        assert_exit(&out, 1);
        let text = stdout(&out);
        assert!(
            text.contains("FAILED    site: cannot create an ACME account at")
                && text
                    .contains("the CA rejected the External Account Binding: check acme.eab_kid and acme.eab_hmac_key"),
            "{kid}: {}",
            show(&out)
        );
        // The CA's own words stay in the message.
        assert!(text.contains("urn:ietf:params:acme:error:"), "{kid}: {}", show(&out));
        nothing_issued(&sandbox);
    }
}

#[test]
fn no_eab_against_a_ca_that_requires_it_fails_with_exit_1_and_says_what_to_set() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        eab_keys: vec![(EAB_KID.to_owned(), hmac_key(7))],
        ..Default::default()
    });
    sandbox.write_config(&[SITE]);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("the CA requires External Account Binding: set acme.eab_kid and acme.eab_hmac_key"),
        "{}",
        show(&out)
    );
    nothing_issued(&sandbox);
}

/// No account file and no PEM: the run stopped at the account.
fn nothing_issued(sandbox: &Sandbox) {
    let accounts = sandbox.state_dir().join("accounts");
    let stored = fs::read_dir(&accounts).map_or(0, |entries| entries.count());
    assert_eq!(stored, 0, "no account is stored in {}", accounts.display());
    assert!(!sandbox.cert_dir().join("site.pem").exists());
}

fn status_rows(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn without_ari_the_lifetime_rule_decides_and_status_says_so() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        pebble: PebbleVersion::V2_4,
        ..Default::default()
    });
    sandbox.write_config(&[SITE]);
    let out = sandbox.hapcert(&["--log-level", "info,hapcert::edge::acme::http=trace", "run"]);
    assert_exit(&out, 0);
    assert!(!crate::harness::stderr(&out).contains("\"replaces\""), "{}", show(&out));

    let rows = status_rows(&sandbox);
    let schedule = &rows[0]["schedule"];
    assert_eq!(schedule["source"], "fallback", "{rows:#}");
    assert_eq!(
        schedule["fallback_reason"], "the CA offers no renewal information (ARI); lifetime rule",
        "{rows:#}"
    );
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not due yet (renew with 1/3 of the lifetime left)"),
        "{rows:#}"
    );
    let text = stdout(&sandbox.hapcert(&["status", "--long"]));
    assert!(
        text.contains("schedule:  fallback: the CA offers no renewal information (ARI); lifetime rule"),
        "{text}"
    );

    // A forced renewal sends no `replaces` to a CA without ARI, and works.
    let renewal = sandbox.hapcert(&[
        "--log-level",
        "info,hapcert::edge::acme::http=trace",
        "renew",
        "site",
        "--force",
    ]);
    assert_exit(&renewal, 0);
    assert!(
        !crate::harness::stderr(&renewal).contains("\"replaces\""),
        "{}",
        show(&renewal)
    );
}

#[test]
fn a_profile_is_sent_in_the_order_and_one_the_ca_does_not_offer_fails_with_the_ones_it_does() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        pebble: PebbleVersion::Latest,
        profiles: vec![
            ("tlsserver".to_owned(), 45 * 86_400),
            ("shortlived".to_owned(), 6 * 86_400),
        ],
        ..Default::default()
    });
    write_config_with_acme_lines(&sandbox, "profile = \"shortlived\"\n");
    let out = sandbox.hapcert(&["--log-level", "info,hapcert::edge::acme::http=trace", "run"]);
    assert_exit(&out, 0);
    assert!(
        crate::harness::stderr(&out).contains(r#""profile":"shortlived""#),
        "the order names the profile: {}",
        show(&out)
    );
    let (not_before, not_after) = validity(&leaf_der_from_pem_file(&sandbox.cert_dir().join("site.pem")));
    let hours = (not_after - not_before).whole_hours();
    assert!(
        (143..=144).contains(&hours),
        "Pebble issued under the shortlived profile (6 days): {hours} h"
    );

    write_config_with_acme_lines(&sandbox, "profile = \"classik\"\n");
    let before = fs::read(sandbox.cert_dir().join("site.pem")).unwrap();
    let out = sandbox.hapcert(&["renew", "site", "--force"]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("does not offer the profile \"classik\"; it offers: default, shortlived, tlsserver"),
        "{}",
        show(&out)
    );
    assert!(
        !crate::harness::stderr(&out).contains("ordering"),
        "checked before any order: {}",
        show(&out)
    );
    assert_eq!(fs::read(sandbox.cert_dir().join("site.pem")).unwrap(), before);
}

#[test]
fn a_profile_against_a_ca_without_profiles_fails_before_ordering() {
    let sandbox = Sandbox::start();
    write_config_with_acme_lines(&sandbox, "profile = \"tlsserver\"\n");
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("offers no profiles, so profile \"tlsserver\" cannot be used; remove `profile`"),
        "{}",
        show(&out)
    );
}

#[test]
fn the_eab_key_can_live_in_a_file_and_a_world_readable_config_holding_it_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let key = hmac_key(7);
    let sandbox = Sandbox::start_with(SandboxOptions {
        eab_keys: vec![(EAB_KID.to_owned(), key.clone())],
        ..Default::default()
    });
    let chmod =
        |path: &std::path::Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();

    // The key in the config, which every user can read: a warning that names the file, its mode and the fix.
    write_config_with_acme_lines(&sandbox, &eab_lines(EAB_KID, &key));
    let config = sandbox.config_path();
    chmod(&config, 0o644);
    let out = sandbox.hapcert(&["check-config"]);
    assert_exit(&out, 0);
    let want = format!(
        "{0} holds acme.eab_hmac_key, a secret, and every user on this host can read it (mode 0644): chmod 600 {0}, or \
         move the key into a file of its own (mode 0600) and name it with acme.eab_hmac_key_file",
        config.display()
    );
    assert!(stderr(&out).contains(&want), "wanted {want}\n{}", show(&out));
    assert!(!show(&out).contains(&key), "the key is never printed: {}", show(&out));
    chmod(&config, 0o600);
    let quiet = sandbox.hapcert(&["check-config"]);
    assert_exit(&quiet, 0);
    assert!(!stderr(&quiet).contains("eab_hmac_key"), "{}", show(&quiet));

    // The key in a file: refused while other users can read it, then used to create the account.
    let key_file = sandbox.dir().join("eab.key");
    fs::write(&key_file, format!("{key}\n")).unwrap();
    chmod(&key_file, 0o644);
    write_config_with_acme_lines(
        &sandbox,
        &format!(
            "eab_kid = \"{EAB_KID}\"\neab_hmac_key_file = {:?}\n",
            key_file.display().to_string()
        ),
    );
    chmod(&config, 0o644);
    let refused = sandbox.hapcert(&["check-config"]);
    assert_exit(&refused, 2);
    let want = format!(
        "{}:3:21: acme.eab_hmac_key_file: {} holds a secret and other users can read it (mode 0644): chmod 600",
        config.display(),
        key_file.display()
    );
    assert!(stderr(&refused).contains(&want), "wanted {want}\n{}", show(&refused));
    assert!(!show(&refused).contains(&key), "{}", show(&refused));
    chmod(&key_file, 0o600);
    let good = sandbox.hapcert(&["check-config"]);
    assert_exit(&good, 0);
    assert!(
        !stderr(&good).contains("eab_hmac_key"),
        "no warning about a key the config does not hold: {}",
        show(&good)
    );
    issues_and_serves(&sandbox);
}
