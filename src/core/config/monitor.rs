//! The monitoring side of the config: `[check]`, `[metrics]`, `[daemon]`, `[hooks]` and the `[[notify]]` channels.
//! Pure, like the rest of `config`: validated into rich types, every problem named by line and key.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::Located;
use super::errors::Errors;
use super::fields::{command, contact_uri, days, duration_or, endpoints, located_path, refuse_other_kinds_keys};
use super::raw::{RawCheck, RawDaemon, RawHooks, RawMetrics, RawNotify};
use super::watch::{UnmanagedPolicy, ignore_paths, unmanaged_policy};

#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// TLS endpoints (`host:port`) probed for every name: `[check] endpoints`, else `[haproxy] verify`, so that an
    /// HAProxy bound to one address is named once.
    pub endpoints: Vec<String>,
    /// The key that set `endpoints`, for the message that asks to change it.
    pub endpoints_key: &'static str,
    /// WARNING when fewer days are left; `None`: when a third of the certificate's lifetime is left.
    pub warn_days: Option<f64>,
    /// CRITICAL when fewer days are left.
    pub crit_days: f64,
    /// CRITICAL when the last successful run is older (the dead-man's switch).
    pub max_run_age: Duration,
    /// Roots the served chain must verify against, instead of the system's.
    pub ca_bundle: Option<Located<PathBuf>>,
    /// How what HAProxy loaded and hapcert does not manage counts.
    pub unmanaged: UnmanagedPolicy,
    /// Paths (globs) of HAProxy's inventory left out of the check.
    pub ignore_paths: Vec<glob::Pattern>,
    /// Whether the check (and the daemon's) tries each certificate's challenge route once a day.
    pub route: bool,
}

#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// node_exporter's textfile collector file, written after every run and check.
    pub textfile: Option<Located<PathBuf>>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where `/metrics` and `/healthz` are served; none: not served.
    pub listen: Option<SocketAddr>,
    /// How often the endpoints are probed (`check`).
    pub probe_interval: Duration,
    /// The longest sleep between two looks at the renewal windows.
    pub recheck_interval: Duration,
    /// Up to this much is added to each due time, so a fleet does not renew in the same second.
    pub jitter: Duration,
    /// The daemon's control socket, where `renew`, `revoke` and `status` by hand find it; none written: the default
    /// ([`DaemonConfig::control_socket`]).
    pub control: Option<Located<PathBuf>>,
}

/// Where the daemon's control socket is when `[daemon] control` is not written: systemd's `RuntimeDirectory=hapcert`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/hapcert/control.sock";

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes on Linux, its last one a NUL).
const MAX_SOCKET_PATH: usize = 107;

impl DaemonConfig {
    pub fn control_socket(&self) -> &Path {
        self.control
            .as_ref()
            .map_or(Path::new(DEFAULT_CONTROL_SOCKET), |c| c.value.as_path())
    }
}

/// certbot-compatible hook commands, run with `sh -c`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Before the first order of a run that orders anything.
    pub pre: Option<String>,
    /// After the run's orders and deploys, whatever their outcome, if the pre hook's run ordered anything.
    pub post: Option<String>,
    /// After each verified deploy, with the certificate in the environment.
    pub deploy: Option<String>,
}

impl Hooks {
    /// Each hook of `self`, else the one of `defaults`.
    pub fn or(&self, defaults: &Hooks) -> Hooks {
        Hooks {
            pre: self.pre.clone().or_else(|| defaults.pre.clone()),
            post: self.post.clone().or_else(|| defaults.post.clone()),
            deploy: self.deploy.clone().or_else(|| defaults.deploy.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HooksConfig {
    /// Hooks for every certificate that names none of its own.
    pub global: Hooks,
    /// How long one hook may run before it is killed.
    pub timeout: Duration,
}

/// What a notification is about. The names are what `events = [...]` and the payloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The CA did not issue: the served certificate is untouched.
    RenewalFailed,
    /// HAProxy did not serve the new certificate on the wire; the previous one was put back.
    DeployUnverified,
    /// HAProxy refused the new files (check, reload or hot update failed); the previous ones were put back.
    Rollback,
    /// `check`: a certificate entered WARNING.
    Warning,
    /// `check`: a certificate entered CRITICAL.
    Critical,
    /// `check`: the last successful run is too old; the timer or daemon has stopped.
    RunOverdue,
    /// `check`: a certificate's challenge route fails its preflight, so its next renewal would fail.
    ChallengeRoute,
    /// A certificate was renewed and verified. Off unless a channel lists it.
    Renewed,
    /// Fleet: a live node has not acknowledged serving the certificate this node issued within `converge_timeout`.
    FleetLagging,
    /// Fleet: the store is unreachable and a certificate within `emergency_days` of expiry was ordered by this node alone.
    FleetEmergency,
    /// `hapcert notify test`: always sent.
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::RenewalFailed,
        EventKind::DeployUnverified,
        EventKind::Rollback,
        EventKind::Warning,
        EventKind::Critical,
        EventKind::RunOverdue,
        EventKind::ChallengeRoute,
        EventKind::Renewed,
        EventKind::FleetLagging,
        EventKind::FleetEmergency,
        EventKind::Test,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::RenewalFailed => "renewal-failed",
            EventKind::DeployUnverified => "deploy-unverified",
            EventKind::Rollback => "rollback",
            EventKind::Warning => "warning",
            EventKind::Critical => "critical",
            EventKind::RunOverdue => "run-overdue",
            EventKind::ChallengeRoute => "challenge-route",
            EventKind::Renewed => "renewed",
            EventKind::FleetLagging => "fleet-lagging",
            EventKind::FleetEmergency => "fleet-emergency",
            EventKind::Test => "test",
        }
    }

    fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What a channel gets when it lists no events: every problem, no success.
    pub fn default_set() -> BTreeSet<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|k| *k != EventKind::Renewed)
            .collect()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[[notify]]` table.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// Stable across config reloads while the table's target is unchanged: what the repeat ledger is keyed by.
    pub id: String,
    pub kind: NotifyKind,
    /// The events this channel gets (`test` always).
    pub events: BTreeSet<EventKind>,
    /// A condition that holds is announced again at most this often.
    pub repeat: Duration,
    /// How long one delivery may take.
    pub timeout: Duration,
}

impl NotifyChannel {
    pub fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::Test || self.events.contains(&kind)
    }
}

#[derive(Debug, Clone)]
pub enum NotifyKind {
    /// POST JSON with a `text` field (Slack and Mattermost incoming webhooks show it as is).
    Webhook {
        url: String,
    },
    Email(Box<EmailConfig>),
    /// A command run with `sh -c`, the event in `HAPCERT_*` environment variables.
    Exec {
        command: String,
    },
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Bare addresses (no `mailto:`).
    pub to: Vec<String>,
    pub from: String,
    pub transport: EmailTransport,
}

#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// The local MTA, like cron's mail.
    Sendmail { command: String },
    Smtp {
        host: String,
        port: u16,
        /// Require STARTTLS (the default). Off only for a relay on the same host.
        starttls: bool,
        username: Option<String>,
        /// The password, on the first line of a file only root reads: never in the config.
        password_file: Option<Located<PathBuf>>,
        /// Roots for the SMTP server's certificate, in addition to the system's.
        ca_bundle: Option<Located<PathBuf>>,
    },
}

/// How messages name `[haproxy] verify`, the one address key most configs need.
pub const HAPROXY_VERIFY_KEY: &str = "[haproxy] verify";

const DEFAULT_REPEAT: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// The issue asks for windows to be looked at at least twice a day.
const MAX_RECHECK: Duration = Duration::from_secs(12 * 3600);

/// `verify` is `[haproxy] verify` as validated (with its own default), which `[check] endpoints` defaults to.
pub(super) fn validate_check(raw: RawCheck, verify: &[String], base: &Path, errors: &mut Errors) -> CheckConfig {
    let (endpoints, endpoints_key) = match raw.endpoints {
        Some(list) => (endpoints(errors, &list, "check.endpoints"), "[check] endpoints"),
        None => (verify.to_vec(), HAPROXY_VERIFY_KEY),
    };
    let warn_days = days(errors, &raw.warn_days, "check.warn_days");
    let crit_days = days(errors, &raw.crit_days, "check.crit_days").unwrap_or(7.0);
    if let (Some(warn), Some(text)) = (warn_days, &raw.warn_days)
        && warn < crit_days
    {
        errors.at(
            text,
            "check.warn_days",
            format!("{warn} is below crit_days ({crit_days}); the warning must come first"),
        );
    }
    CheckConfig {
        endpoints,
        endpoints_key,
        warn_days,
        crit_days,
        max_run_age: duration_or(
            errors,
            &raw.max_run_age,
            "check.max_run_age",
            Duration::from_secs(36 * 3600),
            false,
        ),
        ca_bundle: raw.ca_bundle.map(|p| located_path(errors, base, p, "check.ca_bundle")),
        unmanaged: unmanaged_policy(errors, raw.unmanaged.as_ref()),
        ignore_paths: ignore_paths(errors, raw.ignore_paths.as_ref()),
        route: raw.route.unwrap_or(true),
    }
}

pub(super) fn validate_metrics(raw: RawMetrics, base: &Path, errors: &mut Errors) -> MetricsConfig {
    MetricsConfig {
        textfile: raw.textfile.map(|p| located_path(errors, base, p, "metrics.textfile")),
    }
}

pub(super) fn validate_daemon(raw: RawDaemon, base: &Path, errors: &mut Errors) -> DaemonConfig {
    let control = raw.control.map(|text| {
        let located = located_path(errors, base, text.clone(), "daemon.control");
        // Made absolute first: a relative path is as long as the config's directory makes it.
        if located.value.as_os_str().len() > MAX_SOCKET_PATH {
            errors.at(
                &text,
                "daemon.control",
                format!(
                    "is longer than the {MAX_SOCKET_PATH} bytes a Unix socket's path may have; choose a shorter one"
                ),
            );
        }
        located
    });
    let listen: Option<SocketAddr> = raw.listen.as_ref().and_then(|text| match text.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.at(
                text,
                "daemon.listen",
                format!(
                    "'{}' is not an address; write ip:port, like 127.0.0.1:9555",
                    text.get_ref()
                ),
            );
            None
        }
    });
    if let (Some(addr), Some(text)) = (listen, &raw.listen)
        && addr.port() == 0
    {
        errors.at(
            text,
            "daemon.listen",
            "port 0 lets the system pick any port, which the scraper of /metrics and /healthz could not know; give a fixed one, like 127.0.0.1:9555",
        );
    }
    let recheck_interval = duration_or(
        errors,
        &raw.recheck_interval,
        "daemon.recheck_interval",
        MAX_RECHECK,
        false,
    );
    if recheck_interval > MAX_RECHECK
        && let Some(text) = &raw.recheck_interval
    {
        errors.at(
            text,
            "daemon.recheck_interval",
            "is longer than 12h; the renewal windows must be looked at at least twice a day",
        );
    }
    DaemonConfig {
        listen,
        probe_interval: duration_or(
            errors,
            &raw.probe_interval,
            "daemon.probe_interval",
            Duration::from_secs(300),
            false,
        ),
        recheck_interval: recheck_interval.min(MAX_RECHECK),
        jitter: duration_or(errors, &raw.jitter, "daemon.jitter", Duration::from_secs(600), true),
        control,
    }
}

pub(super) fn validate_hooks(raw: RawHooks, errors: &mut Errors) -> HooksConfig {
    HooksConfig {
        global: Hooks {
            pre: command(errors, raw.pre_hook, "hooks.pre_hook"),
            post: command(errors, raw.post_hook, "hooks.post_hook"),
            deploy: command(errors, raw.deploy_hook, "hooks.deploy_hook"),
        },
        timeout: duration_or(errors, &raw.timeout, "hooks.timeout", DEFAULT_HOOK_TIMEOUT, false),
    }
}

/// A certificate's own hooks; `key` is its table's key prefix (`certificate[0]`).
pub(super) fn certificate_hooks(
    pre: Option<Spanned<String>>,
    post: Option<Spanned<String>>,
    deploy: Option<Spanned<String>>,
    key: &str,
    errors: &mut Errors,
) -> Hooks {
    Hooks {
        pre: command(errors, pre, &format!("{key}.pre_hook")),
        post: command(errors, post, &format!("{key}.post_hook")),
        deploy: command(errors, deploy, &format!("{key}.deploy_hook")),
    }
}

/// A bare address (`mailto:` taken off), or `None` after recording that `text` is not one.
fn email_address(errors: &mut Errors, text: &Spanned<String>, key: &str) -> Option<String> {
    let address = contact_uri(text.get_ref()).map(|uri| uri.trim_start_matches("mailto:").to_owned());
    if address.is_none() {
        errors.at(text, key, format!("'{}' is not an e-mail address", text.get_ref()));
    }
    address
}

pub(super) fn validate_notify(raw: Vec<Spanned<RawNotify>>, base: &Path, errors: &mut Errors) -> Vec<NotifyChannel> {
    let mut out = Vec::new();
    for (index, table) in raw.into_iter().enumerate() {
        let span = table.span();
        let table = table.into_inner();
        let key = |field: &str| format!("notify[{index}].{field}");
        let events = match &table.events {
            None => EventKind::default_set(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for (i, name) in list.get_ref().iter().enumerate() {
                    match EventKind::from_name(name.get_ref()) {
                        Some(kind) => {
                            set.insert(kind);
                        }
                        None => {
                            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                            errors.at(
                                name,
                                &format!("{}[{i}]", key("events")),
                                format!("'{}' is not an event; use some of {}", name.get_ref(), known.join(", ")),
                            );
                        }
                    }
                }
                set
            }
        };
        let repeat = duration_or(errors, &table.repeat, &key("repeat"), DEFAULT_REPEAT, false);
        let timeout = duration_or(errors, &table.timeout, &key("timeout"), DEFAULT_NOTIFY_TIMEOUT, false);

        // Keys that belong to another kind are refused, so a misplaced key is not silently ignored.
        let kind_name = table.kind.get_ref().as_str();
        let present: Vec<(&str, bool)> = vec![
            ("url", table.url.is_some()),
            ("to", table.to.is_some()),
            ("from", table.from.is_some()),
            ("smtp_host", table.smtp_host.is_some()),
            ("smtp_port", table.smtp_port.is_some()),
            ("starttls", table.starttls.is_some()),
            ("username", table.username.is_some()),
            ("password_file", table.password_file.is_some()),
            ("sendmail", table.sendmail.is_some()),
            ("ca_bundle", table.ca_bundle.is_some()),
            ("command", table.command.is_some()),
        ];
        let allowed: &[&str] = match kind_name {
            "webhook" => &["url"],
            "email" => &[
                "to",
                "from",
                "smtp_host",
                "smtp_port",
                "starttls",
                "username",
                "password_file",
                "sendmail",
                "ca_bundle",
            ],
            "exec" => &["command"],
            other => {
                errors.at(
                    &table.kind,
                    &key("kind"),
                    format!("'{other}' is not a kind of notification; use \"webhook\", \"email\" or \"exec\""),
                );
                continue;
            }
        };
        refuse_other_kinds_keys(errors, &span, &key, kind_name, &present, allowed);
        let missing = |errors: &mut Errors, field: &str, what: &str| {
            errors.push(Some(span.clone()), &key(field), format!("is missing; {what}"));
        };

        let (id, kind) = match kind_name {
            "webhook" => {
                let Some(url) = table.url else {
                    missing(errors, "url", "give the webhook's https:// (or http://) URL");
                    continue;
                };
                let text = url.get_ref();
                if !(text.starts_with("https://") || text.starts_with("http://")) || text.parse::<http::Uri>().is_err()
                {
                    errors.at(&url, &key("url"), format!("'{text}' is not an http:// or https:// URL"));
                }
                (format!("webhook {text}"), NotifyKind::Webhook { url: url.into_inner() })
            }
            "exec" => {
                let Some(command) = command(errors, table.command, &key("command")) else {
                    missing(errors, "command", "give the command to run");
                    continue;
                };
                (format!("exec {command}"), NotifyKind::Exec { command })
            }
            _ => {
                let to: Vec<String> = match &table.to {
                    None => {
                        missing(errors, "to", "list the addresses to write to");
                        Vec::new()
                    }
                    Some(list) => {
                        if list.get_ref().is_empty() {
                            errors.at(list, &key("to"), "is empty; list the addresses to write to");
                        }
                        list.get_ref()
                            .iter()
                            .enumerate()
                            .filter_map(|(i, a)| email_address(errors, a, &format!("{}[{i}]", key("to"))))
                            .collect()
                    }
                };
                let from = match &table.from {
                    Some(text) => email_address(errors, text, &key("from")).unwrap_or_default(),
                    None => "hapcert@localhost".to_owned(),
                };
                let transport = match table.smtp_host {
                    None => {
                        for field in ["smtp_port", "starttls", "username", "password_file", "ca_bundle"] {
                            if present.iter().any(|(f, set)| *f == field && *set) {
                                errors.push(
                                    Some(span.clone()),
                                    &key(field),
                                    "applies to SMTP only; set smtp_host too, or remove it to use sendmail",
                                );
                            }
                        }
                        EmailTransport::Sendmail {
                            command: command(errors, table.sendmail, &key("sendmail"))
                                .unwrap_or_else(|| "/usr/sbin/sendmail".to_owned()),
                        }
                    }
                    Some(host) => {
                        if table.sendmail.is_some() {
                            errors.at(&host, &key("sendmail"), "give smtp_host or sendmail, not both");
                        }
                        let port = match &table.smtp_port {
                            None => 587,
                            Some(p) => u16::try_from(*p.get_ref()).ok().filter(|p| *p > 0).unwrap_or_else(|| {
                                errors.at(p, &key("smtp_port"), "is not a port (1-65535)");
                                587
                            }),
                        };
                        if table.username.is_some() != table.password_file.is_some() {
                            missing(
                                errors,
                                if table.username.is_some() {
                                    "password_file"
                                } else {
                                    "username"
                                },
                                "SMTP authentication needs both username and password_file",
                            );
                        }
                        EmailTransport::Smtp {
                            host: host.into_inner(),
                            port,
                            starttls: table.starttls.unwrap_or(true),
                            username: table.username.map(Spanned::into_inner),
                            password_file: table
                                .password_file
                                .map(|p| located_path(errors, base, p, &key("password_file"))),
                            ca_bundle: table
                                .ca_bundle
                                .map(|p| located_path(errors, base, p, &key("ca_bundle"))),
                        }
                    }
                };
                (
                    format!("email {}", to.join(",")),
                    NotifyKind::Email(Box::new(EmailConfig { to, from, transport })),
                )
            }
        };
        out.push(NotifyChannel {
            id,
            kind,
            events,
            repeat,
            timeout,
        });
    }
    out
}
