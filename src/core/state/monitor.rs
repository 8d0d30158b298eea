//! What `monitor.json` holds: the last check, and the repeat ledger of the notifications. Kept apart from `state.json`
//! so that a `check` never waits for a run's lock. The ledger's rules (what to tell whom) live with the notifications
//! (`notify::ledger`); its data lives here, with the other serialized types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::core::config::EventKind;

/// The format of `monitor.json` this hapcert writes and the newest it reads (see [`super::STATE_FORMAT`]).
pub const MONITOR_FORMAT: u32 = 1;

/// What `check` found last, and what the notifications remember (`monitor.json`). Kept apart from `State` so that a
/// `check` never waits for a run's lock.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Monitor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
    #[serde(default)]
    pub notifications: Ledger,
    /// By certificate name: the last time `check` tried its challenge route, and what it found. Kept across checks,
    /// so that the route is fetched once a day, not at every check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteCheck>,
}

/// One challenge-route preflight of one certificate, as `check` tried it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteCheck {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The preflight's finding; none when the route worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// How long a working route is trusted before it is tried again. A broken one is tried at every check.
pub const ROUTE_INTERVAL: time::Duration = time::Duration::days(1);

impl RouteCheck {
    /// Whether the route is to be tried again at `now`.
    pub fn due(remembered: Option<&RouteCheck>, now: OffsetDateTime) -> bool {
        match remembered {
            None => true,
            Some(route) => route.problem.is_some() || now - route.at >= ROUTE_INTERVAL || route.at > now,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastCheck {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The monitoring-plugin status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub status: u8,
    #[serde(default)]
    pub certificates: BTreeMap<String, CertCheck>,
    /// What the check found beyond hapcert's own certificates: HAProxy's inventory and the `[[watch]]` endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<WatchedCheck>,
    /// Why HAProxy's inventory could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_error: Option<String>,
}

/// One certificate, CA file or CRL that `check` watches and hapcert does not issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchedCheck {
    pub source: Source,
    /// The `[[watch]]` name, or the path (or crt-store alias) HAProxy names.
    pub name: String,
    pub status: u8,
    /// The earliest Not After (a CRL's Next Update); none when nothing could be read.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
    pub summary: String,
}

/// What a check or a notification is about: a certificate hapcert manages, or one it only watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A `[[certificate]]` hapcert issues and deploys.
    #[default]
    Managed,
    /// A certificate HAProxy has loaded (`show ssl cert`) that hapcert does not manage.
    HaproxyCert,
    /// A CA file HAProxy has loaded (`show ssl ca-file`).
    HaproxyCaFile,
    /// A CRL HAProxy has loaded (`show ssl crl-file`).
    HaproxyCrlFile,
    /// A `[[watch]]` endpoint.
    Watch,
}

impl Source {
    /// As the metrics' `source` label, the notifications and the JSON say it.
    pub fn name(self) -> &'static str {
        match self {
            Source::Managed => "managed",
            Source::HaproxyCert => "haproxy-cert",
            Source::HaproxyCaFile => "haproxy-ca-file",
            Source::HaproxyCrlFile => "haproxy-crl-file",
            Source::Watch => "watch",
        }
    }

    /// Part of HAProxy's inventory.
    pub fn is_inventory(self) -> bool {
        matches!(
            self,
            Source::HaproxyCert | Source::HaproxyCaFile | Source::HaproxyCrlFile
        )
    }

    pub fn is_managed(&self) -> bool {
        *self == Source::Managed
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertCheck {
    pub status: u8,
    /// Every endpoint served the serial on disk; `None` when no endpoint answered.
    pub served_matches_disk: Option<bool>,
    /// One line: what made the status.
    pub summary: String,
}

/// Something an operator should hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The certificate's name (a `[[watch]]` name, or a path HAProxy loaded, for the other sources); none for events
    /// about hapcert itself (`run-overdue`, `test`).
    pub certificate: Option<String>,
    /// Whose certificate it is; left out of `monitor.json` for hapcert's own, as before there were others.
    #[serde(default, skip_serializing_if = "Source::is_managed")]
    pub source: Source,
    pub names: Vec<String>,
    pub served_serial: Option<String>,
    pub expected_serial: Option<String>,
    pub days_left: Option<f64>,
    /// One line, for a person: what happened and what to do.
    pub message: String,
}

/// What has been announced and not yet resolved, and what each channel was last told. Kept in `monitor.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// By the condition key of `notify::ledger`: `"www/expiry"`, `"www/renewal"`, `"-/run-overdue"`.
    #[serde(default)]
    pub conditions: BTreeMap<String, Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The latest observation: its kind is the condition's current kind.
    pub event: Event,
    /// When it was first observed.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Channel id to what it was last told. Only deliveries that succeeded are here.
    #[serde(default)]
    pub told: BTreeMap<String, Told>,
    /// When the condition was no longer observed. It stays only until every channel in `told` has heard so.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cleared: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Told {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// A channel told of a warning has not been told of the critical that followed.
    pub kind: EventKind,
}
