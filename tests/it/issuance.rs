//! The whole path against real parts: Pebble 2.6 as the CA, HAProxy 2.6 in front, hapcert's side-port responder behind it.

use std::collections::BTreeSet;
use std::fs;
use std::process::Stdio;

use crate::harness::{
    Sandbox, SandboxOptions, assert_exit, file_mode, leaf_der_from_pem_file, san_dns_names, serial_hex, show, stderr,
    stdout,
};

const SITE: (&str, &[&str]) = ("site", &["a.example.com"]);
const MULTI: (&str, &[&str]) = ("multi", &["b.example.com", "www.b.example.com", "api.b.example.com"]);
const THIRD: (&str, &[&str]) = ("third", &["c.example.com"]);

fn pem_path(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    sandbox.cert_dir().join(format!("{name}.pem"))
}

fn disk_serial(sandbox: &Sandbox, name: &str) -> String {
    serial_hex(&leaf_der_from_pem_file(&pem_path(sandbox, name)))
}

/// Issues `certs` with a first run and checks it worked, for tests about what comes after.
fn issued(sandbox: &Sandbox, certs: &[(&str, &[&str])]) {
    sandbox.write_config(certs);
    assert_exit(&sandbox.hapcert(&["run"]), 0);
}

/// Every base64 line of every private key in `pem`.
/// The lines of the PEM's private key that hold secret bytes. A key file also carries the public key (all of it in
/// an RSA key, the tail of an EC one), which the CSR in the trace log rightly shows, so a line whose bytes appear in
/// the certificate is public and not looked for.
fn key_lines(pem: &str) -> Vec<String> {
    use base64::Engine;
    let leaf = pem::parse_many(pem)
        .unwrap()
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")
        .expect("a certificate in the PEM");
    let public = leaf.contents();
    let mut inside = false;
    let mut lines = Vec::new();
    for line in pem.lines() {
        if line.contains("PRIVATE KEY-----") {
            inside = line.starts_with("-----BEGIN");
            continue;
        }
        if !inside || line.len() <= 20 {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap_or_default();
        let in_certificate = !bytes.is_empty() && public.windows(bytes.len()).any(|w| w == bytes.as_slice());
        if !in_certificate {
            lines.push(line.to_owned());
        }
    }
    assert!(!lines.is_empty(), "no secret line found in the key");
    lines
}

#[test]
fn first_issuance_serves_three_certificates_chained_to_pebble_with_private_files_and_quiet_logs() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE, MULTI, THIRD]);
    let out = sandbox.hapcert(&["--log-level", "trace", "run"]);
    assert_exit(&out, 0);

    for (name, domains) in [SITE, MULTI, THIRD] {
        let path = pem_path(&sandbox, name);
        assert_eq!(file_mode(&path), 0o600, "{}", path.display());
        let disk = leaf_der_from_pem_file(&path);
        let wanted: BTreeSet<String> = domains.iter().map(|d| d.to_string()).collect();
        assert_eq!(san_dns_names(&disk).into_iter().collect::<BTreeSet<_>>(), wanted);
        for domain in domains {
            // served_leaf trusts only Pebble's root, so this also proves the chain.
            assert_eq!(serial_hex(&sandbox.served_leaf(domain)), serial_hex(&disk), "{domain}");
        }
        assert!(
            stdout(&out).contains(&format!("renewed   {name}: serial {}", serial_hex(&disk))),
            "{}",
            show(&out)
        );
    }
    assert_eq!(sandbox.reload_count(), 1, "one reload for the whole batch");

    assert_eq!(file_mode(&sandbox.state_dir()), 0o700);
    let accounts: Vec<_> = fs::read_dir(sandbox.state_dir().join("accounts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(file_mode(&accounts[0]), 0o600);

    // No key material at any level: not the certificates' keys, not the account key.
    let logs = stderr(&out);
    assert!(logs.contains("TRACE"), "the run logged at trace level");
    assert!(!logs.contains("PRIVATE KEY"), "a PEM key header reached the logs");
    for (name, _) in [SITE, MULTI, THIRD] {
        for line in key_lines(&fs::read_to_string(pem_path(&sandbox, name)).unwrap()) {
            assert!(!logs.contains(&line), "key material of {name} reached the logs");
        }
    }
    let account: serde_json::Value = serde_json::from_slice(&fs::read(&accounts[0]).unwrap()).unwrap();
    let account_key = account["credentials"]["key_pkcs8"].as_str().unwrap();
    assert!(account_key.len() > 40);
    assert!(
        !logs.contains(account_key) && !logs.contains(&account_key[..40]),
        "the account key reached the logs"
    );

    let shown = sandbox.hapcert(&["account", "show"]);
    assert_exit(&shown, 0);
    assert!(
        stdout(&shown).contains(&format!("directory: {}", sandbox.acme_directory())),
        "{}",
        show(&shown)
    );
    assert!(
        stdout(&shown).contains("contact:   mailto:ops@example.com"),
        "{}",
        show(&shown)
    );
}

#[test]
fn a_second_run_with_nothing_due_is_silent_and_sends_no_acme_request() {
    let mut sandbox = Sandbox::start();
    issued(&sandbox, &[SITE, MULTI]);
    let before = fs::read(pem_path(&sandbox, "site")).unwrap();

    // With the CA gone, any ACME request would fail the run (see the unreachable-CA test): exit 0 proves none was sent.
    sandbox.stop_pebble();
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "", "run prints nothing when nothing is due");
    assert!(stderr(&out).contains("not due yet"), "{}", show(&out));
    // The CA's renewal windows fetched by the first run are fresh (Retry-After), so not even ARI is asked.
    assert!(!stderr(&out).contains("WARN"), "{}", show(&out));
    assert_eq!(fs::read(pem_path(&sandbox, "site")).unwrap(), before);
    assert_eq!(sandbox.reload_count(), 1, "no reload when nothing changed");

    let status = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&status, 0);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["name"], "site");
    assert_eq!(rows[0]["due"], false);
    assert_eq!(rows[0]["serial"], disk_serial(&sandbox, "site"));
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not due yet (the CA's renewal window")
    );
    assert_eq!(rows[0]["schedule"]["source"], "ari");
    assert_eq!(rows[0]["last_result"]["outcome"], "renewed");
    let text = sandbox.hapcert(&["status", "--long"]);
    assert!(
        stdout(&text).contains("why:       ") && stdout(&text).contains("last run:  renewed at"),
        "{}",
        show(&text)
    );
    // The table: a header, one line per certificate, no colour codes into a pipe.
    let table = stdout(&sandbox.hapcert(&["status"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("NAME ") && lines[0].ends_with("WHY"), "{table}");
    let site = lines.iter().find(|l| l.starts_with("site ")).expect(&table);
    assert!(site.contains(" a.example.com ") && site.contains(" renew "), "{table}");
    assert!(site.contains(" renewed ") && site.contains("not due yet"), "{table}");
    assert!(!table.contains('\x1b'), "{table}");
}

#[test]
fn force_renews_and_haproxy_serves_the_new_serial() {
    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let old = disk_serial(&sandbox, "site");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), old);

    let out = sandbox.hapcert(&["renew", "--force", "site"]);
    assert_exit(&out, 0);
    let new = disk_serial(&sandbox, "site");
    assert_ne!(new, old);
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), new);
    assert!(stdout(&out).contains("renewal forced (--force)"), "{}", show(&out));
    assert!(
        sandbox.state_dir().join("backup/site.pem").exists(),
        "the replaced PEM is kept in the state dir"
    );
    assert_eq!(
        fs::read_dir(sandbox.cert_dir()).unwrap().count(),
        1,
        "nothing but the PEM in HAProxy's directory"
    );
}

/// The progress bar is for a person at a terminal: `script` gives hapcert one (a real pty), and the bar counts the
/// orders; the same renewal into a pipe, and the timer's `run`, show none.
#[test]
fn a_renewal_by_hand_on_a_terminal_shows_a_progress_bar_and_a_pipe_gets_none() {
    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE, MULTI]);
    let hapcert = env!("CARGO_BIN_EXE_hapcert");
    let command = format!(
        "{hapcert} --config {} renew --force; echo exit=$?",
        sandbox.config_path().display()
    );
    let typescript = sandbox.dir().join("typescript");
    let out = std::process::Command::new("script")
        .args(["-qefc", &command])
        .arg(&typescript)
        .current_dir(sandbox.dir())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(screen.contains("exit=0"), "{screen}");
    assert!(
        screen.contains("/2 certificates"),
        "no progress bar on the terminal: {screen}"
    );

    let piped = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&piped, 0);
    assert!(!stderr(&piped).contains("certificates,"), "{}", show(&piped));
    assert!(!stdout(&piped).contains("certificates,"), "{}", show(&piped));
}

#[test]
fn a_changed_domain_list_triggers_a_reissue() {
    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let old = disk_serial(&sandbox, "site");

    sandbox.write_config(&[("site", &["a.example.com", "new.a.example.com"])]);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("missing new.a.example.com"), "{}", show(&out));
    let leaf = leaf_der_from_pem_file(&pem_path(&sandbox, "site"));
    assert_ne!(serial_hex(&leaf), old);
    assert_eq!(san_dns_names(&leaf).len(), 2);
    assert_eq!(serial_hex(&sandbox.served_leaf("new.a.example.com")), serial_hex(&leaf));
}

#[test]
fn an_unreachable_ca_fails_with_exit_1_and_touches_nothing() {
    let mut sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let before = fs::read(pem_path(&sandbox, "site")).unwrap();
    let served = serial_hex(&sandbox.served_leaf("a.example.com"));

    sandbox.stop_pebble();
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("FAILED    site: cannot reach the ACME directory"),
        "{}",
        show(&out)
    );
    assert_eq!(
        fs::read(pem_path(&sandbox, "site")).unwrap(),
        before,
        "the file is byte for byte the same"
    );
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), served);
    assert_eq!(sandbox.reload_count(), 1);

    let status = sandbox.hapcert(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["last_result"]["outcome"], "failed");
}

#[test]
fn a_failing_config_check_restores_every_file_byte_for_byte_and_skips_the_reload() {
    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let before = fs::read(pem_path(&sandbox, "site")).unwrap();
    let served = serial_hex(&sandbox.served_leaf("a.example.com"));

    // A second, never-issued certificate too: its new file must go away again.
    let failing_check = "echo '[ALERT] simulated config error' >&2; exit 1";
    let config = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n\n[[certificate]]\nname = \"fresh\"\ndomains = [\"f.example.com\"]\n",
        sandbox.base_config().replace(&sandbox.check_command(), failing_check)
    );
    sandbox.write_config_text(&config);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("the HAProxy config check failed"),
        "{}",
        show(&out)
    );
    assert!(
        stdout(&out).contains("[ALERT] simulated config error"),
        "the check's output is shown: {}",
        show(&out)
    );
    assert!(stdout(&out).contains("the previous PEM was put back"), "{}", show(&out));
    assert_eq!(
        fs::read(pem_path(&sandbox, "site")).unwrap(),
        before,
        "restored byte for byte"
    );
    assert!(!pem_path(&sandbox, "fresh").exists(), "a new file is removed again");
    assert_eq!(sandbox.reload_count(), 1, "no reload after a failed check");
    assert_eq!(serial_hex(&sandbox.served_leaf("a.example.com")), served);
}

#[test]
fn a_rollback_puts_back_the_previous_files_owner_and_mode_with_its_bytes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let path = pem_path(&sandbox, "site");
    let before = fs::read(&path).unwrap();
    // The operator's own owner and mode, not the configured ones (hapcert's defaults: 0600, its own user).
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&path, Some(4321), Some(4322)).unwrap();

    let failing_check = "exit 1";
    let config = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n",
        sandbox.base_config().replace(&sandbox.check_command(), failing_check)
    );
    sandbox.write_config_text(&config);
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("the previous PEM was put back"), "{}", show(&out));
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), before, "restored byte for byte");
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o640, 4321, 4322),
        "the mode and owner it had"
    );
}

#[test]
fn a_certificate_file_that_is_not_a_pem_is_refused_by_every_command_and_left_alone() {
    let sandbox = Sandbox::start();
    // The kind of file a wrong `file =` names: here a copy of HAProxy's config, where a certificate's file would be.
    let victim = sandbox.cert_dir().join("site.pem");
    let text = fs::read(sandbox.haproxy_cfg()).unwrap();
    fs::write(&victim, &text).unwrap();
    let config = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\nfile = {:?}\n",
        sandbox.base_config(),
        victim.display().to_string()
    );
    let path = sandbox.write_config_text(&config);
    let line = config.lines().position(|l| l.starts_with("file = ")).unwrap() + 1;
    let want = format!(
        "{}:{line}:8: certificate[0].file: {} holds no certificate: it is not a PEM certificate; point `file` at the PEM HAProxy loads, or remove the file if it is a leftover",
        path.display(),
        victim.display()
    );
    for command in [&["check-config"][..], &["run"], &["renew", "--force"]] {
        let out = sandbox.hapcert(command);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(&want),
            "{command:?}: wanted {want}\n{}",
            show(&out)
        );
    }
    assert_eq!(fs::read(&victim).unwrap(), text, "left byte for byte");
    // A run finds out when it reads the certificates, before any account or order: nothing was recorded.
    assert!(!sandbox.state_dir().join("state.json").exists(), "nothing was recorded");
    assert!(!sandbox.state_dir().join("accounts").exists(), "no account was made");
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_key() {
    let sandbox = Sandbox::start();
    let config = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\", \"bad_name.example.com\"]\n",
        sandbox.base_config()
    );
    let path = sandbox.write_config_text(&config);
    let line = config.lines().position(|l| l.contains("bad_name")).unwrap() + 1;
    let column = config.lines().nth(line - 1).unwrap().find("\"bad_name").unwrap() + 1;
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 2);
    let want = format!(
        "{}:{line}:{column}: certificate[0].domains[1]: 'bad_name.example.com': '_' is not allowed in a DNS name",
        path.display()
    );
    assert!(stderr(&out).contains(&want), "wanted {want}\n{}", show(&out));
    assert!(!sandbox.state_dir().exists(), "nothing was started");

    let check = sandbox.hapcert(&["check-config"]);
    assert_exit(&check, 2);

    sandbox.write_config(&[SITE]);
    let good = sandbox.hapcert(&["check-config"]);
    assert_exit(&good, 0);
    assert!(
        stdout(&good).contains(": OK") && stdout(&good).contains("a.example.com"),
        "{}",
        show(&good)
    );

    let unknown = sandbox.hapcert(&["renew", "nosuch"]);
    assert_exit(&unknown, 2);
    assert!(
        stderr(&unknown).contains("no certificate named 'nosuch'"),
        "{}",
        show(&unknown)
    );
}

#[test]
fn issuance_succeeds_when_the_ca_rejects_half_the_nonces() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        nonce_reject: 50,
        ..Default::default()
    });
    sandbox.write_config(&[SITE, MULTI]);
    let out = sandbox.hapcert(&["--log-level", "debug", "run"]);
    assert_exit(&out, 0);
    // Whether hapcert's own retry or instant-acme's three tries absorbed the rejections varies from run to run; at 50 %
    // without hapcert's retry the run fails (checked by removing it), so exit 0 is the assertion.
    for (name, domains) in [SITE, MULTI] {
        assert_eq!(
            serial_hex(&sandbox.served_leaf(domains[0])),
            disk_serial(&sandbox, name)
        );
    }
}

#[test]
fn concurrent_runs_take_turns_and_nothing_breaks() {
    let sandbox = Sandbox::start();
    sandbox.write_config(&[SITE, MULTI]);
    let spawn = || {
        sandbox
            .hapcert_cmd(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    for out in &outs {
        assert_exit(out, 0);
    }
    let renewed: usize = outs.iter().map(|o| stdout(o).matches("renewed").count()).sum();
    assert_eq!(
        renewed,
        2,
        "each certificate issued once: {}\n{}",
        show(&outs[0]),
        show(&outs[1])
    );
    assert_eq!(sandbox.reload_count(), 1);
    assert_eq!(
        serial_hex(&sandbox.served_leaf("a.example.com")),
        disk_serial(&sandbox, "site")
    );
}

#[test]
fn a_run_that_cannot_get_the_lock_in_time_says_who_holds_it() {
    let sandbox = Sandbox::start();
    let slow_reload = format!("sleep 3; {}", sandbox.reload_command());
    let config = format!(
        "{}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n",
        sandbox.base_config().replace(&sandbox.reload_command(), &slow_reload)
    );
    sandbox.write_config_text(&config);
    let holder = sandbox
        .hapcert_cmd(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock: it has begun its (slow) reload once the file is in place.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pem_path(&sandbox, "site").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run did not write its PEM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = sandbox.hapcert(&["--lock-timeout", "500ms", "run"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("another hapcert run (or a check trying the challenge route) holds the lock"),
        "{}",
        show(&out)
    );
    assert_exit(&holder.wait_with_output().unwrap(), 0);
    assert_eq!(
        serial_hex(&sandbox.served_leaf("a.example.com")),
        disk_serial(&sandbox, "site")
    );
}

#[test]
fn a_state_file_from_a_newer_hapcert_is_refused_with_a_clear_message_and_left_alone() {
    let sandbox = Sandbox::start();
    issued(&sandbox, &[SITE]);
    let state = sandbox.state_dir().join("state.json");
    let mut newer: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(newer["format"], 1, "hapcert writes its state format");
    newer["format"] = 99.into();
    let bytes = serde_json::to_vec_pretty(&newer).unwrap();
    fs::write(&state, &bytes).unwrap();

    for args in [&["run"][..], &["renew", "--force"], &["status"]] {
        let out = sandbox.hapcert(args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(
            err.contains("state.json: it is in format 99, newer than this hapcert reads (up to 1)")
                && err.contains("upgrade hapcert again (the file is left as it is)"),
            "{args:?}: {err}"
        );
        assert_eq!(
            fs::read(&state).unwrap(),
            bytes,
            "{args:?} left the newer state file as it was"
        );
    }
}

/// `[acme] ca_bundle` adds its roots to the system's, as documented: with the CA's root only in the system store
/// (`SSL_CERT_FILE`, which the system roots are read from) and an unrelated root in `ca_bundle`, the CA is still
/// reached and the certificate issued.
#[test]
fn acme_ca_bundle_adds_to_the_system_roots_rather_than_replacing_them() {
    let sandbox = Sandbox::start();
    let other_root = sandbox.dir().join("unrelated-root.pem");
    fs::write(
        &other_root,
        crate::harness::MonitorCa::new("an unrelated root").root_pem,
    )
    .unwrap();
    let listener_ca = sandbox.pebble_listener_ca().display().to_string();
    let config = sandbox.base_config().replacen(
        &format!("ca_bundle = {listener_ca:?}"),
        &format!("ca_bundle = {:?}", other_root.display().to_string()),
        1,
    );
    assert!(config.contains("unrelated-root.pem"), "{config}");
    sandbox.write_config_text(&format!(
        "{config}\n[[certificate]]\nname = \"site\"\ndomains = [\"a.example.com\"]\n"
    ));
    let mut cmd = sandbox.hapcert_cmd(&["run"]);
    cmd.env("SSL_CERT_FILE", &listener_ca)
        .env("SSL_CERT_DIR", sandbox.dir().join("no-such-dir"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.output().expect("run hapcert");
    assert_exit(&out, 0);
    assert!(pem_path(&sandbox, "site").exists(), "{}", show(&out));
}
