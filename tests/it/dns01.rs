//! DNS-01 against a real BIND 9 (primary, secondary, resolver: tests/harness/bind.rs) and a real Pebble that asks that
//! resolver: wildcards, CNAME delegation, bad keys and refusing policies caught before the CA, a lagging secondary,
//! a killed run's leftovers, the exec provider, and HTTP-01 next to DNS-01.

use std::path::PathBuf;

use crate::harness::{
    DnsLabOptions, Sandbox, SandboxOptions, Secondary, assert_exit, leaf_der_from_pem_file, san_dns_names, serial_hex,
    show, stderr, stdout,
};

fn dns_sandbox(secondary: Option<Secondary>) -> Sandbox {
    Sandbox::start_with(SandboxOptions {
        dns: Some(DnsLabOptions { secondary }),
        ..Default::default()
    })
}

/// The lab's TSIG secret in a 0600 file in the sandbox.
fn secret_file(sandbox: &Sandbox) -> PathBuf {
    let path = sandbox.dir().join("tsig.secret");
    sandbox.dns().write_secret_file(&path);
    path
}

/// An rfc2136 provider `bind` for the lab: updates to the primary, the check against the primary and the secondary
/// (the lab's NS records name port-53 servers that do not exist here). `extra` goes into the table.
fn rfc2136_provider(sandbox: &Sandbox, extra: &str) -> String {
    let lab = sandbox.dns();
    let mut nameservers = vec![format!("{:?}", lab.primary())];
    nameservers.extend(lab.secondary().map(|s| format!("{s:?}")));
    format!(
        "\n[[dns_provider]]\nname = \"bind\"\nkind = \"rfc2136\"\nserver = {:?}\ntsig_key_name = {:?}\n\
         tsig_secret_file = {:?}\nnameservers = [{}]\npropagation_timeout = \"20s\"\npropagation_interval = \"500ms\"\n{extra}",
        lab.primary(),
        lab.key_name(),
        secret_file(sandbox),
        nameservers.join(", ")
    )
}

fn dns_certificate(name: &str, domains: &[&str]) -> String {
    let domains: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "\n[[certificate]]\nname = {name:?}\ndomains = [{}]\nchallenge = \"dns-01\"\n",
        domains.join(", ")
    )
}

/// The values named logged as present at `name` at once, at most: each add raises the count, each delete lowers it.
fn most_values_at_once(log: &str, name: &str) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for line in log.lines() {
        if line.contains(&format!("adding an RR at '{name}' TXT")) {
            now += 1;
            most = most.max(now);
        } else if line.contains(&format!("deleting an RR at {name} TXT"))
            || line.contains(&format!("deleting an RR at '{name}' TXT"))
        {
            now = now.saturating_sub(1);
        }
    }
    most
}

#[test]
fn dns01_issues_apex_and_wildcard_with_two_values_at_one_name_and_leaves_no_record() {
    let sandbox = dns_sandbox(Some(Secondary::Notified));
    let config = sandbox.base_config()
        + &rfc2136_provider(&sandbox, "")
        + &dns_certificate("example.test", &["example.test", "*.example.test"]);
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let pem = sandbox.cert_dir().join("example.test.pem");
    let disk = leaf_der_from_pem_file(&pem);
    assert_eq!(
        san_dns_names(&disk),
        ["example.test", "*.example.test"],
        "{}",
        show(&out)
    );
    // HAProxy serves it for the apex and for a name only the wildcard covers.
    assert_eq!(serial_hex(&sandbox.served_leaf("example.test")), serial_hex(&disk));
    assert_eq!(
        serial_hex(&sandbox.served_leaf("k3x9q.example.test")),
        serial_hex(&disk)
    );

    let lab = sandbox.dns();
    let log = lab.primary_log();
    assert!(
        most_values_at_once(&log, "_acme-challenge.example.test") >= 2,
        "apex and wildcard never held their values at once:\n{log}"
    );
    assert!(!log.contains("deleting rrset"), "a whole RRset was deleted:\n{log}");
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
    assert!(
        !sandbox.state_dir().join("dns-records.json").exists(),
        "the journal of added records still names some"
    );
}

/// Whether Pebble created an order at all.
fn pebble_saw_an_order(sandbox: &Sandbox) -> bool {
    sandbox.pebble_log().contains("Added order")
}

#[test]
fn dns01_follows_a_cname_into_the_delegate_zone_which_alone_can_be_updated() {
    let sandbox = dns_sandbox(None);
    let config = sandbox.base_config() + &rfc2136_provider(&sandbox, "") + &dns_certificate("shop", &["shop.test"]);
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let disk = leaf_der_from_pem_file(&sandbox.cert_dir().join("shop.pem"));
    assert_eq!(san_dns_names(&disk), ["shop.test"], "{}", show(&out));
    assert_eq!(serial_hex(&sandbox.served_leaf("shop.test")), serial_hex(&disk));
    let log = sandbox.dns().primary_log();
    // The value went to the CNAME's target; the alias itself, which the key may not touch, was never updated.
    assert!(log.contains("adding an RR at 'shop.acme.delegate.test' TXT"), "{log}");
    assert!(
        !log.contains("_acme-challenge.shop.test"),
        "an update went to the alias:\n{log}"
    );
    assert!(
        sandbox.dns().challenge_leftovers().is_empty(),
        "{:?}",
        sandbox.dns().challenge_leftovers()
    );
}

#[test]
fn dns01_a_wrong_tsig_secret_or_a_refusing_policy_fails_the_preflight_and_the_ca_sees_no_order() {
    let sandbox = dns_sandbox(None);
    let wrong = sandbox.dir().join("wrong.secret");
    std::fs::write(&wrong, "bm90IHRoZSBsYWIncyBzZWNyZXQsIGF0IGFsbCEhIQ==\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let good_provider = rfc2136_provider(&sandbox, "");
    let bad_provider = good_provider.replace(&format!("{:?}", secret_file(&sandbox)), &format!("{wrong:?}"));
    let wild = dns_certificate("example.test", &["example.test", "*.example.test"]);

    sandbox.write_config_text(&(sandbox.base_config() + &bad_provider + &wild));
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    let said = show(&out);
    assert!(said.contains("preflight failed, nothing was ordered"), "{said}");
    assert!(
        said.contains("rejected the TSIG key 'acme-key': BADSIG: the secret is wrong"),
        "{said}"
    );
    let preflight = sandbox.hapcert(&["preflight"]);
    assert_exit(&preflight, 1);
    assert!(
        stdout(&preflight).contains("FAILED    example.test:") && stdout(&preflight).contains("BADSIG"),
        "{}",
        show(&preflight)
    );

    // The right key, but a name its policy does not grant.
    sandbox.write_config_text(&(sandbox.base_config() + &good_provider + &dns_certificate("locked", &["locked.test"])));
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    let said = show(&out);
    assert!(
        said.contains("refused to add the TXT record at _acme-challenge.locked.test. (REFUSED)")
            && said.contains("update policy does not grant the key 'acme-key'"),
        "{said}"
    );

    // A key name the server does not know.
    let unknown_key = good_provider.replace("tsig_key_name = \"acme-key\"", "tsig_key_name = \"nobody-key\"");
    sandbox.write_config_text(&(sandbox.base_config() + &unknown_key + &wild));
    let out = sandbox.hapcert(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        show(&out).contains("rejected the TSIG key 'nobody-key': BADKEY"),
        "{}",
        show(&out)
    );

    // A CNAME into a zone whose policy does not grant the target: the message shows the chain.
    sandbox.write_config_text(
        &(sandbox.base_config() + &good_provider + &dns_certificate("blocked", &["blocked.shop.test"])),
    );
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    assert!(
        show(&out).contains(
            "(reached through the CNAME _acme-challenge.blocked.shop.test. -> _acme-challenge.locked.test.) (REFUSED)"
        ),
        "{}",
        show(&out)
    );
    assert!(
        !pebble_saw_an_order(&sandbox),
        "the CA saw an order:\n{}",
        sandbox.pebble_log()
    );
    assert!(
        sandbox.dns().challenge_leftovers().is_empty(),
        "{:?}",
        sandbox.dns().challenge_leftovers()
    );
    assert!(!sandbox.cert_dir().join("example.test.pem").exists());
    // A refused update added nothing, so nothing is left in the journal for the next run to "remove".
    assert!(!sandbox.state_dir().join("dns-records.json").exists());
    assert!(!show(&out).contains("interrupted run"), "{}", show(&out));
}

#[test]
fn dns01_waits_for_a_lagging_secondary_naming_it_and_times_out_before_any_order_when_it_never_catches_up() {
    let sandbox = dns_sandbox(Some(Secondary::Lagging));
    let lab = sandbox.dns();
    let secondary = lab.secondary().unwrap();
    let wild = dns_certificate("example.test", &["example.test", "*.example.test"]);

    // Never catching up: the preflight's probe is not seen there within the timeout, so nothing is ordered.
    let provider =
        rfc2136_provider(&sandbox, "").replace("propagation_timeout = \"20s\"", "propagation_timeout = \"3s\"");
    sandbox.write_config_text(&(sandbox.base_config() + &provider + &wild));
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 1);
    let said = show(&out);
    assert!(
        said.contains(&format!(
            "after 3s, not every authoritative server serves the challenge record: {secondary} does not serve"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("waiting for DNS propagation: {secondary} does not serve")),
        "{said}"
    );
    assert!(
        !pebble_saw_an_order(&sandbox),
        "the CA saw an order:\n{}",
        sandbox.pebble_log()
    );
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());

    // Catching up (a refresh every two seconds stands in for a slow transfer): hapcert waits, and then issues.
    sandbox.write_config_text(&(sandbox.base_config() + &rfc2136_provider(&sandbox, "") + &wild));
    // (--force: the failure above scheduled a retry.)
    let mut child = sandbox
        .hapcert_cmd(&["renew", "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_secs(2));
        lab.refresh_secondary("example.test");
    }
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert!(
        show(&out).contains(&format!("waiting for DNS propagation: {secondary} does not serve")),
        "{}",
        show(&out)
    );
    assert!(
        sandbox.pebble_log().contains("Issued certificate"),
        "{}",
        sandbox.pebble_log()
    );
    lab.refresh_secondary("example.test");
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
}

#[test]
fn dns01_a_run_killed_after_adding_its_record_is_cleaned_up_by_the_next_run() {
    let sandbox = dns_sandbox(Some(Secondary::Lagging));
    let lab = sandbox.dns();
    let wild = dns_certificate("example.test", &["example.test", "*.example.test"]);
    sandbox.write_config_text(&(sandbox.base_config() + &rfc2136_provider(&sandbox, "") + &wild));

    // The lagging secondary holds the run in its wait, with a record added: kill it there.
    let mut child = sandbox
        .hapcert_cmd(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = sandbox.state_dir().join("dns-records.json");
    let primary = lab.primary();
    let added = crate::harness::poll_until(std::time::Duration::from_secs(20), || {
        journal.exists() && !lab.txt(&primary, "_acme-challenge.example.test").is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(added, "the run never added its record");
    assert!(
        !lab.challenge_leftovers().is_empty(),
        "the killed run left no record to clean up"
    );

    // The next run (with the secondary caught up on demand) removes it first, then issues.
    let refresher = std::thread::scope(|scope| {
        let run = scope.spawn(|| sandbox.hapcert(&["run"]));
        while !run.is_finished() {
            std::thread::sleep(std::time::Duration::from_secs(2));
            lab.refresh_secondary("example.test");
        }
        run.join().unwrap()
    });
    let out = refresher;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("removed a TXT record that an interrupted run left behind"),
        "{}",
        show(&out)
    );
    lab.refresh_secondary("example.test");
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
    assert!(!journal.exists());
}

#[test]
fn dns01_an_exec_provider_calling_nsupdate_issues_a_wildcard() {
    let sandbox = dns_sandbox(Some(Secondary::Notified));
    let lab = sandbox.dns();
    let key = sandbox.dir().join("acme-key.conf");
    lab.write_nsupdate_key(&key);
    let (host, port) = lab
        .primary()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .unwrap();
    let hook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/dns-nsupdate-hook");
    let provider = format!(
        "\n[[dns_provider]]\nname = \"script\"\nkind = \"exec\"\n\
         command = \"NSUPDATE_SERVER={host} NSUPDATE_PORT={port} NSUPDATE_KEY={} {}\"\n\
         nameservers = [{:?}, {:?}]\npropagation_timeout = \"20s\"\n",
        key.display(),
        hook.display(),
        lab.primary(),
        lab.secondary().unwrap()
    );
    let config = sandbox.base_config() + &provider + &dns_certificate("wild", &["*.example.test"]);
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let disk = leaf_der_from_pem_file(&sandbox.cert_dir().join("wild.pem"));
    assert_eq!(san_dns_names(&disk), ["*.example.test"], "{}", show(&out));
    assert_eq!(serial_hex(&sandbox.served_leaf("any.example.test")), serial_hex(&disk));
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
}

#[test]
fn dns01_and_http01_certificates_are_issued_in_one_run() {
    let sandbox = dns_sandbox(Some(Secondary::Notified));
    let check = format!(
        "\n[check]\nendpoints = [{:?}]\nca_bundle = {:?}\n",
        sandbox.https_endpoint(),
        sandbox.pebble_roots_file()
    );
    let config = sandbox.base_config()
        + &check
        + &rfc2136_provider(&sandbox, "")
        + &dns_certificate("example.test", &["example.test", "*.example.test"])
        + "\n[[certificate]]\nname = \"web\"\ndomains = [\"www.http.test\"]\n";
    sandbox.write_config_text(&config);

    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    for (file, sni, names) in [
        (
            "example.test.pem",
            "x1.example.test",
            &["example.test", "*.example.test"][..],
        ),
        ("web.pem", "www.http.test", &["www.http.test"][..]),
    ] {
        let disk = leaf_der_from_pem_file(&sandbox.cert_dir().join(file));
        assert_eq!(san_dns_names(&disk), names, "{}", show(&out));
        assert_eq!(serial_hex(&sandbox.served_leaf(sni)), serial_hex(&disk));
    }
    assert!(
        sandbox.dns().challenge_leftovers().is_empty(),
        "{:?}",
        sandbox.dns().challenge_leftovers()
    );

    // `check` handshakes with the wildcard's random label and the apex, and finds both fine.
    let check = sandbox.hapcert(&["check"]);
    assert_exit(&check, 0);
    assert!(stdout(&check).contains("SNI *.example.test [OK]"), "{}", show(&check));
}

/// Issue 18: `check` tries a DNS-01 certificate's route too, with the run's DNS preflight (a probe TXT record through
/// the provider, seen on every server). A key that stops working after issuance is a WARNING with the preflight's
/// finding; the probe records have their own journal, and a run's journaled records are left alone.
#[test]
fn dns01_a_key_broken_after_issuance_makes_check_warn_and_a_runs_records_are_left_alone() {
    let sandbox = dns_sandbox(None);
    let good_provider = rfc2136_provider(&sandbox, "");
    let cert = dns_certificate("example.test", &["example.test"]);
    sandbox.write_config_text(&(sandbox.base_config() + &good_provider + &cert));
    assert_exit(&sandbox.hapcert(&["run"]), 0);

    // What a run under way has journaled: a check must neither remove it nor rewrite the file.
    let journal = sandbox.state_dir().join("dns-records.json");
    let in_flight = format!(
        "[{{\"provider\":\"bind\",\"challenge\":\"_acme-challenge.other.test.\",\"record\":\"_acme-challenge.other.test.\",\
         \"zone\":\"other.test.\",\"primary\":{:?},\"value\":\"a-run-s-own-value\"}}]",
        sandbox.dns().primary()
    );
    std::fs::write(&journal, &in_flight).unwrap();

    let wrong = sandbox.dir().join("wrong.secret");
    std::fs::write(&wrong, "bm90IHRoZSBsYWIncyBzZWNyZXQsIGF0IGFsbCEhIQ==\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bad_provider = good_provider.replace(&format!("{:?}", secret_file(&sandbox)), &format!("{wrong:?}"));
    sandbox.write_config_text(&(sandbox.base_config() + &bad_provider + &cert));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 1);
    let line = stdout(&out).lines().next().unwrap_or_default().to_owned();
    assert!(
        line.starts_with(
            "HAPCERT WARNING - example.test: the challenge route is broken, so the next renewal would fail: "
        ) && line.contains("BADSIG"),
        "{}",
        show(&out)
    );
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), in_flight);

    sandbox.write_config_text(&(sandbox.base_config() + &good_provider + &cert));
    let out = sandbox.hapcert(&["check"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("  challenge route [OK]: worked at "),
        "{}",
        show(&out)
    );
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), in_flight);
    assert!(
        !sandbox.state_dir().join("dns-probes.json").exists(),
        "the probe's record is still journaled"
    );
    assert!(
        sandbox.dns().challenge_leftovers().is_empty(),
        "{:?}",
        sandbox.dns().challenge_leftovers()
    );
}
