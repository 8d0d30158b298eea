//! A switch of `[acme] directory` (staging to production, one CA to another): every certificate the old CA issued is
//! renewed from the new one at the next run, without `replaces`; and `check` says which key to change when the served
//! chain leads to a root it does not trust. Two real Pebbles, each with its own root, so the served chain shows which
//! CA issued.

use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::harness::{Sandbox, SecondPebble, assert_exit, show, stderr, stdout};

const CERTS: [(&str, &str); 2] = [("a", "a.example.com"), ("b", "b.example.com")];
/// The ACME client's requests, each with its decoded payload.
const ACME_TRACE: &str = "info,hapcert::edge::acme::http=trace";

/// The sandbox's base config with `[acme]` pointing at `ca` (directory, listener CA, roots) when given, without
/// `[acme] trust_roots` when `trust_roots` is false (the root then trusted nowhere but where `check` says), and
/// `check` lines in a `[check]` table.
fn config(sandbox: &Sandbox, ca: Option<&SecondPebble>, trust_roots: bool, check: &str) -> String {
    let mut text = sandbox.base_config();
    if let Some(ca) = ca {
        text = text
            .replace(&sandbox.acme_directory(), &ca.directory_url())
            .replace(&path(&sandbox.pebble_listener_ca()), &path(&ca.listener_ca()))
            .replace(&path(&sandbox.pebble_roots_file()), &path(&ca.roots_file()));
    }
    if !trust_roots {
        text = text
            .lines()
            .filter(|l| !l.starts_with("trust_roots ="))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    text += &format!(
        "\n[check]\nendpoints = [\"127.0.0.1:{}\"]\n{check}\n",
        sandbox.https_port()
    );
    for (name, domain) in CERTS {
        text += &format!("\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{domain}\"]\n");
    }
    text
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn status_rows(sandbox: &Sandbox) -> Vec<Value> {
    let out = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)))
}

fn orders(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.contains("request to the CA") && l.contains(r#""identifiers":"#))
        .map(str::to_owned)
        .collect()
}

#[test]
fn after_a_switch_of_directory_the_next_run_renews_every_certificate_from_the_new_ca_without_replaces() {
    let sandbox = Sandbox::start();
    sandbox.write_config_text(&config(&sandbox, None, true, ""));
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    let old: Vec<String> = CERTS
        .iter()
        .map(|(_, domain)| sandbox.served_serial(domain).expect("served from the first Pebble"))
        .collect();
    // The first CA knows ARI: the state holds its windows, and a renewal to it would send `replaces`.
    let state: Value = serde_json::from_slice(&fs::read(sandbox.state_dir().join("state.json")).unwrap()).unwrap();
    assert_eq!(
        state["certificates"]["a"]["issued_by"]["directory"],
        sandbox.acme_directory(),
        "{state:#}"
    );

    let second = sandbox.start_second_pebble();
    sandbox.write_config_text(&config(&sandbox, Some(&second), true, ""));
    let (from, to) = (sandbox.acme_directory(), second.directory_url());
    for row in status_rows(&sandbox) {
        assert_eq!(row["due"], true, "{row:#}");
        assert_eq!(
            row["reason"],
            format!("issued by {from}; the config now names {to}"),
            "{row:#}"
        );
    }

    let out = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(&format!("issued by {from}; the config now names {to}")),
        "{}",
        show(&out)
    );
    let sent = orders(&out);
    assert_eq!(sent.len(), 2, "one order per certificate: {}", show(&out));
    for order in &sent {
        assert!(
            !order.contains("replaces"),
            "the new CA never saw the old certificate: {order}"
        );
    }
    assert!(
        !stderr(&out).contains("the stored window or the lifetime rule applies"),
        "the new CA is not asked for the old CA's windows: {}",
        show(&out)
    );
    let pebble_log = second.log();
    for ((_, domain), old) in CERTS.iter().zip(&old) {
        let new = second
            .served_serial(&sandbox, domain)
            .unwrap_or_else(|| panic!("{domain}: the served chain leads to the second Pebble's root"));
        assert_ne!(&new, old);
        assert!(
            pebble_log.contains(&format!("Issued certificate serial {new}")),
            "{domain}: the second Pebble issued {new}:\n{pebble_log}"
        );
        assert_eq!(
            sandbox.served_serial(domain),
            None,
            "{domain}: nothing from the first CA is served"
        );
    }
    // Done once: the next run and status find nothing due.
    for row in status_rows(&sandbox) {
        assert_eq!(row["due"], false, "{row:#}");
    }
    let again = sandbox.hapcert(&["--log-level", ACME_TRACE, "run"]);
    assert_exit(&again, 0);
    assert!(orders(&again).is_empty(), "{}", show(&again));

    // A `[check] ca_bundle` left from the old CA stands in place of the system roots: `check` names it, and the way out.
    // The new root is trusted only through the bundle here (as a public CA's would be through the system roots).
    let old_roots = path(&sandbox.pebble_roots_file());
    let leftover = format!("ca_bundle = \"{old_roots}\"");
    sandbox.write_config_text(&config(&sandbox, Some(&second), false, &leftover));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    let text = stdout(&out);
    assert!(
        text.contains("the served chain does not verify: it leads to Pebble Root CA ")
            && text.contains(&format!(
            ", which is not in ca_bundle {old_roots}: [check] ca_bundle ({old_roots}) takes the place of the system \
             roots and lacks it; if it was set for a test CA that is no longer used (after a switch of [acme] \
             directory, say), remove [check] ca_bundle, else add this root to {old_roots}"
        )),
        "{}",
        show(&out)
    );
    let fixed = format!("ca_bundle = \"{}\"", path(&second.roots_file()));
    sandbox.write_config_text(&config(&sandbox, Some(&second), false, &fixed));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
}

#[test]
fn check_of_a_chain_to_a_root_the_system_lacks_names_that_root_and_check_ca_bundle() {
    let sandbox = Sandbox::start();
    sandbox.write_config_text(&config(&sandbox, None, true, ""));
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    // Pebble's chain, whole (leaf and intermediate), judged by the system roots alone.
    sandbox.write_config_text(&config(&sandbox, None, false, ""));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 2);
    let text = stdout(&out);
    for (name, _) in CERTS {
        assert!(
            text.lines()
                .any(|l| l.contains(name) && l.contains("it leads to Pebble Root CA ")),
            "{name}: {}",
            show(&out)
        );
    }
    assert!(
        text.contains(
            ", which is not in the system roots: a test or private CA? set [check] ca_bundle to the file of its root \
             certificates"
        ),
        "{}",
        show(&out)
    );
    assert!(
        !text.contains("an intermediate certificate is missing"),
        "{}",
        show(&out)
    );
}
