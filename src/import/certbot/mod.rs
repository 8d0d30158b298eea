//! certbot's `/etc/letsencrypt`, understood: each lineage's renewal conf and current certificate become a
//! `[[certificate]]`, the certificate itself becomes the PEM HAProxy loads, and what hapcert cannot carry over (hooks,
//! other authenticators, the account) is listed for the operator. Pure: the tree is read by `super::read_tree`, and what
//! this module decides is written by `super::adopt`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::prelude::GeneralName;

use super::configobj::{self, Entry, Section};
use crate::core::config::{Config, DomainName, KeyType, LETSENCRYPT, LETSENCRYPT_STAGING, check_name};
use crate::core::pem::{Bundle, CertFacts};
use crate::core::time::format_time;

/// certbot's default `server`, used when a conf predates the key.
/// hapcert's side port when certbot gives none to keep.
const DEFAULT_LISTEN_PORT: u16 = 54321;

/// Everything read from certbot's config dir, as data: the I/O edge fills it, [`plan`] decides on it.
#[derive(Debug, Default)]
pub struct CertbotTree {
    pub config_dir: PathBuf,
    /// One per `renewal/*.conf`, sorted by name.
    pub lineages: Vec<LineageFiles>,
    /// Scripts in `renewal-hooks/{pre,deploy,post}/`, which certbot runs for every lineage.
    pub hook_scripts: Vec<HookScript>,
    pub accounts: Vec<Account>,
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

/// What `plan` needs besides the tree.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// An absolute path: where HAProxy loads certificates from.
    pub cert_dir: PathBuf,
    /// Certificates that have expired are adopted all the same, with a note: they are what HAProxy serves.
    pub now: OffsetDateTime,
}

/// The result of planning: the config text, the certificates to adopt, and the lineages that cannot be imported.
#[derive(Debug)]
pub struct Plan {
    /// None when no lineage can be imported: hapcert's config needs at least one certificate.
    pub config_toml: Option<String>,
    pub lineages: Vec<LineagePlan>,
    pub skipped: Vec<Skipped>,
    /// The CA and side port chosen, for the report.
    pub directory: String,
    pub listen: ListenChoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// One lineage that becomes a `[[certificate]]`.
#[derive(Debug)]
pub struct LineagePlan {
    pub name: String,
    /// The leaf's common name first (the CSR subject hapcert will write), then its other SANs in certificate order.
    pub domains: Vec<String>,
    pub key_type: KeyType,
    /// Which certbot setting (or the key itself) decided `key_type`, for the config's comment.
    pub key_origin: String,
    pub file: PathBuf,
    /// The combined PEM as hapcert writes it.
    pub pem: HaproxyPem,
    pub leaf_der: Vec<u8>,
    pub facts: CertFacts,
    /// The archive file the current certificate came from.
    pub source: PathBuf,
    pub conf: RenewalConf,
    /// Where hapcert will not keep what certbot did, e.g. "the first run reissues it as ecdsa-p384".
    pub changes: Vec<String>,
}

/// HAProxy's combined PEM, which holds a private key: `Debug` shows nothing of it.
pub struct HaproxyPem(pub String);

impl fmt::Debug for HaproxyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HaproxyPem(<redacted>)")
    }
}

/// The side port, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenChoice {
    pub addr: SocketAddr,
    pub why: String,
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
pub fn parse_renewal_conf(text: &str, file: &Path) -> Result<RenewalConf, configobj::ParseError> {
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
    })
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

/// Decides everything: which lineages become certificates, with which settings, and the config text.
pub fn plan(tree: &CertbotTree, options: &PlanOptions) -> Plan {
    let mut lineages = Vec::new();
    let mut skipped = Vec::new();
    for files in &tree.lineages {
        match plan_lineage(files, options) {
            Ok(lineage) => lineages.push(lineage),
            Err(reason) => skipped.push(Skipped {
                name: files.name.clone(),
                reason,
            }),
        }
    }

    let directory = most_common(lineages.iter().map(|l| server_of(&l.conf))).unwrap_or_else(|| LETSENCRYPT.into());
    for lineage in &mut lineages {
        let server = server_of(&lineage.conf);
        if server != directory {
            lineage.changes.push(format!(
                "certbot renews it from {server}; this config renews it from {directory}, the CA most lineages use \
                 (hapcert has one CA per config: import the others into a second config with --write-config)"
            ));
        }
    }
    let listen = choose_listen(&lineages);
    let config_toml = (!lineages.is_empty()).then(|| render_config(tree, &lineages, &directory, &listen, options));
    Plan {
        config_toml,
        lineages,
        skipped,
        directory,
        listen,
    }
}

fn plan_lineage(files: &LineageFiles, options: &PlanOptions) -> Result<LineagePlan, String> {
    let name = &files.name;
    check_name(name).map_err(|problem| {
        format!("the lineage name {problem}, and hapcert names files after it; keep this one on certbot")
    })?;
    let text = files.conf_text.as_ref().map_err(Clone::clone)?;
    let conf = parse_renewal_conf(text, &files.conf_path).map_err(|e| e.to_string())?;
    let fullchain = files.fullchain.as_ref().map_err(Clone::clone)?;
    let privkey = files.privkey.as_ref().map_err(Clone::clone)?;

    // The two files together are a combined PEM; `Bundle` takes its blocks in any order.
    let mut joined = fullchain.bytes.clone();
    joined.push(b'\n');
    joined.extend_from_slice(&privkey.bytes);
    let bundle = Bundle::parse(&joined).map_err(|e| {
        format!(
            "{} and {} together are not a certificate with its key: {e}",
            fullchain.source.display(),
            privkey.source.display()
        )
    })?;
    let facts = bundle
        .facts()
        .map_err(|e| format!("{}: {e}", privkey.source.display()))?;
    if !facts.key_matches {
        return Err(format!(
            "the private key {} does not belong to the certificate {}; run `certbot certificates` to see what certbot \
             makes of it",
            privkey.source.display(),
            fullchain.source.display()
        ));
    }
    let domains = ordered_names(&bundle);
    if domains.is_empty() {
        return Err(format!(
            "the certificate {} names no DNS name",
            fullchain.source.display()
        ));
    }
    for domain in &domains {
        DomainName::parse(domain).map_err(|problem| format!("its certificate names '{domain}': {problem}"))?;
    }
    let pem = bundle.to_haproxy_pem().map_err(|e| format!("{e}"))?;

    let mut changes = Vec::new();
    let (key_type, key_origin) = match &conf.key {
        Some(declared) => {
            if let Some(wanted) = &declared.substitute_for {
                changes.push(format!(
                    "hapcert cannot issue {wanted} keys; the first run reissues it as {}",
                    declared.key_type
                ));
            } else if facts.key_type != Some(declared.key_type) {
                changes.push(format!(
                    "its current key is {}, but the renewal conf asks for {}; the first run reissues it as {}",
                    facts
                        .key_type
                        .map_or("of a kind hapcert does not issue".to_owned(), |k| k.to_string()),
                    declared.key_type,
                    declared.key_type
                ));
            }
            (declared.key_type, declared.origin.clone())
        }
        None => match facts.key_type {
            Some(key_type) => (key_type, "no key_type in the conf: the current key's type".to_owned()),
            None => {
                changes.push(format!(
                    "its key is of a kind hapcert does not issue; the first run reissues it as {}",
                    KeyType::EcdsaP256
                ));
                (
                    KeyType::EcdsaP256,
                    "no key_type in the conf, and a key hapcert does not issue: hapcert's default".to_owned(),
                )
            }
        },
    };
    if facts.not_after <= options.now {
        changes.push(format!(
            "it expired at {}; the first run renews it",
            format_time(facts.not_after)
        ));
    }

    Ok(LineagePlan {
        name: name.clone(),
        domains,
        key_type,
        key_origin,
        file: options.cert_dir.join(format!("{name}.pem")),
        pem: HaproxyPem(pem),
        leaf_der: bundle.certs[0].to_vec(),
        facts,
        source: fullchain.source.clone(),
        conf,
        changes,
    })
}

/// The leaf's DNS names, common name first, the rest in certificate order, lower case, no repeats.
fn ordered_names(bundle: &Bundle) -> Vec<String> {
    let leaf = bundle.leaf();
    let mut names: Vec<String> = Vec::new();
    let san: Vec<String> = match leaf.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let common_name = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(cn) = common_name.filter(|cn| san.contains(cn)) {
        names.push(cn);
    }
    for name in san {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn server_of(conf: &RenewalConf) -> String {
    conf.server.clone().unwrap_or_else(|| LETSENCRYPT.to_owned())
}

/// The most frequent item; ties go to the one seen first.
fn most_common<T: Ord + Clone>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, (usize, usize)> = BTreeMap::new();
    for (order, item) in items.enumerate() {
        counts.entry(item).or_insert((0, order)).0 += 1;
    }
    counts
        .into_iter()
        .max_by(|(_, (n1, first1)), (_, (n2, first2))| n1.cmp(n2).then(first2.cmp(first1)))
        .map(|(item, _)| item)
}

/// certbot's standalone server took `http01_port` on every interface unless `http01_address` narrowed it. hapcert keeps
/// the port (HAProxy already forwards the challenge path there) and listens on loopback unless an address was given:
/// HAProxy on the same host reaches it there, and nothing else needs to.
fn choose_listen(lineages: &[LineagePlan]) -> ListenChoice {
    let standalone = lineages
        .iter()
        .filter(|l| l.conf.authenticator.as_deref() == Some("standalone"))
        .filter_map(|l| l.conf.http01_port.map(|port| (port, l.conf.http01_address.clone())));
    let Some((port, address)) = most_common(standalone) else {
        return ListenChoice {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_LISTEN_PORT)),
            why: "no lineage used certbot's standalone server on a side port (http01_port), so this is hapcert's \
                  default"
                .into(),
        };
    };
    match address.as_deref().map(|a| a.trim_matches(['[', ']']).parse::<IpAddr>()) {
        Some(Ok(ip)) => ListenChoice {
            addr: SocketAddr::new(ip, port),
            why: format!("certbot's standalone server answered on http01_address {ip}, http01_port {port}"),
        },
        Some(Err(_)) => ListenChoice {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            why: format!(
                "certbot's standalone server used http01_port {port}; its http01_address '{}' is not an IP address, \
                 so hapcert listens on loopback",
                address.unwrap_or_default()
            ),
        },
        None => ListenChoice {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            why: format!(
                "certbot's standalone server answered on port {port} (http01_port) of every interface, as no \
                 http01_address was set; hapcert listens on loopback only"
            ),
        },
    }
}

fn directory_alias(url: &str) -> &str {
    match url {
        LETSENCRYPT => "letsencrypt",
        LETSENCRYPT_STAGING => "letsencrypt-staging",
        other => other,
    }
}

/// A TOML string literal, escaped by the toml crate.
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// One line of a comment, or several when the text holds newlines.
fn comment(text: &str) -> String {
    text.lines().map(|l| format!("# {l}\n")).collect()
}

fn render_config(
    tree: &CertbotTree,
    lineages: &[LineagePlan],
    directory: &str,
    listen: &ListenChoice,
    options: &PlanOptions,
) -> String {
    let mut out = String::new();
    out += &comment(&format!(
        "hapcert config written by `hapcert import certbot` from {} ({} lineage{}).\n\
         Lines marked REVIEW are guesses about this host: check them, then run `hapcert check-config` and\n\
         `hapcert status`. deploy/hapcert.toml in hapcert's sources explains every key.",
        tree.config_dir.display(),
        lineages.len(),
        if lineages.len() == 1 { "" } else { "s" }
    ));

    out += "\n[acme]\n";
    out += "# The CA certbot renewed from (its `server`).\n";
    out += &format!("directory = {}\n", toml_string(directory_alias(directory)));
    if !directory.starts_with("https://acme-v02.api.letsencrypt.org/")
        && !directory.starts_with("https://acme-staging-v02.api.letsencrypt.org/")
    {
        out += "# REVIEW: if this CA's HTTPS certificate is not publicly trusted, name the root that signed it:\n";
        out += "# ca_bundle = \"/etc/hapcert/ca.pem\"\n";
    }
    out += "# certbot's account is not reused (see the import report): hapcert makes its own on the first order.\n";
    let contacts: Vec<String> = tree
        .accounts
        .iter()
        .filter(|a| a.server == directory)
        .flat_map(|a| a.contact.iter().map(|c| c.trim_start_matches("mailto:").to_owned()))
        .collect();
    if contacts.is_empty() {
        out += "# REVIEW: certbot's account had no e-mail address; give one for the CA's notices, e.g. a team's:\n";
        out += "# contact = [\"ops@example.com\"]\n";
    } else {
        let list: Vec<String> = contacts.iter().map(|c| toml_string(c)).collect();
        out += "# The e-mail address of certbot's account.\n";
        out += &format!("contact = [{}]\n", list.join(", "));
    }

    out += "\n[challenge]\n";
    out += &comment(&wrap(&format!("{}.", listen.why), COMMENT_WIDTH));
    out += "# REVIEW: HAProxy's port 80 must forward /.well-known/acme-challenge/ here, before any https redirect\n";
    out += "# (`hapcert haproxy-config` prints the lines).\n";
    out += &format!("listen = {}\n", toml_string(&listen.addr.to_string()));

    out += "\n[haproxy]\n";
    out += "# REVIEW: the directory HAProxy loads certificates from (bind ... ssl crt <dir>/). Each certificate is\n";
    out += "# <cert_dir>/<name>.pem, the file `cat fullchain.pem privkey.pem` scripts usually write.\n";
    out += &format!("cert_dir = {}\n", toml_string(&options.cert_dir.display().to_string()));
    out += "# REVIEW: how this host checks and reloads HAProxy.\n";
    out += "check_command = \"haproxy -c -f /etc/haproxy/haproxy.cfg\"\n";
    out += "reload_command = \"systemctl reload haproxy\"\n";
    out += "# With HAProxy's admin socket, hapcert swaps certificates in memory and closes no connection:\n";
    out += "# runtime_api = \"/run/haproxy/admin.sock\"\n";

    out += "\n[state]\n";
    out += "# hapcert's account key, backups and last results.\n";
    out += "dir = \"/var/lib/hapcert\"\n";

    for lineage in lineages {
        out += "\n";
        let conf_name = lineage.conf.file.file_name().map_or_else(
            || lineage.conf.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        out += &comment(&wrap(
            &format!(
                "certbot lineage {} (renewal/{conf_name}); key type from {}. Current certificate: serial {}, \
                 expires {}, from {}.",
                lineage.name,
                lineage.key_origin,
                lineage.facts.serial,
                format_time(lineage.facts.not_after),
                lineage.source.display()
            ),
            COMMENT_WIDTH,
        ));
        for (key, command) in &lineage.conf.hooks {
            out += &comment(&format!(
                "REVIEW: certbot ran {key} = {command}; hapcert runs no hooks."
            ));
        }
        for change in &lineage.changes {
            out += &comment(&wrap(&format!("REVIEW: {change}."), COMMENT_WIDTH));
        }
        out += "[[certificate]]\n";
        out += &format!("name = {}\n", toml_string(&lineage.name));
        let domains: Vec<String> = lineage.domains.iter().map(|d| toml_string(d)).collect();
        out += &format!("domains = [{}]\n", domains.join(", "));
        out += &format!("key_type = {}\n", toml_string(lineage.key_type.name()));
    }
    out
}

/// Comments and report paragraphs are wrapped to fit the project's 120 columns with their prefix.
const COMMENT_WIDTH: usize = 116;

/// Breaks text into lines of at most `width` characters at spaces (a longer word stays whole).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Checks the generated text with the parser `hapcert` itself uses, and that each certificate's file is the one the
/// import writes: a mismatch would adopt a certificate where no run looks.
pub fn check_generated(plan: &Plan, config_path: &Path) -> Result<(), String> {
    let Some(text) = &plan.config_toml else {
        return Ok(());
    };
    let config = Config::parse(text, config_path)
        .map_err(|errors| format!("the generated config does not parse (a bug in the import):\n{errors}"))?;
    for lineage in &plan.lineages {
        let spec = config.certificates.iter().find(|c| c.name == lineage.name);
        match spec {
            Some(spec) if spec.file.value == lineage.file => {}
            _ => {
                return Err(format!(
                    "the generated config does not write {} for {} (a bug in the import)",
                    lineage.file.display(),
                    lineage.name
                ));
            }
        }
    }
    Ok(())
}

/// What is at a certificate's file before the import writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Missing,
    /// Byte for byte what the import would write.
    Identical,
    /// The same leaf with its key, in another layout (e.g. written by `cat fullchain.pem privkey.pem`).
    SameCertificate,
    /// Something else, described for the operator.
    Other(String),
}

pub fn judge_existing(existing: Option<&[u8]>, lineage: &LineagePlan) -> Existing {
    let Some(bytes) = existing else {
        return Existing::Missing;
    };
    if bytes == lineage.pem.0.as_bytes() {
        return Existing::Identical;
    }
    let bundle = match Bundle::parse(bytes) {
        Ok(bundle) => bundle,
        Err(e) => return Existing::Other(format!("a file that is not a usable PEM ({e})")),
    };
    match bundle.facts() {
        Ok(facts) if bundle.certs[0].as_ref() == lineage.leaf_der.as_slice() && facts.key_matches => {
            Existing::SameCertificate
        }
        Ok(facts) => Existing::Other(format!(
            "another certificate (serial {}, expires {}{})",
            facts.serial,
            format_time(facts.not_after),
            if facts.key_matches {
                ""
            } else {
                ", with a key that does not match it"
            }
        )),
        Err(e) => Existing::Other(format!("a certificate without a usable key ({e})")),
    }
}

/// What became of one lineage's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    Written,
    /// `--dry-run`: it would have been written.
    WouldWrite,
    AlreadyThere(Existing),
    /// Not written: the file holds something else, or writing failed.
    NotAdopted(String),
}

impl Adoption {
    pub fn ok(&self) -> bool {
        !matches!(self, Adoption::NotAdopted(_))
    }
}

/// The human-readable report for stderr: what was imported, what was skipped, and everything certbot did that hapcert
/// will not do.
pub fn render_report(tree: &CertbotTree, plan: &Plan, adoptions: &[Adoption], config_target: &str) -> String {
    let mut out = format!(
        "hapcert import certbot: {} lineage{} in {}, {} imported, {} skipped\n",
        tree.lineages.len(),
        if tree.lineages.len() == 1 { "" } else { "s" },
        tree.config_dir.display(),
        plan.lineages.len(),
        plan.skipped.len()
    );
    for (lineage, adoption) in plan.lineages.iter().zip(adoptions) {
        let status = if adoption.ok() { "imported" } else { "NOT ADOPTED" };
        out += &format!(
            "  {status:<9} {}: {} ({})\n",
            lineage.name,
            lineage.domains.join(", "),
            lineage.key_type,
        );
        out += &format!(
            "            serial {}, expires {}, from {}\n",
            lineage.facts.serial,
            format_time(lineage.facts.not_after),
            lineage.source.display()
        );
        let what = match adoption {
            Adoption::Written => format!("written to {} (0600)", lineage.file.display()),
            Adoption::WouldWrite => format!("would be written to {} (dry run)", lineage.file.display()),
            Adoption::AlreadyThere(Existing::SameCertificate) => format!(
                "{} already holds this certificate; left as it is",
                lineage.file.display()
            ),
            Adoption::AlreadyThere(_) => format!("{} is already up to date", lineage.file.display()),
            Adoption::NotAdopted(why) => why.clone(),
        };
        out += &format!("            {what}\n");
        for change in &lineage.changes {
            out += &format!("            note: {change}\n");
        }
    }
    for skipped in &plan.skipped {
        out += &format!("  SKIPPED   {}: {}\n", skipped.name, skipped.reason);
    }
    if plan.config_toml.is_some() {
        out += &format!("  config:   {config_target}\n");
    } else {
        out += "  config:   none written: no lineage could be imported\n";
    }
    let new_files = adoptions.iter().filter(|a| **a == Adoption::Written).count();
    if new_files > 0 {
        out += &paragraph(&format!(
            "HAProxy loads the {new_files} new file{s} at its next reload; until then it serves what it loaded \
             before. Reload it once after `hapcert check-config`.",
            s = if new_files == 1 { "" } else { "s" }
        ));
    }

    out += "\nNot carried over; review before you turn certbot off:\n";
    let mut hooks = Vec::new();
    for lineage in &plan.lineages {
        for (key, command) in &lineage.conf.hooks {
            let note = if key == "renew_hook" {
                "  (certbot's --deploy-hook)"
            } else {
                ""
            };
            hooks.push(format!("{}: {key} = {command}{note}", lineage.name));
        }
    }
    for script in &tree.hook_scripts {
        hooks.push(format!(
            "{} (a {} hook for every lineage{})",
            script.path.display(),
            script.phase,
            if script.executable {
                ""
            } else {
                "; not executable, so certbot skipped it"
            }
        ));
    }
    if hooks.is_empty() {
        out += "  hooks: none in the renewal confs or renewal-hooks/.\n";
    } else {
        out += &paragraph(
            "hooks: hapcert runs none. It writes the PEM and hands it to HAProxy itself, so a script that \
             concatenates files and reloads HAProxy is no longer needed; move anything else it does elsewhere.",
        );
        for hook in hooks {
            out += &format!("    {hook}\n");
        }
    }
    out += &paragraph(
        "Hooks given on certbot's command line (`certbot renew --deploy-hook ...` in a crontab or systemd unit) are \
         not stored in the renewal confs: look at `crontab -l`, /etc/cron.d/certbot and `systemctl cat certbot.service`.",
    );

    let mut authenticators = Vec::new();
    for lineage in &plan.lineages {
        let conf = &lineage.conf;
        let name = &lineage.name;
        match conf.authenticator.as_deref() {
            Some("standalone") if conf.http01_port.is_none() || conf.http01_port == Some(80) => {
                authenticators.push(format!(
                    "{name}: standalone on port 80: certbot took port 80 itself (with HAProxy stopped or moved); \
                     hapcert never does, HAProxy keeps port 80 and forwards the challenge path"
                ));
            }
            Some("standalone") => {}
            Some("webroot") => authenticators.push(format!(
                "{name}: webroot ({}): hapcert does not write into a web root",
                if conf.webroot.is_empty() {
                    "no path recorded".to_owned()
                } else {
                    conf.webroot.join(", ")
                }
            )),
            Some("manual") => {
                let hooks: Vec<String> = conf.manual_hooks.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                authenticators.push(format!(
                    "{name}: manual{}",
                    if hooks.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", hooks.join("; "))
                    }
                ));
            }
            Some(dns) if dns.starts_with("dns") => authenticators.push(format!(
                "{name}: {dns} (DNS-01): hapcert validates over HTTP-01, so every name must reach this host's port 80"
            )),
            Some(other) => authenticators.push(format!("{name}: {other}")),
            None => authenticators.push(format!("{name}: no authenticator recorded")),
        }
        if let Some(installer) = &conf.installer {
            authenticators.push(format!(
                "{name}: installer {installer}: hapcert installs into HAProxy only"
            ));
        }
    }
    if authenticators.is_empty() {
        out += &paragraph(
            "authenticators: every lineage used certbot's standalone server on a side port, as hapcert does.",
        );
    } else {
        out += &paragraph(&format!(
            "authenticators: hapcert answers HTTP-01 itself on {} (see [challenge] in the config); HAProxy must \
             forward /.well-known/acme-challenge/ there (`hapcert haproxy-config` prints the lines).",
            plan.listen.addr
        ));
        for line in authenticators {
            out += &format!("    {line}\n");
        }
    }

    if tree.accounts.is_empty() {
        out += &paragraph("account: none found under accounts/; hapcert makes a new account on its first order.");
    }
    for account in &tree.accounts {
        let kind = match &account.key_kind {
            Ok(kty) if kty == "RSA" => "an RSA key, and hapcert signs with P-256 ECDSA only".to_owned(),
            Ok(kty) => format!("a {kty} key, which hapcert does not import"),
            Err(why) => format!("a key that could not be read ({why})"),
        };
        out += &paragraph(&format!(
            "account: certbot's account {} at {} has {kind}. It is not reused: a new account will be made on the \
             first `hapcert run` that orders a certificate (`hapcert account show` shows it). certbot's account stays \
             valid; `certbot unregister` deactivates it once certbot is gone.",
            account.id, account.server
        ));
    }
    out
}

/// A report paragraph: indented by two, wrapped.
fn paragraph(text: &str) -> String {
    wrap(text, COMMENT_WIDTH)
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect()
}

#[cfg(test)]
mod tests;
