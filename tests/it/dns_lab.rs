//! The BIND 9 lab the DNS-01 tests run against (tests/harness/bind.rs): updates signed with the lab's key land on the
//! primary and reach the secondary, policy refuses what it should, the resolver follows the CNAME of a delegated
//! challenge, and a sandbox with a lab still issues over HTTP-01 with Pebble asking the lab.

use std::time::Instant;

use crate::harness::{
    DnsLab, DnsLabOptions, Sandbox, SandboxOptions, Secondary, assert_exit, file_mode, leaf_der_from_pem_file,
    san_dns_names, serial_hex, show, stderr,
};

/// A lab in its own temp dir, which must outlive it (the lab's files and logs are in there).
fn lab(secondary: Option<Secondary>) -> (DnsLab, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("hapcert-dnslab-").tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let lab = DnsLab::start(&dir.path().join("dns"), &logs, DnsLabOptions { secondary });
    (lab, dir)
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[test]
fn dns_lab_update_reaches_primary_and_notified_secondary_and_leftovers_show_it() {
    let (lab, _dir) = lab(Some(Secondary::Notified));
    let (primary, secondary) = (lab.primary(), lab.secondary().unwrap());
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
    let before = lab.serial(&primary, "example.test");

    let out = lab.nsupdate(
        &primary,
        "update add _acme-challenge.example.test. 60 IN TXT \"token-apex\"\n\
         update add _acme-challenge.example.test. 60 IN TXT \"token-wildcard\"\n",
    );
    assert_exit(&out, 0);
    assert!(lab.serial(&primary, "example.test") > before);
    let waited = lab.wait_secondary("example.test");
    eprintln!("the secondary had the update {waited:?} after it was applied");

    let both = vec!["token-apex".to_owned(), "token-wildcard".to_owned()];
    for server in [&primary, &secondary] {
        assert_eq!(
            sorted(lab.txt(server, "_acme-challenge.example.test")),
            both,
            "{server}"
        );
    }
    assert_eq!(
        sorted(lab.challenge_leftovers()),
        [
            "primary _acme-challenge.example.test token-apex",
            "primary _acme-challenge.example.test token-wildcard",
            "secondary _acme-challenge.example.test token-apex",
            "secondary _acme-challenge.example.test token-wildcard",
        ]
    );
    assert!(
        lab.primary_log()
            .contains("adding an RR at '_acme-challenge.example.test' TXT")
    );

    // Without a value, the delete takes the whole RRset.
    assert_exit(
        &lab.nsupdate(&primary, "update delete _acme-challenge.example.test. TXT"),
        0,
    );
    lab.wait_secondary("example.test");
    assert_eq!(lab.txt(&primary, "_acme-challenge.example.test"), Vec::<String>::new());
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
}

#[test]
fn dns_lab_resolver_follows_the_delegation_and_the_policy_refuses_the_rest() {
    let (lab, dir) = lab(None);
    let primary = lab.primary();

    assert_exit(
        &lab.nsupdate(&primary, "update add shop.acme.delegate.test. 60 IN TXT \"delegated\""),
        0,
    );
    // The primary answers the CNAME only; the resolver follows it into delegate.test.
    assert_eq!(lab.txt(&primary, "_acme-challenge.shop.test"), Vec::<String>::new());
    assert_eq!(lab.txt(&lab.resolver(), "_acme-challenge.shop.test"), ["delegated"]);
    assert_eq!(lab.challenge_leftovers(), ["primary shop.acme.delegate.test delegated"]);

    for name in ["_acme-challenge.shop.test.", "_acme-challenge.locked.test."] {
        let out = lab.nsupdate(&primary, &format!("update add {name} 60 IN TXT \"nope\""));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", show(&out));
        assert!(
            stderr(&out).contains("update failed: REFUSED"),
            "{name}: {}",
            show(&out)
        );
    }
    // The one name locked.test grants is accepted, so the refusal above was the policy's.
    assert_exit(
        &lab.nsupdate(
            &primary,
            "update add _acme-challenge.other.locked.test. 60 IN TXT \"ok\"",
        ),
        0,
    );

    // A wrong secret for the right key name: named rejects the signature.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = lab.nsupdate_with_secret(
        &primary,
        wrong,
        "update add _acme-challenge.example.test. 60 IN TXT \"x\"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("NOTAUTH(BADSIG)"), "{}", show(&out));
    // And with the real secret spelled out the same way, it works.
    let out = lab.nsupdate_with_secret(
        &primary,
        lab.secret_base64(),
        "update add _acme-challenge.example.test. 60 IN TXT \"y\"",
    );
    assert_exit(&out, 0);
    assert_eq!(lab.txt(&primary, "_acme-challenge.example.test"), ["y"]);

    // The files a client's configuration points at.
    let secret_file = dir.path().join("acme.secret");
    lab.write_secret_file(&secret_file);
    assert_eq!(file_mode(&secret_file), 0o600);
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        format!("{}\n", lab.secret_base64())
    );
    let key_file = dir.path().join("acme.key");
    lab.write_nsupdate_key(&key_file);
    assert_eq!(file_mode(&key_file), 0o600);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        text.contains(&format!("key \"{}\"", lab.key_name())) && text.contains(lab.secret_base64()),
        "{text}"
    );
}

#[test]
fn dns_lab_lagging_secondary_serves_the_old_serial_until_refreshed() {
    let (lab, _dir) = lab(Some(Secondary::Lagging));
    let (primary, secondary) = (lab.primary(), lab.secondary().unwrap());
    let old = lab.serial(&secondary, "delegate.test");
    assert_eq!(old, lab.serial(&primary, "delegate.test"));

    assert_exit(
        &lab.nsupdate(
            &primary,
            "update add _acme-challenge.a.delegate.test. 60 IN TXT \"fresh\"",
        ),
        0,
    );
    let new = lab.serial(&primary, "delegate.test");
    assert!(new > old);
    // Nothing tells the secondary, and it polls only hourly: a second later it still has the old zone.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(lab.serial(&secondary, "delegate.test"), old);
    assert_eq!(
        lab.txt(&secondary, "_acme-challenge.a.delegate.test"),
        Vec::<String>::new()
    );
    assert_eq!(
        lab.challenge_leftovers(),
        ["primary _acme-challenge.a.delegate.test fresh"]
    );

    let started = Instant::now();
    lab.refresh_secondary("delegate.test");
    eprintln!("refresh took {:?}", started.elapsed());
    assert_eq!(lab.serial(&secondary, "delegate.test"), new);
    assert_eq!(lab.txt(&secondary, "_acme-challenge.a.delegate.test"), ["fresh"]);
}

#[test]
fn dns_lab_in_a_sandbox_is_what_pebble_asks_for_http01_names() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        dns: Some(DnsLabOptions::default()),
        ..Default::default()
    });
    let lab = sandbox.dns();
    let pebble_log = sandbox.pebble_log();
    assert!(
        !sandbox.process_ids().is_empty() && lab.pids().iter().all(|pid| sandbox.process_ids().contains(pid)),
        "{pebble_log}"
    );
    let challtestsrv = std::panic::catch_unwind(|| sandbox.challtestsrv_management());
    assert!(challtestsrv.is_err(), "challtestsrv_management answered with a DNS lab");

    // Nothing but the lab's resolver knows www.http.test, so Pebble reached HAProxy through it.
    sandbox.write_config(&[("web", &["www.http.test"])]);
    let out = sandbox.hapcert(&["run"]);
    assert_exit(&out, 0);
    let disk = leaf_der_from_pem_file(&sandbox.cert_dir().join("web.pem"));
    assert_eq!(san_dns_names(&disk), ["www.http.test"], "{}", show(&out));
    assert_eq!(serial_hex(&sandbox.served_leaf("www.http.test")), serial_hex(&disk));
    assert!(lab.challenge_leftovers().is_empty());
}
