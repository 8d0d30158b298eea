use std::path::Path;

use time::OffsetDateTime;

use super::render::toml_string;
use super::*;
use crate::core::config::{Config, LETSENCRYPT};
use crate::core::pem::Bundle;
use crate::testing::{TestCa, leaf_pem_parts};

const DIR: &str = "/etc/letsencrypt";

/// A conf as certbot 2.1 writes it for `certonly --standalone --http-01-port 54321 --deploy-hook ...`.
fn standalone_conf(name: &str, key_lines: &str, extra: &str) -> String {
    format!(
        "\
# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = {DIR}/archive/{name}
cert = {DIR}/live/{name}/cert.pem
privkey = {DIR}/live/{name}/privkey.pem
chain = {DIR}/live/{name}/chain.pem
fullchain = {DIR}/live/{name}/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 5b6f0f1d1b5b4c1d8e0b2a3c4d5e6f70
authenticator = standalone
server = https://acme-v02.api.letsencrypt.org/directory
{key_lines}http01_port = 54321
{extra}"
    )
}

/// A lineage whose live files hold `combined` (a `TestCa` PEM) split as certbot splits it.
fn lineage(name: &str, conf: &str, combined: &str) -> LineageFiles {
    let (leaf, chain, key) = leaf_pem_parts(combined);
    lineage_of_parts(name, conf, &format!("{leaf}{chain}"), &key)
}

fn lineage_of_parts(name: &str, conf: &str, fullchain: &str, privkey: &str) -> LineageFiles {
    LineageFiles {
        name: name.into(),
        conf_path: PathBuf::from(format!("{DIR}/renewal/{name}.conf")),
        conf_text: Ok(conf.into()),
        fullchain: Ok(ReadFile {
            bytes: fullchain.as_bytes().to_vec(),
            source: PathBuf::from(format!("archive/{name}/fullchain1.pem")),
        }),
        privkey: Ok(ReadFile {
            bytes: privkey.as_bytes().to_vec(),
            source: PathBuf::from(format!("archive/{name}/privkey1.pem")),
        }),
    }
}

fn options() -> PlanOptions {
    PlanOptions {
        cert_dir: PathBuf::from("/etc/haproxy/certs"),
        now: OffsetDateTime::now_utc(),
    }
}

fn tree(lineages: Vec<LineageFiles>) -> CertbotTree {
    CertbotTree {
        config_dir: PathBuf::from(DIR),
        lineages,
        hook_scripts: Vec::new(),
        accounts: vec![Account {
            id: "5b6f0f1d1b5b4c1d8e0b2a3c4d5e6f70".into(),
            server: LETSENCRYPT.into(),
            key_kind: Ok("RSA".into()),
            contact: Vec::new(),
        }],
    }
}

#[test]
fn a_standalone_conf_with_hooks_is_read() {
    let text = standalone_conf(
        "example.com",
        "key_type = ecdsa\nelliptic_curve = secp384r1\n",
        "pre_hook = systemctl stop nginx\nrenew_hook = /usr/local/bin/renew.sh\ninstaller = None\n",
    );
    let conf = parse_renewal_conf(&text, Path::new("/x/example.com.conf")).unwrap();
    assert_eq!(conf.authenticator.as_deref(), Some("standalone"));
    assert_eq!(conf.installer, None, "certbot writes None for no installer");
    assert_eq!(conf.http01_port, Some(54321));
    assert_eq!(conf.server.as_deref(), Some(LETSENCRYPT));
    assert_eq!(
        conf.key,
        Some(DeclaredKey {
            key_type: KeyType::EcdsaP384,
            origin: "key_type = ecdsa, elliptic_curve = secp384r1".into(),
            substitute_for: None,
        })
    );
    assert_eq!(
        conf.hooks,
        [
            ("pre_hook".to_owned(), "systemctl stop nginx".to_owned()),
            ("renew_hook".to_owned(), "/usr/local/bin/renew.sh".to_owned())
        ]
    );
}

#[test]
fn key_settings_map_to_hapcerts_key_types() {
    let key = |lines: &str| {
        parse_renewal_conf(&standalone_conf("a", lines, ""), Path::new("a.conf"))
            .unwrap()
            .key
    };
    let declared = |lines: &str| key(lines).unwrap();
    assert_eq!(
        declared("key_type = ecdsa\n").key_type,
        KeyType::EcdsaP256,
        "certbot's default curve"
    );
    assert_eq!(
        declared("key_type = rsa\n").key_type,
        KeyType::Rsa2048,
        "certbot's default size"
    );
    assert_eq!(
        declared("key_type = rsa\nrsa_key_size = 4096\n").key_type,
        KeyType::Rsa4096
    );
    assert_eq!(
        declared("rsa_key_size = 3072\nkey_type = rsa\n").key_type,
        KeyType::Rsa3072
    );
    let p521 = declared("key_type = ecdsa\nelliptic_curve = secp521r1\n");
    assert_eq!(
        (p521.key_type, p521.substitute_for.as_deref()),
        (KeyType::EcdsaP384, Some("ECDSA secp521r1"))
    );
    let small = declared("key_type = rsa\nrsa_key_size = 1024\n");
    assert_eq!(
        (small.key_type, small.substitute_for.as_deref()),
        (KeyType::Rsa2048, Some("RSA 1024"))
    );
    assert_eq!(key("rsa_key_size = 2048\n"), None, "older confs have no key_type");
}

#[test]
fn bad_values_name_the_file_line_and_key() {
    let text = standalone_conf("a", "key_type = dsa\n", "");
    let err = parse_renewal_conf(&text, Path::new("/le/renewal/a.conf")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/le/renewal/a.conf:14: key_type: 'dsa' is neither rsa nor ecdsa"
    );

    let text = standalone_conf("a", "", "").replace("http01_port = 54321", "http01_port = 543210");
    let err = parse_renewal_conf(&text, Path::new("/le/renewal/a.conf")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/le/renewal/a.conf:14: http01_port: '543210' is not a port number (1-65535)"
    );

    let text = standalone_conf("a", "", "").replace("authenticator = standalone", "authenticator: standalone");
    let err = parse_renewal_conf(&text, Path::new("/le/renewal/a.conf")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/le/renewal/a.conf:12: 'authenticator: standalone' is neither"),
        "{err}"
    );
}

/// Found by the certbot_renewal_conf fuzz target: certbot takes any ACME server URL, and a lineage whose `server` is not
/// an https:// URL became a config that hapcert refused, so the import failed as "a bug in the import" for all
/// lineages. Such a lineage is skipped with the file, line and key, and the others are imported.
#[test]
fn a_server_that_is_not_https_skips_the_lineage_and_names_the_line() {
    for server in [
        "http://localhost:14000/dir",
        "stht://acme.example/directory",
        "https://",
    ] {
        let text = standalone_conf("a", "", "").replace(
            "server = https://acme-v02.api.letsencrypt.org/directory",
            &format!("server = {server}"),
        );
        let err = parse_renewal_conf(&text, Path::new("/le/renewal/a.conf")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "/le/renewal/a.conf:13: server: '{server}' is not an https:// URL, and hapcert asks a CA over HTTPS \
                 only; keep this lineage on certbot, or point it at the CA's https:// directory"
            )
        );
    }

    let ca = TestCa::new();
    let pem = ca.issue(&["good.example.com"], KeyType::EcdsaP256, 90);
    let conf = |name: &str| standalone_conf(name, "key_type = ecdsa\n", "");
    let plain = conf("plain").replace("https://acme-v02", "http://acme-v02");
    let plan = plan(
        &tree(vec![
            lineage("good", &conf("good"), &pem),
            lineage("plain", &plain, &pem),
        ]),
        &options(),
    );
    assert_eq!(plan.lineages.len(), 1);
    assert_eq!(plan.skipped.len(), 1);
    assert!(
        plan.skipped[0].reason.contains("plain.conf:13: server: "),
        "{:?}",
        plan.skipped
    );
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
}

/// Found by the certbot_renewal_conf fuzz target: a hook command holding a control character (here U+0004 and a lone
/// CR) was copied into a REVIEW comment as it was, TOML refuses control characters in comments, and the import failed
/// as "a bug in the import". The comment now shows them escaped.
#[test]
fn control_characters_in_a_hook_are_escaped_in_the_config_comments() {
    let ca = TestCa::new();
    let pem = ca.issue(&["good.example.com"], KeyType::EcdsaP256, 90);
    let conf = standalone_conf("good", "key_type = ecdsa\n", "renew_hook = echo a\u{4}b\rc\u{7f}\n");
    let plan = plan(&tree(vec![lineage("good", &conf, &pem)]), &options());
    assert_eq!(plan.lineages.len(), 1, "{:?}", plan.skipped);
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
    let config = plan.config_toml.unwrap();
    assert!(
        config.contains("# REVIEW: certbot ran renew_hook = echo a\\u{4}b\\u{d}c\\u{7f}; hapcert runs no hooks.\n"),
        "{config}"
    );
}

#[test]
fn three_lineages_become_a_config_hapcert_accepts() {
    let ca = TestCa::new();
    let lineages = vec![
        lineage(
            "a.example.com",
            &standalone_conf(
                "a.example.com",
                "key_type = ecdsa\n",
                "renew_hook = /usr/local/bin/renew.sh\n",
            ),
            &ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90),
        ),
        lineage(
            "multi",
            &standalone_conf("multi", "key_type = rsa\nrsa_key_size = 2048\n", ""),
            &ca.issue(
                &["b.example.com", "www.b.example.com", "api.b.example.com"],
                KeyType::Rsa2048,
                90,
            ),
        ),
        // An older conf without key_type: the key on disk decides.
        lineage(
            "old",
            &standalone_conf("old", "", ""),
            &ca.issue(&["c.example.com"], KeyType::EcdsaP384, 90),
        ),
    ];
    let plan = plan(&tree(lineages), &options());
    assert_eq!(plan.skipped, []);
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
    let text = plan.config_toml.as_deref().unwrap();
    let config = Config::parse(text, Path::new("/etc/hapcert/hapcert.toml")).unwrap();

    assert_eq!(config.acme.directory, LETSENCRYPT);
    assert!(text.contains("directory = \"letsencrypt\"\n"), "{text}");
    assert_eq!(config.challenge.listen.to_string(), "127.0.0.1:54321");
    assert!(
        text.contains("of every interface"),
        "the comment says what certbot did: {text}"
    );
    assert_eq!(config.haproxy.cert_dir.value, Path::new("/etc/haproxy/certs"));

    let summary: Vec<(String, Vec<String>, KeyType, PathBuf)> = config
        .certificates
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.domains.iter().map(|d| d.to_string()).collect(),
                c.key_type,
                c.file.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "a.example.com".to_owned(),
                vec!["a.example.com".to_owned()],
                KeyType::EcdsaP256,
                PathBuf::from("/etc/haproxy/certs/a.example.com.pem")
            ),
            (
                "multi".to_owned(),
                vec![
                    "b.example.com".to_owned(),
                    "www.b.example.com".to_owned(),
                    "api.b.example.com".to_owned()
                ],
                KeyType::Rsa2048,
                PathBuf::from("/etc/haproxy/certs/multi.pem")
            ),
            (
                "old".to_owned(),
                vec!["c.example.com".to_owned()],
                KeyType::EcdsaP384,
                PathBuf::from("/etc/haproxy/certs/old.pem")
            ),
        ]
    );
    assert!(text.contains("# REVIEW: certbot ran renew_hook = /usr/local/bin/renew.sh; hapcert runs no hooks.\n"));
    assert!(text.contains("key type from no key_type in the conf: the current key's type."));
    assert!(
        plan.lineages.iter().all(|l| l.changes.is_empty()),
        "nothing reissued early"
    );

    // The adopted PEM is what hapcert itself would write, and it decides "not due" for the certificate it holds.
    let adopted = Bundle::parse(plan.lineages[1].pem.0.as_bytes()).unwrap();
    let facts = adopted.facts().unwrap();
    let spec = &config.certificates[1];
    let decision = crate::core::decision::decide(
        spec,
        &crate::core::decision::Local::Present(facts),
        crate::core::decision::Known::default(),
        options().now,
        false,
    );
    assert!(!decision.due, "{}", decision.reason);
    assert_eq!(adopted.to_haproxy_pem().unwrap(), plan.lineages[1].pem.0);
    assert!(!format!("{plan:?}").contains("PRIVATE KEY"), "Debug shows no key");
}

#[test]
fn broken_lineages_are_skipped_with_their_reason_and_the_rest_imported() {
    let ca = TestCa::new();
    let good = ca.issue(&["good.example.com"], KeyType::EcdsaP256, 90);
    let (leaf, chain, _) = leaf_pem_parts(&good);
    let (_, _, other_key) = leaf_pem_parts(&ca.issue(&["good.example.com"], KeyType::EcdsaP256, 90));
    let conf = |name: &str| standalone_conf(name, "key_type = ecdsa\n", "");
    let mut missing = lineage("missing", &conf("missing"), &good);
    missing.fullchain = Err("/etc/letsencrypt/live/missing/fullchain.pem points to \
                             ../../archive/missing/fullchain3.pem, which does not exist"
        .into());
    let mut malformed = lineage("malformed", &conf("malformed"), &good);
    malformed.conf_text = Ok(conf("malformed").replace("server = ", "server "));
    let lineages = vec![
        lineage("good", &conf("good"), &good),
        lineage_of_parts("mismatch", &conf("mismatch"), &format!("{leaf}{chain}"), &other_key),
        lineage(
            "wild",
            &conf("wild"),
            &ca.issue(&["*.example.com"], KeyType::EcdsaP256, 90),
        ),
        missing,
        malformed,
        lineage("bad name!", &conf("x"), &good),
    ];
    let plan = plan(&tree(lineages), &options());
    assert_eq!(plan.lineages.len(), 1);
    assert_eq!(plan.lineages[0].name, "good");
    let reasons: Vec<(&str, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons[0]
            .1
            .starts_with("the private key archive/mismatch/privkey1.pem does not belong"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].1.contains("'*.example.com'") && reasons[1].1.contains("wildcard"),
        "{reasons:?}"
    );
    assert!(reasons[2].1.contains("which does not exist"), "{reasons:?}");
    assert_eq!(
        reasons[3].1,
        "/etc/letsencrypt/renewal/malformed.conf:13: 'server https://acme-v02.api.letsencrypt.org/directory' is \
         neither 'key = value', a [section] header, nor a # comment"
    );
    assert!(reasons[4].1.contains("keep this one on certbot"), "{reasons:?}");
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
}

#[test]
fn a_conf_and_a_key_that_disagree_are_imported_with_a_note_and_the_majority_ca_wins() {
    let ca = TestCa::new();
    let staging = "server = https://acme-staging-v02.api.letsencrypt.org/directory\n";
    let lineages = vec![
        lineage(
            "one",
            &standalone_conf("one", "key_type = ecdsa\n", ""),
            &ca.issue(&["one.example.com"], KeyType::Rsa2048, 90),
        ),
        lineage(
            "two",
            &standalone_conf("two", "key_type = ecdsa\n", "").replace(&format!("server = {LETSENCRYPT}\n"), staging),
            &ca.issue(&["two.example.com"], KeyType::EcdsaP256, 90),
        ),
        lineage(
            "three",
            &standalone_conf("three", "key_type = ecdsa\n", ""),
            &ca.issue(&["three.example.com"], KeyType::EcdsaP256, 90),
        ),
    ];
    let plan = plan(&tree(lineages), &options());
    assert_eq!(plan.directory, LETSENCRYPT);
    assert_eq!(
        plan.lineages[0].changes,
        [
            "its current key is rsa-2048, but the renewal conf asks for ecdsa-p256; the first run reissues it as ecdsa-p256"
        ]
    );
    assert!(plan.lineages[1].changes[0].starts_with(
        "certbot renews it from https://acme-staging-v02.api.letsencrypt.org/directory; this config renews it from"
    ));
    assert!(plan.lineages[2].changes.is_empty());
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
}

#[test]
fn the_side_port_keeps_certbots_port_and_address() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let with = |extra: &str| {
        let conf = standalone_conf("a", "key_type = ecdsa\n", extra);
        plan(&tree(vec![lineage("a", &conf, &pem)]), &options()).listen
    };
    assert_eq!(with("http01_address = 127.0.0.2\n").addr.to_string(), "127.0.0.2:54321");
    assert_eq!(with("http01_address = ::1\n").addr.to_string(), "[::1]:54321");
    assert_eq!(with("").addr.to_string(), "127.0.0.1:54321");

    let webroot = standalone_conf("a", "key_type = ecdsa\n", "webroot_path = /var/www/html,\n")
        .replace("authenticator = standalone", "authenticator = webroot")
        .replace("http01_port = 54321\n", "");
    let plan = plan(&tree(vec![lineage("a", &webroot, &pem)]), &options());
    assert_eq!(plan.listen.addr.to_string(), "127.0.0.1:54321");
    assert!(plan.listen.why.contains("hapcert's default"), "{}", plan.listen.why);
    let report = render_report(&tree(Vec::new()), &plan, &[Adoption::Written], "printed on stdout");
    assert!(
        report.contains("    a: webroot (/var/www/html): hapcert does not write into a web root\n"),
        "{report}"
    );
}

#[test]
fn an_existing_file_is_judged_by_its_certificate() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let conf = standalone_conf("a", "key_type = ecdsa\n", "");
    let plan = plan(&tree(vec![lineage("a", &conf, &pem)]), &options());
    let adopted = &plan.lineages[0];
    assert_eq!(judge_existing(None, adopted), Existing::Missing);
    assert_eq!(
        judge_existing(Some(adopted.pem.0.as_bytes()), adopted),
        Existing::Identical
    );
    // What `cat fullchain.pem privkey.pem > site.pem` writes: same certificate, another layout (blank line, CRLF).
    let (leaf, chain, key) = leaf_pem_parts(&pem);
    let cat = format!("{leaf}{chain}\n{key}").replace('\n', "\r\n");
    assert_eq!(judge_existing(Some(cat.as_bytes()), adopted), Existing::SameCertificate);
    let other = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    assert!(matches!(
        judge_existing(Some(other.as_bytes()), adopted),
        Existing::Other(what) if what.starts_with("another certificate (serial ")
    ));
    assert!(matches!(
        judge_existing(Some(b"garbage"), adopted),
        Existing::Other(what) if what.starts_with("a file that is not a usable PEM")
    ));
}

#[test]
fn the_report_lists_hooks_scripts_authenticators_and_the_account() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let hooks = "pre_hook = service haproxy stop\npost_hook = service haproxy start\n\
                 renew_hook = /usr/local/bin/renew.sh\n";
    let manual = standalone_conf("m", "key_type = ecdsa\n", "manual_auth_hook = /root/auth.sh\n")
        .replace("authenticator = standalone", "authenticator = manual");
    let mut tree = tree(vec![
        lineage("a", &standalone_conf("a", "key_type = ecdsa\n", hooks), &pem),
        lineage("m", &manual, &ca.issue(&["m.example.com"], KeyType::EcdsaP256, 90)),
        lineage(
            "p80",
            &standalone_conf("p80", "key_type = ecdsa\n", "").replace("http01_port = 54321\n", ""),
            &pem,
        ),
    ]);
    tree.hook_scripts = vec![HookScript {
        phase: "deploy".into(),
        path: PathBuf::from("renewal-hooks/deploy/haproxy.sh"),
        executable: true,
    }];
    let plan = plan(&tree, &options());
    let adoptions = [
        Adoption::Written,
        Adoption::AlreadyThere(Existing::SameCertificate),
        Adoption::NotAdopted("/etc/haproxy/certs/p80.pem holds another certificate".into()),
    ];
    let report = render_report(&tree, &plan, &adoptions, "written to /etc/hapcert/hapcert.toml");
    // Paragraphs are wrapped: compare with runs of whitespace made one space.
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "hapcert import certbot: 3 lineages in /etc/letsencrypt, 3 imported, 0 skipped\n",
        "  imported  a: a.example.com (ecdsa-p256)\n            serial ",
        ", from archive/a/fullchain1.pem\n            written to /etc/haproxy/certs/a.pem (0600)\n",
        "/etc/haproxy/certs/m.pem already holds this certificate; left as it is\n",
        "  NOT ADOPTED p80: ",
        "  config:   written to /etc/hapcert/hapcert.toml\n",
        "HAProxy loads the 1 new file at its next reload",
        "    a: pre_hook = service haproxy stop\n",
        "    a: post_hook = service haproxy start\n",
        "    a: renew_hook = /usr/local/bin/renew.sh  (certbot's --deploy-hook)\n",
        "    renewal-hooks/deploy/haproxy.sh (a deploy hook for every lineage)\n",
        "    m: manual (manual_auth_hook = /root/auth.sh)\n",
        "    p80: standalone on port 80: certbot took port 80 itself",
        "account: certbot's account 5b6f0f1d1b5b4c1d8e0b2a3c4d5e6f70 at https://acme-v02.api.letsencrypt.org/directory \
         has an RSA key, and hapcert signs with P-256 ECDSA only. It is not reused: a new account will be made on",
        "`crontab -l`",
    ] {
        assert!(
            flat(&report).contains(&flat(expected)),
            "missing {expected:?} in:\n{report}"
        );
    }
    let not_carried_over = report.split_once("Not carried over").unwrap().1;
    assert!(
        not_carried_over
            .lines()
            .all(|l| l.len() <= 120 || l.starts_with("    ")),
        "paragraphs are wrapped:\n{report}"
    );
}

#[test]
fn toml_strings_round_trip() {
    for text in [
        "plain",
        "with \"quotes\" and \\ backslash",
        "tab\tnew\nline\u{1}",
        "ünï",
    ] {
        let parsed: toml::Table = toml::from_str(&format!("v = {}", toml_string(text))).unwrap();
        assert_eq!(parsed["v"].as_str(), Some(text));
    }
}

const SECRET: &str = "ee+JGR1CNiX5zco+me3kMyY+qzYBJ2N9eeCIFPBRLdQ=";

/// A conf as certbot 2.1 writes it for `certonly --dns-rfc2136 --dns-rfc2136-credentials <ini>
/// --dns-rfc2136-propagation-seconds 1`.
fn rfc2136_conf(name: &str, ini: &str) -> String {
    standalone_conf(name, "key_type = ecdsa\n", "")
        .replace("authenticator = standalone", "authenticator = dns-rfc2136")
        .replace(
            "http01_port = 54321\n",
            &format!("dns_rfc2136_credentials = {ini}\ndns_rfc2136_propagation_seconds = 1\n"),
        )
}

fn ini_text(algorithm: Option<&str>) -> String {
    let mut text = format!(
        "# Target DNS server\ndns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = 5300\n\
         dns_rfc2136_name = acme-key\ndns_rfc2136_secret = {SECRET}\n"
    );
    if let Some(algorithm) = algorithm {
        text += &format!("dns_rfc2136_algorithm = {algorithm}\n");
    }
    text
}

fn ini(mode: u32, text: &str) -> Result<CredentialsFile, String> {
    Ok(CredentialsFile {
        mode,
        text: text.to_owned(),
    })
}

fn dns_inputs(files: Vec<(&str, Result<CredentialsFile, String>)>) -> DnsInputs {
    DnsInputs {
        credentials: files.into_iter().map(|(p, f)| (PathBuf::from(p), f)).collect(),
        secret_dir: PathBuf::from("/etc/hapcert"),
    }
}

#[test]
fn rfc2136_lineages_become_dns01_certificates_sharing_one_provider_per_ini() {
    let ca = TestCa::new();
    let wildcard = ca.issue(&["example.com", "*.example.com"], KeyType::EcdsaP256, 90);
    let other = ca.issue(&["shop.example.com"], KeyType::EcdsaP256, 90);
    let plain = ca.issue(&["www.example.org"], KeyType::EcdsaP256, 90);
    let shared = "/etc/letsencrypt/rfc2136.ini";
    let tree = tree(vec![
        lineage("example.com", &rfc2136_conf("example.com", shared), &wildcard),
        lineage("plain", &standalone_conf("plain", "key_type = ecdsa\n", ""), &plain),
        lineage("shop", &rfc2136_conf("shop", shared), &other),
    ]);
    let dns = dns_inputs(vec![(shared, ini(0o600, &ini_text(Some("HMAC-SHA256"))))]);
    let plan = plan_with_dns(&tree, &options(), &dns);
    assert_eq!(plan.skipped, []);
    assert_eq!(plan.providers.len(), 1, "one INI, one provider");
    let provider = &plan.providers[0];
    assert_eq!(provider.name, "rfc2136");
    assert_eq!(provider.lineages, ["example.com", "shop"]);
    assert_eq!(provider.secret_file, Path::new("/etc/hapcert/tsig-rfc2136.secret"));
    assert_eq!(secret_file_text(provider), format!("{SECRET}\n"));

    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
    let text = plan.config_toml.as_deref().unwrap();
    assert!(!text.contains(SECRET), "the secret stays out of the config:\n{text}");
    assert!(!format!("{plan:?}").contains(SECRET), "Debug shows no secret");
    let config = Config::parse(text, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
    assert_eq!(config.dns_providers.len(), 1);
    match &config.dns_providers[0].kind {
        crate::core::config::DnsProviderKind::Rfc2136(rfc) => {
            assert_eq!(rfc.server.as_deref(), Some("127.0.0.1:5300"));
            assert_eq!(rfc.key_name, "acme-key");
            assert_eq!(rfc.algorithm, crate::core::config::TsigAlgorithm::HmacSha256);
            assert_eq!(rfc.secret_file.value, Path::new("/etc/hapcert/tsig-rfc2136.secret"));
        }
        other => panic!("{other:?}"),
    }
    let by_name = |name: &str| config.certificates.iter().find(|c| c.name == name).unwrap();
    let wild = by_name("example.com");
    assert_eq!(wild.challenge, crate::core::config::ChallengeKind::Dns01);
    assert_eq!(wild.dns_provider.as_deref(), Some("rfc2136"));
    assert_eq!(
        wild.domains.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        ["example.com", "*.example.com"]
    );
    assert_eq!(wild.file.value, Path::new("/etc/haproxy/certs/example.com.pem"));
    assert_eq!(by_name("shop").dns_provider.as_deref(), Some("rfc2136"));
    assert_eq!(by_name("plain").challenge, crate::core::config::ChallengeKind::Http01);
    assert!(
        plan.lineages
            .iter()
            .all(|l| !l.file.file_name().unwrap().to_string_lossy().starts_with('*'))
    );
    assert!(text.contains("dns_rfc2136_propagation_seconds = 1"), "{text}");
    assert!(
        text.contains("REVIEW: HAProxy's port 80"),
        "one lineage uses HTTP-01: {text}"
    );

    let report = render_report_with_secrets(
        &tree,
        &plan,
        &[Adoption::Written, Adoption::Written, Adoption::Written],
        &[SecretWrite::Written],
        "written to /etc/hapcert/hapcert.toml",
    );
    assert!(!report.contains(SECRET));
    for expected in [
        "  provider  rfc2136: rfc2136 from /etc/letsencrypt/rfc2136.ini: server 127.0.0.1:5300, key acme-key \
         (hmac-sha256)\n            secret written to /etc/hapcert/tsig-rfc2136.secret (0600)\n",
        "            DNS-01 through [[dns_provider]] rfc2136\n",
        "dns_rfc2136_propagation_seconds is not carried over: hapcert waits until every authoritative server answers",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    assert!(!report.contains("validates over HTTP-01"), "{report}");
}

#[test]
fn weak_or_missing_algorithms_skip_the_lineage_with_how_to_make_an_hmac_sha256_key() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let cases = [
        ("md5", Some("HMAC-MD5"), "sets dns_rfc2136_algorithm = HMAC-MD5"),
        ("sha1", Some("HMAC-SHA1"), "sets dns_rfc2136_algorithm = HMAC-SHA1"),
        (
            "none",
            None,
            "sets no dns_rfc2136_algorithm, so certbot signs with HMAC-MD5",
        ),
        ("lower", Some("hmac-sha256"), "which certbot reads as HMAC-MD5"),
    ];
    let mut lineages = vec![lineage("good", &rfc2136_conf("good", "/le/good.ini"), &pem)];
    let mut files = vec![("/le/good.ini", ini(0o600, &ini_text(Some("HMAC-SHA512"))))];
    for (name, algorithm, _) in cases {
        let path: &'static str = Box::leak(format!("/le/{name}.ini").into_boxed_str());
        lineages.push(lineage(name, &rfc2136_conf(name, path), &pem));
        files.push((path, ini(0o600, &ini_text(algorithm))));
    }
    let plan = plan_with_dns(&tree(lineages), &options(), &dns_inputs(files));
    assert_eq!(plan.lineages.len(), 1, "{:?}", plan.skipped);
    assert_eq!(
        plan.providers[0].credentials.algorithm,
        crate::core::config::TsigAlgorithm::HmacSha512
    );
    assert_eq!(plan.providers[0].name, "good");
    for (skipped, (name, _, why)) in plan.skipped.iter().zip(cases) {
        assert_eq!(skipped.name, name);
        assert!(skipped.reason.contains(why), "{name}: {}", skipped.reason);
        assert!(
            skipped.reason.contains(&format!("/le/{name}.ini")),
            "names the file: {}",
            skipped.reason
        );
        assert!(
            skipped.reason.contains("`tsig-keygen -a hmac-sha256 acme-key`") && skipped.reason.contains("named.conf"),
            "{name}: {}",
            skipped.reason
        );
        assert!(!skipped.reason.contains(SECRET));
    }
    assert!(
        plan.skipped[3]
            .reason
            .contains("write dns_rfc2136_algorithm = HMAC-SHA256"),
        "{}",
        plan.skipped[3].reason
    );
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
}

#[test]
fn unreadable_incomplete_or_world_readable_credentials_skip_the_lineage_naming_the_file() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let full = ini_text(Some("HMAC-SHA256"));
    let without = |key: &str| {
        full.lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    let cases: Vec<(&str, Result<CredentialsFile, String>, String)> = vec![
        (
            "unreadable",
            Err("cannot read /le/unreadable.ini: Permission denied (os error 13)".into()),
            "its credentials file cannot be read: cannot read /le/unreadable.ini: Permission denied".into(),
        ),
        (
            "noserver",
            ini(0o600, &without("dns_rfc2136_server")),
            "the credentials file /le/noserver.ini has no dns_rfc2136_server".into(),
        ),
        (
            "noname",
            ini(0o600, &without("dns_rfc2136_name")),
            "the credentials file /le/noname.ini has no dns_rfc2136_name".into(),
        ),
        (
            "nosecret",
            ini(0o600, &without("dns_rfc2136_secret")),
            "the credentials file /le/nosecret.ini has no dns_rfc2136_secret".into(),
        ),
        (
            "open",
            ini(0o644, &full),
            "the credentials file /le/open.ini holds a TSIG secret and other users can read it (mode 0644".into(),
        ),
        (
            "badport",
            ini(0o600, &full.replace("5300", "53000000")),
            "/le/badport.ini: dns_rfc2136_port '53000000' is not a port number".into(),
        ),
        (
            "notbase64",
            ini(0o600, &full.replace(SECRET, "not base64!")),
            "/le/notbase64.ini: dns_rfc2136_secret is not base64".into(),
        ),
    ];
    let mut lineages = Vec::new();
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (name, file, why) in cases {
        let path: &'static str = Box::leak(format!("/le/{name}.ini").into_boxed_str());
        lineages.push(lineage(name, &rfc2136_conf(name, path), &pem));
        files.push((path, file));
        expected.push((name, why));
    }
    let mut no_ini = rfc2136_conf("noini", "x");
    no_ini = no_ini.replace("dns_rfc2136_credentials = x\n", "");
    lineages.push(lineage("noini", &no_ini, &pem));
    lineages.push(lineage("good", &rfc2136_conf("good", "/le/good.ini"), &pem));
    files.push(("/le/good.ini", ini(0o640, &full)));
    let plan = plan_with_dns(&tree(lineages), &options(), &dns_inputs(files));
    assert_eq!(
        plan.lineages.len(),
        1,
        "group-readable is what certbot accepts too: {:?}",
        plan.skipped
    );
    for (name, why) in &expected {
        let skipped = plan.skipped.iter().find(|s| s.name == *name).unwrap();
        assert!(skipped.reason.contains(why.as_str()), "{name}: {}", skipped.reason);
        assert!(!skipped.reason.contains(SECRET));
    }
    let noini = plan.skipped.iter().find(|s| s.name == "noini").unwrap();
    assert!(
        noini.reason.contains("names no dns_rfc2136_credentials"),
        "{}",
        noini.reason
    );
}

#[test]
fn other_dns_plugins_are_skipped_with_what_an_exec_provider_needs_and_not_imported_as_http01() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let conf = |name: &str, plugin: &str| {
        standalone_conf(name, "key_type = ecdsa\n", "")
            .replace("authenticator = standalone", &format!("authenticator = {plugin}"))
            .replace("http01_port = 54321\n", "dns_cloudflare_credentials = /root/cf.ini\n")
    };
    let plan = plan(
        &tree(vec![
            lineage("cf", &conf("cf", "dns-cloudflare"), &pem),
            lineage("r53", &conf("r53", "dns-route53"), &pem),
            lineage("third", &conf("third", "certbot-dns-foo:dns-foo"), &pem),
        ]),
        &options(),
    );
    assert!(plan.lineages.is_empty());
    assert_eq!(plan.config_toml, None);
    for (skipped, plugin) in plan
        .skipped
        .iter()
        .zip(["dns-cloudflare", "dns-route53", "certbot-dns-foo:dns-foo"])
    {
        for part in [
            format!("the {plugin} plugin"),
            "kind = \"exec\"".to_owned(),
            "command = ".to_owned(),
            "<command> present <fqdn> <value>".to_owned(),
            "<command> cleanup <fqdn> <value>".to_owned(),
            "challenge = \"dns-01\"".to_owned(),
        ] {
            assert!(skipped.reason.contains(&part), "{part:?} in {}", skipped.reason);
        }
    }
}

#[test]
fn provider_names_come_from_the_ini_file_and_stay_unique() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let paths = ["/a/bind.ini", "/b/bind.ini", "/c/My Zone!.ini", "/d/!!!.ini"];
    let mut lineages = Vec::new();
    let mut files = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let name = format!("l{i}");
        lineages.push(lineage(&name, &rfc2136_conf(&name, path), &pem));
        files.push((*path, ini(0o600, &ini_text(Some("HMAC-SHA384")))));
    }
    let plan = plan_with_dns(&tree(lineages), &options(), &dns_inputs(files));
    let names: Vec<&str> = plan.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["bind", "bind-2", "my-zone", "rfc2136"]);
    validate_generated(&plan, Path::new("/etc/hapcert/hapcert.toml")).unwrap();
}

#[test]
fn an_ipv6_server_is_bracketed_and_the_default_port_is_53() {
    let text = "dns_rfc2136_server = 2001:db8::53\ndns_rfc2136_name = k.\n\
                dns_rfc2136_secret = ee+JGR1CNiX5zco+me3kMyY+qzYBJ2N9eeCIFPBRLdQ=\ndns_rfc2136_algorithm = HMAC-SHA256\n";
    let file = CredentialsFile {
        mode: 0o600,
        text: text.into(),
    };
    let credentials = dns::read_credentials(Path::new("/x.ini"), &file).unwrap();
    assert_eq!(credentials.server, "[2001:db8::53]:53");
    assert_eq!(credentials.key_name, "k");
    assert!(!format!("{credentials:?} {file:?}").contains(SECRET));
}

#[test]
fn an_existing_secret_file_is_kept_when_it_holds_the_secret_and_replaced_only_with_force() {
    let ca = TestCa::new();
    let pem = ca.issue(&["a.example.com"], KeyType::EcdsaP256, 90);
    let plan = plan_with_dns(
        &tree(vec![lineage("a", &rfc2136_conf("a", "/le/r.ini"), &pem)]),
        &options(),
        &dns_inputs(vec![("/le/r.ini", ini(0o600, &ini_text(Some("HMAC-SHA256"))))]),
    );
    let text = plan.config_toml.as_deref().unwrap();
    assert!(
        !text.contains("REVIEW: HAProxy's port 80") && text.contains("Every certificate below uses DNS-01"),
        "{text}"
    );
    let provider = &plan.providers[0];
    assert_eq!(judge_secret(None, provider, false), None);
    assert_eq!(
        judge_secret(Some(format!("{SECRET}\n").as_bytes()), provider, false),
        Some(SecretWrite::AlreadyThere)
    );
    let other = judge_secret(Some(b"b3RoZXI=\n"), provider, false).unwrap();
    assert!(
        matches!(&other, SecretWrite::NotWritten(why) if why.contains("--force") && !why.contains("b3RoZXI")),
        "{other:?}"
    );
    assert_eq!(judge_secret(Some(b"b3RoZXI=\n"), provider, true), None);
}
