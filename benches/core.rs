//! Micro-benchmarks of the pure core: the renewal decision, PEM parsing, assembly and verification, config parsing.
//! No network, no files, no Pebble. CI runs each once through `cargo test --all-targets` (a smoke test that they still
//! build and run); `cargo bench --bench core -- --quick` gives numbers to compare by hand. Nothing here asserts a time.
//!
//! Everything a benchmark needs is made before its timed closure: certificates, configs, state.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::OffsetDateTime;
use time::macros::datetime;

use hapcert::core::ari::{AriWindow, RenewalInfo};
use hapcert::core::config::{CertificateSpec, Config, KeyType};
use hapcert::core::decision::Local;
use hapcert::core::pem::{Bundle, CertFacts};
use hapcert::core::schedule::Overrides;
use hapcert::core::state::{CertState, State};
use hapcert::core::survey::survey;
use hapcert::core::trust::{RootSource, TrustRoots, pem_certificates};
use hapcert::core::verify::verify_issued;

const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);
const DAY: Duration = Duration::from_secs(86_400);
const CONFIG_FILE: &str = "/etc/hapcert/hapcert.toml";

/// The two key types most certificates are issued with.
const KEY_TYPES: [KeyType; 2] = [KeyType::EcdsaP256, KeyType::Rsa2048];

/// A one-level CA, enough for a leaf with an authority key identifier (as public CAs set, and ARI ids need) and a
/// chain whose signature `verify_issued` checks.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, "hapcert bench CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A combined PEM as HAProxy loads it: leaf, intermediate, PKCS#8 key; 90 days from 30 days before `NOW`.
    fn issue(&self, names: &[&str], key_type: KeyType) -> String {
        let key = hapcert::core::keys::generate_key(key_type).expect("leaf key");
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = NOW - DAY * 30;
        params.not_after = params.not_before + DAY * 90;
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        format!("{}{}{}", leaf.pem(), self.pem, key.serialize_pem())
    }
}

/// A config as a large site writes it: every section validation looks at, and `tables` `[[certificate]]` tables with
/// a mix of key types, `renew_before` and dual-key (`key_types`) tables.
fn config_text(tables: usize) -> String {
    let mut text = String::from(
        r#"
[acme]
directory = "letsencrypt"
contact = ["ops@example.com"]

[challenge]
listen = "127.0.0.1:54321"

[haproxy]
cert_dir = "/etc/haproxy/certs"
check_command = "haproxy -c -f /etc/haproxy/haproxy.cfg"
reload_command = "systemctl reload haproxy"
runtime_api = "/run/haproxy/admin.sock"
verify = ["127.0.0.1:443"]
mode = "0600"

[state]
dir = "/var/lib/hapcert"

[hooks]
deploy_hook = "systemctl reload postfix"
timeout = "5m"

[check]
endpoints = ["127.0.0.1:443"]
max_run_age = "36h"

[[notify]]
kind = "webhook"
url = "https://hooks.example.com/hapcert"

[[notify]]
kind = "exec"
command = "/usr/local/bin/page-oncall"
events = ["critical", "run-overdue", "renewal-failed"]
repeat = "4h"
"#,
    );
    for i in 0..tables {
        write!(
            text,
            "\n[[certificate]]\nname = \"site{i}\"\ndomains = [\"site{i}.example.com\", \"www.site{i}.example.com\"]\n"
        )
        .unwrap();
        match i % 10 {
            3 => text.push_str("key_type = \"rsa-2048\"\n"),
            5 => text.push_str("renew_before = \"30d\"\n"),
            7 => text.push_str("key_types = [\"ecdsa-p256\", \"rsa-2048\"]\n"),
            _ => {}
        }
    }
    text
}

/// The facts of a deployed certificate that matches `spec`, issued `age_days` before `NOW` for 90 days.
fn facts_for(spec: &CertificateSpec, serial: usize, age_days: u32) -> CertFacts {
    let not_before = NOW - DAY * age_days;
    CertFacts {
        serial: format!("{serial:032x}"),
        names: spec.domain_set(),
        not_before,
        not_after: not_before + DAY * 90,
        key_type: Some(spec.key_type),
        key_matches: true,
        ari_id: Some(format!("aki.{serial:032x}")),
    }
}

/// The CA's renewal window for `facts`, as `state.json` keeps it.
fn ari_window(facts: &CertFacts) -> RenewalInfo {
    RenewalInfo::Ari(AriWindow {
        cert_id: facts.ari_id.clone().unwrap(),
        start: facts.not_after - DAY * 32,
        end: facts.not_after - DAY * 30,
        renew_at: facts.not_after - DAY * 31,
        checked_at: NOW - DAY,
        next_check: NOW + Duration::from_secs(6 * 3600),
        explanation_url: None,
    })
}

/// The decision runs for every certificate on every run, every `status` and every daemon wake-up; a fleet of 1,000
/// shows what a large site pays. It goes through `State::decide`, as `run` and the daemon do: the state lookup (ARI
/// window, revocation) is part of it.
fn decision(c: &mut Criterion) {
    let config = Config::parse(&config_text(1000), Path::new(CONFIG_FILE)).expect("the bench config is valid");
    let specs = &config.certificates[..1000];
    let mut state = State::default();
    let mut local = Vec::with_capacity(specs.len());
    // A fleet in every condition the decision tells apart: most present and not due, some inside their window, some
    // with the CA's window remembered, a few missing, renamed or revoked.
    for (i, spec) in specs.iter().enumerate() {
        let facts = facts_for(spec, i, (i % 90) as u32);
        let mut remembered = CertState::default();
        if i % 4 == 0 {
            remembered.renewal_info = Some(ari_window(&facts));
        }
        if i % 100 == 2 {
            remembered.revoked_serial = Some(facts.serial.clone());
        }
        state.certificates.insert(spec.name.clone(), remembered);
        local.push(match i {
            _ if i % 50 == 1 => Local::Missing,
            _ if i % 25 == 3 => {
                let mut renamed = facts;
                renamed.names.insert("old.example.com".into());
                Local::Present(renamed)
            }
            _ => Local::Present(facts),
        });
    }

    let surveyed = |specs: &[CertificateSpec], local: &[Local]| {
        survey(specs.iter().zip(local), &state, None, NOW, Overrides::default())
            .iter()
            .filter(|s| s.decision.due)
            .count()
    };
    let due = surveyed(specs, &local);
    assert!((100..500).contains(&due), "a mixed fleet, mostly not due: {due} due");

    let mut group = c.benchmark_group("decision");
    // The common case and the longest path: a present certificate, every check passed, timed by the CA's window.
    let one = (&specs[..1], &local[..1]);
    assert!(matches!(one.1[0], Local::Present(_)) && state.remembered(&one.0[0].name).renewal_info.is_some());
    group.bench_function("one", |b| b.iter(|| surveyed(black_box(one.0), black_box(one.1))));
    group.bench_function("1000", |b| b.iter(|| surveyed(black_box(specs), black_box(&local))));
    group.finish();
}

/// Every run, `status`, `check` and metrics write reads each deployed PEM into facts; this is the whole read: PEM
/// blocks, X.509 decoding, the key-matches-leaf check (which loads the private key) and the ARI id.
fn pem_parse(c: &mut Criterion) {
    let ca = TestCa::new();
    let mut group = c.benchmark_group("pem_parse");
    for key_type in KEY_TYPES {
        let pem = ca.issue(&["example.com", "www.example.com"], key_type);
        let facts = Bundle::parse(pem.as_bytes())
            .and_then(|b| b.facts())
            .expect("the bench PEM parses");
        assert!(facts.key_matches && facts.ari_id.is_some());
        group.bench_function(key_type.name(), |b| {
            b.iter(|| Bundle::parse(black_box(pem.as_bytes())).and_then(|b| b.facts()))
        });
    }
    group.finish();
}

/// What a renewal does with the CA's chain and the new key before deploying: `verify_issued` (key matches the leaf,
/// chain signatures, names, validity, the chain to a trusted root), then writing HAProxy's PEM layout.
fn pem_assemble(c: &mut Criterion) {
    let ca = TestCa::new();
    let names = ["example.com", "www.example.com"];
    let wanted: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    let roots = TrustRoots::new(vec![RootSource {
        label: "the bench CA".into(),
        certs: pem_certificates(ca.pem.as_bytes()).expect("the bench CA is PEM"),
    }])
    .expect("the bench CA is a usable root");
    let mut group = c.benchmark_group("pem_assemble");
    for key_type in KEY_TYPES {
        let bundle = Bundle::parse(ca.issue(&names, key_type).as_bytes()).expect("the bench PEM parses");
        verify_issued(&bundle, &wanted, &roots, NOW).expect("the bench certificate verifies");
        group.bench_function(format!("to_haproxy_pem/{}", key_type.name()), |b| {
            b.iter(|| black_box(&bundle).to_haproxy_pem())
        });
        group.bench_function(format!("verify_issued/{}", key_type.name()), |b| {
            b.iter(|| verify_issued(black_box(&bundle), black_box(&wanted), &roots, black_box(NOW)))
        });
    }
    group.finish();
}

/// Every command parses and validates the whole config first; 50 tables is a large site. `Config::parse` is pure
/// (the host checks, such as files existing, are `host_check`, not timed here).
fn config_parse(c: &mut Criterion) {
    let text = config_text(50);
    let config = Config::parse(&text, Path::new(CONFIG_FILE)).expect("the bench config is valid");
    assert_eq!(config.certificates.len(), 55, "50 tables, 5 of them with two key types");
    c.bench_function("config_parse/50", |b| {
        b.iter(|| Config::parse(black_box(&text), Path::new(CONFIG_FILE)))
    });
}

criterion_group!(benches, decision, pem_parse, pem_assemble, config_parse);
criterion_main!(benches);
