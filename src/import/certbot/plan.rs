//! From certbot's tree to hapcert's certificates: which lineages can be imported, with which domains, key type and
//! file, what changes on the first run, which CA and side port the config takes; and, at adoption, whether the file
//! already in the cert dir is the lineage's certificate.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use time::OffsetDateTime;
use x509_parser::prelude::GeneralName;

use super::dns::{self, ProviderPlan};
use super::{CertbotTree, DnsInputs, LineageFiles, RenewalConf, parse_renewal_conf};
use crate::core::config::{DomainName, KeyType, LETSENCRYPT, validate_name};
use crate::core::pem::{Bundle, CertFacts};
use crate::core::time::format_time;

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
    /// The `[[dns_provider]]` tables, one per credentials INI the imported lineages use.
    pub providers: Vec<ProviderPlan>,
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
    /// `Some(provider)`: validated with DNS-01 through that `[[dns_provider]]`; `None`: HTTP-01.
    pub dns_provider: Option<String>,
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

/// Decides which lineages become certificates, with which settings; the config text is left to `render`.
pub(super) fn decide(tree: &CertbotTree, options: &PlanOptions, dns: &DnsInputs) -> Plan {
    let mut lineages = Vec::new();
    let mut skipped = Vec::new();
    let mut providers = Vec::new();
    for files in &tree.lineages {
        match plan_lineage(files, options, dns, &mut providers) {
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
    Plan {
        config_toml: None,
        lineages,
        skipped,
        providers,
        directory,
        listen,
    }
}

fn plan_lineage(
    files: &LineageFiles,
    options: &PlanOptions,
    dns: &DnsInputs,
    providers: &mut Vec<ProviderPlan>,
) -> Result<LineagePlan, String> {
    let name = &files.name;
    validate_name(name).map_err(|problem| {
        format!("the lineage name {problem}, and hapcert names files after it; keep this one on certbot")
    })?;
    let text = files.conf_text.as_ref().map_err(Clone::clone)?;
    let conf = parse_renewal_conf(text, &files.conf_path).map_err(|e| e.to_string())?;
    // The credentials are checked before the certificate: a key hapcert cannot sign with is the first thing to fix.
    let credentials = match conf.authenticator.as_deref() {
        Some("dns-rfc2136") => {
            let Some(ini) = &conf.dns_credentials else {
                return Err(format!(
                    "{} uses the dns-rfc2136 authenticator but names no dns_rfc2136_credentials file",
                    files.conf_path.display()
                ));
            };
            let file = match dns.credentials.get(ini) {
                Some(Ok(file)) => file,
                Some(Err(why)) => return Err(format!("its credentials file cannot be read: {why}")),
                None => return Err(format!("its credentials file {} was not read", ini.display())),
            };
            Some((ini.clone(), dns::read_credentials(ini, file)?))
        }
        Some(plugin) if dns::is_dns_plugin(plugin) => return Err(dns::exec_advice(plugin)),
        _ => None,
    };
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
        let name =
            DomainName::parse(domain).map_err(|problem| format!("its certificate names '{domain}': {problem}"))?;
        if name.is_wildcard() && credentials.is_none() {
            return Err(format!(
                "its certificate names '{domain}', a wildcard, which needs DNS-01, and certbot validated it with {},                  which the import does not map; add a [[dns_provider]] and this certificate by hand",
                conf.authenticator.as_deref().unwrap_or("no recorded authenticator")
            ));
        }
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

    let dns_provider = credentials.map(|(ini, credentials)| {
        if let Some(known) = providers.iter_mut().find(|p| p.ini == ini) {
            known.lineages.push(name.clone());
            return known.name.clone();
        }
        let provider_name = dns::provider_name(&ini, providers);
        providers.push(ProviderPlan {
            secret_file: dns.secret_dir.join(format!("tsig-{provider_name}.secret")),
            name: provider_name.clone(),
            ini,
            credentials,
            lineages: vec![name.clone()],
        });
        provider_name
    });

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
        dns_provider,
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

/// hapcert's side port when certbot gives none to keep.
const DEFAULT_LISTEN_PORT: u16 = 54321;

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

/// What the cert dir already holds at the lineage's file, compared with the PEM the import would write: another layout
/// of the same certificate and key counts as this lineage's, so a file a certbot hook wrote is adopted as it is.
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
