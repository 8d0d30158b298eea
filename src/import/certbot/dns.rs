//! certbot's DNS authenticators, mapped to `[[dns_provider]]` tables. Only `dns-rfc2136` has a counterpart that needs no
//! code from the operator: its credentials INI names the primary and the TSIG key, and becomes an `rfc2136` provider
//! whose secret goes to a file of its own (the config only names that file). Every other `dns-*` plugin talks to a
//! vendor's API, which hapcert reaches through an `exec` provider the operator writes. Pure: the INI files are read by
//! the edge into `CertbotTree::credentials`, and the secret files are written by the edge too.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::CredentialsFile;
use crate::core::config::{TsigAlgorithm, validate_name};
use crate::import::configobj::{self, Section};

/// A TSIG secret (base64) on its way from certbot's INI to hapcert's secret file: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigSecret(pub String);

impl fmt::Debug for TsigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TsigSecret(<redacted>)")
    }
}

/// What a dns-rfc2136 credentials INI says, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2136Credentials {
    /// `host:port` of the server certbot sent its updates to.
    pub server: String,
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: TsigSecret,
}

/// One `[[dns_provider]]` the import writes: made from one INI, shared by every lineage that names that INI.
#[derive(Debug, Clone)]
pub struct ProviderPlan {
    pub name: String,
    /// The INI it was made from, as the renewal confs name it.
    pub ini: PathBuf,
    pub credentials: Rfc2136Credentials,
    /// Where the import puts the secret: next to the config, `tsig-<name>.secret`.
    pub secret_file: PathBuf,
    /// The lineages that use it, in import order.
    pub lineages: Vec<String>,
}

/// What became of a provider's secret file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretWrite {
    Written,
    /// `--dry-run`.
    WouldWrite,
    /// The file already held this secret.
    AlreadyThere,
    NotWritten(String),
}

impl SecretWrite {
    pub fn ok(&self) -> bool {
        !matches!(self, SecretWrite::NotWritten(_))
    }
}

/// The bytes a provider's secret file gets: the base64 text alone, as `edge::dns` reads it.
pub fn secret_file_text(provider: &ProviderPlan) -> String {
    format!("{}\n", provider.credentials.secret.0)
}

/// Whether a file already at the secret's path may stay or be replaced. Another secret there is kept unless the
/// operator said --force: it may be the key a running hapcert signs with.
pub fn judge_secret(existing: Option<&[u8]>, provider: &ProviderPlan, force: bool) -> Option<SecretWrite> {
    let bytes = existing?;
    let same = std::str::from_utf8(bytes).is_ok_and(|text| text.trim() == provider.credentials.secret.0);
    if same {
        Some(SecretWrite::AlreadyThere)
    } else if force {
        None
    } else {
        Some(SecretWrite::NotWritten(format!(
            "{} exists and holds another secret; left as it is. Pass --force to replace it, or move it away",
            provider.secret_file.display()
        )))
    }
}

/// The names certbot's plugin looks an algorithm up by. Its check upper-cases the INI's value, but its lookup does not,
/// so any other spelling of these passes the check and is then signed with HMAC-MD5.
const CERTBOT_ALGORITHMS: [&str; 6] = [
    "HMAC-MD5",
    "HMAC-SHA1",
    "HMAC-SHA224",
    "HMAC-SHA256",
    "HMAC-SHA384",
    "HMAC-SHA512",
];

/// Checks a dns-rfc2136 credentials INI and takes what an `rfc2136` provider needs from it. Errors name the file and
/// say what to change; none of them holds the secret.
pub(super) fn read_credentials(ini: &Path, file: &CredentialsFile) -> Result<Rfc2136Credentials, String> {
    let shown = ini.display();
    if file.mode & 0o007 != 0 {
        return Err(format!(
            "the credentials file {shown} holds a TSIG secret and other users can read it (mode {:04o}; certbot warns \
             about this too): chmod 600 {shown}, replace the key if this host has users you do not trust, and import \
             again",
            file.mode & 0o7777
        ));
    }
    let top = configobj::parse(&file.text, ini).map_err(|e| format!("the credentials file {e}"))?;
    let get = |key: &str| setting(&top, key);
    let missing = |key: &str, what: &str| {
        format!("the credentials file {shown} has no {key}; certbot needs it too ({what}), so add it and import again")
    };
    let host = get("dns_rfc2136_server").ok_or_else(|| missing("dns_rfc2136_server", "the primary's address"))?;
    let key_name = get("dns_rfc2136_name").ok_or_else(|| missing("dns_rfc2136_name", "the TSIG key's name"))?;
    let secret = get("dns_rfc2136_secret").ok_or_else(|| missing("dns_rfc2136_secret", "the TSIG key's secret"))?;
    let key_name = key_name.trim_end_matches('.').to_owned();

    let port = match get("dns_rfc2136_port") {
        None => 53,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "the credentials file {shown}: dns_rfc2136_port '{text}' is not a port number (1-65535)"
                ));
            }
        },
    };
    let server = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };

    let algorithm = certbot_algorithm(ini, get("dns_rfc2136_algorithm").as_deref(), &key_name)?;

    if base64::engine::general_purpose::STANDARD.decode(secret.trim()).is_err() {
        return Err(format!(
            "the credentials file {shown}: dns_rfc2136_secret is not base64; put the `secret` of the key's \
             tsig-keygen output there"
        ));
    }
    Ok(Rfc2136Credentials {
        server,
        key_name,
        algorithm,
        secret: TsigSecret(secret.trim().to_owned()),
    })
}

/// The algorithm certbot actually signed with, if hapcert can sign with it too.
fn certbot_algorithm(ini: &Path, written: Option<&str>, key_name: &str) -> Result<TsigAlgorithm, String> {
    let shown = ini.display();
    let rekey = format!(
        "hapcert signs with hmac-sha256, -384 or -512 only. Make a new key with `tsig-keygen -a hmac-sha256 {key_name}`, \
         put its key statement in named.conf (in place of the old one, still granted by the zone's update-policy), \
         its secret in {shown} as dns_rfc2136_secret with dns_rfc2136_algorithm = HMAC-SHA256, check that certbot \
         still renews, and import again"
    );
    let Some(written) = written else {
        return Err(format!(
            "the credentials file {shown} sets no dns_rfc2136_algorithm, so certbot signs with HMAC-MD5; {rekey}"
        ));
    };
    if CERTBOT_ALGORITHMS.contains(&written) {
        return TsigAlgorithm::parse(written)
            .map_err(|_| format!("the credentials file {shown} sets dns_rfc2136_algorithm = {written}; {rekey}"));
    }
    if CERTBOT_ALGORITHMS.iter().any(|name| name.eq_ignore_ascii_case(written)) {
        return Err(format!(
            "the credentials file {shown} sets dns_rfc2136_algorithm = {written}, which certbot reads as HMAC-MD5 \
             (it knows the upper-case spelling only), so the server's key is HMAC-MD5 if certbot's renewals \
             worked. If the server's key is {} after all, write dns_rfc2136_algorithm = {} and import again; \
             otherwise {rekey}",
            written.to_ascii_lowercase(),
            written.to_ascii_uppercase()
        ));
    }
    Err(format!(
        "the credentials file {shown} sets dns_rfc2136_algorithm = {written}, an algorithm certbot does not know; \
         write HMAC-SHA256 (or -SHA384, -SHA512) as the server's key has it, and import again"
    ))
}

/// A key's value, with or without the `certbot_dns_rfc2136:` prefix older certbots wrote for third-party plugins.
fn setting(top: &Section, key: &str) -> Option<String> {
    top.entries
        .iter()
        .find(|e| e.key == key || e.key.strip_prefix("certbot_dns_rfc2136:") == Some(key))
        .map(|e| e.value.joined().trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A provider name made from the INI's file name (`rfc2136.ini` → `rfc2136`), unique among `taken`.
pub(super) fn provider_name(ini: &Path, taken: &[ProviderPlan]) -> String {
    let stem: String = ini
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-');
    let base = if stem.is_empty() || validate_name(stem).is_err() {
        "rfc2136".to_owned()
    } else {
        stem.to_owned()
    };
    let free = |name: &str| taken.iter().all(|p| p.name != name);
    if free(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| free(name))
        .unwrap_or(base)
}

/// certbot's DNS plugins are `dns-<vendor>`, or `<package>:dns-<vendor>` for third-party ones.
pub(super) fn is_dns_plugin(authenticator: &str) -> bool {
    authenticator
        .rsplit(':')
        .next()
        .is_some_and(|plugin| plugin.starts_with("dns-"))
}

/// Why a lineage of another DNS plugin is skipped, and the provider table that would carry it.
pub(super) fn exec_advice(authenticator: &str) -> String {
    format!(
        "certbot validated it with the {authenticator} plugin (DNS-01 through a vendor's API), which hapcert has no \
         counterpart for, and importing it as HTTP-01 would change how its names are validated. Add a provider that \
         runs your own script, called as `<command> present <fqdn> <value>` and `<command> cleanup <fqdn> <value>` \
         (lego's exec convention, so a lego exec script works): [[dns_provider]] name = \"dns\" kind = \"exec\" \
         command = \"/usr/local/bin/acme-dns-hook\"; then add this certificate by hand with challenge = \"dns-01\" \
         and dns_provider = \"dns\""
    )
}
