//! certbot-compatible hooks around a real run: the order of pre, deploy and post hooks, the deploy hook's environment,
//! and hooks that fail or run out of time, which are reported and undo nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::{Sandbox, assert_exit, leaf_der_from_pem_file, serial_hex, show, stderr, stdout, validity};

/// A TOML string holding `text` (JSON's escaping is TOML's for these).
fn toml(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn certificate(name: &str, domains: &[&str], own: &str) -> String {
    let domains: Vec<String> = domains.iter().map(|d| toml(d)).collect();
    format!(
        "\n[[certificate]]\nname = {}\ndomains = [{}]\n{own}",
        toml(name),
        domains.join(", ")
    )
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `KEY=value` lines as a map.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    lines(path)
        .iter()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn served_serial(sandbox: &Sandbox, sni: &str) -> String {
    serial_hex(&sandbox.served_leaf(sni))
}

#[test]
fn hooks_run_pre_then_deploy_per_certificate_then_post_and_the_deploy_hook_sees_the_certificate() {
    let sandbox = Sandbox::start();
    let dir = sandbox.dir();
    let log = dir.join("hooks.log");
    let deploy = format!(
        "echo \"deploy $HAPCERT_NAME\" >> {log}; env | grep -E '^(RENEWED_|HAPCERT_)' | sort > {dir}/env-$HAPCERT_NAME",
        log = log.display(),
        dir = dir.display()
    );
    let config = sandbox.base_config()
        + &format!(
            "\n[hooks]\npre_hook = {}\npost_hook = {}\ndeploy_hook = {}\n",
            toml(&format!("echo pre >> {}", log.display())),
            toml(&format!("echo post >> {}", log.display())),
            toml(&deploy)
        )
        + &certificate("one", &["a.example.com", "www.a.example.com"], "")
        + &certificate("two", &["b.example.com"], "");
    sandbox.write_config_text(&config);

    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 0);
    assert_eq!(
        lines(&log),
        ["pre", "deploy one", "deploy two", "post"],
        "the shared pre and post hooks run once: {}",
        show(&run)
    );

    let pem = sandbox.cert_dir().join("one.pem");
    let facts = hapcert::core::pem::Bundle::parse(&fs::read(&pem).unwrap())
        .unwrap()
        .facts()
        .unwrap();
    let env = env_file(&dir.join("env-one"));
    assert_eq!(env["RENEWED_LINEAGE"], sandbox.cert_dir().display().to_string());
    assert_eq!(env["RENEWED_DOMAINS"], "a.example.com www.a.example.com");
    assert_eq!(env["HAPCERT_NAME"], "one");
    assert_eq!(env["HAPCERT_PEM"], pem.display().to_string());
    assert_eq!(env["HAPCERT_SERIAL"], facts.serial);
    assert_eq!(
        serial_hex(&leaf_der_from_pem_file(&pem)),
        served_serial(&sandbox, "www.a.example.com"),
        "the hook ran for the certificate served"
    );
    let not_after = OffsetDateTime::parse(&env["HAPCERT_NOT_AFTER"], &Rfc3339).unwrap();
    assert_eq!(not_after, validity(&leaf_der_from_pem_file(&pem)).1);
    assert_eq!(env_file(&dir.join("env-two"))["RENEWED_DOMAINS"], "b.example.com");

    // Nothing due: no order, so no hook at all.
    assert_exit(&sandbox.hapcert(&["run"]), 0);
    assert_eq!(lines(&log).len(), 4);
}

#[test]
fn failing_and_slow_hooks_are_reported_and_undo_nothing() {
    let sandbox = Sandbox::start();
    let dir = sandbox.dir();
    let late = dir.join("slow-hook-finished");
    let config = sandbox.base_config()
        + "\n[hooks]\ntimeout = \"1s\"\n"
        + &certificate(
            "failing",
            &["a.example.com"],
            "deploy_hook = \"echo boom >&2; exit 3\"\n",
        )
        + &certificate(
            "slow",
            &["b.example.com"],
            &format!(
                "deploy_hook = {}\n",
                toml(&format!("sleep 5; touch {}", late.display()))
            ),
        );
    sandbox.write_config_text(&config);

    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 1);
    let out = stdout(&run);
    let failing = out.lines().find(|l| l.starts_with("renewed   failing:")).expect(&out);
    assert!(
        failing.ends_with("; deploy hook failed: `echo boom >&2; exit 3` exited with status 3: boom"),
        "{failing}"
    );
    let slow = out.lines().find(|l| l.starts_with("renewed   slow:")).expect(&out);
    assert!(slow.contains("deploy hook failed: `sleep 5; touch"), "{slow}");
    assert!(slow.contains("did not finish within 1s and was killed"), "{slow}");
    assert!(
        stderr(&run).contains("deploy hook failed: `echo boom >&2; exit 3`"),
        "{}",
        show(&run)
    );

    // The deploys stand: the new certificates are served.
    for (name, sni) in [("failing", "a.example.com"), ("slow", "b.example.com")] {
        let disk = serial_hex(&leaf_der_from_pem_file(&sandbox.cert_dir().join(format!("{name}.pem"))));
        assert_eq!(served_serial(&sandbox, sni), disk, "{name}");
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(!late.exists(), "the slow hook was killed, with what it started");

    // A failing pre hook holds its certificate back; the post hook still runs.
    let post = dir.join("post-ran");
    let config = config.replace(
        "timeout = \"1s\"",
        &format!(
            "timeout = \"1s\"\npost_hook = {}",
            toml(&format!("touch {}", post.display()))
        ),
    ) + &certificate("held", &["c.example.com"], "pre_hook = \"echo nope >&2; exit 1\"\n");
    sandbox.write_config_text(&config);
    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 1);
    assert!(
        stdout(&run).contains(
            "FAILED    held: pre hook failed: `echo nope >&2; exit 1` exited with status 1: nope; nothing was ordered"
        ),
        "{}",
        show(&run)
    );
    assert!(post.exists(), "the post hook ran: {}", show(&run));
    assert!(!sandbox.cert_dir().join("held.pem").exists());
}
