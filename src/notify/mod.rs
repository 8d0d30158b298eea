//! Notifications: what happened (an [`Event`]), whether to tell anyone now (the [`Ledger`]: repeats rate-limited per
//! channel, certificate and condition; a cleared condition announced as resolved), and the channels that deliver it
//! (webhook, e-mail, exec). A channel that fails is logged; it never fails the run or check that raised the event.
//!
//! `ledger` is pure; `webhook`, `email` and `exec` each own one way out. This module joins them: plan under the lock of
//! `monitor.json`, deliver without it (a slow mail server must not hold up a `check`), then record under it again what
//! got through.

mod email;
mod exec;
mod ledger;
mod webhook;

use std::time::Duration;

use time::OffsetDateTime;

pub use crate::core::config::EventKind;
use crate::core::config::{Config, NotifyChannel, NotifyKind};
use crate::core::state::monitor::{Event, Ledger, Source};
use crate::edge::store::StateDir;
use crate::fanout;
use crate::output::outln;
use ledger::Delivery;
pub use ledger::Phase;

/// Which conditions a source looked at: a condition it looked at and did not find again has cleared.
#[derive(Debug, Clone)]
pub enum Scope {
    /// A run that acted on these certificates (renewal conditions).
    Run { certificates: Vec<String> },
    /// A check of these certificates and `[[watch]]` names (expiry and serving conditions, and the dead-man's
    /// switch); `inventory`: it read HAProxy's whole inventory (or was told to ignore it), so every unmanaged
    /// condition not seen again has cleared.
    Check {
        certificates: Vec<String>,
        watched: Vec<String>,
        inventory: bool,
    },
    /// `notify test`: clears nothing, rate-limited by nothing.
    Test,
}

/// One message as every channel renders it: the event, whether it begins or ends, where and when.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: Event,
    pub status: Phase,
    /// This host's name: a fleet's alerts say which load balancer speaks.
    pub host: String,
    pub at: OffsetDateTime,
}

impl Notice {
    pub fn new(event: Event, status: Phase, at: OffsetDateTime) -> Notice {
        Notice {
            event,
            status,
            host: host_name(),
            at,
        }
    }

    /// One line for a chat room or a subject: `[hapcert lb1] CRITICAL www: expires in 3.0 days`.
    pub fn text(&self) -> String {
        let label = match self.status {
            Phase::Firing => self.event.kind.name().to_uppercase(),
            Phase::Resolved => "RESOLVED".to_owned(),
        };
        let about = self.event.certificate.as_deref().unwrap_or("hapcert");
        let message = self.event.message.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("[hapcert {}] {label} {about}: {message}", self.host)
    }

    pub fn at_rfc3339(&self) -> String {
        crate::core::time::format_rfc3339(self.at)
    }
}

/// The short host name, as a prompt shows it.
fn host_name() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default();
    match name.split('.').next() {
        Some(short) if !short.is_empty() => short.to_owned(),
        _ => "unknown-host".to_owned(),
    }
}

/// How a channel is named in logs and on `notify test`'s output. A webhook's path is left out: Slack's and
/// Mattermost's incoming webhooks carry their secret there.
pub fn describe(channel: &NotifyChannel) -> String {
    match &channel.kind {
        NotifyKind::Webhook { url } => match url.parse::<http::Uri>() {
            Ok(uri) => {
                let host = uri.host().unwrap_or_default();
                let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
                let hidden = uri.path_and_query().is_some_and(|p| p.as_str() != "/")
                    || uri.authority().is_some_and(|a| a.as_str().contains('@'));
                let rest = if hidden { "/..." } else { "" };
                format!("webhook {}://{host}{port}{rest}", uri.scheme_str().unwrap_or("https"))
            }
            Err(_) => "webhook (unparsable URL)".to_owned(),
        },
        _ => channel.id.clone(),
    }
}

/// Sends one notice through one channel; the error says what went wrong, in one line.
async fn deliver(channel: &NotifyChannel, notice: &Notice) -> Result<(), String> {
    let attempt = async {
        match &channel.kind {
            NotifyKind::Webhook { url } => webhook::send(url, notice, channel.timeout).await,
            NotifyKind::Email(email) => email::send(email, notice, channel.timeout).await,
            NotifyKind::Exec { command } => exec::send(command, notice, channel.timeout).await,
        }
    };
    // Each channel keeps to its timeout on its own; this is the backstop for whatever it does not cover.
    match tokio::time::timeout(channel.timeout + Duration::from_secs(1), attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(channel.timeout)
        )),
    }
}

/// Sends each (channel, notice) at once, and gives back each outcome in the order given.
async fn deliver_all<'a>(jobs: impl IntoIterator<Item = (&'a NotifyChannel, &'a Notice)>) -> Vec<Result<(), String>> {
    let jobs: Vec<(NotifyChannel, Notice)> = jobs.into_iter().map(|(c, n)| (c.clone(), n.clone())).collect();
    let outcomes = fanout::bounded(jobs.len(), "notification", jobs, |(channel, notice)| async move {
        deliver(&channel, &notice).await
    })
    .await;
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err("the delivery task failed".to_owned())))
        .collect()
}

/// Delivers what `observed` calls for, through every configured channel, and remembers it. Never fails: problems are
/// logged.
pub async fn notify(config: &Config, store: &StateDir, observed: Vec<Event>, scope: Scope, now: OffsetDateTime) {
    if config.notify.is_empty() {
        return;
    }
    let planned = {
        let (store, channels, observed, scope) =
            (store.clone(), config.notify.clone(), observed.clone(), scope.clone());
        // The lock is waited for by polling with sleeps, and the files are read and written synchronously: off the
        // async workers, so a daemon's responder and probes go on meanwhile.
        tokio::task::spawn_blocking(move || plan(&store, &channels, observed, &scope, now)).await
    };
    let (deliveries, remembered) = match planned.map_err(anyhow::Error::from).and_then(|r| r) {
        Ok(deliveries) => (deliveries, true),
        Err(err) => {
            // Silence is the failure this module exists to prevent: without the ledger, every observed problem is
            // told as new (no repeat limit, no resolution) until the ledger is usable again.
            tracing::error!("the notification ledger cannot be used, so repeats are not held back: {err:#}");
            let (_, deliveries) = Ledger::default().plan(&config.notify, observed, &scope, now);
            (deliveries, false)
        }
    };
    if deliveries.is_empty() {
        return;
    }

    // Plan names only configured channels, so every delivery finds its own.
    let jobs: Vec<(Delivery, &NotifyChannel, Notice)> = deliveries
        .into_iter()
        .filter_map(|delivery| {
            let channel = config.notify.iter().find(|c| c.id == delivery.channel)?;
            let notice = Notice::new(delivery.event.clone(), delivery.status, now);
            Some((delivery, channel, notice))
        })
        .collect();
    let outcomes = deliver_all(jobs.iter().map(|(_, c, n)| (*c, n))).await;

    let mut delivered = Vec::new();
    for ((delivery, channel, notice), outcome) in jobs.into_iter().zip(outcomes) {
        let what = format!("{} {}", notice.event.kind, notice.status.name());
        let certificate = notice.event.certificate.as_deref().unwrap_or("-");
        match outcome {
            Ok(()) => {
                tracing::info!(channel = %describe(channel), certificate, "notified: {what}");
                delivered.push(delivery);
            }
            Err(err) => tracing::warn!(
                channel = %describe(channel),
                certificate,
                "notification failed ({what}), to be tried again next time: {err}"
            ),
        }
    }
    if !remembered {
        return;
    }
    let store = store.clone();
    let recorded = tokio::task::spawn_blocking(move || record(&store, &delivered, now)).await;
    if let Err(err) = recorded.map_err(anyhow::Error::from).and_then(|r| r) {
        tracing::error!("the notifications that went out could not be remembered, and may be repeated: {err:#}");
    }
}

/// Takes `observed` into the ledger and says what to deliver; the ledger is saved before anything is sent.
fn plan(
    store: &StateDir,
    channels: &[NotifyChannel],
    observed: Vec<Event>,
    scope: &Scope,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Delivery>> {
    let _lock = store.monitor_lock()?;
    let mut monitor = store.load_monitor()?;
    let (ledger, deliveries) = monitor.notifications.plan(channels, observed, scope, now);
    if ledger != monitor.notifications {
        monitor.notifications = ledger;
        store.save_monitor(&monitor)?;
    }
    Ok(deliveries)
}

/// Remembers the deliveries that got through. The ledger is read again: another hapcert process may have changed it
/// while they were under way.
fn record(store: &StateDir, delivered: &[Delivery], now: OffsetDateTime) -> anyhow::Result<()> {
    if delivered.is_empty() {
        return Ok(());
    }
    let _lock = store.monitor_lock()?;
    let mut monitor = store.load_monitor()?;
    for delivery in delivered {
        monitor.notifications.record(delivery, now);
    }
    store.save_monitor(&monitor)
}

/// `hapcert notify test`: a `test` event through every channel, each result printed; `false` if any failed, or if
/// there is no channel to test.
pub async fn send_test(config: &Config) -> bool {
    if config.notify.is_empty() {
        outln!(
            "no [[notify]] channel is configured in {}; add one (kind = \"webhook\", \"email\" or \"exec\") to be told",
            config.path.display()
        );
        return false;
    }
    let mut all_ok = true;
    for (channel, outcome) in test_each(config, "`hapcert notify test`").await {
        match outcome {
            Ok(()) => outln!("ok     {channel}"),
            Err(err) => {
                outln!("FAILED {channel}: {err}");
                all_ok = false;
            }
        }
    }
    all_ok
}

/// A `test` event through every configured channel, each described, with what its delivery gave: for `notify test`
/// and `doctor --notify-test` (the command, `from`, is named in the message).
pub async fn test_each(config: &Config, from: &str) -> Vec<(String, Result<(), String>)> {
    let event = Event {
        kind: EventKind::Test,
        certificate: None,
        source: Source::Managed,
        names: Vec::new(),
        served_serial: None,
        expected_serial: None,
        days_left: None,
        message: format!("a test notification from {from}; this channel works"),
    };
    let notice = Notice::new(event, Phase::Firing, OffsetDateTime::now_utc());
    let outcomes = deliver_all(config.notify.iter().map(|channel| (channel, &notice))).await;
    config
        .notify
        .iter()
        .zip(outcomes)
        .map(|(channel, outcome)| (describe(channel), outcome))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;

    fn notice(status: Phase, message: &str) -> Notice {
        Notice {
            event: Event {
                kind: EventKind::Critical,
                certificate: Some("www".to_owned()),
                source: Source::Managed,
                names: vec!["www.example.com".to_owned()],
                served_serial: None,
                expected_serial: None,
                days_left: Some(3.0),
                message: message.to_owned(),
            },
            status,
            host: "lb1".to_owned(),
            at: datetime!(2025-06-01 12:00 UTC),
        }
    }

    #[test]
    fn the_text_is_one_line_that_says_where_what_and_which() {
        let firing = notice(Phase::Firing, "expires in 3.0 days\n(renewals keep failing)");
        assert_eq!(
            firing.text(),
            "[hapcert lb1] CRITICAL www: expires in 3.0 days (renewals keep failing)"
        );
        assert_eq!(
            notice(Phase::Resolved, "critical has cleared").text(),
            "[hapcert lb1] RESOLVED www: critical has cleared"
        );
        assert_eq!(firing.at_rfc3339(), "2025-06-01T12:00:00Z");
    }

    fn channel(kind: NotifyKind, id: &str) -> NotifyChannel {
        NotifyChannel {
            id: id.to_owned(),
            kind,
            events: BTreeSet::new(),
            repeat: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_webhook_is_described_without_its_secret_path() {
        let slack = "https://hooks.slack.com/services/T000/B000/XXXXXXXX";
        let described = describe(&channel(
            NotifyKind::Webhook { url: slack.to_owned() },
            &format!("webhook {slack}"),
        ));
        assert_eq!(described, "webhook https://hooks.slack.com/...");
        let bare = "http://127.0.0.1:8080";
        assert_eq!(
            describe(&channel(
                NotifyKind::Webhook { url: bare.to_owned() },
                &format!("webhook {bare}")
            )),
            "webhook http://127.0.0.1:8080"
        );
        let with_password = "https://user:pw@example.com";
        assert_eq!(
            describe(&channel(
                NotifyKind::Webhook {
                    url: with_password.to_owned()
                },
                "x"
            )),
            "webhook https://example.com/..."
        );
        let exec = channel(
            NotifyKind::Exec {
                command: "page-me".to_owned(),
            },
            "exec page-me",
        );
        assert_eq!(describe(&exec), "exec page-me");
    }

    #[tokio::test]
    async fn each_outcome_comes_back_in_the_order_given() {
        let run = |command: &str| {
            (
                channel(
                    NotifyKind::Exec {
                        command: command.to_owned(),
                    },
                    command,
                ),
                notice(Phase::Firing, "x"),
            )
        };
        let jobs = [run("sleep 0.2; exit 3"), run("true"), run("exit 4")];
        let outcomes = deliver_all(jobs.iter().map(|(c, n)| (c, n))).await;
        assert_eq!(
            outcomes,
            [
                Err("exited with status 3".to_owned()),
                Ok(()),
                Err("exited with status 4".to_owned())
            ]
        );
    }
}
