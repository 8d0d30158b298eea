//! The file as written (`raw::RawConfig`) turned into the model: defaults filled in, aliases resolved, relative paths
//! taken from the file's directory, and every problem pushed to `Errors` with its place, so one pass reports them all.
//! The monitoring sections are validated in `monitor.rs`, next to their types.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::errors::Errors;
use super::fields::{LONGEST_LIFETIME, contact_uri, duration, endpoints, located_path};
use super::raw::{self, RawCertificate, RawConfig, RawMode};
use super::{
    AcmeConfig, CertificateSpec, ChallengeConfig, ChallengeKind, ChallengeMode, Config, DEFAULT_ORDER_DEADLINE,
    DEFAULT_RELOAD_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DnsProvider, DomainName, Endpoint, ExternalAccountBinding,
    HaproxyConfig, Hooks, KeyType, LETSENCRYPT, LETSENCRYPT_STAGING, Located, MAX_ORDER_DEADLINE, MAX_REQUEST_TIMEOUT,
    MIN_RELOAD_TIMEOUT, Position, StateConfig, monitor,
};

pub(super) fn validate(raw: RawConfig, base: &Path, errors: &mut Errors) -> Config {
    let acme = validate_acme(raw.acme.into_inner(), base, errors);

    let listen = match &raw.challenge.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 54321)),
        Some(text) => text.get_ref().parse().unwrap_or_else(|_| {
            errors.at(
                text,
                "challenge.listen",
                format!(
                    "'{}' is not an address; write ip:port, like 127.0.0.1:54321",
                    text.get_ref()
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 54321))
        }),
    };

    if let Some(text) = &raw.challenge.listen
        && listen.port() == 0
    {
        errors.at(
            text,
            "challenge.listen",
            "port 0 lets the system pick any port, and HAProxy's challenge backend must name a fixed one; give the port of its server line, like 127.0.0.1:54321",
        );
    }

    let mode = match &raw.challenge.mode {
        None => ChallengeMode::SidePort,
        Some(text) => match text.get_ref().as_str() {
            "side-port" => ChallengeMode::SidePort,
            "stateless" => ChallengeMode::Stateless,
            other => {
                errors.at(
                    text,
                    "challenge.mode",
                    format!("'{other}' is not a mode; use \"side-port\" or \"stateless\""),
                );
                ChallengeMode::SidePort
            }
        },
    };
    let preflight_address = raw
        .challenge
        .preflight_address
        .as_ref()
        .and_then(|text| match text.get_ref().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errors.at(
                    text,
                    "challenge.preflight_address",
                    format!(
                        "'{}' is not an address; write ip:port, like 127.0.0.1:80",
                        text.get_ref()
                    ),
                );
                None
            }
        });
    let challenge = ChallengeConfig {
        listen,
        mode,
        preflight: raw.challenge.preflight.unwrap_or(true),
        preflight_address,
        kind: super::dns::default_kind(raw.challenge.kind.as_ref(), errors),
    };
    let dns_providers = super::dns::validate_providers(raw.dns_provider, base, errors);

    let haproxy = validate_haproxy(raw.haproxy, base, errors);
    let state_dir = match raw.state.dir {
        Some(dir) => located_path(errors, base, dir, "state.dir"),
        None => Located {
            value: PathBuf::from("/var/lib/hapcert"),
            at: Position::default(),
            key: "state.dir".into(),
        },
    };

    let hooks = monitor::validate_hooks(raw.hooks, errors);
    let context = Context {
        haproxy: &haproxy,
        acme: &acme,
        default_hooks: &hooks.global,
        challenge: challenge.kind,
        dns_providers: &dns_providers,
        watching: !raw.watch.is_empty(),
    };
    let certificates = validate_certificates(raw.certificate, &context, base, errors);
    // After [haproxy]: [check] endpoints defaults to its verify.
    let check = monitor::validate_check(raw.check, &haproxy.verify, base, errors);
    let config = Config {
        path: errors.file.to_owned(),
        acme,
        challenge,
        haproxy,
        state: StateConfig { dir: state_dir },
        certificates,
        check,
        metrics: monitor::validate_metrics(raw.metrics, base, errors),
        daemon: monitor::validate_daemon(raw.daemon, base, errors),
        hooks,
        notify: monitor::validate_notify(raw.notify, base, errors),
        fleet: raw.fleet.map(|fleet| super::fleet::validate_fleet(fleet, base, errors)),
        dns_providers,
        watch: super::watch::validate_watches(raw.watch, base, errors),
    };
    super::layout::validate_layout(&config, errors);
    config
}

fn validate_acme(raw: raw::RawAcme, base: &Path, errors: &mut Errors) -> AcmeConfig {
    let directory = match raw.directory.get_ref().as_str() {
        "letsencrypt" => LETSENCRYPT.to_owned(),
        "letsencrypt-staging" => LETSENCRYPT_STAGING.to_owned(),
        url if url.starts_with("https://") && url.len() > "https://".len() => url.to_owned(),
        other => {
            errors.at(
                &raw.directory,
                "acme.directory",
                format!(
                    "'{other}' is neither an https:// URL nor one of the aliases 'letsencrypt', 'letsencrypt-staging'"
                ),
            );
            String::new()
        }
    };
    let mut contact = Vec::new();
    for (i, entry) in raw.contact.iter().enumerate() {
        if let Some(uri) = contact_uri(entry.get_ref()) {
            contact.push(uri);
        } else {
            errors.at(
                entry,
                &format!("acme.contact[{i}]"),
                format!("'{}' is not an e-mail address", entry.get_ref()),
            );
        }
    }
    let ca_bundle = raw.ca_bundle.map(|p| located_path(errors, base, p, "acme.ca_bundle"));
    let eab = eab(errors, base, raw.eab_kid, raw.eab_hmac_key, raw.eab_hmac_key_file);
    let profile = raw.profile.and_then(|p| validate_profile(errors, p, "acme.profile"));
    let preferred_chain = raw
        .preferred_chain
        .and_then(|p| validate_preferred_chain(errors, p, "acme.preferred_chain"));
    let trust_roots = raw
        .trust_roots
        .map(|p| located_path(errors, base, p, "acme.trust_roots"));
    let request_timeout = bounded_duration(
        errors,
        raw.request_timeout.as_ref(),
        "acme.request_timeout",
        DEFAULT_REQUEST_TIMEOUT,
        MAX_REQUEST_TIMEOUT,
    );
    let order_deadline = bounded_duration(
        errors,
        raw.order_deadline.as_ref(),
        "acme.order_deadline",
        DEFAULT_ORDER_DEADLINE,
        MAX_ORDER_DEADLINE,
    );
    AcmeConfig {
        directory,
        contact,
        ca_bundle,
        eab,
        profile,
        preferred_chain,
        trust_roots,
        request_timeout,
        order_deadline,
    }
}

/// A duration of at least a second and at most `max`; `default` when not written (or after recording a problem).
fn bounded_duration(
    errors: &mut Errors,
    text: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    max: Duration,
) -> Duration {
    let Some(text) = text else { return default };
    match duration(errors, text, key, false) {
        Some(d) if d < Duration::from_secs(1) => {
            errors.at(
                text,
                key,
                "must be at least 1s: a CA answers in milliseconds to seconds",
            );
            default
        }
        Some(d) if d > max => {
            errors.at(
                text,
                key,
                format!(
                    "{} is more than {}, the most hapcert waits; use less, like {}",
                    humantime::format_duration(d),
                    humantime::format_duration(max),
                    humantime::format_duration(default)
                ),
            );
            default
        }
        Some(d) => d,
        None => default,
    }
}

/// Profile names are short tokens; what the CA offers is checked against its directory before ordering.
fn validate_profile(errors: &mut Errors, name: Spanned<String>, key: &str) -> Option<String> {
    let text = name.get_ref();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        errors.at(
            &name,
            key,
            format!("'{text}' is not a profile name; use the name your CA lists, such as \"tlsserver\""),
        );
        return None;
    }
    Some(name.into_inner())
}

/// The longest common name X.509 allows (RFC 5280's ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// An issuer common name: one line of at most 64 characters, compared exactly with what the CA's chains name.
fn validate_preferred_chain(errors: &mut Errors, name: Spanned<String>, key: &str) -> Option<String> {
    let text = name.get_ref();
    let problem = if text.trim().is_empty() {
        Some("is empty; write the common name of the root the chain should lead to, such as \"ISRG Root X1\", or remove the key".to_owned())
    } else if text.chars().any(char::is_control) {
        Some(
            "must be one line without control characters: the issuer's common name, such as \"ISRG Root X1\""
                .to_owned(),
        )
    } else if text.chars().count() > MAX_COMMON_NAME {
        Some(format!(
            "is {} characters, more than a common name may have ({MAX_COMMON_NAME}); write the issuer's common name, such as \"ISRG Root X1\"",
            text.chars().count()
        ))
    } else if text.trim() != text {
        Some("starts or ends with a space, which no issuer name does; remove it (the comparison is exact)".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => {
            errors.at(&name, key, problem);
            None
        }
        None => Some(name.into_inner()),
    }
}

/// The most names the profiles that Let's Encrypt publishes allow (its `classic` profile allows 100).
pub fn profile_name_limit(profile: &str) -> Option<usize> {
    match profile {
        "tlsserver" | "shortlived" => Some(25),
        _ => None,
    }
}

pub fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn validate_haproxy(raw: raw::RawHaproxy, base: &Path, errors: &mut Errors) -> HaproxyConfig {
    let cert_dir = match raw.cert_dir {
        Some(dir) => located_path(errors, base, dir, "haproxy.cert_dir"),
        None => Located {
            value: PathBuf::from("/etc/haproxy/certs"),
            at: Position::default(),
            key: "haproxy.cert_dir".into(),
        },
    };
    let command = |errors: &mut Errors, value: Option<Spanned<String>>, key: &str, default: &str| match value {
        None => default.to_owned(),
        Some(text) if text.get_ref().trim().is_empty() => {
            errors.at(
                &text,
                key,
                "is empty; give a command, or remove the key for the default",
            );
            default.to_owned()
        }
        Some(text) => text.into_inner(),
    };
    let check_command = command(
        errors,
        raw.check_command,
        "haproxy.check_command",
        "haproxy -c -f /etc/haproxy/haproxy.cfg",
    );
    let reload_command = command(
        errors,
        raw.reload_command,
        "haproxy.reload_command",
        "systemctl reload haproxy",
    );
    let mode = raw.mode.map_or(0o600, |m| parse_mode(errors, &m));
    let name = |errors: &mut Errors, value: Option<Spanned<String>>, key: &str| {
        value.map(|v| {
            let span = v.span();
            if v.get_ref().is_empty() {
                errors.at(&v, key, "is empty; name a user or group, or remove the key");
            }
            errors.locate(v.into_inner(), span, key)
        })
    };
    let owner = name(errors, raw.owner, "haproxy.owner");
    let group = name(errors, raw.group, "haproxy.group");
    let socket = |errors: &mut Errors, value: Option<Spanned<String>>, key: &str| {
        value.map(|v| {
            let span = v.span();
            if let Err(problem) = validate_socket(v.get_ref()) {
                errors.at(&v, key, problem);
            }
            errors.locate(v.into_inner(), span, key)
        })
    };
    let runtime_api = socket(errors, raw.runtime_api, "haproxy.runtime_api");
    let master_socket = socket(errors, raw.master_socket, "haproxy.master_socket");
    let crt_list = match raw.crt_list {
        Some(list) => list.into_inner(),
        None => cert_dir.value.to_string_lossy().trim_end_matches('/').to_owned(),
    };
    let verify = match raw.verify {
        Some(list) => endpoints(errors, &list, "haproxy.verify"),
        None => vec!["127.0.0.1:443".to_owned()],
    };
    let reload_timeout = match &raw.reload_timeout {
        None => DEFAULT_RELOAD_TIMEOUT,
        Some(text) => match duration(errors, text, "haproxy.reload_timeout", false) {
            Some(d) if d < MIN_RELOAD_TIMEOUT || d > Duration::from_secs(3600) => {
                errors.at(
                    text,
                    "haproxy.reload_timeout",
                    "must be between 5s and 1h; a reload takes seconds per few thousand certificates",
                );
                DEFAULT_RELOAD_TIMEOUT
            }
            Some(d) => d,
            None => DEFAULT_RELOAD_TIMEOUT,
        },
    };
    HaproxyConfig {
        cert_dir,
        check_command,
        reload_command,
        mode,
        owner,
        group,
        runtime_api,
        master_socket,
        crt_list,
        verify,
        reload_timeout,
    }
}

/// A Runtime API address as HAProxy writes them: a socket path, `unix@path`, `ipv4@host:port`, `ipv6@[addr]:port`.
fn validate_socket(text: &str) -> Result<(), String> {
    Endpoint::parse(text).map(|_| ()).map_err(|_| {
        format!("'{text}' is not a socket; write a path like /run/haproxy/admin.sock, or ipv4@127.0.0.1:9999")
    })
}

fn parse_mode(errors: &mut Errors, raw: &Spanned<RawMode>) -> u32 {
    let parsed = match raw.get_ref() {
        RawMode::Text(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).ok(),
        RawMode::Number(n) => u32::try_from(*n).ok(),
    };
    match parsed {
        Some(mode) if mode & !0o777 == 0 && mode & 0o007 == 0 && mode & 0o600 == 0o600 => mode,
        Some(mode) if mode & !0o777 == 0 && mode & 0o007 != 0 => {
            errors.at(
                raw,
                "haproxy.mode",
                format!("{mode:04o} lets every local user read the private key; use 0600, or 0640 with a group"),
            );
            0o600
        }
        Some(mode) if mode & !0o777 == 0 => {
            errors.at(
                raw,
                "haproxy.mode",
                format!("{mode:04o} does not let the owner read and write the file; use 0600 or 0640"),
            );
            0o600
        }
        _ => {
            errors.at(raw, "haproxy.mode", "is not a file mode; write it as \"0600\" or 0o600");
            0o600
        }
    }
}

/// What a certificate falls back to for the keys it does not write.
struct Context<'a> {
    haproxy: &'a HaproxyConfig,
    acme: &'a AcmeConfig,
    default_hooks: &'a Hooks,
    challenge: ChallengeKind,
    dns_providers: &'a [DnsProvider],
    /// The config has `[[watch]]` entries.
    watching: bool,
}

fn validate_certificates(
    raw: Vec<Spanned<RawCertificate>>,
    context: &Context<'_>,
    base: &Path,
    errors: &mut Errors,
) -> Vec<CertificateSpec> {
    let Context {
        haproxy,
        acme,
        default_hooks,
        ..
    } = *context;
    // A box may only be watched (`[[watch]]` alone): then there is nothing to issue, and that is no mistake.
    if raw.is_empty() && !context.watching {
        errors.push(
            None,
            "certificate",
            "no [[certificate]] tables; add one with a name and its domains (or [[watch]] entries, when hapcert \
             only monitors this host)",
        );
    }
    let mut names_seen: HashMap<String, usize> = HashMap::new();
    let mut files_seen: HashMap<PathBuf, String> = HashMap::new();
    let mut out = Vec::new();
    for (index, table) in raw.into_iter().enumerate() {
        let table = table.into_inner();
        let key = |field: &str| format!("certificate[{index}].{field}");
        let name = table.name.get_ref().clone();
        if let Err(problem) = validate_name(&name) {
            errors.at(&table.name, &key("name"), problem);
        }

        let mut domains: Vec<DomainName> = Vec::new();
        if table.domains.get_ref().is_empty() {
            errors.at(
                &table.domains,
                &key("domains"),
                "is empty; list the names this certificate covers",
            );
        }
        for (i, text) in table.domains.get_ref().iter().enumerate() {
            match DomainName::parse(text.get_ref()) {
                Ok(domain) if domains.contains(&domain) => {
                    errors.at(
                        text,
                        &format!("{}[{i}]", key("domains")),
                        format!("'{domain}' is listed twice"),
                    );
                }
                Ok(domain) => domains.push(domain),
                Err(problem) => errors.at(
                    text,
                    &format!("{}[{i}]", key("domains")),
                    format!("'{}': {problem}", text.get_ref()),
                ),
            }
        }
        if domains.len() > 100 {
            errors.at(
                &table.domains,
                &key("domains"),
                format!("{} names; a certificate holds at most 100", domains.len()),
            );
        }

        let (challenge, dns_provider) = challenge_of(&table, context, &key, errors);
        let key_types = key_types(&table, &key, errors);
        let base_file = match table.file {
            Some(path)
                if path
                    .get_ref()
                    .rsplit('/')
                    .next()
                    .is_some_and(|file| file.starts_with('*')) =>
            {
                errors.at(
                    &path,
                    &key("file"),
                    "begins with '*', which HAProxy 3.2 and later read on their CLI as a transaction marker; name the \
                     file after the certificate, like wildcard.example.com.pem",
                );
                located_path(errors, base, path, &key("file"))
            }
            Some(path) => located_path(errors, base, path, &key("file")),
            None => errors.locate(
                haproxy.cert_dir.value.join(format!("{name}.pem")),
                table.name.span(),
                &key("file"),
            ),
        };

        let renew_before = table.renew_before.as_ref().and_then(|text| {
            let wanted = super::fields::duration(errors, text, &key("renew_before"), false)?;
            if wanted >= LONGEST_LIFETIME {
                errors.at(
                    text,
                    &key("renew_before"),
                    format!(
                        "'{}' is not shorter than 90 days, the longest lifetime Let's Encrypt issues (and lifetimes are shrinking), so the certificate would be due at every run; use less, like \"30d\", or remove it for the lifetime rule",
                        text.get_ref()
                    ),
                );
                return None;
            }
            Some(wanted)
        });
        let (verify, verify_key) = match &table.verify {
            Some(list) => (
                endpoints(errors, list, &key("verify")),
                format!("`verify` in [[certificate]] {name:?}"),
            ),
            None => (haproxy.verify.clone(), monitor::HAPROXY_VERIFY_KEY.to_owned()),
        };
        let profile = match table.profile {
            Some(name) => validate_profile(errors, name, &key("profile")),
            None => acme.profile.clone(),
        };
        let preferred_chain = match table.preferred_chain {
            Some(name) => validate_preferred_chain(errors, name, &key("preferred_chain")),
            None => acme.preferred_chain.clone(),
        };
        let hooks = monitor::certificate_hooks(
            table.pre_hook,
            table.post_hook,
            table.deploy_hook,
            &format!("certificate[{index}]"),
            errors,
        )
        .or(default_hooks);
        if let Some(limit) = profile.as_deref().and_then(profile_name_limit)
            && domains.len() > limit
        {
            errors.at(
                &table.domains,
                &key("domains"),
                format!(
                    "{} names, but the profile \"{}\" allows at most {limit}; split the certificate or choose another profile",
                    domains.len(),
                    profile.as_deref().unwrap_or_default()
                ),
            );
        }

        // Several key types become one certificate each, in the files HAProxy pairs by suffix: www.pem.ecdsa, www.pem.rsa.
        let several = key_types.len() > 1;
        for key_type in key_types {
            let (spec_name, file) = if several {
                let mut file = base_file.clone();
                file.value = PathBuf::from(format!("{}.{}", base_file.value.display(), key_type.kind()));
                (format!("{name}.{}", key_type.kind()), file)
            } else {
                (name.clone(), base_file.clone())
            };
            if let Some(first) = names_seen.insert(spec_name.clone(), index) {
                errors.at(
                    &table.name,
                    &key("name"),
                    format!("'{spec_name}' is already the name of certificate[{first}]; names must be unique"),
                );
            }
            if let Some(other) = files_seen.insert(file.value.clone(), spec_name.clone()) {
                errors.push(
                    Some(table.name.span()),
                    &key("file"),
                    format!(
                        "writes {}, which certificate '{other}' writes too; give one of them another file",
                        file.value.display()
                    ),
                );
            }
            out.push(CertificateSpec {
                name: spec_name,
                group: name.clone(),
                domains: domains.clone(),
                key_type,
                file,
                renew_before,
                verify: verify.clone(),
                verify_key: verify_key.clone(),
                profile: profile.clone(),
                preferred_chain: preferred_chain.clone(),
                hooks: hooks.clone(),
                challenge,
                dns_provider: dns_provider.clone(),
            });
        }
    }
    out
}

/// The challenge a certificate is validated with, and its DNS provider with DNS-01. A wildcard needs DNS-01.
fn challenge_of(
    table: &RawCertificate,
    context: &Context<'_>,
    key: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> (ChallengeKind, Option<String>) {
    let name = table.name.get_ref();
    let challenge = match &table.challenge {
        Some(text) => super::dns::kind(text, &key("challenge"), errors),
        None => context.challenge,
    };
    if challenge == ChallengeKind::Http01 {
        let written = table.domains.get_ref().iter().enumerate();
        if let Some((i, wildcard)) = written.clone().find(|(_, d)| d.get_ref().starts_with("*.")) {
            errors.at(
                wildcard,
                &format!("{}[{i}]", key("domains")),
                format!(
                    "'{}' is a wildcard, which only DNS-01 can validate; set challenge = \"dns-01\" in \
                     certificate '{name}' (and add a [[dns_provider]])",
                    wildcard.get_ref()
                ),
            );
        }
        if let Some(text) = &table.dns_provider {
            errors.at(
                text,
                &key("dns_provider"),
                format!("applies to DNS-01 only, and certificate '{name}' uses HTTP-01; remove it, or set challenge = \"dns-01\""),
            );
        }
        return (challenge, None);
    }
    let provider = match &table.dns_provider {
        Some(text) if context.dns_providers.iter().any(|p| &p.name == text.get_ref()) => Some(text.get_ref().clone()),
        Some(text) => {
            let known: Vec<&str> = context.dns_providers.iter().map(|p| p.name.as_str()).collect();
            errors.at(
                text,
                &key("dns_provider"),
                match known.is_empty() {
                    true => format!("'{}' names no [[dns_provider]]; add one with that name", text.get_ref()),
                    false => format!(
                        "'{}' names no [[dns_provider]]; use one of {}",
                        text.get_ref(),
                        known.join(", ")
                    ),
                },
            );
            None
        }
        None => match context.dns_providers.first() {
            Some(first) => Some(first.name.clone()),
            None => {
                errors.at(
                    &table.name,
                    &key("challenge"),
                    format!(
                        "certificate '{name}' uses DNS-01, but there is no [[dns_provider]]; add one (kind = \"rfc2136\" \
                         or \"exec\") that can publish its TXT records"
                    ),
                );
                None
            }
        },
    };
    (challenge, provider)
}

/// `key_type = "..."` or `key_types = [...]` (at most one ECDSA and one RSA type: HAProxy picks between kinds, not sizes).
fn key_types(table: &RawCertificate, key: &dyn Fn(&str) -> String, errors: &mut Errors) -> Vec<KeyType> {
    let parse = |errors: &mut Errors, text: &Spanned<String>, key: &str| {
        KeyType::from_name(text.get_ref()).or_else(|| {
            let known: Vec<&str> = KeyType::ALL.iter().map(|k| k.name()).collect();
            errors.at(
                text,
                key,
                format!(
                    "'{}' is not a key type; use one of {}",
                    text.get_ref(),
                    known.join(", ")
                ),
            );
            None
        })
    };
    match (&table.key_type, &table.key_types) {
        (Some(one), Some(_)) => {
            errors.at(one, &key("key_type"), "give key_type or key_types, not both");
            vec![KeyType::EcdsaP256]
        }
        (Some(one), None) => vec![parse(errors, one, &key("key_type")).unwrap_or(KeyType::EcdsaP256)],
        (None, None) => vec![KeyType::EcdsaP256],
        (None, Some(list)) => {
            let mut types: Vec<KeyType> = Vec::new();
            for (i, text) in list.get_ref().iter().enumerate() {
                let Some(key_type) = parse(errors, text, &format!("{}[{i}]", key("key_types"))) else {
                    continue;
                };
                if types.iter().any(|t| t.kind() == key_type.kind()) {
                    errors.at(
                        text,
                        &format!("{}[{i}]", key("key_types")),
                        format!(
                            "a second {} type; HAProxy serves one ECDSA and one RSA certificate per name",
                            key_type.kind().to_uppercase()
                        ),
                    );
                } else {
                    types.push(key_type);
                }
            }
            if types.is_empty() {
                errors.at(
                    list,
                    &key("key_types"),
                    "is empty; list one or two key types, like [\"ecdsa-p256\", \"rsa-2048\"]",
                );
                types.push(KeyType::EcdsaP256);
            }
            types
        }
    }
}

/// A certificate's name becomes a file name in the cert and state directories.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; give the certificate a name, like \"www\"".into());
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "'{name}' may only hold letters, digits, '.', '-' and '_', and must not start with '.'"
        ));
    }
    Ok(())
}

/// External Account Binding: the key id and the HMAC key, given inline or as a file (read when the config is loaded).
fn eab(
    errors: &mut Errors,
    base: &Path,
    kid: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
) -> Option<ExternalAccountBinding> {
    let (kid, hmac_key, hmac_key_file) = match (kid, key, key_file) {
        (None, None, None) => return None,
        (_, Some(_), Some(file)) => {
            errors.at(
                &file,
                "acme.eab_hmac_key_file",
                "give the HMAC key once: eab_hmac_key or eab_hmac_key_file, not both",
            );
            return None;
        }
        (Some(kid), Some(key), None) => {
            if !is_eab_key(key.get_ref()) {
                errors.at(&key, "acme.eab_hmac_key", EAB_KEY_FORM);
            }
            (kid, key.into_inner(), None)
        }
        (Some(kid), None, Some(file)) => {
            let file = located_path(errors, base, file, "acme.eab_hmac_key_file");
            (kid, String::new(), Some(file))
        }
        (Some(kid), None, None) => {
            errors.at(
                &kid,
                "acme.eab_kid",
                "eab_hmac_key (or eab_hmac_key_file) is missing; External Account Binding needs both",
            );
            return None;
        }
        (None, Some(key), None) => {
            errors.at(&key, "acme.eab_hmac_key", KID_MISSING);
            return None;
        }
        (None, None, Some(file)) => {
            errors.at(&file, "acme.eab_hmac_key_file", KID_MISSING);
            return None;
        }
    };
    Some(ExternalAccountBinding {
        kid: kid.into_inner(),
        hmac_key,
        hmac_key_file,
    })
}

const KID_MISSING: &str = "eab_kid is missing; External Account Binding needs both";

/// What an EAB HMAC key must look like, inline or in its file.
pub const EAB_KEY_FORM: &str = "must be the base64url key your CA gave you (A-Z a-z 0-9 - _)";

/// Whether `key` looks like an EAB HMAC key: base64url, not empty.
pub fn is_eab_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_base64url)
}
