//! The configuration: parsed from TOML text without I/O (`Config::parse`); read from its file and checked against the
//! host by `edge::host`.
//!
//! Every problem is reported as `file:line:column: key: what is wrong; what to do`, and all problems of a file are reported
//! at once, so an operator fixes the file in one pass.
//!
//! The folder, in the order a file goes through it:
//! - `raw.rs`: the file as written, a serde mirror with every value `Spanned` so a complaint can name its place;
//! - `validate.rs`: the raw file turned into the model, and the name and profile rules the CLI and the certbot import
//!   apply too;
//! - `layout.rs`: the state dir, the cert dir, the certificates' files and the config file must not overlap;
//! - `fields.rs`: readers of single values both validators share (paths, durations, commands, endpoints, contacts);
//! - `errors.rs`: `ConfigError` and its `Position`, the collector every check pushes into, and the line/column lookup;
//! - `mod.rs` (here): the model the rest of hapcert reads (`Config`, its sections, `CertificateSpec`, `KeyType`,
//!   `Located`) and `Config::parse`, the entry point;
//! - `monitor.rs`: the monitoring sections (`[check]`, `[metrics]`, `[daemon]`, `[hooks]`, `[[notify]]`), model and
//!   validation together;
//! - `watch.rs`: `[check] unmanaged` and `ignore_paths`, and `[[watch]]`, what `check` watches beyond hapcert's own;
//! - `fleet.rs`: `[fleet]`, the etcd cluster a fleet of load balancers shares its certificates through;
//! - `summary.rs`: the config as `check-config` shows it;
//! - `domain.rs` (`DomainName`) and `socket.rs` (`Endpoint`): values with a syntax of their own;
//! - `tests.rs`: `Config::parse` from text to model, or to the messages an operator reads.

mod dns;
mod domain;
mod errors;
mod fields;
mod fleet;
mod layout;
mod monitor;
mod raw;
mod socket;
mod summary;
mod validate;
mod watch;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::core::challenge::ChallengeKind;
pub use dns::{
    DEFAULT_PROPAGATION_INTERVAL, DEFAULT_PROPAGATION_TIMEOUT, DnsProvider, DnsProviderKind, Rfc2136, TsigAlgorithm,
};
pub use domain::DomainName;
pub use errors::{ConfigError, ConfigErrors, Position};
use errors::{Errors, LineStarts, clean_toml_message};
pub use fields::contact_uri;
pub use fleet::{ClientIdentity, DEFAULT_PREFIX, EtcdAuth, EtcdEndpoint, FleetConfig, validate_node};
pub use monitor::{
    CheckConfig, DEFAULT_CONTROL_SOCKET, DaemonConfig, EmailConfig, EmailTransport, EventKind, Hooks, HooksConfig,
    MetricsConfig, NotifyChannel, NotifyKind,
};
use raw::RawConfig;
pub use socket::Endpoint;
pub use summary::summary;
pub use validate::{EAB_KEY_FORM, is_base64url, is_eab_key, profile_name_limit, validate_name};
pub use watch::{StartTls, UnmanagedPolicy, WatchSpec};

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
    /// `[fleet]`: this node shares its certificates with others through etcd.
    pub fleet: Option<FleetConfig>,
    /// `[[dns_provider]]`, in the order written: the first is the default.
    pub dns_providers: Vec<DnsProvider>,
    /// `[[watch]]`: TLS endpoints `check` probes that hapcert neither issues nor deploys, in the order written.
    pub watch: Vec<WatchSpec>,
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
    /// The issuer common name of the chain to serve, among those the CA offers (see `core::chain`).
    pub preferred_chain: Option<String>,
    /// Root certificates the CA's chains lead to, trusted in addition to the system's: for a private or test CA.
    pub trust_roots: Option<Located<PathBuf>>,
    /// How long one request to the CA may take, answer included, before it counts as failed.
    pub request_timeout: Duration,
    /// How long one order may take, from ordering to the certificate's download.
    pub order_deadline: Duration,
}

/// `[acme] request_timeout` when not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `[acme] order_deadline` when not set.
pub const DEFAULT_ORDER_DEADLINE: Duration = Duration::from_secs(600);
/// The longest `request_timeout`: a CA that takes longer is down.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest `order_deadline`.
pub const MAX_ORDER_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// The key id and HMAC key a CA hands out for External Account Binding. The HMAC key is a secret: not printed by `Debug`.
#[derive(Clone)]
pub struct ExternalAccountBinding {
    pub kid: String,
    /// base64url, as the CA gives it. With `hmac_key_file`, empty: the file is read only when an account is registered (`edge::config_secrets::hmac_key`).
    pub hmac_key: String,
    /// `acme.eab_hmac_key_file`: the file that holds the HMAC key, instead of the config.
    pub hmac_key_file: Option<Located<PathBuf>>,
}

impl fmt::Debug for ExternalAccountBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccountBinding")
            .field("kid", &self.kid)
            .field("hmac_key_file", &self.hmac_key_file.as_ref().map(|file| &file.value))
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
    /// `[challenge] type`: the challenge of a certificate that names none.
    pub kind: ChallengeKind,
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
    /// How long a reload may take: the master's answer to `reload` (3.0 and later answer once the new worker has
    /// loaded) and `show proc` showing it, or the reload command.
    pub reload_timeout: Duration,
}

/// `[haproxy] reload_timeout` when not set. HAProxy 2.6 took 18 s to show a reload of 5,000 certificates in `show proc`,
/// 3.x 3-4 s to answer it (shared/notes/haproxy-versions.md); a config several times larger still fits.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The shortest `reload_timeout`: a worker takes that long to start even with a few certificates.
pub const MIN_RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The key that set `verify` (its own, or `[haproxy] verify`), for the message that asks to change it.
    pub verify_key: String,
    /// The ACME profile to order under: the certificate's own, else `[acme] profile`.
    pub profile: Option<String>,
    /// The chain to serve: the certificate's own `preferred_chain`, else `[acme] preferred_chain`.
    pub preferred_chain: Option<String>,
    /// Its own hooks, each falling back to the `[hooks]` one.
    pub hooks: Hooks,
    /// How the CA validates its names: its own `challenge`, else `[challenge] type`.
    pub challenge: ChallengeKind,
    /// With DNS-01, the `[[dns_provider]]` that publishes its records (by name); `None` with HTTP-01.
    pub dns_provider: Option<String>,
}

impl CertificateSpec {
    /// Whether the names on a command line mean this certificate (by its name or its group); no names means all.
    pub fn is_named_by(&self, names: &[String]) -> bool {
        names.is_empty() || names.iter().any(|n| *n == self.name || *n == self.group)
    }

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
                // A value of the wrong type: its key, which serde does not give.
                let key = err.span().and_then(|span| errors::key_at(text, span.start));
                errors.push(err.span(), key.as_deref().unwrap_or(""), message);
                return Err(ConfigErrors(errors.list));
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let config = validate::validate(raw, base, &mut errors);
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

    /// The `[[dns_provider]]` a DNS-01 certificate uses.
    pub fn dns_provider(&self, spec: &CertificateSpec) -> Option<&DnsProvider> {
        let name = spec.dns_provider.as_deref()?;
        self.dns_providers.iter().find(|p| p.name == name)
    }

    /// Whether any certificate is validated over HTTP-01 (then a run needs its responder).
    pub fn any_http01(&self) -> bool {
        self.certificates.iter().any(|c| c.challenge == ChallengeKind::Http01)
    }

    /// The certificates the names on a command line mean; no names means all.
    pub fn select<'a>(&'a self, names: &'a [String]) -> impl Iterator<Item = &'a CertificateSpec> {
        self.certificates.iter().filter(|c| c.is_named_by(names))
    }
}

#[cfg(test)]
mod tests;
