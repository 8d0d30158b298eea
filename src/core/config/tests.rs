use std::path::Path;

use super::*;

const FILE: &str = "/etc/hapcert/hapcert.toml";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new(FILE))
}

fn errors(text: &str) -> Vec<String> {
    parse(text).unwrap_err().0.iter().map(ToString::to_string).collect()
}

const MINIMAL: &str = r#"
[acme]
directory = "letsencrypt-staging"

[[certificate]]
name = "www"
domains = ["example.com"]
"#;

#[test]
fn defaults_fill_a_minimal_config() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(
        config.acme.directory,
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(config.challenge.listen.to_string(), "127.0.0.1:54321");
    assert_eq!(config.haproxy.cert_dir.value, Path::new("/etc/haproxy/certs"));
    assert_eq!(config.haproxy.check_command, "haproxy -c -f /etc/haproxy/haproxy.cfg");
    assert_eq!(config.haproxy.reload_command, "systemctl reload haproxy");
    assert_eq!(config.haproxy.mode, 0o600);
    assert_eq!(config.state.dir.value, Path::new("/var/lib/hapcert"));
    let cert = &config.certificates[0];
    assert_eq!(cert.key_type, KeyType::EcdsaP256);
    assert_eq!(cert.file.value, Path::new("/etc/haproxy/certs/www.pem"));
    assert_eq!(cert.renew_before, None);
}

#[test]
fn a_full_config_parses() {
    let config = parse(
        r#"
[acme]
directory = "https://ca.internal/acme/directory"
contact = ["ops@example.com", "mailto:sec@example.com"]
ca_bundle = "ca.pem"
eab_kid = "kid-1"
eab_hmac_key = "c2VjcmV0LWtleQ"

[challenge]
listen = "[::1]:8402"

[haproxy]
cert_dir = "/srv/certs"
mode = 0o640
group = "haproxy"

[state]
dir = "state"

[[certificate]]
name = "api"
domains = ["API.example.com", "api2.example.com"]
key_type = "rsa-3072"
file = "/srv/other/api.pem"
renew_before = "30d"
"#,
    )
    .unwrap();
    assert_eq!(
        config.acme.contact,
        ["mailto:ops@example.com", "mailto:sec@example.com"]
    );
    assert_eq!(
        config.acme.ca_bundle.unwrap().value,
        Path::new("/etc/hapcert/ca.pem"),
        "relative to the config file"
    );
    assert_eq!(config.state.dir.value, Path::new("/etc/hapcert/state"));
    assert_eq!(config.challenge.listen.to_string(), "[::1]:8402");
    assert_eq!(config.haproxy.mode, 0o640);
    let cert = &config.certificates[0];
    assert_eq!(cert.domains[0].as_str(), "api.example.com");
    assert_eq!(cert.key_type, KeyType::Rsa3072);
    assert_eq!(cert.renew_before, Some(std::time::Duration::from_secs(30 * 86_400)));
    assert!(
        !format!("{:?}", config.acme.eab).contains("c2VjcmV0"),
        "the HMAC key is not in Debug output"
    );
}

#[test]
fn unknown_keys_and_syntax_errors_name_the_line() {
    assert_eq!(
        errors("[acme]\ndirectory = \"letsencrypt\"\ncontacts = []\n"),
        [format!(
            "{FILE}:3:1: unknown field `contacts`, expected one of `directory`, `contact`, `ca_bundle`, `eab_kid`, `eab_hmac_key`, `eab_hmac_key_file`, `profile`, `preferred_chain`, `trust_roots`, `request_timeout`, `order_deadline`; remove it or check its spelling"
        )]
    );
    assert_eq!(
        errors("[acme]\ndirectory = letsencrypt\n"),
        [format!(
            "{FILE}:2:13: string values must be quoted, expected literal string"
        )]
    );
    assert_eq!(
        errors("[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n"),
        [format!("{FILE}:1:1: missing field `acme`; add it")]
    );
}

#[test]
fn every_validation_problem_is_reported_with_its_place() {
    let text = r#"[acme]
directory = "http://insecure.example/dir"
contact = ["not-an-address"]

[challenge]
listen = "localhost"

[haproxy]
mode = "0644"

[[certificate]]
name = "www"
domains = ["example.com", "Example.com", "*.example.com"]
key_type = "dsa"
renew_before = "soon"

[[certificate]]
name = "www"
domains = []

[[certificate]]
name = "../etc"
domains = ["a.example.com"]
file = "/etc/haproxy/certs/www.pem"
"#;
    let want = [
        "2:13: acme.directory: 'http://insecure.example/dir' is neither an https:// URL nor one of the aliases 'letsencrypt', 'letsencrypt-staging'",
        "3:12: acme.contact[0]: 'not-an-address' is not an e-mail address",
        "6:10: challenge.listen: 'localhost' is not an address; write ip:port, like 127.0.0.1:54321",
        "9:8: haproxy.mode: 0644 lets every local user read the private key; use 0600, or 0640 with a group",
        "13:27: certificate[0].domains[1]: 'example.com' is listed twice",
        "13:42: certificate[0].domains[2]: '*.example.com' is a wildcard, which only DNS-01 can validate; set challenge = \"dns-01\" in certificate 'www' (and add a [[dns_provider]])",
        "14:12: certificate[0].key_type: 'dsa' is not a key type; use one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096",
        "15:16: certificate[0].renew_before: 'soon' is not a duration (expected number at 0); write it like \"30d\", \"36h\" or \"5m\"",
        "19:11: certificate[1].domains: is empty; list the names this certificate covers",
        "18:8: certificate[1].name: 'www' is already the name of certificate[0]; names must be unique",
        "18:8: certificate[1].file: writes /etc/haproxy/certs/www.pem, which certificate 'www' writes too; give one of them another file",
        "22:8: certificate[2].name: '../etc' may only hold letters, digits, '.', '-' and '_', and must not start with '.'",
        "22:8: certificate[2].file: writes /etc/haproxy/certs/www.pem, which certificate 'www' writes too; give one of them another file",
    ];
    let got = errors(text);
    let want: Vec<String> = want.iter().map(|w| format!("{FILE}:{w}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key() {
    assert_eq!(
        errors("[acme]\ndirectory = \"letsencrypt\"\n\neab_kid = 5\n"),
        [format!(
            "{FILE}:4:11: acme.eab_kid: invalid type: integer `5`, expected a string"
        )]
    );
    let certificates = "[acme]\ndirectory = \"letsencrypt\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n\n[[certificate]]\nname = \"b\"\ndomains = [\"b.example.com\", 7]\n";
    let got = errors(certificates);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(&format!(
            "{FILE}:10:29: certificate[1].domains[1]: invalid type: integer `7`"
        )),
        "{got:?}"
    );
    let inline = errors("acme = { directory = true }\n");
    assert!(
        inline[0].starts_with(&format!("{FILE}:1:22: acme.directory: invalid type: boolean `true`")),
        "{inline:?}"
    );
    let nested = errors("[acme]\ndirectory = \"letsencrypt\"\n[haproxy]\nverify = \"a.example.com\"\n");
    assert!(
        nested[0].starts_with(&format!("{FILE}:4:10: haproxy.verify: invalid type: string")),
        "{nested:?}"
    );
}

#[test]
fn modes_and_eab_halves_are_checked() {
    let with = |extra: &str| {
        format!(
            "[acme]\ndirectory = \"letsencrypt\"\n{extra}\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.com\"]\n"
        )
    };
    assert_eq!(parse(&with("[haproxy]\nmode = \"0600\"")).unwrap().haproxy.mode, 0o600);
    assert!(errors(&with("[haproxy]\nmode = \"0400\""))[0].contains("does not let the owner read and write"));
    assert!(errors(&with("[haproxy]\nmode = \"rw\""))[0].contains("is not a file mode"));
    assert_eq!(
        errors(&with("eab_kid = \"k\"")),
        [format!(
            "{FILE}:3:11: acme.eab_kid: eab_hmac_key (or eab_hmac_key_file) is missing; External Account Binding needs both"
        )]
    );
    assert!(errors(&with("eab_kid = \"k\"\neab_hmac_key = \"not base64!\""))[0].contains("must be the base64url key"));
}

#[test]
fn a_config_without_certificates_says_so() {
    assert_eq!(
        errors("[acme]\ndirectory = \"letsencrypt\"\n"),
        [format!(
            "{FILE}: certificate: no [[certificate]] tables; add one with a name and its domains (or [[watch]] \
             entries, when hapcert only monitors this host)"
        )]
    );
    let watching = "[acme]\ndirectory = \"letsencrypt\"\n[[watch]]\nname = \"api\"\nendpoint = \"10.0.0.5:443\"\n";
    assert!(parse(watching).unwrap().certificates.is_empty());
}

#[test]
fn key_types_become_one_certificate_per_kind_in_haproxys_suffixed_files() {
    let config = parse(
        r#"
[acme]
directory = "letsencrypt"
[haproxy]
verify = ["127.0.0.1:443", "[::1]:8443"]
[[certificate]]
name = "www"
domains = ["example.com"]
key_types = ["ecdsa-p384", "rsa-2048"]
[[certificate]]
name = "api"
domains = ["api.example.com"]
verify = ["lb2.example.net:443"]
"#,
    )
    .unwrap();
    let summary: Vec<(String, String, KeyType, String)> = config
        .certificates
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.group.clone(),
                c.key_type,
                c.file.value.display().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "www.ecdsa".into(),
                "www".into(),
                KeyType::EcdsaP384,
                "/etc/haproxy/certs/www.pem.ecdsa".into()
            ),
            (
                "www.rsa".into(),
                "www".into(),
                KeyType::Rsa2048,
                "/etc/haproxy/certs/www.pem.rsa".into()
            ),
            (
                "api".into(),
                "api".into(),
                KeyType::EcdsaP256,
                "/etc/haproxy/certs/api.pem".into()
            ),
        ]
    );
    assert_eq!(config.select(&["www".to_owned()]).count(), 2);
    assert_eq!(config.select(&["www.rsa".to_owned()]).count(), 1);
    assert_eq!(config.certificates[0].verify, ["127.0.0.1:443", "[::1]:8443"]);
    assert_eq!(config.certificates[2].verify, ["lb2.example.net:443"]);
    assert_eq!(config.haproxy.crt_list, "/etc/haproxy/certs");
}

#[test]
fn runtime_api_challenge_mode_and_key_type_lists_are_checked() {
    let text = r#"[acme]
directory = "letsencrypt"
[challenge]
mode = "dns"
preflight_address = "localhost:80"
[haproxy]
runtime_api = "admin.sock"
master_socket = "ipv4@127.0.0.1:9999"
verify = ["127.0.0.1"]
[[certificate]]
name = "a"
domains = ["a.example.com"]
key_types = ["ecdsa-p256", "ecdsa-p384"]
[[certificate]]
name = "b"
domains = ["b.example.com"]
key_type = "rsa-2048"
key_types = ["rsa-2048"]
"#;
    let want = [
        "4:8: challenge.mode: 'dns' is not a mode; use \"side-port\" or \"stateless\"",
        "5:21: challenge.preflight_address: 'localhost:80' is not an address; write ip:port, like 127.0.0.1:80",
        "7:15: haproxy.runtime_api: 'admin.sock' is not a socket; write a path like /run/haproxy/admin.sock, or ipv4@127.0.0.1:9999",
        "9:11: haproxy.verify[0]: '127.0.0.1' is not host:port, like 127.0.0.1:443",
        "13:28: certificate[0].key_types[1]: a second ECDSA type; HAProxy serves one ECDSA and one RSA certificate per name",
        "17:12: certificate[1].key_type: give key_type or key_types, not both",
    ];
    let want: Vec<String> = want.iter().map(|w| format!("{FILE}:{w}")).collect();
    assert_eq!(errors(text), want);
    let stateless = parse(&MINIMAL.replace(
        "[[certificate]]",
        "[challenge]\nmode = \"stateless\"\npreflight = false\n\n[[certificate]]",
    ))
    .unwrap();
    assert_eq!(stateless.challenge.mode, ChallengeMode::Stateless);
    assert!(!stateless.challenge.preflight);
}

#[test]
fn the_example_config_in_deploy_parses() {
    let text = include_str!("../../../deploy/hapcert.toml");
    let config = Config::parse(text, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
    assert!(config.haproxy.runtime_api.is_some());
    assert!(config.certificates.len() >= 2);
    assert!(config.fleet.is_none(), "the example runs as a single node");
}

/// Every commented-out setting of the example, switched on, is valid too: an operator uncomments without surprises.
/// (The EAB pair is left out: its values are placeholders for what a CA hands out.)
#[test]
fn the_example_config_with_every_setting_uncommented_parses() {
    let text: String = include_str!("../../../deploy/hapcert.toml")
        .lines()
        .map(|line| {
            let setting = line
                .strip_prefix("# ")
                .filter(|rest| rest.starts_with('[') || rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
                .filter(|rest| !rest.starts_with("eab_"));
            format!("{}\n", setting.unwrap_or(line))
        })
        .collect();
    let config = Config::parse(&text, Path::new("/etc/hapcert/hapcert.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.notify.len(), 3);
    assert!(config.metrics.textfile.is_some() && config.daemon.listen.is_some() && config.daemon.control.is_some());
    assert!(config.hooks.global.deploy.is_some());
    assert_eq!(config.watch.len(), 1);
    assert_eq!(config.watch[0].starttls, Some(StartTls::Smtp));
    assert_eq!(config.check.ignore_paths.len(), 1);
    let fleet = config.fleet.expect("the [fleet] example");
    assert!(fleet.client_identity.is_some() && fleet.auth.is_some() && fleet.etcd.len() == 3);
}

#[test]
fn the_control_socket_defaults_to_run_hapcert_is_relative_to_the_config_and_fits_a_socket_address() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.daemon.control_socket(), Path::new("/run/hapcert/control.sock"));
    let config = parse(&format!("{MINIMAL}\n[daemon]\ncontrol = \"run/control.sock\"\n")).unwrap();
    assert_eq!(
        config.daemon.control_socket(),
        Path::new("/etc/hapcert/run/control.sock")
    );
    let long = format!("/run/{}/control.sock", "d".repeat(100));
    let problems = errors(&format!("{MINIMAL}\n[daemon]\ncontrol = \"{long}\"\n"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("daemon.control") && p.contains("107 bytes")),
        "{problems:?}"
    );
    assert!(
        errors(&format!("{MINIMAL}\n[daemon]\ncontrol = \"\"\n"))
            .iter()
            .any(|p| p.contains("daemon.control"))
    );
}

#[test]
fn profiles_default_from_acme_and_are_checked_against_their_name_limits() {
    let names: Vec<String> = (0..26).map(|i| format!("\"n{i}.example.com\"")).collect();
    let text = format!(
        r#"
[acme]
directory = "letsencrypt"
profile = "tlsserver"

[[certificate]]
name = "www"
domains = ["example.com"]

[[certificate]]
name = "short"
domains = ["short.example.com"]
profile = "shortlived"

[[certificate]]
name = "many"
domains = [{}]
"#,
        names.join(", ")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("hapcert.toml:17:")
            && errs[0].contains("certificate[2].domains: 26 names, but the profile \"tlsserver\" allows at most 25"),
        "{errs:?}"
    );

    let fixed = text.replace(
        &format!("domains = [{}]", names.join(", ")),
        "domains = [\"m.example.com\"]\nprofile = \"classic\"",
    );
    let config = parse(&fixed).unwrap();
    let profiles: Vec<_> = config.certificates.iter().map(|c| c.profile.as_deref()).collect();
    assert_eq!(profiles, [Some("tlsserver"), Some("shortlived"), Some("classic")]);

    let errs = errors(&MINIMAL.replace(
        "directory = \"letsencrypt-staging\"",
        "directory = \"letsencrypt-staging\"\nprofile = \"two words\"",
    ));
    assert!(
        errs[0].contains("acme.profile: 'two words' is not a profile name"),
        "{errs:?}"
    );
}

#[test]
fn preferred_chain_defaults_from_acme_and_must_be_one_line_of_a_common_name() {
    let text = r#"
[acme]
directory = "letsencrypt"
preferred_chain = "ISRG Root X1"

[[certificate]]
name = "www"
domains = ["example.com"]

[[certificate]]
name = "other"
domains = ["other.example.com"]
preferred_chain = "ISRG Root X2"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.acme.preferred_chain.as_deref(), Some("ISRG Root X1"));
    let chains: Vec<_> = config
        .certificates
        .iter()
        .map(|c| c.preferred_chain.as_deref())
        .collect();
    assert_eq!(chains, [Some("ISRG Root X1"), Some("ISRG Root X2")]);
    // check-config shows each certificate's.
    let shown = super::summary(&config, super::FileOwner { uid: None, gid: None }, "none yet");
    assert!(
        shown.contains("renew at 1/3 of lifetime left, preferred chain to \"ISRG Root X1\")")
            && shown.contains("preferred chain to \"ISRG Root X2\")"),
        "{shown}"
    );
    assert_eq!(parse(MINIMAL).unwrap().certificates[0].preferred_chain, None);

    for (value, expected) in [
        (
            r#""""#,
            "acme.preferred_chain: is empty; write the common name of the root",
        ),
        (
            r#""ISRG\nRoot""#,
            "acme.preferred_chain: must be one line without control characters",
        ),
        (
            r#"" ISRG Root X1""#,
            "acme.preferred_chain: starts or ends with a space",
        ),
        (
            &format!("\"{}\"", "x".repeat(65)),
            "acme.preferred_chain: is 65 characters, more than a common name",
        ),
    ] {
        let errs = errors(&MINIMAL.replace(
            "directory = \"letsencrypt-staging\"",
            &format!("directory = \"letsencrypt-staging\"\npreferred_chain = {value}"),
        ));
        assert!(errs.len() == 1 && errs[0].contains(expected), "{value}: {errs:?}");
    }
    let errs = errors(&text.replace("\"ISRG Root X2\"", "\"\""));
    assert!(
        errs.len() == 1
            && errs[0].contains("hapcert.toml:13:19:")
            && errs[0].contains("certificate[1].preferred_chain: is empty"),
        "{errs:?}"
    );
}

#[test]
fn one_haproxy_verify_sets_the_checked_endpoints_and_each_names_its_key() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.check.endpoints_key, "[haproxy] verify");
    assert_eq!(config.certificates[0].verify_key, "[haproxy] verify");

    let bound = format!("{MINIMAL}\n[haproxy]\nverify = [\"192.0.2.10:443\"]\n");
    let config = parse(&bound).unwrap();
    assert_eq!(config.haproxy.verify, ["192.0.2.10:443"]);
    assert_eq!(
        config.check.endpoints,
        ["192.0.2.10:443"],
        "one edit moves the check too"
    );
    assert_eq!(config.check.endpoints_key, "[haproxy] verify");

    let own = format!(
        "{}\nverify = [\"192.0.2.11:443\"]\n\n[haproxy]\nverify = [\"192.0.2.10:443\"]\n[check]\nendpoints = [\"192.0.2.12:443\"]\n",
        MINIMAL.trim_end()
    );
    let config = parse(&own).unwrap();
    assert_eq!(config.certificates[0].verify, ["192.0.2.11:443"]);
    assert_eq!(config.certificates[0].verify_key, "`verify` in [[certificate]] \"www\"");
    assert_eq!(config.check.endpoints, ["192.0.2.12:443"]);
    assert_eq!(config.check.endpoints_key, "[check] endpoints");
}

#[test]
fn monitoring_sections_parse_with_defaults_and_overrides() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.check.endpoints, ["127.0.0.1:443"]);
    assert_eq!(config.check.warn_days, None);
    assert_eq!(config.check.crit_days, 7.0);
    assert_eq!(config.check.max_run_age, std::time::Duration::from_secs(36 * 3600));
    assert_eq!(config.daemon.probe_interval, std::time::Duration::from_secs(300));
    assert_eq!(
        config.daemon.recheck_interval,
        std::time::Duration::from_secs(12 * 3600)
    );
    assert!(config.daemon.listen.is_none() && config.metrics.textfile.is_none() && config.notify.is_empty());

    let text = format!(
        r#"{MINIMAL}
pre_hook = "echo own-pre"

[check]
endpoints = ["10.0.0.2:443", "lb2.example.com:8443"]
warn_days = 20
crit_days = 5.5
max_run_age = "2d"

[metrics]
textfile = "/var/lib/prometheus/node-exporter/hapcert.prom"

[daemon]
listen = "127.0.0.1:9555"
probe_interval = "1m"
jitter = "0s"

[hooks]
pre_hook = "echo global-pre"
deploy_hook = "systemctl restart something"
timeout = "30s"

[[notify]]
kind = "webhook"
url = "https://hooks.slack.com/services/T/B/X"
events = ["renewal-failed", "renewed"]
repeat = "6h"

[[notify]]
kind = "email"
to = ["ops@example.com"]
from = "hapcert@lb1.example.com"
smtp_host = "mail.example.com"
username = "hapcert"
password_file = "smtp-password"

[[notify]]
kind = "exec"
command = "/usr/local/bin/page"
"#
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.check.endpoints, ["10.0.0.2:443", "lb2.example.com:8443"]);
    assert_eq!((config.check.warn_days, config.check.crit_days), (Some(20.0), 5.5));
    assert_eq!(config.check.max_run_age, std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(config.daemon.listen.unwrap().to_string(), "127.0.0.1:9555");
    assert!(config.daemon.jitter.is_zero());
    let hooks = &config.certificates[0].hooks;
    assert_eq!(hooks.pre.as_deref(), Some("echo own-pre"));
    assert_eq!(hooks.deploy.as_deref(), Some("systemctl restart something"));
    assert_eq!(hooks.post, None);
    assert_eq!(config.notify.len(), 3);
    assert!(config.notify[0].wants(EventKind::Renewed) && !config.notify[0].wants(EventKind::Critical));
    assert!(config.notify[0].wants(EventKind::Test));
    assert!(!config.notify[2].wants(EventKind::Renewed) && config.notify[2].wants(EventKind::RunOverdue));
    match &config.notify[1].kind {
        NotifyKind::Email(email) => match &email.transport {
            EmailTransport::Smtp {
                port,
                starttls,
                password_file,
                ..
            } => {
                assert_eq!((*port, *starttls), (587, true));
                assert_eq!(
                    password_file.as_ref().unwrap().value,
                    Path::new("/etc/hapcert/smtp-password")
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn monitoring_mistakes_are_named() {
    let text = format!(
        r#"{MINIMAL}
[check]
warn_days = 3
max_run_age = "often"

[daemon]
recheck_interval = "2d"

[[notify]]
kind = "pager"

[[notify]]
kind = "webhook"
url = "ftp://x"
to = ["a@example.com"]
events = ["expired"]

[[notify]]
kind = "email"
to = ["ops@example.com"]
smtp_port = 25
"#
    );
    let errors = errors(&text);
    let expect = [
        "check.warn_days: 3 is below crit_days (7); the warning must come first",
        "check.max_run_age: 'often' is not a duration",
        "daemon.recheck_interval: is longer than 12h",
        "notify[0].kind: 'pager' is not a kind of notification",
        "notify[1].url: 'ftp://x' is not an http:// or https:// URL",
        "notify[1].to: does not apply to kind = \"webhook\"; remove it",
        "notify[1].events[0]: 'expired' is not an event",
        "notify[2].smtp_port: applies to SMTP only",
    ];
    for wanted in expect {
        assert!(
            errors.iter().any(|e| e.contains(wanted)),
            "no '{wanted}' in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
}

#[test]
fn positions_are_lines_and_columns_in_characters_at_line_starts_ends_and_past_the_end() {
    let text = "ab\n\nkéy = 1\nlast";
    let lines = LineStarts::of(text);
    let at = |offset| {
        let Position { line, column } = lines.position(text, offset);
        (line, column)
    };
    assert_eq!(at(0), (1, 1));
    assert_eq!(at(2), (1, 3), "the newline itself ends line 1");
    assert_eq!(at(3), (2, 1), "an empty line");
    assert_eq!(at(4), (3, 1));
    assert_eq!(at(7), (3, 3), "é is one character of two bytes");
    assert_eq!(at(text.len()), (4, 5));
    assert_eq!(at(text.len() + 10), (4, 5), "past the end: the end");
}

#[test]
fn port_zero_a_renew_before_of_a_whole_lifetime_and_thresholds_beyond_one_are_refused() {
    let text = r#"
[acme]
directory = "letsencrypt"

[challenge]
listen = "127.0.0.1:0"

[[certificate]]
name = "www"
domains = ["example.com"]
renew_before = "90d"

[[certificate]]
name = "api"
domains = ["api.example.com"]
renew_before = "89d"

[check]
warn_days = 91
crit_days = 90.5

[daemon]
listen = "[::1]:0"
"#;
    let want = [
        "6:10: challenge.listen: port 0 lets the system pick any port, and HAProxy's challenge backend must name a fixed one; give the port of its server line, like 127.0.0.1:54321",
        "11:16: certificate[0].renew_before: '90d' is not shorter than 90 days, the longest lifetime Let's Encrypt issues (and lifetimes are shrinking), so the certificate would be due at every run; use less, like \"30d\", or remove it for the lifetime rule",
        "19:13: check.warn_days: 91 days is more than 90, the longest lifetime Let's Encrypt issues (and lifetimes are shrinking), so every certificate would always be reported; use less, like 30",
        "20:13: check.crit_days: 90.5 days is more than 90, the longest lifetime Let's Encrypt issues (and lifetimes are shrinking), so every certificate would always be reported; use less, like 30",
        "23:10: daemon.listen: port 0 lets the system pick any port, which the scraper of /metrics and /healthz could not know; give a fixed one, like 127.0.0.1:9555",
    ];
    let want: Vec<String> = want.iter().map(|w| format!("{FILE}:{w}")).collect();
    assert_eq!(errors(text), want);

    // At the limits: 90 days of warning, and a critical threshold above the warning one is still refused.
    let text = format!("{MINIMAL}\n[check]\nwarn_days = 90\ncrit_days = 90\n");
    assert_eq!(parse(&text).unwrap().check.warn_days, Some(90.0));
    let text = format!("{MINIMAL}\n[check]\nwarn_days = 10\ncrit_days = 20\n");
    assert_eq!(
        errors(&text),
        [format!(
            "{FILE}:10:13: check.warn_days: 10 is below crit_days (20); the warning must come first"
        )]
    );
}

/// A config with `[haproxy] cert_dir`, `[state] dir` and one certificate's `file` (when given), read from `config`.
fn layout_errors(config: &str, cert_dir: &str, state: &str, file: Option<&str>) -> Vec<String> {
    let file = file.map(|f| format!("file = \"{f}\"\n")).unwrap_or_default();
    let text = format!(
        "[acme]\ndirectory = \"letsencrypt\"\n[haproxy]\ncert_dir = \"{cert_dir}\"\n[state]\ndir = \"{state}\"\n[[certificate]]\nname = \"www\"\ndomains = [\"example.com\"]\n{file}"
    );
    match Config::parse(&text, Path::new(config)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_state_the_certificates_and_the_config_do_not_overlap() {
    let cfg = "/etc/hapcert/hapcert.toml";
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/var/lib/hapcert", None),
        Vec::<String>::new()
    );
    // Beside one another is fine; `..` and `.` are read as written.
    assert_eq!(
        layout_errors(
            cfg,
            "/srv/tls/certs",
            "/srv/tls/./certs/../state",
            Some("/srv/tls/certs/www.pem")
        ),
        Vec::<String>::new()
    );

    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/etc/haproxy/certs/", None),
        [format!(
            "{cfg}:6:7: state.dir: /etc/haproxy/certs/ is the cert directory /etc/haproxy/certs; HAProxy would load hapcert's account key and backups as certificates; give the state a directory of its own, like /var/lib/hapcert"
        )]
    );
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/etc/haproxy/certs/../certs/state", None),
        [format!(
            "{cfg}:6:7: state.dir: /etc/haproxy/certs/../certs/state is inside the cert directory /etc/haproxy/certs; HAProxy would load hapcert's account key and backups as certificates; give the state a directory of its own, like /var/lib/hapcert"
        )]
    );
    assert_eq!(
        layout_errors(cfg, "/var/lib/hapcert/certs", "/var/lib/hapcert", None),
        [format!(
            "{cfg}:4:12: haproxy.cert_dir: /var/lib/hapcert/certs is inside the state directory /var/lib/hapcert, which holds the account key; keep the certificates outside it"
        )]
    );
    assert_eq!(
        layout_errors(
            "/etc/haproxy/certs/hapcert.toml",
            "/etc/haproxy/certs",
            "/var/lib/hapcert",
            None
        ),
        [
            "/etc/haproxy/certs/hapcert.toml:4:12: haproxy.cert_dir: /etc/haproxy/certs holds the config file /etc/haproxy/certs/hapcert.toml; HAProxy would try to load it as a certificate; keep the config elsewhere, like /etc/hapcert/hapcert.toml"
        ]
    );
    // A relative state dir is the config's own directory here.
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", ".", None),
        [format!(
            "{cfg}:6:7: state.dir: /etc/hapcert/. holds the config file {cfg}; the state directory is hapcert's own; keep the config elsewhere, like /etc/hapcert/hapcert.toml"
        )]
    );
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/var/lib/hapcert", Some("hapcert.toml")),
        [format!(
            "{cfg}:10:8: certificate[0].file: is the config file itself, which a renewal would overwrite with a certificate; point `file` at the PEM HAProxy loads"
        )]
    );
    assert_eq!(
        layout_errors(
            cfg,
            "/etc/haproxy/certs",
            "/var/lib/hapcert",
            Some("/var/lib/hapcert/backup/www.pem")
        ),
        [format!(
            "{cfg}:10:8: certificate[0].file: /var/lib/hapcert/backup/www.pem is inside the state directory /var/lib/hapcert; point `file` at the PEM HAProxy loads, outside the state directory"
        ),]
    );
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/srv/tls/state", Some("/srv/tls/www.pem")),
        [format!(
            "{cfg}:6:7: state.dir: /srv/tls/state is inside /srv/tls, where certificate[0].file writes its certificate; give the state a directory of its own, like /var/lib/hapcert"
        )]
    );
    // Once for the directory, not again for the file in it.
    assert_eq!(
        layout_errors(cfg, "/etc/haproxy/certs", "/srv/tls", Some("/srv/tls/www.pem")),
        [format!(
            "{cfg}:6:7: state.dir: /srv/tls is /srv/tls, where certificate[0].file writes its certificate; give the state a directory of its own, like /var/lib/hapcert"
        )]
    );
}

#[test]
fn trust_roots_and_the_ca_timeouts_are_read_and_bounded() {
    let config = parse(MINIMAL).unwrap();
    assert!(config.acme.trust_roots.is_none());
    assert_eq!(config.acme.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(config.acme.order_deadline, DEFAULT_ORDER_DEADLINE);

    let text = MINIMAL.replace(
        "directory = \"letsencrypt-staging\"",
        "directory = \"letsencrypt-staging\"\ntrust_roots = \"pebble-roots.pem\"\nrequest_timeout = \"5s\"\norder_deadline = \"2m\"",
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.acme.trust_roots.unwrap().value,
        Path::new("/etc/hapcert/pebble-roots.pem")
    );
    assert_eq!(config.acme.request_timeout, std::time::Duration::from_secs(5));
    assert_eq!(config.acme.order_deadline, std::time::Duration::from_secs(120));

    let text = MINIMAL.replace(
        "directory = \"letsencrypt-staging\"",
        "directory = \"letsencrypt-staging\"\nrequest_timeout = \"100ms\"\norder_deadline = \"2days\"",
    );
    assert_eq!(
        errors(&text),
        [
            format!("{FILE}:4:19: acme.request_timeout: must be at least 1s: a CA answers in milliseconds to seconds"),
            format!(
                "{FILE}:5:18: acme.order_deadline: 2days is more than 6h, the most hapcert waits; use less, like 10m"
            ),
        ]
    );
}

#[test]
fn a_fleet_table_parses_with_its_defaults() {
    let config = parse(&format!(
        "{MINIMAL}\n[fleet]\netcd = [\"http://127.0.0.1:12371\", \"http://127.0.0.1:12372/\", \"http://lb-etcd\"]\nkey_file = \"fleet.key\"\n"
    ))
    .unwrap();
    let fleet = config.fleet.unwrap();
    let urls: Vec<(&str, bool, &str, u16)> = fleet
        .etcd
        .iter()
        .map(|e| (e.url.as_str(), e.tls, e.host.as_str(), e.port))
        .collect();
    assert_eq!(
        urls,
        [
            ("http://127.0.0.1:12371", false, "127.0.0.1", 12371),
            ("http://127.0.0.1:12372", false, "127.0.0.1", 12372),
            ("http://lb-etcd", false, "lb-etcd", 2379),
        ]
    );
    assert_eq!(fleet.prefix, "/hapcert/default");
    assert_eq!(
        fleet.node.value, "",
        "the host name, filled in when the config is loaded"
    );
    assert_eq!(fleet.key_file.value, Path::new("/etc/hapcert/fleet.key"));
    assert!(
        fleet.key.is_none(),
        "read when the config is loaded, not by the pure parse"
    );
    assert_eq!(fleet.lease_ttl, Duration::from_secs(10));
    assert_eq!(fleet.converge_timeout, Duration::from_secs(120));
    assert!(fleet.ca_bundle.is_none() && fleet.client_identity.is_none() && fleet.auth.is_none());
    assert_eq!(fleet.advertise, None);
    assert_eq!(fleet.emergency_days, 3.0);
    assert!(parse(MINIMAL).unwrap().fleet.is_none());
}

#[test]
fn a_full_fleet_table_parses() {
    let fleet = parse(&format!(
        r#"{MINIMAL}
[fleet]
etcd = ["https://10.0.0.5:2379", "https://[fd00::6]:2379"]
prefix = "/hapcert/prod-eu"
node = "lb1.eu_west-2"
key_file = "/etc/hapcert/fleet.key"
lease_ttl = "15s"
converge_timeout = "5m"
ca_bundle = "etcd-ca.pem"
client_cert = "etcd-client.pem"
client_key = "etcd-client.key"
username = "hapcert"
password_file = "etcd-password"
advertise = "10.0.0.11:8080"
emergency_days = 5
"#
    ))
    .unwrap()
    .fleet
    .unwrap();
    assert!(fleet.etcd.iter().all(|e| e.tls));
    assert_eq!(fleet.etcd[1].host, "fd00::6");
    assert_eq!(fleet.prefix, "/hapcert/prod-eu");
    assert_eq!(fleet.node.value, "lb1.eu_west-2");
    assert_eq!(fleet.lease_ttl, Duration::from_secs(15));
    assert_eq!(fleet.converge_timeout, Duration::from_secs(300));
    assert_eq!(fleet.ca_bundle.unwrap().value, Path::new("/etc/hapcert/etcd-ca.pem"));
    let identity = fleet.client_identity.unwrap();
    assert_eq!(identity.cert.value, Path::new("/etc/hapcert/etcd-client.pem"));
    assert_eq!(identity.key.value, Path::new("/etc/hapcert/etcd-client.key"));
    let auth = fleet.auth.unwrap();
    assert_eq!(auth.username, "hapcert");
    assert_eq!(auth.password_file.value, Path::new("/etc/hapcert/etcd-password"));
    assert_eq!(fleet.advertise.unwrap().to_string(), "10.0.0.11:8080");
    assert_eq!(fleet.emergency_days, 5.0);

    let advertise = |text: &str| {
        parse(&format!(
            "{MINIMAL}\n[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nkey_file = \"k\"\nadvertise = \"{text}\"\n"
        ))
        .unwrap()
        .fleet
        .unwrap()
        .advertise
        .unwrap()
        .to_string()
    };
    assert_eq!(advertise("10.0.0.11"), "10.0.0.11:80");
    assert_eq!(advertise("::1"), "[::1]:80");
    assert_eq!(advertise("[::1]"), "[::1]:80");
    assert_eq!(advertise("[::1]:8080"), "[::1]:8080");
}

#[test]
fn fleet_mistakes_are_named_by_line_and_key_with_the_fix() {
    let text = format!(
        r#"{MINIMAL}
[fleet]
etcd = ["http://127.0.0.1:2379", "https://10.0.0.6:2379", "etcd:2379", "http://127.0.0.1:2379", "http://u:p@10.0.0.7:2379", "http://10.0.0.8:2379/v3"]
prefix = "hapcert/x/"
node = "lb 1"
lease_ttl = "1s"
converge_timeout = "soon"
client_cert = "c.pem"
username = "hapcert"
advertise = "lb1.example.com"
emergency_days = 0.5
"#
    );
    let want = [
        "10:34: fleet.etcd[1]: mixes http:// and https://; one cluster is reached one way: use https:// for every endpoint",
        "10:59: fleet.etcd[2]: 'etcd:2379' is not an etcd client URL; write http://host:port or https://host:port, like https://10.0.0.5:2379",
        "10:72: fleet.etcd[3]: 'http://127.0.0.1:2379' is listed twice",
        "10:97: fleet.etcd[4]: 'http://u:p@10.0.0.7:2379' holds a user or password; give them as username and password_file instead",
        "10:125: fleet.etcd[5]: 'http://10.0.0.8:2379/v3' has a path; give only scheme, host and port, like https://10.0.0.5:2379",
        "11:10: fleet.prefix: 'hapcert/x/' must start with '/'; write it like \"/hapcert/default\"",
        "12:8: fleet.node: 'lb 1' is not a node name: at most 63 letters, digits, '-', '_' and '.', starting with a letter or digit",
        "9:1: fleet.key_file: is missing; make the fleet key once with `hapcert fleet keygen --out /etc/hapcert/fleet.key`, copy it to every node (mode 0600), and name it here",
        "13:13: fleet.lease_ttl: 1s is outside 2s to 5m (etcd grants leases in whole seconds, at least 2); like 10s",
        "14:20: fleet.converge_timeout: 'soon' is not a duration (expected number at 0); write it like \"30d\", \"36h\" or \"5m\"",
        "15:15: fleet.client_key: is missing; a client certificate needs its key: give both",
        "16:12: fleet.password_file: is missing; etcd authentication needs username and password_file",
        "17:13: fleet.advertise: 'lb1.example.com' is not an address; write where this node's HAProxy takes plain HTTP, like \"10.0.0.11\" (port 80) or \"10.0.0.11:8080\"",
        "18:18: fleet.emergency_days: must be 1 to 30 days: fewer leaves no time to issue alone, more issues duplicates while etcd is only briefly away; like 3",
    ];
    let want: Vec<String> = want.iter().map(|w| format!("{FILE}:{w}")).collect();
    assert_eq!(errors(&text), want);

    let one = |fleet_lines: &str| errors(&format!("{MINIMAL}\n[fleet]\nkey_file = \"k\"\n{fleet_lines}\n"));
    assert_eq!(
        one("etcd = []"),
        [format!(
            "{FILE}:11:8: fleet.etcd: is empty; list the etcd client URLs, like [\"https://10.0.0.5:2379\"]"
        )]
    );
    assert_eq!(
        one(""),
        [format!(
            "{FILE}:9:1: fleet.etcd: is missing; list the etcd client URLs, like [\"https://10.0.0.5:2379\"]"
        )]
    );
    let with_etcd = |lines: &str| one(&format!("etcd = [\"http://127.0.0.1:2379\"]\n{lines}"));
    for (line, wanted) in [
        ("prefix = \"/hapcert/\"", "must not end with '/'"),
        ("prefix = \"/\"", "must not end with '/'"),
        ("prefix = \"/hap cert\"", "holds a space or a control character"),
        ("prefix = \"/hap//cert\"", "has an empty segment"),
        ("node = \"\"", "fleet.node: is empty"),
        ("node = \"-lb\"", "is not a node name"),
        ("node = \"lb/1\"", "is not a node name"),
        (&format!("node = \"{}\"", "a".repeat(64)), "is not a node name"),
        ("lease_ttl = \"1500ms\"", "fleet.lease_ttl: 1s 500ms is outside"),
        ("lease_ttl = \"2500ms\"", "must be whole seconds"),
        ("lease_ttl = \"10m\"", "is outside 2s to 5m"),
        ("converge_timeout = \"2s\"", "is outside 10s to 1day"),
        ("emergency_days = 31", "must be 1 to 30 days"),
        ("advertise = \"10.0.0.11:0\"", "is not an address"),
        ("advertise = \"0.0.0.0\"", "is not an address"),
        ("password_file = \"p\"", "fleet.username: is missing"),
        ("client_key = \"k.pem\"", "fleet.client_cert: is missing"),
        (
            "ca_bundle = \"ca.pem\"",
            "fleet.ca_bundle: applies to https:// endpoints only",
        ),
        (
            "client_cert = \"c.pem\"\nclient_key = \"k.pem\"",
            "fleet.client_cert: applies to https:// endpoints only",
        ),
        ("nodes = \"x\"", "unknown field `nodes`"),
    ] {
        let got = with_etcd(line);
        assert!(
            got.iter().any(|e| e.contains(wanted)),
            "{line}: no '{wanted}' in {got:#?}"
        );
    }
}

#[test]
fn the_fleets_secrets_stay_out_of_the_cert_directory() {
    let text = format!(
        "{MINIMAL}\n[fleet]\netcd = [\"https://127.0.0.1:2379\"]\nkey_file = \"/etc/haproxy/certs/fleet.key\"\n\
         username = \"u\"\npassword_file = \"/etc/haproxy/certs/sub/pw\"\nclient_cert = \"/etc/haproxy/certs/c.pem\"\n\
         client_key = \"/etc/hapcert/c.key\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            format!(
                "{FILE}:11:12: fleet.key_file: /etc/haproxy/certs/fleet.key is inside the cert directory /etc/haproxy/certs, which HAProxy loads whole; keep it elsewhere, like /etc/hapcert/"
            ),
            format!(
                "{FILE}:13:17: fleet.password_file: /etc/haproxy/certs/sub/pw is inside the cert directory /etc/haproxy/certs, which HAProxy loads whole; keep it elsewhere, like /etc/hapcert/"
            ),
        ]
    );
}

const DNS: &str = r#"
[acme]
directory = "letsencrypt-staging"

[[dns_provider]]
name = "bind"
kind = "rfc2136"
server = "127.0.0.1:5300"
tsig_key_name = "acme-key."
tsig_algorithm = "HMAC-SHA512"
tsig_secret_file = "tsig.secret"
nameservers = ["127.0.0.1:5300", "[::1]:5301"]
propagation_timeout = "30s"

[[dns_provider]]
name = "script"
kind = "exec"
command = "/usr/local/bin/dns-hook"

[[certificate]]
name = "wild"
domains = ["example.com", "*.example.com"]
challenge = "dns-01"

[[certificate]]
name = "shop"
domains = ["shop.example.com"]
challenge = "dns-01"
dns_provider = "script"

[[certificate]]
name = "www"
domains = ["www.example.com"]
"#;

#[test]
fn dns_01_certificates_take_the_first_provider_unless_they_name_one() {
    let config = parse(DNS).unwrap();
    let [wild, shop, www] = &config.certificates[..] else {
        panic!("three certificates")
    };
    assert_eq!(wild.challenge, ChallengeKind::Dns01);
    assert_eq!(wild.dns_provider.as_deref(), Some("bind"));
    assert!(wild.domains[1].is_wildcard());
    assert_eq!(wild.file.value, Path::new("/etc/haproxy/certs/wild.pem"));
    assert_eq!(shop.dns_provider.as_deref(), Some("script"));
    assert_eq!(
        (www.challenge, www.dns_provider.as_deref()),
        (ChallengeKind::Http01, None)
    );
    let bind = config.dns_provider(wild).unwrap();
    let DnsProviderKind::Rfc2136(rfc) = &bind.kind else {
        panic!("rfc2136")
    };
    assert_eq!(rfc.key_name, "acme-key");
    assert_eq!(rfc.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(rfc.secret_file.value, Path::new("/etc/hapcert/tsig.secret"));
    assert_eq!(rfc.ttl, 60);
    assert_eq!(bind.propagation_timeout, std::time::Duration::from_secs(30));
    assert_eq!(bind.propagation_interval, DEFAULT_PROPAGATION_INTERVAL);
    assert_eq!(bind.nameservers, ["127.0.0.1:5300", "[::1]:5301"]);
    let DnsProviderKind::Exec { command, .. } = &config.dns_provider(shop).unwrap().kind else {
        panic!("exec")
    };
    assert_eq!(command, "/usr/local/bin/dns-hook");

    // [challenge] type makes DNS-01 everyone's default.
    let text = DNS.replace(
        "[[dns_provider]]\nname = \"bind\"",
        "[challenge]\ntype = \"dns-01\"\n\n[[dns_provider]]\nname = \"bind\"",
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.certificates[2].challenge, ChallengeKind::Dns01);
}

#[test]
fn a_wildcard_needs_dns_01_and_dns_01_needs_a_provider() {
    let text = MINIMAL.replace(
        r#"domains = ["example.com"]"#,
        r#"domains = ["example.com", "*.example.com"]"#,
    );
    let [error] = &errors(&text)[..] else {
        panic!("{:?}", errors(&text))
    };
    assert!(
        error.contains("certificate[0].domains[1]: '*.example.com' is a wildcard, which only DNS-01 can validate; set challenge = \"dns-01\" in certificate 'www'"),
        "{error}"
    );

    let text = MINIMAL.replace(
        r#"domains = ["example.com"]"#,
        "domains = [\"example.com\"]\nchallenge = \"dns-01\"",
    );
    let [error] = &errors(&text)[..] else {
        panic!("{:?}", errors(&text))
    };
    assert!(
        error.contains("certificate[0].challenge: certificate 'www' uses DNS-01, but there is no [[dns_provider]]"),
        "{error}"
    );
}

#[test]
fn dns_provider_mistakes_are_named_with_the_fix() {
    let text = DNS
        .replace(
            "tsig_algorithm = \"HMAC-SHA512\"",
            "tsig_algorithm = \"hmac-md5\"\nttl = 0\ncommand = \"x\"",
        )
        .replace("dns_provider = \"script\"", "dns_provider = \"route53\"")
        .replace(
            "name = \"www\"\ndomains = [\"www.example.com\"]",
            "name = \"www\"\ndomains = [\"www.example.com\"]\nchallenge = \"dns-02\"",
        );
    let all = errors(&text).join("\n");
    for expected in [
        "dns_provider[0].tsig_algorithm: 'hmac-md5' is too weak to sign with; make an hmac-sha256 key with `tsig-keygen -a hmac-sha256 <name>`",
        "dns_provider[0].ttl: must be between 1 and 86400 seconds",
        "dns_provider[0].command: does not apply to kind = \"rfc2136\"; remove it",
        "certificate[1].dns_provider: 'route53' names no [[dns_provider]]; use one of bind, script",
        "certificate[2].challenge: 'dns-02' is not a challenge type; use \"http-01\" or \"dns-01\"",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }

    let text = DNS.replace(
        "name = \"wild\"\n",
        "name = \"wild\"\nfile = \"/srv/*.example.com.pem\"\n",
    );
    let all = errors(&text).join("\n");
    assert!(all.contains("certificate[0].file: begins with '*', which HAProxy 3.2 and later read on their CLI as a transaction marker"), "{all}");
}

#[test]
fn reload_timeout_defaults_to_two_minutes_and_is_bounded() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.haproxy.reload_timeout, DEFAULT_RELOAD_TIMEOUT);
    let text = format!("{MINIMAL}\n[haproxy]\nreload_timeout = \"10m\"\n");
    assert_eq!(
        parse(&text).unwrap().haproxy.reload_timeout,
        std::time::Duration::from_secs(600)
    );
    let text = format!("{MINIMAL}\n[haproxy]\nreload_timeout = \"1s\"\n");
    let all = errors(&text).join("\n");
    assert!(
        all.contains("haproxy.reload_timeout: must be between 5s and 1h"),
        "{all}"
    );
}

#[test]
fn the_inventory_policy_and_watch_entries_parse_with_their_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.check.unmanaged, UnmanagedPolicy::Alert);
    assert!(config.check.ignore_paths.is_empty() && config.watch.is_empty());

    let text = format!(
        r#"{MINIMAL}
[check]
unmanaged = "warn"
ignore_paths = ["/etc/haproxy/old/*.pem"]

[[watch]]
name = "backend-api"
endpoint = "10.0.0.5:443"
sni = "api.internal"
ca_bundle = "internal-ca.pem"
warn_days = 20
crit_days = 5

[[watch]]
name = "mail"
endpoint = "[2001:db8::25]:25"
starttls = "smtp"
"#
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.check.unmanaged, UnmanagedPolicy::Warn);
    assert!(config.check.ignore_paths[0].matches("/etc/haproxy/old/2019.pem"));
    let api = &config.watch[0];
    assert_eq!(
        (api.endpoint.as_str(), api.sni.as_str()),
        ("10.0.0.5:443", "api.internal")
    );
    assert_eq!(
        api.ca_bundle.as_ref().unwrap().value,
        Path::new("/etc/hapcert/internal-ca.pem")
    );
    assert_eq!(
        (api.warn_days, api.crit_days, api.starttls),
        (Some(20.0), Some(5.0), None)
    );
    let mail = &config.watch[1];
    assert_eq!(
        (mail.sni.as_str(), mail.starttls),
        ("2001:db8::25", Some(StartTls::Smtp))
    );
}

#[test]
fn watch_mistakes_are_named_by_entry_and_key() {
    let text = format!(
        r#"{MINIMAL}
[check]
unmanaged = "page"
ignore_paths = ["/etc/[haproxy"]

[[watch]]
name = "api"
endpoint = "10.0.0.5"

[[watch]]
name = "api"
endpoint = "10.0.0.6:443"
starttls = "ldap"
warn_days = 2
crit_days = 5

[[watch]]
endpoint = "10.0.0.7:443"
"#
    );
    let errors = errors(&text);
    let expect = [
        "check.unmanaged: 'page' is not one of \"alert\" (the default), \"warn\" or \"ignore\"",
        "check.ignore_paths[0]: '/etc/[haproxy' is not a glob",
        "watch[0].endpoint: '10.0.0.5' is not host:port",
        "watch[1].name: 'api' names another [[watch]] too",
        "watch[1].starttls: 'ldap' is not one of \"smtp\", \"imap\", \"pop3\" or \"postgres\"",
        "watch[1].warn_days: 2 is below crit_days (5)",
        "watch[2].name: is missing",
    ];
    for wanted in expect {
        assert!(
            errors.iter().any(|e| e.contains(wanted)),
            "no '{wanted}' in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
}
