//! DNS-01 against a real BIND 9 (primary, secondary, resolver: tests/harness/bind.rs) and a real Pebble that asks that
//! resolver: wildcards, CNAME delegation, bad keys and refusing policies caught before the CA, a lagging secondary,
//! a killed run's leftovers, the exec provider, and HTTP-01 next to DNS-01.

use std::path::PathBuf;

use crate::harness::{
    DnsLabOptions, Sandbox, SandboxOptions, Secondary, assert_exit, leaf_der_from_pem_file, san_dns_names, serial_hex,
    show,
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
