//! certbot's `/etc/letsencrypt`, understood: each lineage's renewal conf and current certificate become a
//! `[[certificate]]`, the certificate itself becomes the PEM HAProxy loads, and what hapcert cannot carry over (hooks,
//! other authenticators, the account) is listed for the operator. Pure: the tree is read by `super::read_tree`, and what
//! this module decides is written by `super::adopt`.
//!
//! This file holds certbot's tree as read, renewal confs included; `plan` maps its lineages to certificates and judges
//! the files already in the cert dir, and `render` writes the config and the report from that plan.

mod dns;
mod plan;
mod render;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::configobj::{self, Entry, Section};
use crate::core::config::KeyType;

pub use dns::{ProviderPlan, SecretWrite, judge_secret, secret_file_text};
pub use plan::{Adoption, Existing, LineagePlan, Plan, PlanOptions, judge_existing};
#[cfg(any(test, fuzzing))]
pub use render::render_report;
pub use render::{render_report_with_secrets, validate_generated};

/// Decides everything: which lineages become certificates, with which settings, and the config text. A tree whose
/// lineages name credentials INI files needs [`plan_with_dns`], which is given those files; the import itself always
/// calls that, so this is kept for the fuzz target and the tests.
#[cfg(any(test, fuzzing))]
pub fn plan(tree: &CertbotTree, options: &PlanOptions) -> Plan {
    plan_with_dns(tree, options, &DnsInputs::default())
}

/// [`plan()`], with the credentials INI files the dns-rfc2136 lineages name, and where their secrets will go.
pub fn plan_with_dns(tree: &CertbotTree, options: &PlanOptions, dns: &DnsInputs) -> Plan {
    let mut plan = plan::decide(tree, options, dns);
    plan.config_toml = (!plan.lineages.is_empty()).then(|| {
        render::render_config(
            tree,
            &plan.lineages,
            &plan.providers,
            &plan.directory,
            &plan.listen,
            options,
        )
    });
    plan
}

/// Everything read from certbot's config dir, as data: the I/O edge fills it, [`plan()`] decides on it.
#[derive(Debug, Default)]
pub struct CertbotTree {
    pub config_dir: PathBuf,
    /// One per `renewal/*.conf`, sorted by name.
    pub lineages: Vec<LineageFiles>,
    /// Scripts in `renewal-hooks/{pre,deploy,post}/`, which certbot runs for every lineage.
    pub hook_scripts: Vec<HookScript>,
    pub accounts: Vec<Account>,
}

/// What the dns-rfc2136 lineages need besides the tree: kept apart from it because only those lineages need it.
#[derive(Debug)]
pub struct DnsInputs {
    /// The credentials INI files the renewal confs name (`dns_rfc2136_credentials`), by the path a conf gives, or why
    /// one could not be read.
    pub credentials: BTreeMap<PathBuf, Result<CredentialsFile, String>>,
    /// An absolute path: the directory of the config the import writes, where each provider's TSIG secret goes.
    pub secret_dir: PathBuf,
}

impl Default for DnsInputs {
    fn default() -> Self {
        DnsInputs {
            credentials: BTreeMap::new(),
            secret_dir: PathBuf::from("/etc/hapcert"),
        }
    }
}

/// A credentials INI as read: it holds a TSIG secret, so `Debug` shows only its mode.
pub struct CredentialsFile {
    /// The permission bits: certbot warns when other users can read the file, and the import refuses it.
    pub mode: u32,
    pub text: String,
}

impl fmt::Debug for CredentialsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsFile")
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

#[derive(Debug)]
pub struct LineageFiles {
    /// The conf's file name without `.conf`: certbot's lineage name (`--cert-name`).
    pub name: String,
    pub conf_path: PathBuf,
    pub conf_text: Result<String, String>,
    /// `live/<name>/fullchain.pem`, read through its symlink.
    pub fullchain: Result<ReadFile, String>,
    pub privkey: Result<ReadFile, String>,
}

/// A file's bytes and where its `live/` symlink led. Holds a private key for `privkey.pem`: `Debug` shows no bytes.
pub struct ReadFile {
    pub bytes: Vec<u8>,
    /// The archive file behind the symlink, relative to the config dir when inside it.
    pub source: PathBuf,
}

impl fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadFile")
            .field("bytes", &self.bytes.len())
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct HookScript {
    /// `pre`, `deploy` or `post`.
    pub phase: String,
    /// Relative to the config dir.
    pub path: PathBuf,
    pub executable: bool,
}

/// An account under `accounts/<server>/<id>/`. Only facts about the key are kept, never the key.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    /// The directory URL, rebuilt from the path (`accounts/acme-v02.api.letsencrypt.org/directory/<id>`).
    pub server: String,
    /// The JWK's `kty` (`RSA` for every certbot account), or why it could not be read.
    pub key_kind: Result<String, String>,
    pub contact: Vec<String>,
}

/// A renewal conf, reduced to what the import uses.
#[derive(Debug, Clone, Default)]
pub struct RenewalConf {
    pub file: PathBuf,
    pub authenticator: Option<String>,
    pub installer: Option<String>,
    pub server: Option<String>,
    pub key: Option<DeclaredKey>,
    pub http01_port: Option<u16>,
    pub http01_address: Option<String>,
    /// `(key, command)`: `pre_hook`, `post_hook`, `renew_hook` (certbot's `--deploy-hook`), in file order.
    pub hooks: Vec<(String, String)>,
    /// Webroot directories (`webroot_path`, `[[webroot_map]]`), for the report.
    pub webroot: Vec<String>,
    /// `manual_auth_hook`, `manual_cleanup_hook`.
    pub manual_hooks: Vec<(String, String)>,
    /// `dns_rfc2136_credentials`: the INI with the TSIG key the dns-rfc2136 authenticator signed its updates with.
    pub dns_credentials: Option<PathBuf>,
    /// `dns_<plugin>_propagation_seconds`: certbot's fixed wait before asking the CA, which hapcert does not keep.
    pub propagation_seconds: Option<String>,
}

/// The key type a conf asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKey {
    pub key_type: KeyType,
    /// The conf's words, e.g. "key_type = ecdsa, elliptic_curve = secp384r1".
    pub origin: String,
    /// Set when hapcert cannot issue exactly that (P-521, RSA 1024): what it issues instead.
    pub substitute_for: Option<String>,
}

const HOOK_KEYS: [&str; 4] = ["pre_hook", "post_hook", "renew_hook", "deploy_hook"];

/// Reads a renewal conf's text. Errors name the file and line.
fn parse_renewal_conf(text: &str, file: &Path) -> Result<RenewalConf, configobj::ParseError> {
    let top = configobj::parse(text, file)?;
    let error = |entry: &Entry, message: String| configobj::ParseError {
        file: file.to_owned(),
        line: entry.line,
        message: format!("{}: {message}", entry.key),
    };
    let empty = Section::default();
    let params = top.section("renewalparams").map_or(&empty, |s| &s.section);
    let text_of = |key: &str| {
        params
            .get(key)
            .map(|e| e.value.joined())
            .filter(|v| !v.is_empty() && v != "None")
    };

    let key = match params.get("key_type") {
        None => None,
        Some(entry) => Some(declared_key(params, entry).map_err(|m| error(entry, m))?),
    };
    let http01_port = match params.get("http01_port") {
        None => None,
        Some(entry) => match entry.value.joined().parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(error(
                    entry,
                    format!("'{}' is not a port number (1-65535)", entry.value),
                ));
            }
            Ok(port) => Some(port),
        },
    };
    // certbot takes any ACME server; hapcert's config takes only https:// (see `validate_acme`), so a conf with another
    // is refused here, with its line, rather than rendered into a config hapcert would refuse.
    if let Some(entry) = params.get("server") {
        let url = entry.value.joined();
        let https = url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
        if !https && !url.is_empty() && url != "None" {
            return Err(error(
                entry,
                format!(
                    "'{url}' is not an https:// URL, and hapcert asks a CA over HTTPS only; keep this lineage on \
                     certbot, or point it at the CA's https:// directory"
                ),
            ));
        }
    }
    let hooks = params
        .entries
        .iter()
        .filter(|e| HOOK_KEYS.contains(&e.key.as_str()) && !e.value.joined().is_empty())
        .map(|e| (e.key.clone(), e.value.joined()))
        .collect();
    let manual_hooks = ["manual_auth_hook", "manual_cleanup_hook"]
        .into_iter()
        .filter_map(|key| text_of(key).map(|cmd| (key.to_owned(), cmd)))
        .collect();
    let mut webroot: Vec<String> = params.get("webroot_path").map(|e| e.value.items()).unwrap_or_default();
    if let Some(map) = params.section("webroot_map") {
        for entry in &map.section.entries {
            webroot.push(entry.value.joined());
        }
    }
    webroot.sort();
    webroot.dedup();
    let propagation_seconds = params
        .entries
        .iter()
        .find(|e| e.key.starts_with("dns_") && e.key.ends_with("_propagation_seconds"))
        .map(|e| e.value.joined());

    Ok(RenewalConf {
        file: file.to_owned(),
        authenticator: text_of("authenticator"),
        installer: text_of("installer"),
        server: text_of("server"),
        key,
        http01_port,
        http01_address: text_of("http01_address"),
        hooks,
        webroot,
        manual_hooks,
        dns_credentials: text_of("dns_rfc2136_credentials").map(PathBuf::from),
        propagation_seconds,
    })
}

/// The credentials INI a renewal conf names, for the edge to read; `None` when the conf names none or does not parse
/// (the plan reports the parse error).
pub fn credentials_path(conf_text: &str, conf_path: &Path) -> Option<PathBuf> {
    parse_renewal_conf(conf_text, conf_path).ok()?.dns_credentials
}

/// certbot's `key_type`, `rsa_key_size` and `elliptic_curve` (with certbot's defaults: 2048 bits, secp256r1) as one of
/// hapcert's key types. What hapcert cannot issue maps to the nearest stronger type it can, with a note.
fn declared_key(params: &Section, key_type: &Entry) -> Result<DeclaredKey, String> {
    let setting = |key: &str| params.get(key).map(|e| e.value.joined());
    match key_type.value.joined().as_str() {
        "rsa" => {
            let size_text = setting("rsa_key_size").unwrap_or_else(|| "2048".into());
            let Ok(size) = size_text.parse::<u32>() else {
                return Err(format!(
                    "goes with rsa_key_size = {size_text}, which is not a number of bits"
                ));
            };
            let origin = format!("key_type = rsa, rsa_key_size = {size}");
            let (key_type, substitute) = match size {
                2048 => (KeyType::Rsa2048, false),
                3072 => (KeyType::Rsa3072, false),
                4096 => (KeyType::Rsa4096, false),
                s if s < 2048 => (KeyType::Rsa2048, true),
                s if s < 3072 => (KeyType::Rsa3072, true),
                _ => (KeyType::Rsa4096, true),
            };
            Ok(DeclaredKey {
                key_type,
                substitute_for: substitute.then(|| format!("RSA {size}")),
                origin,
            })
        }
        "ecdsa" => {
            let curve = setting("elliptic_curve").unwrap_or_else(|| "secp256r1".into());
            let origin = format!("key_type = ecdsa, elliptic_curve = {curve}");
            let (key_type, substitute) = match curve.as_str() {
                "secp256r1" => (KeyType::EcdsaP256, false),
                "secp384r1" => (KeyType::EcdsaP384, false),
                "secp521r1" => (KeyType::EcdsaP384, true),
                other => {
                    return Err(format!(
                        "goes with elliptic_curve = {other}, which is none of certbot's secp256r1, secp384r1, secp521r1"
                    ));
                }
            };
            Ok(DeclaredKey {
                key_type,
                substitute_for: substitute.then(|| format!("ECDSA {curve}")),
                origin,
            })
        }
        other => Err(format!("'{other}' is neither rsa nor ecdsa")),
    }
}

#[cfg(test)]
mod tests;
