//! `[fleet]`: several load balancers that share their certificates through etcd (issue 13). Model and validation
//! together, like `monitor.rs`; pure. What needs the host (the node's default name from the host name, the key file,
//! the password file, the TLS files) is read or checked at the edge (`edge::config_secrets`, `edge::host`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::Located;
use super::errors::Errors;
use super::fields::{duration, located_path};
use super::raw::RawFleet;
use crate::core::seal::FleetKey;

/// `[fleet] prefix` when not set.
pub const DEFAULT_PREFIX: &str = "/hapcert/default";
/// `[fleet] lease_ttl` when not set, and its bounds: etcd raises a TTL of 1 s to 2 s, and a lease longer than a few
/// minutes keeps a dead holder's locks that long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(300);
/// `[fleet] converge_timeout` when not set, and its bounds: a deploy and its proof on the wire take seconds.
pub const DEFAULT_CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
pub const MIN_CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_CONVERGE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// `[fleet] emergency_days` when not set, and its bounds (a third of a 90-day lifetime is when renewal starts).
pub const DEFAULT_EMERGENCY_DAYS: f64 = 3.0;
pub const MIN_EMERGENCY_DAYS: f64 = 1.0;
pub const MAX_EMERGENCY_DAYS: f64 = 30.0;
/// The port of `[fleet] advertise` when it names none: HAProxy's plain-HTTP frontend.
pub const DEFAULT_ADVERTISE_PORT: u16 = 80;
/// etcd's client port, for an endpoint URL that names none.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// The longest node name: a DNS label.
pub const MAX_NODE_LEN: usize = 63;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The etcd cluster's client endpoints, all `http://` or all `https://`.
    pub etcd: Vec<EtcdEndpoint>,
    /// Every key the fleet writes is under this (starts with '/', no trailing '/').
    pub prefix: String,
    /// This node's name in the fleet. Not written: empty until the config is loaded, which sets the host name.
    pub node: Located<String>,
    /// The file holding the fleet key every node shares.
    pub key_file: Located<PathBuf>,
    /// The key in `key_file`: `None` until the config is loaded (`edge::config_secrets`).
    pub key: Option<Arc<FleetKey>>,
    /// How long this node's lease (membership, locks) outlives its last keep-alive.
    pub lease_ttl: Duration,
    /// The node that issued a certificate alerts when a live node has not acknowledged it within this.
    pub converge_timeout: Duration,
    /// Roots for the etcd servers' certificates, instead of the system's.
    pub ca_bundle: Option<Located<PathBuf>>,
    /// A client certificate and its key, for etcd's `--client-cert-auth`.
    pub client_identity: Option<ClientIdentity>,
    /// etcd user and password.
    pub auth: Option<EtcdAuth>,
    /// Where this node's HAProxy plain-HTTP frontend is reached, for the fleet's preflight.
    pub advertise: Option<SocketAddr>,
    /// With etcd unreachable, a certificate this close to expiry is issued by the node alone.
    pub emergency_days: f64,
}

/// One etcd client endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoint {
    /// As written, without a trailing '/'.
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub cert: Located<PathBuf>,
    pub key: Located<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EtcdAuth {
    pub username: String,
    /// The password, on its first line; read when connecting, never printed.
    pub password_file: Located<PathBuf>,
}

/// A node name becomes part of etcd keys (`nodes/<node>/...`): a DNS label's letters, digits, '-', plus '_' and '.'.
pub fn validate_node(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; give this node a name, like \"lb1\", or remove the key for the host name".into());
    }
    let valid = name.len() <= MAX_NODE_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a node name: at most {MAX_NODE_LEN} letters, digits, '-', '_' and '.', starting with a letter or digit"
        ))
    }
}

pub(super) fn validate_fleet(raw: Spanned<RawFleet>, base: &Path, errors: &mut Errors) -> FleetConfig {
    let span = raw.span();
    let raw = raw.into_inner();
    let missing = |errors: &mut Errors, key: &str, what: &str| {
        errors.push(Some(span.clone()), key, format!("is missing; {what}"));
    };

    let etcd = match &raw.etcd {
        None => {
            missing(
                errors,
                "fleet.etcd",
                "list the etcd client URLs, like [\"https://10.0.0.5:2379\"]",
            );
            Vec::new()
        }
        Some(list) => etcd_endpoints(errors, list),
    };
    let prefix = match raw.prefix {
        None => DEFAULT_PREFIX.to_owned(),
        Some(text) => {
            if let Err(problem) = validate_prefix(text.get_ref()) {
                errors.at(&text, "fleet.prefix", problem);
            }
            text.into_inner()
        }
    };
    let node = match raw.node {
        None => Located {
            value: String::new(),
            at: Default::default(),
            key: "fleet.node".into(),
        },
        Some(text) => {
            if let Err(problem) = validate_node(text.get_ref()) {
                errors.at(&text, "fleet.node", problem);
            }
            let span = text.span();
            errors.locate(text.into_inner(), span, "fleet.node")
        }
    };
    let key_file = match raw.key_file {
        None => {
            missing(
                errors,
                "fleet.key_file",
                "make the fleet key once with `hapcert fleet keygen --out /etc/hapcert/fleet.key`, copy it to every node (mode 0600), and name it here",
            );
            Located {
                value: PathBuf::new(),
                at: Default::default(),
                key: "fleet.key_file".into(),
            }
        }
        Some(path) => located_path(errors, base, path, "fleet.key_file"),
    };
    let lease_ttl = bounded(
        errors,
        raw.lease_ttl.as_ref(),
        "fleet.lease_ttl",
        DEFAULT_LEASE_TTL,
        (MIN_LEASE_TTL, MAX_LEASE_TTL),
        "etcd grants leases in whole seconds, at least 2",
    );
    if let Some(text) = &raw.lease_ttl
        && lease_ttl.subsec_nanos() != 0
    {
        errors.at(
            text,
            "fleet.lease_ttl",
            "must be whole seconds: etcd grants leases in seconds",
        );
    }
    let converge_timeout = bounded(
        errors,
        raw.converge_timeout.as_ref(),
        "fleet.converge_timeout",
        DEFAULT_CONVERGE_TIMEOUT,
        (MIN_CONVERGE_TIMEOUT, MAX_CONVERGE_TIMEOUT),
        "a node needs seconds to deploy a certificate and prove it on the wire",
    );

    let tls = etcd.iter().any(|e| e.tls);
    let ca_bundle = raw.ca_bundle.map(|p| located_path(errors, base, p, "fleet.ca_bundle"));
    let client_identity = match (raw.client_cert, raw.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert: located_path(errors, base, cert, "fleet.client_cert"),
            key: located_path(errors, base, key, "fleet.client_key"),
        }),
        (Some(cert), None) => {
            errors.at(
                &cert,
                "fleet.client_key",
                "is missing; a client certificate needs its key: give both",
            );
            None
        }
        (None, Some(key)) => {
            errors.at(
                &key,
                "fleet.client_cert",
                "is missing; a client key needs its certificate: give both",
            );
            None
        }
    };
    if !tls && !etcd.is_empty() {
        let tls_files = [
            ca_bundle.as_ref(),
            client_identity.as_ref().map(|c| &c.cert),
            client_identity.as_ref().map(|c| &c.key),
        ];
        for file in tls_files.into_iter().flatten() {
            errors.at_located(
                file,
                "applies to https:// endpoints only, and fleet.etcd lists http:// ones; write https:// URLs, or remove it",
            );
        }
    }
    let auth = match (raw.username, raw.password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => {
            if user.get_ref().trim().is_empty() || user.get_ref().contains(char::is_whitespace) {
                errors.at(
                    &user,
                    "fleet.username",
                    "is not an etcd user name; give the user etcd knows, like \"hapcert\"",
                );
            }
            Some(EtcdAuth {
                username: user.into_inner(),
                password_file: located_path(errors, base, file, "fleet.password_file"),
            })
        }
        (Some(user), None) => {
            errors.at(
                &user,
                "fleet.password_file",
                "is missing; etcd authentication needs username and password_file",
            );
            None
        }
        (None, Some(file)) => {
            errors.at(
                &file,
                "fleet.username",
                "is missing; etcd authentication needs username and password_file",
            );
            None
        }
    };
    let advertise = raw.advertise.as_ref().and_then(|text| match parse_advertise(text.get_ref()) {
        Some(addr) => Some(addr),
        None => {
            errors.at(
                text,
                "fleet.advertise",
                format!(
                    "'{}' is not an address; write where this node's HAProxy takes plain HTTP, like \"10.0.0.11\" (port 80) or \"10.0.0.11:8080\"",
                    text.get_ref()
                ),
            );
            None
        }
    });
    let emergency_days = match &raw.emergency_days {
        None => DEFAULT_EMERGENCY_DAYS,
        Some(value) => {
            let days = *value.get_ref();
            if days.is_finite() && (MIN_EMERGENCY_DAYS..=MAX_EMERGENCY_DAYS).contains(&days) {
                days
            } else {
                errors.at(
                    value,
                    "fleet.emergency_days",
                    format!(
                        "must be {MIN_EMERGENCY_DAYS} to {MAX_EMERGENCY_DAYS} days: fewer leaves no time to issue alone, more issues duplicates while etcd is only briefly away; like 3"
                    ),
                );
                DEFAULT_EMERGENCY_DAYS
            }
        }
    };
    FleetConfig {
        etcd,
        prefix,
        node,
        key_file,
        key: None,
        lease_ttl,
        converge_timeout,
        ca_bundle,
        client_identity,
        auth,
        advertise,
        emergency_days,
    }
}

fn etcd_endpoints(errors: &mut Errors, list: &Spanned<Vec<Spanned<String>>>) -> Vec<EtcdEndpoint> {
    if list.get_ref().is_empty() {
        errors.at(
            list,
            "fleet.etcd",
            "is empty; list the etcd client URLs, like [\"https://10.0.0.5:2379\"]",
        );
    }
    let mut out: Vec<EtcdEndpoint> = Vec::new();
    for (i, text) in list.get_ref().iter().enumerate() {
        let key = format!("fleet.etcd[{i}]");
        match parse_endpoint(text.get_ref()) {
            Err(problem) => errors.at(text, &key, format!("'{}' {problem}", text.get_ref())),
            Ok(endpoint) if out.iter().any(|e| e.host == endpoint.host && e.port == endpoint.port) => {
                errors.at(text, &key, format!("'{}' is listed twice", text.get_ref()));
            }
            Ok(endpoint) if out.first().is_some_and(|first| first.tls != endpoint.tls) => {
                errors.at(
                    text,
                    &key,
                    "mixes http:// and https://; one cluster is reached one way: use https:// for every endpoint",
                );
            }
            Ok(endpoint) => out.push(endpoint),
        }
    }
    out
}

fn parse_endpoint(text: &str) -> Result<EtcdEndpoint, &'static str> {
    const FORM: &str =
        "is not an etcd client URL; write http://host:port or https://host:port, like https://10.0.0.5:2379";
    let url = text.trim_end_matches('/');
    let uri: http::Uri = url.parse().map_err(|_| FORM)?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(FORM),
    };
    let authority = uri.authority().ok_or(FORM)?;
    if authority.as_str().contains('@') {
        return Err("holds a user or password; give them as username and password_file instead");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("has a path; give only scheme, host and port, like https://10.0.0.5:2379");
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(FORM);
    }
    let port = match authority.port_u16() {
        Some(0) => return Err("has port 0; give etcd's client port, like 2379"),
        Some(port) => port,
        None => ETCD_CLIENT_PORT,
    };
    Ok(EtcdEndpoint {
        url: url.to_owned(),
        tls,
        host: host.to_owned(),
        port,
    })
}

/// An etcd key prefix: starts with '/', does not end with one, no empty segment, no whitespace or control character.
fn validate_prefix(prefix: &str) -> Result<(), String> {
    let fix = "write it like \"/hapcert/default\"";
    if !prefix.starts_with('/') {
        Err(format!("'{prefix}' must start with '/'; {fix}"))
    } else if prefix.ends_with('/') {
        Err(format!(
            "'{prefix}' must not end with '/' (hapcert adds it before its own keys); {fix}"
        ))
    } else if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "'{}' holds a space or a control character; {fix}",
            prefix.escape_debug()
        ))
    } else if prefix.contains("//") {
        Err(format!("'{prefix}' has an empty segment ('//'); {fix}"))
    } else {
        Ok(())
    }
}

/// "10.0.0.11" (port 80), "10.0.0.11:8080", "::1", "[::1]:8080".
fn parse_advertise(text: &str) -> Option<SocketAddr> {
    let addr = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            text.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DEFAULT_ADVERTISE_PORT))
        })
        .or_else(|| {
            let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
            let ip: IpAddr = bracketed.parse().ok()?;
            Some(SocketAddr::new(ip, DEFAULT_ADVERTISE_PORT))
        })?;
    (addr.port() != 0 && !addr.ip().is_unspecified()).then_some(addr)
}

/// A duration within `(min, max)`; `default` when not written, or after recording a problem.
fn bounded(
    errors: &mut Errors,
    text: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    (min, max): (Duration, Duration),
    why: &str,
) -> Duration {
    let Some(text) = text else { return default };
    match duration(errors, text, key, false) {
        Some(d) if d < min || d > max => {
            errors.at(
                text,
                key,
                format!(
                    "{} is outside {} to {} ({why}); like {}",
                    humantime::format_duration(d),
                    humantime::format_duration(min),
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
