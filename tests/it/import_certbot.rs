//! `hapcert import certbot` against a tree Debian's certbot made for real, against the sandbox's Pebble, with HTTP-01 on
//! the side port as on the postmortem's load balancer.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use time::OffsetDateTime;

use crate::harness::{
    CertbotKey, Sandbox, SandboxOptions, assert_exit, file_mode, leaf_der_from_pem_file, serial_hex, show, stderr,
    stdout, validity,
};

/// (lineage name, domains, key options, the key_type hapcert should write).
const LINEAGES: [(&str, &[&str], CertbotKey, &str); 3] = [
    (
        "a.example.com",
        &["a.example.com"],
        CertbotKey::Ecdsa("secp256r1"),
        "ecdsa-p256",
    ),
    (
        "multi",
        &["b.example.com", "www.b.example.com", "api.b.example.com"],
        CertbotKey::Rsa(2048),
        "rsa-2048",
    ),
    (
        "c.example.com",
        &["c.example.com"],
        CertbotKey::Ecdsa("secp384r1"),
        "ecdsa-p384",
    ),
];

/// A small executable script at `path` that notes it ran.
fn script(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "#!/bin/sh\necho \"$0 ran\"\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Three lineages made by certbot, the first with a pre hook and a deploy hook (certbot stores the latter as
/// `renew_hook`), plus a deploy script in renewal-hooks/ as `certbot renew` would run for every lineage.
fn certbot_tree(sandbox: &Sandbox) -> Hooks {
    let hooks = Hooks {
        pre: sandbox.dir().join("hooks/stop-something.sh"),
        deploy: sandbox.dir().join("hooks/renew.sh"),
        directory_script: "renewal-hooks/deploy/50-haproxy-reload.sh",
    };
    script(&hooks.pre);
    script(&hooks.deploy);
    let (pre, deploy) = (hooks.pre.display().to_string(), hooks.deploy.display().to_string());
    for (i, (name, domains, key, _)) in LINEAGES.into_iter().enumerate() {
        let extra: &[&str] = if i == 0 {
            &["--pre-hook", &pre, "--deploy-hook", &deploy]
        } else {
            &[]
        };
        sandbox.certbot_certonly(name, domains, key, extra);
    }
    script(&sandbox.certbot_config_dir().join(hooks.directory_script));
    hooks
}

struct Hooks {
    pre: PathBuf,
    deploy: PathBuf,
    directory_script: &'static str,
}

fn live(sandbox: &Sandbox, name: &str, file: &str) -> PathBuf {
    sandbox.certbot_config_dir().join("live").join(name).join(file)
}

fn certbot_serial(sandbox: &Sandbox, name: &str) -> String {
    serial_hex(&leaf_der_from_pem_file(&live(sandbox, name, "cert.pem")))
}

fn adopted(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.cert_dir().join(format!("{name}.pem"))
}

/// `hapcert import certbot` with the sandbox's certbot tree and cert dir; `extra` adds options.
fn import(sandbox: &Sandbox, extra: &[&str]) -> std::process::Output {
    let config_dir = sandbox.certbot_config_dir().display().to_string();
    let cert_dir = sandbox.cert_dir().display().to_string();
    let mut args = vec![
        "import",
        "certbot",
        "--config-dir",
        &config_dir,
        "--cert-dir",
        &cert_dir,
    ];
    args.extend(extra);
    sandbox.hapcert(&args)
}

/// The imported config with the host-specific parts pointed at the sandbox: `[challenge]`, `[haproxy]` and `[state]` from
/// the sandbox's base config, and its `[acme] ca_bundle` and `trust_roots` (Pebble is not publicly trusted). Everything
/// the import decided about the certificates and the CA stays as written.
fn sandbox_config(sandbox: &Sandbox, imported: &str) -> String {
    let mut config: toml::Table = toml::from_str(imported).expect("the imported config is TOML");
    let base: toml::Table = toml::from_str(&sandbox.base_config()).unwrap();
    for section in ["challenge", "haproxy", "state"] {
        config.insert(section.into(), base[section].clone());
    }
    let acme = config.get_mut("acme").and_then(toml::Value::as_table_mut).unwrap();
    for key in ["ca_bundle", "trust_roots"] {
        acme.insert(key.into(), base["acme"][key].clone());
    }
    toml::to_string(&config).unwrap()
}

#[test]
fn import_writes_a_config_hapcert_accepts_adopts_each_certificate_and_reports_hooks_and_the_account() {
    let sandbox = Sandbox::start();
    let hooks = certbot_tree(&sandbox);
    let written = sandbox.dir().join("imported.toml");
    let target = written.display().to_string();

    let out = import(&sandbox, &["--write-config", &target]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "", "with --write-config the config goes to the file");
    let imported = fs::read_to_string(&written).unwrap();
    eprintln!("--- imported config ---\n{imported}");

    // What the import decided, as written.
    let config: toml::Table = toml::from_str(&imported).unwrap();
    assert_eq!(
        config["acme"]["directory"].as_str(),
        Some(sandbox.acme_directory().as_str())
    );
    assert_eq!(
        config["challenge"]["listen"].as_str(),
        Some(format!("127.0.0.1:{}", sandbox.side_port()).as_str()),
        "certbot's http01_port"
    );
    assert_eq!(
        config["haproxy"]["cert_dir"].as_str(),
        Some(sandbox.cert_dir().display().to_string().as_str())
    );
    let certificates = config["certificate"].as_array().unwrap();
    assert_eq!(certificates.len(), 3);
    for (name, domains, _, key_type) in LINEAGES {
        let table = certificates.iter().find(|c| c["name"].as_str() == Some(name)).unwrap();
        let listed: Vec<&str> = table["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let (mut listed_sorted, mut wanted) = (listed.clone(), domains.to_vec());
        listed_sorted.sort();
        wanted.sort();
        assert_eq!(listed_sorted, wanted, "{name}");
        assert_eq!(
            listed[0], domains[0],
            "{name}: the subject (certbot's first -d) comes first"
        );
        assert_eq!(table["key_type"].as_str(), Some(key_type), "{name}");

        // Adopted: HAProxy's layout of certbot's fullchain.pem and privkey.pem, private.
        let file = adopted(&sandbox, name);
        assert_eq!(file_mode(&file), 0o600, "{}", file.display());
        let certbot_pem = format!(
            "{}{}",
            fs::read_to_string(live(&sandbox, name, "fullchain.pem")).unwrap(),
            fs::read_to_string(live(&sandbox, name, "privkey.pem")).unwrap()
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), certbot_pem, "{name}");
        assert_eq!(
            serial_hex(&leaf_der_from_pem_file(&file)),
            certbot_serial(&sandbox, name)
        );
    }

    // The report: the hooks with their commands, the directory script, and the account. Its paragraphs are wrapped, so
    // runs of whitespace count as one space.
    let report = stderr(&out).split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "hapcert import certbot: 3 lineages in ".to_owned(),
        ", 3 imported, 0 skipped ".to_owned(),
        format!(" a.example.com: pre_hook = {} ", hooks.pre.display()),
        format!(
            " a.example.com: renew_hook = {} (certbot's --deploy-hook) ",
            hooks.deploy.display()
        ),
        format!(" {} (a deploy hook for every lineage) ", hooks.directory_script),
        "has an RSA key, and hapcert signs with P-256 ECDSA only. It is not reused: a new account will be made on the \
         first `hapcert run`"
            .to_owned(),
        format!(" config: written to {target} "),
    ] {
        assert!(report.contains(&expected), "missing {expected:?}\n{}", show(&out));
    }
    assert!(!report.contains("PRIVATE KEY"), "{}", show(&out));

    // Pointed at the sandbox, hapcert accepts the config and sees the three certificates.
    sandbox.write_config_text(&sandbox_config(&sandbox, &imported));
    let check = sandbox.hapcert(&["check-config"]);
    assert_exit(&check, 0);
    for (name, _, _, key_type) in LINEAGES {
        assert!(
            stdout(&check).contains(&format!("    {name:<16} {key_type:<11} ")),
            "{}",
            show(&check)
        );
    }

    // An existing config is not replaced without --force; with it, the PEMs already in place are left alone.
    let again = import(&sandbox, &["--write-config", &target]);
    assert_exit(&again, 2);
    assert!(
        stderr(&again).contains("exists; pass --force to replace it"),
        "{}",
        show(&again)
    );
    let forced = import(&sandbox, &["--write-config", &target, "--force"]);
    assert_exit(&forced, 0);
    assert_eq!(
        stderr(&forced).matches(" is already up to date\n").count(),
        3,
        "{}",
        show(&forced)
    );
    assert_eq!(fs::read_to_string(&written).unwrap(), imported);

    // A lineage whose key is not its certificate's is skipped and named; the others are still imported (exit 1).
    let broken_key = live(&sandbox, "c.example.com", "privkey.pem");
    fs::remove_file(&broken_key).unwrap();
    std::os::unix::fs::symlink("../../archive/multi/privkey1.pem", &broken_key).unwrap();
    let partial = import(&sandbox, &["--dry-run"]);
    assert_exit(&partial, 1);
    assert!(
        stderr(&partial).contains(
            "  SKIPPED   c.example.com: the private key archive/multi/privkey1.pem does not belong to the certificate \
             archive/c.example.com/fullchain1.pem"
        ),
        "{}",
        show(&partial)
    );
    assert!(
        stderr(&partial).contains(", 2 imported, 1 skipped"),
        "{}",
        show(&partial)
    );
    let printed: toml::Table = toml::from_str(&stdout(&partial)).unwrap();
    let names: Vec<&str> = printed["certificate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.example.com", "multi"]);
}

#[test]
fn a_run_right_after_the_import_orders_nothing() {
    let sandbox = Sandbox::start();
    certbot_tree(&sandbox);
    let out = import(&sandbox, &[]);
    assert_exit(&out, 0);
    let imported = stdout(&out);
    sandbox.write_config_text(&sandbox_config(&sandbox, &imported));
    let before: Vec<Vec<u8>> = LINEAGES
        .iter()
        .map(|(name, ..)| fs::read(adopted(&sandbox, name)).unwrap())
        .collect();

    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 0);
    assert_eq!(stdout(&run), "", "nothing due, nothing printed: {}", show(&run));
    assert!(!stderr(&run).contains("ordering"), "{}", show(&run));
    assert_eq!(stderr(&run).matches("not due yet").count(), 3, "{}", show(&run));
    let after: Vec<Vec<u8>> = LINEAGES
        .iter()
        .map(|(name, ..)| fs::read(adopted(&sandbox, name)).unwrap())
        .collect();
    assert!(before == after, "the adopted files are untouched");
    assert!(
        !sandbox.state_dir().join("accounts").exists(),
        "no account is made while nothing is due"
    );
    assert_eq!(sandbox.reload_count(), 0);

    let status = sandbox.hapcert(&["status", "--json"]);
    assert_exit(&status, 0);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    for (name, ..) in LINEAGES {
        let row = rows.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(row["due"], false, "{row}");
        assert_eq!(row["serial"], certbot_serial(&sandbox, name));
    }
}

/// Pebble's certificates here live a minute: certbot's are due within it, while the ones hapcert issues stay valid long
/// enough to be checked on the wire. Pebble 2.6 suggests a two-day window around such a certificate's end, so the
/// moment hapcert picks in it falls anywhere up to the expiry (hapcert never waits past it).
const SHORT_VALIDITY_SECS: u64 = 60;

#[test]
fn with_short_lived_certificates_the_first_run_renews_every_imported_lineage_and_haproxy_serves_the_new_ones() {
    let sandbox = Sandbox::start_with(SandboxOptions {
        cert_validity_secs: Some(SHORT_VALIDITY_SECS),
        ..Default::default()
    });
    certbot_tree(&sandbox);
    let out = import(&sandbox, &[]);
    assert_exit(&out, 0);
    sandbox.write_config_text(&sandbox_config(&sandbox, &stdout(&out)));

    // Wait until the newest of certbot's certificates is due whatever moment is picked in its window: at its expiry.
    let window_opens = LINEAGES
        .iter()
        .map(|(name, ..)| validity(&leaf_der_from_pem_file(&live(&sandbox, name, "cert.pem"))).1)
        .max()
        .unwrap();
    let wait: time::Duration = window_opens - OffsetDateTime::now_utc() + time::Duration::seconds(1);
    if wait.is_positive() {
        sleep(Duration::try_from(wait).unwrap());
    }

    let run = sandbox.hapcert(&["run"]);
    assert_exit(&run, 0);
    let log = stderr(&run);
    assert_eq!(
        log.matches("inside the renewal window").count() + log.matches("expired at").count(),
        3,
        "due by time, not for a difference between the config and the files: {}",
        show(&run)
    );
    for (name, domains, ..) in LINEAGES {
        let old = certbot_serial(&sandbox, name);
        let new = serial_hex(&leaf_der_from_pem_file(&adopted(&sandbox, name)));
        assert_ne!(new, old, "{name} was renewed");
        assert!(
            stdout(&run).contains(&format!("renewed   {name}: serial {new}")),
            "{}",
            show(&run)
        );
        for domain in domains {
            assert_eq!(serial_hex(&sandbox.served_leaf(domain)), new, "{domain}");
        }
    }
}

/// Fails the test with the way to install certbot's RFC 2136 plugin when it is missing.
fn require_certbot_dns_rfc2136() {
    // Debian's certbot runs under the system's interpreter, whatever python3 comes first on PATH (pyenv, a venv).
    let found = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import certbot_dns_rfc2136"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "certbot's RFC 2136 plugin (python3-certbot-dns-rfc2136) is missing: run `scripts/lib/tools.sh \
         ensure_certbot`, or apt-get install python3-certbot-dns-rfc2136"
    );
}

#[test]
fn import_certbot_maps_a_dns_rfc2136_wildcard_lineage_to_dns01_and_hapcert_renews_it_leaving_no_record() {
    require_certbot_dns_rfc2136();
    let sandbox = Sandbox::start_with(SandboxOptions {
        dns: Some(Default::default()),
        ..Default::default()
    });
    let lab = sandbox.dns();
    let (host, port) = lab
        .primary()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .unwrap();
    let ini = sandbox.dir().join("rfc2136.ini");
    fs::write(
        &ini,
        format!(
            "dns_rfc2136_server = {host}\ndns_rfc2136_port = {port}\ndns_rfc2136_name = {}\n\
             dns_rfc2136_secret = {}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            lab.key_name(),
            lab.secret_base64()
        ),
    )
    .unwrap();
    fs::set_permissions(&ini, fs::Permissions::from_mode(0o600)).unwrap();

    let directory = sandbox.acme_directory();
    let ini_arg = ini.display().to_string();
    let out = sandbox.certbot(&[
        "certonly",
        "--dns-rfc2136",
        "--dns-rfc2136-credentials",
        &ini_arg,
        "--dns-rfc2136-propagation-seconds",
        "1",
        "--server",
        &directory,
        "--non-interactive",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--key-type",
        "ecdsa",
        "--cert-name",
        "example.test",
        "-d",
        "example.test",
        "-d",
        "*.example.test",
    ]);
    assert_exit(&out, 0);
    assert!(
        lab.challenge_leftovers().is_empty(),
        "certbot left {:?}",
        lab.challenge_leftovers()
    );

    let written = sandbox.dir().join("imported.toml");
    let target = written.display().to_string();
    let out = import(&sandbox, &["--write-config", &target]);
    assert_exit(&out, 0);
    let imported = fs::read_to_string(&written).unwrap();
    eprintln!("--- imported config ---\n{imported}");
    assert!(
        !imported.contains(lab.secret_base64()),
        "the secret is not in the config"
    );
    assert!(!stderr(&out).contains(lab.secret_base64()), "nor in the report");
    let report = stderr(&out).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(report.contains(", 1 imported, 0 skipped"), "{}", show(&out));
    assert!(
        report.contains("dns_rfc2136_propagation_seconds is not carried over"),
        "{}",
        show(&out)
    );

    let config: toml::Table = toml::from_str(&imported).unwrap();
    let certificate = &config["certificate"].as_array().unwrap()[0];
    assert_eq!(certificate["name"].as_str(), Some("example.test"));
    assert_eq!(certificate["challenge"].as_str(), Some("dns-01"));
    let domains: Vec<&str> = certificate["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(domains, ["example.test", "*.example.test"]);
    let providers = config["dns_provider"].as_array().unwrap();
    assert_eq!(providers.len(), 1);
    let provider = &providers[0];
    assert_eq!(certificate["dns_provider"].as_str(), provider["name"].as_str());
    assert_eq!(provider["name"].as_str(), Some("rfc2136"), "named after rfc2136.ini");
    assert_eq!(provider["kind"].as_str(), Some("rfc2136"));
    assert_eq!(provider["server"].as_str(), Some(lab.primary().as_str()));
    assert_eq!(provider["tsig_key_name"].as_str(), Some(lab.key_name()));
    assert_eq!(provider["tsig_algorithm"].as_str(), Some("hmac-sha256"));
    let secret_file = PathBuf::from(provider["tsig_secret_file"].as_str().unwrap());
    assert_eq!(
        secret_file,
        sandbox.dir().join("tsig-rfc2136.secret"),
        "next to the config"
    );
    assert_eq!(file_mode(&secret_file), 0o600);
    assert_eq!(fs::read_to_string(&secret_file).unwrap().trim(), lab.secret_base64());
    let pem = adopted(&sandbox, "example.test");
    assert_eq!(file_mode(&pem), 0o600);
    assert_eq!(
        serial_hex(&leaf_der_from_pem_file(&pem)),
        certbot_serial(&sandbox, "example.test")
    );
    let cert_files: Vec<String> = fs::read_dir(sandbox.cert_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cert_files.iter().all(|f| !f.starts_with('*')), "{cert_files:?}");

    // A dry run writes no secret.
    fs::remove_file(&secret_file).unwrap();
    let dry = import(&sandbox, &["--dry-run", "--write-config", &target]);
    assert_exit(&dry, 0);
    assert!(!secret_file.exists(), "{}", show(&dry));
    assert!(stderr(&dry).contains("secret would be written to"), "{}", show(&dry));
    let out = import(&sandbox, &["--write-config", &target, "--force"]);
    assert_exit(&out, 0);
    assert_eq!(file_mode(&secret_file), 0o600);

    // Pointed at the sandbox, hapcert accepts it. The lab's NS records name port-53 servers that do not exist here, so
    // the propagation check is given the primary, as the REVIEW comment in the config asks on such a host.
    let mut config: toml::Table = toml::from_str(&sandbox_config(&sandbox, &imported)).unwrap();
    let provider = config["dns_provider"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap();
    provider.insert("nameservers".into(), toml::Value::Array(vec![lab.primary().into()]));
    provider.insert("propagation_timeout".into(), "20s".into());
    sandbox.write_config_text(&toml::to_string(&config).unwrap());
    let check = sandbox.hapcert(&["check-config"]);
    assert_exit(&check, 0);

    // And renews it over DNS-01 through the imported provider, leaving no challenge record behind.
    let renew = sandbox.hapcert(&["renew", "--force", "example.test"]);
    assert_exit(&renew, 0);
    let new = serial_hex(&leaf_der_from_pem_file(&pem));
    assert_ne!(new, certbot_serial(&sandbox, "example.test"), "{}", show(&renew));
    assert_eq!(serial_hex(&sandbox.served_leaf("k3x9q.example.test")), new);
    assert!(lab.challenge_leftovers().is_empty(), "{:?}", lab.challenge_leftovers());
}
