//! The configuration: parsed from TOML text without I/O (`Config::parse`), then checked against the host (`host_check`).
//!
//! Every problem is reported as `file:line:column: key: what is wrong; what to do`, and all problems of a file are reported
//! at once, so an operator fixes the file in one pass.

mod domain;
mod host;
mod raw;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use domain::DomainName;
pub use host::{FileOwner, host_check};
use raw::{RawCertificate, RawConfig, RawMode};
use toml::Spanned;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/hapcert/hapcert.toml";
const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub acme: AcmeConfig,
    pub challenge: ChallengeConfig,
    pub haproxy: HaproxyConfig,
    pub state: StateConfig,
    pub certificates: Vec<CertificateSpec>,
}

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The directory URL, with the aliases already resolved.
    pub directory: String,
    /// Contact URIs (`mailto:...`).
    pub contact: Vec<String>,
    pub ca_bundle: Option<Located<PathBuf>>,
    pub eab: Option<ExternalAccountBinding>,
}

/// The key id and HMAC key a CA hands out for External Account Binding. The HMAC key is a secret: not printed by `Debug`.
#[derive(Clone)]
pub struct ExternalAccountBinding {
    pub kid: String,
    /// base64url, as the CA gives it.
    pub hmac_key: String,
}

impl fmt::Debug for ExternalAccountBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccountBinding")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ChallengeConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct HaproxyConfig {
    pub cert_dir: Located<PathBuf>,
    pub check_command: String,
    pub reload_command: String,
    /// Permission bits of every PEM written.
    pub mode: u32,
    pub owner: Option<Located<String>>,
    pub group: Option<Located<String>>,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub dir: Located<PathBuf>,
}

/// One `[[certificate]]`: what should be served, and where HAProxy reads it.
#[derive(Debug, Clone)]
pub struct CertificateSpec {
    pub name: String,
    /// In the order written; the first is the CSR's subject.
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    pub file: Located<PathBuf>,
    /// Renew when this much time is left, instead of the lifetime fraction.
    pub renew_before: Option<Duration>,
}

impl CertificateSpec {
    pub fn domain_set(&self) -> BTreeSet<String> {
        self.domains.iter().map(|d| d.as_str().to_owned()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    fn from_name(name: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value with the place in the config file it came from, for checks that can only be made later, against the host.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub at: Position,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub at: Option<Position>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a config file, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Parses and validates config text. Pure: the file is named only for messages. Relative paths in the file are taken
    /// relative to the file's directory, so a config means the same wherever hapcert is started from.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut errors = Errors {
            text,
            file: path,
            list: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(err) => {
                let message = clean_toml_message(err.message());
                errors.push(err.span(), "", message);
                return Err(ConfigErrors(errors.list));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let config = validate(raw, base, &mut errors);
        if errors.list.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors.list))
        }
    }

    pub fn certificate(&self, name: &str) -> Option<&CertificateSpec> {
        self.certificates.iter().find(|c| c.name == name)
    }
}

/// toml's messages end in a newline and sometimes hold the whole table's keys; keep the first line.
fn clean_toml_message(message: &str) -> String {
    let first = message.trim().lines().next().unwrap_or("invalid TOML").to_owned();
    if first.starts_with("unknown field") {
        format!("{first}; remove it or check its spelling")
    } else if first.starts_with("missing field") {
        format!("{first}; add it")
    } else {
        first
    }
}

struct Errors<'a> {
    text: &'a str,
    file: &'a Path,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let at = span.map(|s| position(self.text, s.start));
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            at,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn at<T>(&mut self, value: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.push(Some(value.span()), key, message);
    }

    fn locate<T>(&self, value: T, span: Range<usize>, key: &str) -> Located<T> {
        Located {
            value,
            at: position(self.text, span.start),
            key: key.to_owned(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

fn validate(raw: RawConfig, base: &Path, errors: &mut Errors) -> Config {
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

    let haproxy = validate_haproxy(raw.haproxy, base, errors);
    let state_dir = match raw.state.dir {
        Some(dir) => located_path(errors, base, dir, "state.dir"),
        None => Located {
            value: PathBuf::from("/var/lib/hapcert"),
            at: Position::default(),
            key: "state.dir".into(),
        },
    };

    let certificates = validate_certificates(raw.certificate, &haproxy.cert_dir.value, base, errors);
    Config {
        path: errors.file.to_owned(),
        acme,
        challenge: ChallengeConfig { listen },
        haproxy,
        state: StateConfig { dir: state_dir },
        certificates,
    }
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
        let address = entry.get_ref().strip_prefix("mailto:").unwrap_or(entry.get_ref());
        let valid = address.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !address.contains(char::is_whitespace) && !address.contains(',')
        });
        if valid {
            contact.push(format!("mailto:{address}"));
        } else {
            errors.at(
                entry,
                &format!("acme.contact[{i}]"),
                format!("'{}' is not an e-mail address", entry.get_ref()),
            );
        }
    }
    let ca_bundle = raw.ca_bundle.map(|p| located_path(errors, base, p, "acme.ca_bundle"));
    let eab = match (raw.eab_kid, raw.eab_hmac_key) {
        (None, None) => None,
        (Some(kid), Some(key)) => {
            let key_text = key.get_ref();
            if key_text.is_empty() || !key_text.bytes().all(is_base64url) {
                errors.at(
                    &key,
                    "acme.eab_hmac_key",
                    "must be the base64url key your CA gave you (A-Z a-z 0-9 - _)",
                );
            }
            Some(ExternalAccountBinding {
                kid: kid.into_inner(),
                hmac_key: key.into_inner(),
            })
        }
        (Some(kid), None) => {
            errors.at(
                &kid,
                "acme.eab_kid",
                "eab_hmac_key is missing; External Account Binding needs both",
            );
            None
        }
        (None, Some(key)) => {
            errors.at(
                &key,
                "acme.eab_hmac_key",
                "eab_kid is missing; External Account Binding needs both",
            );
            None
        }
    };
    AcmeConfig {
        directory,
        contact,
        ca_bundle,
        eab,
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
    HaproxyConfig {
        cert_dir,
        check_command,
        reload_command,
        mode,
        owner,
        group,
    }
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

fn located_path(errors: &mut Errors, base: &Path, value: Spanned<String>, key: &str) -> Located<PathBuf> {
    let span = value.span();
    if value.get_ref().is_empty() {
        errors.at(&value, key, "is empty; give a path");
    }
    errors.locate(base.join(value.get_ref()), span, key)
}

fn validate_certificates(
    raw: Vec<Spanned<RawCertificate>>,
    cert_dir: &Path,
    base: &Path,
    errors: &mut Errors,
) -> Vec<CertificateSpec> {
    if raw.is_empty() {
        errors.push(
            None,
            "certificate",
            "no [[certificate]] tables; add one with a name and its domains",
        );
    }
    let mut names_seen: HashMap<String, usize> = HashMap::new();
    let mut files_seen: HashMap<PathBuf, String> = HashMap::new();
    let mut out = Vec::new();
    for (index, table) in raw.into_iter().enumerate() {
        let table = table.into_inner();
        let key = |field: &str| format!("certificate[{index}].{field}");
        let name = table.name.get_ref().clone();
        if let Err(problem) = check_name(&name) {
            errors.at(&table.name, &key("name"), problem);
        } else if let Some(first) = names_seen.insert(name.clone(), index) {
            errors.at(
                &table.name,
                &key("name"),
                format!("'{name}' is already the name of certificate[{first}]; names must be unique"),
            );
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

        let key_type = match &table.key_type {
            None => KeyType::EcdsaP256,
            Some(text) => KeyType::from_name(text.get_ref()).unwrap_or_else(|| {
                let known: Vec<&str> = KeyType::ALL.iter().map(|k| k.name()).collect();
                errors.at(
                    text,
                    &key("key_type"),
                    format!(
                        "'{}' is not a key type; use one of {}",
                        text.get_ref(),
                        known.join(", ")
                    ),
                );
                KeyType::EcdsaP256
            }),
        };

        let file = match table.file {
            Some(path) => located_path(errors, base, path, &key("file")),
            None => errors.locate(cert_dir.join(format!("{name}.pem")), table.name.span(), &key("file")),
        };
        if let Some(other) = files_seen.insert(file.value.clone(), name.clone()) {
            errors.push(
                Some(table.name.span()),
                &key("file"),
                format!(
                    "writes {}, which certificate '{other}' writes too; give one of them another file",
                    file.value.display()
                ),
            );
        }

        let renew_before =
            table
                .renew_before
                .as_ref()
                .and_then(|text| match humantime::parse_duration(text.get_ref()) {
                    Ok(d) if !d.is_zero() => Some(d),
                    Ok(_) => {
                        errors.at(text, &key("renew_before"), "must be longer than zero");
                        None
                    }
                    Err(err) => {
                        errors.at(
                            text,
                            &key("renew_before"),
                            format!(
                                "'{}' is not a duration ({err}); write it like \"30d\" or \"720h\"",
                                text.get_ref()
                            ),
                        );
                        None
                    }
                });

        out.push(CertificateSpec {
            name,
            domains,
            key_type,
            file,
            renew_before,
        });
    }
    out
}

/// A certificate's name becomes a file name in the cert and state directories.
fn check_name(name: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests;
