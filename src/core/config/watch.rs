//! What `check` watches besides the certificates hapcert issues: the rest of HAProxy's inventory (`[check] unmanaged`,
//! `ignore_paths`) and `[[watch]]`, TLS endpoints that hapcert neither issues nor deploys (a backend server, an internal
//! service, a mail server). Model and validation together, pure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Located;
use super::errors::Errors;
use super::fields::{days, located_path};
use super::raw::RawWatch;

/// `[check] unmanaged`: how the certificates, CA files and CRLs that HAProxy has loaded and hapcert does not manage
/// count in `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnmanagedPolicy {
    /// Judged like hapcert's own: WARNING, CRITICAL, and their notifications.
    #[default]
    Alert,
    /// Reported, but never worse than WARNING: for a box where someone else answers for them.
    Warn,
    /// Not looked at.
    Ignore,
}

impl UnmanagedPolicy {
    pub fn name(self) -> &'static str {
        match self {
            UnmanagedPolicy::Alert => "alert",
            UnmanagedPolicy::Warn => "warn",
            UnmanagedPolicy::Ignore => "ignore",
        }
    }
}

/// The plain-text protocol spoken before the TLS handshake of a `[[watch]]` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// RFC 3207: greeting, EHLO, STARTTLS.
    Smtp,
    /// RFC 9051: greeting, `STARTTLS`.
    Imap,
    /// RFC 2595: greeting, `STLS`.
    Pop3,
    /// PostgreSQL's SSLRequest.
    Postgres,
}

impl StartTls {
    pub const ALL: [StartTls; 4] = [StartTls::Smtp, StartTls::Imap, StartTls::Pop3, StartTls::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            StartTls::Smtp => "smtp",
            StartTls::Imap => "imap",
            StartTls::Pop3 => "pop3",
            StartTls::Postgres => "postgres",
        }
    }
}

/// One `[[watch]]` entry.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// Unique among the watch entries; the label of its metrics and notifications.
    pub name: String,
    /// `host:port`, as written.
    pub endpoint: String,
    /// The name sent as SNI and that the certificate must cover: `sni`, else the endpoint's host.
    pub sni: String,
    pub starttls: Option<StartTls>,
    /// The roots its chain must lead to, in place of the system's (a private CA).
    pub ca_bundle: Option<Located<PathBuf>>,
    /// Override `[check] warn_days` and `crit_days` for this endpoint.
    pub warn_days: Option<f64>,
    pub crit_days: Option<f64>,
}

/// `[check] unmanaged`.
pub(super) fn unmanaged_policy(errors: &mut Errors, raw: Option<&Spanned<String>>) -> UnmanagedPolicy {
    let Some(text) = raw else {
        return UnmanagedPolicy::default();
    };
    match text.get_ref().as_str() {
        "alert" => UnmanagedPolicy::Alert,
        "warn" => UnmanagedPolicy::Warn,
        "ignore" => UnmanagedPolicy::Ignore,
        other => {
            errors.at(
                text,
                "check.unmanaged",
                format!("'{other}' is not one of \"alert\" (the default), \"warn\" or \"ignore\""),
            );
            UnmanagedPolicy::default()
        }
    }
}

/// `[check] ignore_paths`: shell globs (`*`, `?`, `[...]`) matched against the whole path HAProxy names.
pub(super) fn ignore_paths(errors: &mut Errors, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<glob::Pattern> {
    let Some(list) = raw else { return Vec::new() };
    let mut out = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        match glob::Pattern::new(entry.get_ref()) {
            Ok(pattern) => out.push(pattern),
            Err(err) => errors.at(
                entry,
                &format!("check.ignore_paths[{i}]"),
                format!(
                    "'{}' is not a glob ({}); write a path with * and ?, like /etc/haproxy/old/*.pem",
                    entry.get_ref(),
                    err.msg
                ),
            ),
        }
    }
    out
}

/// Every `[[watch]]` entry, or the problems with them.
pub(super) fn validate_watches(raw: Vec<Spanned<RawWatch>>, base: &Path, errors: &mut Errors) -> Vec<WatchSpec> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let span = entry.span();
        let entry = entry.into_inner();
        let key = |field: &str| format!("watch[{i}].{field}");
        let Some(name) = entry.name else {
            errors.push(
                Some(span.clone()),
                &key("name"),
                "is missing; name the endpoint, like \"backend-api\"",
            );
            continue;
        };
        let name_ok = !name.get_ref().is_empty()
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            errors.at(
                &name,
                &key("name"),
                "must be letters, digits, '-', '_' or '.', like \"backend-api\"",
            );
        } else if !seen.insert(name.get_ref().clone()) {
            errors.at(
                &name,
                &key("name"),
                format!("'{}' names another [[watch]] too; names must be unique", name.get_ref()),
            );
        }
        let Some(endpoint) = entry.endpoint else {
            errors.push(
                Some(span),
                &key("endpoint"),
                "is missing; give host:port, like 10.0.0.5:443",
            );
            continue;
        };
        let host = match split_endpoint(endpoint.get_ref()) {
            Some(host) => host,
            None => {
                errors.at(
                    &endpoint,
                    &key("endpoint"),
                    format!(
                        "'{}' is not host:port, like 10.0.0.5:443 or [2001:db8::5]:443",
                        endpoint.get_ref()
                    ),
                );
                continue;
            }
        };
        let sni = match &entry.sni {
            Some(sni) if sni.get_ref().is_empty() => {
                errors.at(sni, &key("sni"), "is empty; leave it out to send the endpoint's host");
                host.clone()
            }
            Some(sni) => sni.get_ref().clone(),
            None => host.clone(),
        };
        let starttls = entry.starttls.as_ref().and_then(|text| {
            let found = StartTls::ALL.into_iter().find(|p| p.name() == text.get_ref());
            if found.is_none() {
                errors.at(
                    text,
                    &key("starttls"),
                    format!(
                        "'{}' is not one of \"smtp\", \"imap\", \"pop3\" or \"postgres\"",
                        text.get_ref()
                    ),
                );
            }
            found
        });
        let warn_days = days(errors, &entry.warn_days, &key("warn_days"));
        let crit_days = days(errors, &entry.crit_days, &key("crit_days"));
        if let (Some(warn), Some(crit), Some(text)) = (warn_days, crit_days, &entry.warn_days)
            && warn < crit
        {
            errors.at(
                text,
                &key("warn_days"),
                format!("{warn} is below crit_days ({crit}); the warning must come first"),
            );
        }
        out.push(WatchSpec {
            name: name.into_inner(),
            endpoint: endpoint.into_inner(),
            sni,
            starttls,
            ca_bundle: entry
                .ca_bundle
                .map(|p| located_path(errors, base, p, &key("ca_bundle"))),
            warn_days,
            crit_days,
        });
    }
    out
}

/// The host of `host:port` (an IPv6 address in brackets, returned without them); `None` when it is not that.
fn split_endpoint(endpoint: &str) -> Option<String> {
    let (host, port) = endpoint.rsplit_once(':')?;
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return None;
    }
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_a_host_and_a_port_with_ipv6_in_brackets() {
        assert_eq!(split_endpoint("10.0.0.5:443").as_deref(), Some("10.0.0.5"));
        assert_eq!(
            split_endpoint("mail.example.com:25").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(split_endpoint("[2001:db8::5]:443").as_deref(), Some("2001:db8::5"));
        for bad in ["10.0.0.5", "2001:db8::5:443", ":443", "host:0", "host:http", "[::1:443"] {
            assert_eq!(split_endpoint(bad), None, "{bad}");
        }
    }
}
