//! Whether a certificate is due, and why. Pure: it takes what is on disk, what is wanted, the CA's renewal window if
//! there is one (ARI), and `now`.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::core::ari::AriWindow;
use crate::core::config::{CertificateSpec, KeyType};
use crate::core::pem::CertFacts;
use crate::core::time::{earlier, format_duration, format_time};

/// What was found where the certificate should be.
#[derive(Debug, Clone)]
pub enum Local {
    Missing,
    Unreadable(String),
    Unparseable(String),
    Present(CertFacts),
}

impl Local {
    /// The certificate's facts, when there is a usable certificate.
    pub fn facts(&self) -> Option<&CertFacts> {
        match self {
            Local::Present(facts) => Some(facts),
            _ => None,
        }
    }
}

/// What the state remembers about the deployed certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The CA's renewal window for this very certificate.
    pub window: Option<&'a AriWindow>,
    /// `hapcert revoke` revoked this very certificate.
    pub revoked: bool,
    /// Another ACME directory than the configured one issued this very certificate.
    pub switched: Option<DirectorySwitch<'a>>,
}

/// The directory that issued a certificate, and the other one the config names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorySwitch<'a> {
    pub issued_by: &'a str,
    pub configured: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub due: bool,
    pub reason: Reason,
    /// When the certificate becomes due by the time rule, if there is a certificate to time.
    pub renew_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Forced,
    Missing,
    Unreadable(String),
    Unparseable(String),
    NamesDiffer {
        missing: Vec<String>,
        extra: Vec<String>,
    },
    KeyTypeDiffers {
        wanted: KeyType,
        found: Option<KeyType>,
    },
    KeyMismatch,
    Revoked,
    /// The config names another ACME directory than the one that issued the certificate (staging to production, one
    /// CA to another): the old CA's certificate may not be trusted, or may stop being renewed.
    DirectoryChanged {
        issued_by: String,
        configured: String,
    },
    Expired {
        not_after: OffsetDateTime,
    },
    /// Inside the renewal window. `rule` says which rule drew it.
    WindowReached {
        rule: Rule,
        left: Duration,
    },
    NotDue {
        rule: Rule,
        left: Duration,
    },
}

/// The time rule in force for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Renew with this fraction of the lifetime left: 1/3, or 1/2 for lifetimes under 10 days (Let's Encrypt's guidance).
    Fraction { denominator: u32 },
    /// The certificate's `renew_before` setting.
    RenewBefore(Duration),
    /// The CA's suggested window (ARI), with the moment picked inside it.
    Ari { start: OffsetDateTime, end: OffsetDateTime },
}

const SHORT_LIFETIME: Duration = Duration::from_secs(10 * 86_400);
/// The most a renewal moment is kept before expiry (see [`latest_renewal`]).
const EXPIRY_MARGIN: Duration = Duration::from_secs(86_400);

/// With the CA's window for the certificate in `local`, the window decides its timing; without one, the lifetime rule.
pub fn decide(spec: &CertificateSpec, local: &Local, known: Known<'_>, now: OffsetDateTime, force: bool) -> Decision {
    let timing = local.facts().map(|f| match known.window {
        // The CA's moment, but never so close to expiry that the new certificate could arrive after the old one
        // lapsed, whatever the window says.
        Some(w) => (
            Rule::Ari {
                start: w.start,
                end: w.end,
            },
            w.renew_at.min(latest_renewal(f)),
        ),
        None => lifetime_timing(spec, f),
    });
    let renew_at = timing.map(|(_, at)| at);
    let due = |reason| Decision {
        due: true,
        reason,
        renew_at,
    };
    if force {
        return due(Reason::Forced);
    }
    let facts = match local {
        Local::Missing => return due(Reason::Missing),
        Local::Unreadable(why) => return due(Reason::Unreadable(why.clone())),
        Local::Unparseable(why) => return due(Reason::Unparseable(why.clone())),
        Local::Present(facts) => facts,
    };
    let wanted = spec.domain_set();
    if wanted != facts.names {
        return due(Reason::NamesDiffer {
            missing: wanted.difference(&facts.names).cloned().collect(),
            extra: facts.names.difference(&wanted).cloned().collect(),
        });
    }
    if facts.key_type != Some(spec.key_type) {
        return due(Reason::KeyTypeDiffers {
            wanted: spec.key_type,
            found: facts.key_type,
        });
    }
    if !facts.key_matches {
        return due(Reason::KeyMismatch);
    }
    if known.revoked {
        return due(Reason::Revoked);
    }
    if let Some(switch) = known.switched {
        return due(Reason::DirectoryChanged {
            issued_by: switch.issued_by.to_owned(),
            configured: switch.configured.to_owned(),
        });
    }
    if now >= facts.not_after {
        return due(Reason::Expired {
            not_after: facts.not_after,
        });
    }
    let (rule, renew_at) = timing.expect("set when a certificate is present");
    let left = (facts.not_after - now).unsigned_abs();
    let reason = if now >= renew_at {
        Reason::WindowReached { rule, left }
    } else {
        Reason::NotDue { rule, left }
    };
    Decision {
        due: now >= renew_at,
        reason,
        renew_at: Some(renew_at),
    }
}

fn lifetime_timing(spec: &CertificateSpec, facts: &CertFacts) -> (Rule, OffsetDateTime) {
    let lifetime = (facts.not_after - facts.not_before).unsigned_abs();
    let (rule, margin) = match spec.renew_before {
        Some(before) => (Rule::RenewBefore(before), before),
        None => {
            let denominator = if lifetime < SHORT_LIFETIME { 2 } else { 3 };
            (Rule::Fraction { denominator }, lifetime / denominator)
        }
    };
    (rule, earlier(facts.not_after, margin))
}

/// The latest moment a renewal may start: a tenth of the lifetime before expiry, at most a day before it. An ARI
/// window that reaches the expiry (Pebble's do, for short lifetimes) would otherwise start the renewal as the served
/// certificate expires, and HAProxy would hand out an expired leaf until the new one is in.
fn latest_renewal(facts: &CertFacts) -> OffsetDateTime {
    let lifetime = (facts.not_after - facts.not_before).unsigned_abs();
    earlier(facts.not_after, (lifetime / 10).min(EXPIRY_MARGIN))
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Fraction { denominator } => write!(f, "renew with 1/{denominator} of the lifetime left"),
            Rule::RenewBefore(d) => write!(f, "renew_before = {}", format_duration(*d)),
            Rule::Ari { start, end } => write!(
                f,
                "the CA's renewal window {} to {}",
                format_time(*start),
                format_time(*end)
            ),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => f.write_str("renewal forced (--force)"),
            Reason::Missing => f.write_str("no certificate file yet"),
            Reason::Unreadable(why) => write!(f, "the certificate file cannot be read: {why}"),
            Reason::Unparseable(why) => write!(f, "the certificate file is not a usable PEM: {why}"),
            Reason::NamesDiffer { missing, extra } => {
                f.write_str("the certificate's names differ from the configured domains:")?;
                if !missing.is_empty() {
                    write!(f, " missing {}", missing.join(", "))?;
                }
                if !extra.is_empty() {
                    write!(
                        f,
                        "{} not configured {}",
                        if missing.is_empty() { "" } else { ";" },
                        extra.join(", ")
                    )?;
                }
                Ok(())
            }
            Reason::KeyTypeDiffers { wanted, found } => match found {
                Some(found) => write!(f, "the key is {found}, the config asks for {wanted}"),
                None => write!(
                    f,
                    "the key is of a kind hapcert does not issue; the config asks for {wanted}"
                ),
            },
            Reason::KeyMismatch => f.write_str("the private key in the file does not belong to the certificate"),
            Reason::Revoked => f.write_str("the certificate was revoked (hapcert revoke)"),
            Reason::DirectoryChanged { issued_by, configured } => {
                write!(f, "issued by {issued_by}; the config now names {configured}")
            }
            Reason::Expired { not_after } => write!(f, "expired at {}", format_time(*not_after)),
            Reason::WindowReached { rule, left } => {
                write!(f, "{} left, inside the renewal window ({rule})", days(*left))
            }
            Reason::NotDue { rule, left } => write!(f, "{} left, not due yet ({rule})", days(*left)),
        }
    }
}

/// "12.3 days" style, precise enough for 6-day certificates.
fn days(d: Duration) -> String {
    format!("{:.1} days", d.as_secs_f64() / 86_400.0)
}

#[cfg(test)]
mod tests;
