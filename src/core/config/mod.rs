//! The configuration: parsed from TOML text without I/O (`Config::parse`), then checked against the host (`host_check`).
//!
//! Every problem is reported as `file:line:column: key: what is wrong; what to do`, and all problems of a file are reported
//! at once, so an operator fixes the file in one pass.

mod domain;
mod monitor;
mod raw;
mod socket;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use domain::DomainName;
pub use monitor::{
    CheckConfig, DaemonConfig, EmailConfig, EmailTransport, EventKind, Hooks, HooksConfig, MetricsConfig,
    NotifyChannel, NotifyKind,
};
use raw::{RawCertificate, RawConfig, RawMode};
pub use socket::Endpoint;
use toml::Spanned;

/// The owner and group that written PEMs get; `None` keeps what the process creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub const DEFAULT_CONFIG_PATH: &str = "/etc/hapcert/hapcert.toml";
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub acme: AcmeConfig,
    pub challenge: ChallengeConfig,
    pub haproxy: HaproxyConfig,
    pub state: StateConfig,
    pub certificates: Vec<CertificateSpec>,
    pub check: CheckConfig,
    pub metrics: MetricsConfig,
    pub daemon: DaemonConfig,
    pub hooks: HooksConfig,
    pub notify: Vec<NotifyChannel>,
}

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The directory URL, with the aliases already resolved.
    pub directory: String,
    /// Contact URIs (`mailto:...`).
    pub contact: Vec<String>,
    pub ca_bundle: Option<Located<PathBuf>>,
    pub eab: Option<ExternalAccountBinding>,
    /// The default ACME profile (draft-ietf-acme-profiles) for every certificate.
    pub profile: Option<String>,
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
    pub mode: ChallengeMode,
    /// Fetch a test token through the public path before ordering.
    pub preflight: bool,
    /// Where the preflight connects instead of the name's port 80 (the domain goes in the Host header).
    pub preflight_address: Option<SocketAddr>,
}

/// How HTTP-01 is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMode {
    /// hapcert's responder on `listen`, which HAProxy forwards the challenge path to.
    SidePort,
    /// HAProxy answers `<token>.<account thumbprint>` itself (`http-request return`); hapcert listens nowhere.
    Stateless,
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
    /// The worker's admin socket, for hot updates: a path, `unix@path`, or `ipv4@host:port`.
    pub runtime_api: Option<Located<String>>,
    /// The master socket (`haproxy -W -S ...`), for `reload` and `show proc`; worker commands go through it with `@1`.
    pub master_socket: Option<Located<String>>,
    /// The crt-list a certificate HAProxy has never loaded is added to: by default the cert directory, which is how
    /// HAProxy names a `crt <dir>` bind.
    pub crt_list: String,
    /// Default TLS endpoints that must serve a new certificate before a deploy counts as done.
    pub verify: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub dir: Located<PathBuf>,
}

/// One certificate to keep served: a `[[certificate]]`, or one key type of it when it asks for several.
#[derive(Debug, Clone)]
pub struct CertificateSpec {
    /// Unique: the table's name, plus `.ecdsa` or `.rsa` when the table asks for several key types.
    pub name: String,
    /// The `[[certificate]]` name this came from; `renew NAME` selects by it too.
    pub group: String,
    /// In the order written; the first is the CSR's subject.
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    pub file: Located<PathBuf>,
    /// Renew when this much time is left, instead of the lifetime fraction.
    pub renew_before: Option<Duration>,
    /// TLS endpoints (`host:port`) that must serve the new certificate for each of its names.
    pub verify: Vec<String>,
    /// The ACME profile to order under: the certificate's own, else `[acme] profile`.
    pub profile: Option<String>,
    /// Its own hooks, each falling back to the `[hooks]` one.
    pub hooks: Hooks,
}

impl CertificateSpec {
    pub fn domain_set(&self) -> BTreeSet<String> {
        self.domains.iter().map(|d| d.as_str().to_owned()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// The suffix HAProxy uses to tell a certificate's key kinds apart (`site.pem.ecdsa`, `site.pem.rsa`).
    pub fn kind(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => "ecdsa",
            _ => "rsa",
        }
    }

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
            lines: LineStarts::of(text),
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

    /// Only the stateless answer holds something from the CA side: the account key's thumbprint.
    pub fn acme_needed_for_snippet(&self) -> bool {
        self.challenge.mode == ChallengeMode::Stateless
    }

    /// The certificates the names on a command line mean; no names means all.
    pub fn select<'a>(&'a self, names: &'a [String]) -> impl Iterator<Item = &'a CertificateSpec> {
        self.certificates
            .iter()
            .filter(|c| names.is_empty() || names.iter().any(|n| *n == c.name || *n == c.group))
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
    lines: LineStarts,
    file: &'a Path,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let at = span.map(|s| self.lines.position(self.text, s.start));
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
            at: self.lines.position(self.text, span.start),
            key: key.to_owned(),
        }
    }
}

/// The byte offset where each line of a text starts. Every certificate's file is located (for the host checks' messages),
/// so finding a line must not scan the text from its start each time: with a thousand certificates that was most of a
/// run with nothing due.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn of(text: &str) -> LineStarts {
        LineStarts(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    /// 1-based line and column (in characters) of a byte offset into `text`, the text this was made of.
    fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        // The lines that start at or before `offset`: the first always does.
        let line = self.0.partition_point(|&start| start <= offset);
        let line_start = self.0[line - 1];
        Position {
            line,
            column: text[line_start..offset].chars().count() + 1,
        }
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

    let hooks = monitor::validate_hooks(raw.hooks, errors);
    let certificates = validate_certificates(raw.certificate, &haproxy, &acme, &hooks.global, base, errors);
    Config {
        path: errors.file.to_owned(),
        acme,
        challenge,
        haproxy,
        state: StateConfig { dir: state_dir },
        certificates,
        check: monitor::validate_check(raw.check, base, errors),
        metrics: monitor::validate_metrics(raw.metrics, base, errors),
        daemon: monitor::validate_daemon(raw.daemon, errors),
        hooks,
        notify: monitor::validate_notify(raw.notify, base, errors),
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
    let profile = raw.profile.and_then(|p| check_profile(errors, p, "acme.profile"));
    AcmeConfig {
        directory,
        contact,
        ca_bundle,
        eab,
        profile,
    }
}

/// Profile names are short tokens; what the CA offers is checked against its directory before ordering.
fn check_profile(errors: &mut Errors, name: Spanned<String>, key: &str) -> Option<String> {
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

/// The most names the profiles that Let's Encrypt publishes allow (its `classic` profile allows 100).
pub fn profile_name_limit(profile: &str) -> Option<usize> {
    match profile {
        "tlsserver" | "shortlived" => Some(25),
        _ => None,
    }
}

/// `mailto:` URI for an e-mail address written with or without the scheme; `None` if it is not one.
pub fn contact_uri(text: &str) -> Option<String> {
    let address = text.strip_prefix("mailto:").unwrap_or(text);
    let valid = address.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !address.contains(char::is_whitespace) && !address.contains(',')
    });
    valid.then(|| format!("mailto:{address}"))
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
            if let Err(problem) = check_socket(v.get_ref()) {
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
    }
}

/// A Runtime API address as HAProxy writes them: a socket path, `unix@path`, `ipv4@host:port`, `ipv6@[addr]:port`.
fn check_socket(text: &str) -> Result<(), String> {
    Endpoint::parse(text).map(|_| ()).map_err(|_| {
        format!("'{text}' is not a socket; write a path like /run/haproxy/admin.sock, or ipv4@127.0.0.1:9999")
    })
}

/// TLS endpoints, `host:port`.
fn endpoints(errors: &mut Errors, list: &Spanned<Vec<Spanned<String>>>, key: &str) -> Vec<String> {
    if list.get_ref().is_empty() {
        errors.at(list, key, "is empty; name at least one host:port, like 127.0.0.1:443");
    }
    let mut out = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        let valid = entry
            .get_ref()
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if valid {
            out.push(entry.get_ref().clone());
        } else {
            errors.at(
                entry,
                &format!("{key}[{i}]"),
                format!("'{}' is not host:port, like 127.0.0.1:443", entry.get_ref()),
            );
        }
    }
    out
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
    haproxy: &HaproxyConfig,
    acme: &AcmeConfig,
    default_hooks: &Hooks,
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

        let key_types = key_types(&table, &key, errors);
        let base_file = match table.file {
            Some(path) => located_path(errors, base, path, &key("file")),
            None => errors.locate(
                haproxy.cert_dir.value.join(format!("{name}.pem")),
                table.name.span(),
                &key("file"),
            ),
        };

        let renew_before = table
            .renew_before
            .as_ref()
            .and_then(|text| monitor::duration(errors, text, &key("renew_before"), false));
        let verify = match &table.verify {
            Some(list) => endpoints(errors, list, &key("verify")),
            None => haproxy.verify.clone(),
        };
        let profile = match table.profile {
            Some(name) => check_profile(errors, name, &key("profile")),
            None => acme.profile.clone(),
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
                profile: profile.clone(),
                hooks: hooks.clone(),
            });
        }
    }
    out
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
pub fn check_name(name: &str) -> Result<(), String> {
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
