//! DNS-01: `[challenge] type`, a certificate's `challenge` and `dns_provider`, and the `[[dns_provider]]` tables that
//! say how a TXT record is put in place: an RFC 2136 update signed with TSIG (`kind = "rfc2136"`), or an operator's
//! script (`kind = "exec"`, with lego's `present`/`cleanup` arguments so existing hook scripts work).
//!
//! The TSIG secret stays in its file; only the path is read here. `edge::dns` reads the file when it updates a zone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::errors::Errors;
use super::fields::{command, duration_or, located_path, refuse_other_kinds_keys};
use super::{ChallengeKind, Located};

/// `propagation_timeout` when not set: how long every authoritative server is given to serve a new TXT record.
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// `propagation_interval` when not set: the longest pause between two rounds of asking them.
pub const DEFAULT_PROPAGATION_INTERVAL: Duration = Duration::from_secs(2);
/// `ttl` when not set: short, so that a resolver's cached answer from a previous attempt expires quickly.
pub const DEFAULT_TTL: u32 = 60;
/// `timeout` of an exec provider when not set.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// One `[[dns_provider]]`.
#[derive(Debug, Clone)]
pub struct DnsProvider {
    pub name: String,
    pub kind: DnsProviderKind,
    pub propagation_timeout: Duration,
    pub propagation_interval: Duration,
    /// The authoritative servers to check instead of the zone's NS records (`host:port`): for split setups and tests.
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum DnsProviderKind {
    Rfc2136(Rfc2136),
    /// `command present|cleanup <fqdn> <value>`.
    Exec {
        command: String,
        timeout: Duration,
    },
}

/// An RFC 2136 update, signed with a TSIG key, sent to the zone's primary.
#[derive(Debug, Clone)]
pub struct Rfc2136 {
    /// `host:port` of the primary; `None`: the MNAME of the zone's SOA, port 53.
    pub server: Option<String>,
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    /// base64 of the key, alone in the file (mode 0600).
    pub secret_file: Located<PathBuf>,
    /// The zone to update; `None`: found by asking for the SOA.
    pub zone: Option<String>,
    pub ttl: u32,
}

/// The TSIG algorithms hapcert signs with. HMAC-MD5 and HMAC-SHA1 are refused: they are broken or on their way out,
/// and `tsig-keygen` has made hmac-sha256 keys by default for years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm a name means, as bind9, knot and certbot's INI files write it (any case, with or without the
    /// trailing dot); `Err` says what to do instead when it is a weak one or unknown.
    pub fn parse(text: &str) -> Result<TsigAlgorithm, String> {
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        match name.as_str() {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => Err(format!(
                "'{text}' is too weak to sign with; make an hmac-sha256 key with `tsig-keygen -a hmac-sha256 <name>`, \
                 put it in the zone's server config, and its secret in tsig_secret_file"
            )),
            _ => Err(format!(
                "'{text}' is not a TSIG algorithm; use \"hmac-sha256\", \"hmac-sha384\" or \"hmac-sha512\""
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsProvider {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub propagation_timeout: Option<Spanned<String>>,
    pub propagation_interval: Option<Spanned<String>>,
    pub nameservers: Option<Spanned<Vec<Spanned<String>>>>,
    // rfc2136
    pub server: Option<Spanned<String>>,
    pub tsig_key_name: Option<Spanned<String>>,
    pub tsig_algorithm: Option<Spanned<String>>,
    pub tsig_secret_file: Option<Spanned<String>>,
    pub zone: Option<Spanned<String>>,
    pub ttl: Option<Spanned<i64>>,
    // exec
    pub command: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// `[challenge] type`: the challenge of a certificate that names none.
pub(super) fn default_kind(raw: Option<&Spanned<String>>, errors: &mut Errors) -> ChallengeKind {
    raw.map_or(ChallengeKind::Http01, |text| kind(text, "challenge.type", errors))
}

/// `"http-01"` or `"dns-01"`.
pub(super) fn kind(text: &Spanned<String>, key: &str, errors: &mut Errors) -> ChallengeKind {
    match text.get_ref().as_str() {
        "http-01" => ChallengeKind::Http01,
        "dns-01" => ChallengeKind::Dns01,
        other => {
            errors.at(
                text,
                key,
                format!("'{other}' is not a challenge type; use \"http-01\" or \"dns-01\""),
            );
            ChallengeKind::Http01
        }
    }
}

pub(super) fn validate_providers(
    raw: Vec<Spanned<RawDnsProvider>>,
    base: &Path,
    errors: &mut Errors,
) -> Vec<DnsProvider> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (index, table) in raw.into_iter().enumerate() {
        let span = table.span();
        let table = table.into_inner();
        let key = |field: &str| format!("dns_provider[{index}].{field}");
        let name = table.name.get_ref().clone();
        if let Err(problem) = super::validate_name(&name) {
            errors.at(&table.name, &key("name"), problem);
        } else if !names.insert(name.clone()) {
            errors.at(
                &table.name,
                &key("name"),
                format!("'{name}' names another [[dns_provider]] too; names must be unique"),
            );
        }
        let kind_name = table.kind.get_ref().as_str();
        let present = [
            ("server", table.server.is_some()),
            ("tsig_key_name", table.tsig_key_name.is_some()),
            ("tsig_algorithm", table.tsig_algorithm.is_some()),
            ("tsig_secret_file", table.tsig_secret_file.is_some()),
            ("zone", table.zone.is_some()),
            ("ttl", table.ttl.is_some()),
            ("command", table.command.is_some()),
            ("timeout", table.timeout.is_some()),
        ];
        let allowed: &[&str] = match kind_name {
            "rfc2136" => &[
                "server",
                "tsig_key_name",
                "tsig_algorithm",
                "tsig_secret_file",
                "zone",
                "ttl",
            ],
            "exec" => &["command", "timeout"],
            other => {
                errors.at(
                    &table.kind,
                    &key("kind"),
                    format!("'{other}' is not a kind of DNS provider; use \"rfc2136\" or \"exec\""),
                );
                continue;
            }
        };
        refuse_other_kinds_keys(errors, &span, &key, kind_name, &present, allowed);
        let missing = |errors: &mut Errors, field: &str, what: &str| {
            errors.push(Some(span.clone()), &key(field), format!("is missing; {what}"));
        };
        let kind = if kind_name == "exec" {
            let Some(command) = command(errors, table.command, &key("command")) else {
                missing(
                    errors,
                    "command",
                    "give the script that adds (present) and removes (cleanup) a TXT record",
                );
                continue;
            };
            let timeout = duration_or(errors, &table.timeout, &key("timeout"), DEFAULT_EXEC_TIMEOUT, false);
            DnsProviderKind::Exec { command, timeout }
        } else {
            let server = table
                .server
                .as_ref()
                .and_then(|text| host_port(errors, text, &key("server")));
            let key_name = match &table.tsig_key_name {
                Some(text) if !text.get_ref().trim().is_empty() => text.get_ref().trim_end_matches('.').to_owned(),
                Some(text) => {
                    errors.at(
                        text,
                        &key("tsig_key_name"),
                        "is empty; give the key's name as the server knows it",
                    );
                    String::new()
                }
                None => {
                    missing(
                        errors,
                        "tsig_key_name",
                        "give the name of the TSIG key the zone's update-policy grants",
                    );
                    String::new()
                }
            };
            let algorithm = match &table.tsig_algorithm {
                None => TsigAlgorithm::HmacSha256,
                Some(text) => TsigAlgorithm::parse(text.get_ref()).unwrap_or_else(|problem| {
                    errors.at(text, &key("tsig_algorithm"), problem);
                    TsigAlgorithm::HmacSha256
                }),
            };
            let Some(secret) = table.tsig_secret_file else {
                missing(
                    errors,
                    "tsig_secret_file",
                    "give the file (mode 0600) that holds the key's base64 secret",
                );
                continue;
            };
            let secret_file = located_path(errors, base, secret, &key("tsig_secret_file"));
            let zone = table.zone.as_ref().and_then(|text| {
                let zone = text.get_ref().trim_end_matches('.').to_ascii_lowercase();
                if zone.is_empty() || zone.split('.').any(str::is_empty) {
                    errors.at(
                        text,
                        &key("zone"),
                        format!("'{}' is not a zone name, like example.com", text.get_ref()),
                    );
                    return None;
                }
                Some(zone)
            });
            let ttl = match &table.ttl {
                None => DEFAULT_TTL,
                Some(value) => match u32::try_from(*value.get_ref()) {
                    Ok(ttl) if (1..=86_400).contains(&ttl) => ttl,
                    _ => {
                        errors.at(
                            value,
                            &key("ttl"),
                            "must be between 1 and 86400 seconds; 60 suits a challenge",
                        );
                        DEFAULT_TTL
                    }
                },
            };
            DnsProviderKind::Rfc2136(Rfc2136 {
                server,
                key_name,
                algorithm,
                secret_file,
                zone,
                ttl,
            })
        };
        let propagation_timeout = duration_or(
            errors,
            &table.propagation_timeout,
            &key("propagation_timeout"),
            DEFAULT_PROPAGATION_TIMEOUT,
            false,
        );
        let propagation_interval = duration_or(
            errors,
            &table.propagation_interval,
            &key("propagation_interval"),
            DEFAULT_PROPAGATION_INTERVAL,
            false,
        );
        let nameservers = match &table.nameservers {
            None => Vec::new(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    errors.at(
                        list,
                        &key("nameservers"),
                        "is empty; list host:port entries, or remove the key",
                    );
                }
                list.get_ref()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, entry)| host_port(errors, entry, &format!("{}[{i}]", key("nameservers"))))
                    .collect()
            }
        };
        out.push(DnsProvider {
            name,
            kind,
            propagation_timeout,
            propagation_interval,
            nameservers,
        });
    }
    out
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(errors: &mut Errors, text: &Spanned<String>, key: &str) -> Option<String> {
    let valid = text
        .get_ref()
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if valid {
        Some(text.get_ref().clone())
    } else {
        errors.at(
            text,
            key,
            format!(
                "'{}' is not host:port, like ns1.example.com:53 or 192.0.2.1:53",
                text.get_ref()
            ),
        );
        None
    }
}
