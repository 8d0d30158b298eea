//! `hapcert doctor`: is this host ready, and what to fix first. A composition of what the other commands already check
//! (`check-config`'s host check, the verify endpoints, the preflight, the CA's directory, the account file), each asked
//! through its own edge, plus the few things only a new host gets wrong: HAProxy's sockets, the clock, the schedule.
//! The verdicts, their order and the printing are in [`report`], without I/O; the network checks in [`reach`].

mod reach;
mod report;

use std::path::Path;

use time::OffsetDateTime;

use report::{Check, Finding, Report};

use crate::core::config::{self, Config, ConfigErrors};
use crate::edge::acme::{self, Acme, DirectoryFacts};
use crate::edge::host::{check_certificate_files, host_check, load_config, writable_dir};
use crate::edge::store::StateDir;
use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::output::{out, outln};

/// The example config a new host starts from, where the package puts it.
const EXAMPLE_CONFIG: &str = "/usr/share/doc/hapcert/examples/hapcert.toml";

pub struct Options {
    pub json: bool,
    /// Send a test notification through every channel.
    pub notify_test: bool,
    /// `--staging`: Let's Encrypt's staging directory instead of the config's.
    pub staging: bool,
}

/// Runs every check and prints the report; the exit code is 0 when no check FAILed, 1 otherwise.
pub async fn command(path: &Path, options: Options) -> anyhow::Result<u8> {
    let report = examine(path, &options).await;
    if options.json {
        outln!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        out!("{}", report.render());
    }
    Ok(if report.ready() { EXIT_OK } else { EXIT_FAILED })
}

/// What the checks learn that a later one uses.
#[derive(Default)]
struct Learned {
    config: Option<Config>,
    /// The CA's directory and the time it was read, for the clock.
    directory: Option<(DirectoryFacts, OffsetDateTime)>,
}

async fn examine(path: &Path, options: &Options) -> Report {
    let mut report = Report::default();
    let mut learned = Learned::default();
    for check in Check::ALL {
        if let Some(why) = report.blocked(check) {
            report.add([Finding::skip(check, why)]);
            continue;
        }
        let findings = match (check, &learned.config) {
            (Check::Config, _) => {
                let (finding, config) = read_config(path, options.staging);
                learned.config = config;
                vec![finding]
            }
            (_, None) => unreachable!("every other check needs the config, and is blocked without it"),
            (Check::Files, Some(config)) => files(config),
            (Check::Haproxy, Some(config)) => reach::haproxy(config).await,
            (Check::RuntimeApi, Some(config)) => reach::runtime_api(config).await,
            (Check::Verify, Some(config)) => reach::verify(config).await,
            (Check::Challenge, Some(config)) => reach::challenge(config).await,
            (Check::Ca, Some(config)) => {
                let (findings, directory) = reach::ca(config).await;
                learned.directory = directory;
                findings
            }
            (Check::Clock, Some(_)) => match &learned.directory {
                Some((facts, read_at)) => vec![report::judge_clock(facts.date, *read_at)],
                None => vec![Finding::skip(
                    Check::Clock,
                    "not checked: the CA's directory was not read",
                )],
            },
            (Check::Account, Some(config)) => vec![account(config)],
            (Check::Schedule, Some(_)) => vec![schedule().await],
            (Check::Metrics, Some(config)) => vec![metrics(config)],
            (Check::Notify, Some(config)) => notify(config, options.notify_test).await,
        };
        report.add(findings);
    }
    report
}

fn read_config(path: &Path, staging: bool) -> (Finding, Option<Config>) {
    if !path.exists() {
        let fix = format!(
            "copy the example ({EXAMPLE_CONFIG}, or deploy/hapcert.toml in the source) to {} and edit it, or pass \
             --config PATH",
            path.display()
        );
        return (
            Finding::fail(Check::Config, format!("no config file at {}", path.display()), fix),
            None,
        );
    }
    match load_config(path) {
        Ok(mut config) => {
            if staging {
                config.acme.directory = config::LETSENCRYPT_STAGING.to_owned();
            }
            let subject = format!(
                "{}: {} certificate(s), {} challenge, CA {}",
                path.display(),
                config.certificates.len(),
                match config.challenge.mode {
                    config::ChallengeMode::SidePort => "side-port",
                    config::ChallengeMode::Stateless => "stateless",
                },
                config.acme.directory
            );
            (Finding::ok(Check::Config, subject), Some(config))
        }
        Err(err) => (
            Finding::fail(
                Check::Config,
                format!("{err:#}"),
                "correct the file where each message points (`hapcert check-config` says the same)",
            ),
            None,
        ),
    }
}

/// The directories and files the config names: `check-config`'s host check and its look at the certificates' files.
fn files(config: &Config) -> Vec<Finding> {
    let mut problems = Vec::new();
    if let Err(ConfigErrors(errors)) = host_check(config) {
        problems.extend(errors);
    }
    if let Err(ConfigErrors(errors)) = check_certificate_files(config, config.certificates.iter().map(|c| &c.file)) {
        problems.extend(errors);
    }
    if problems.is_empty() {
        return vec![Finding::ok(
            Check::Files,
            format!(
                "cert_dir {} can be written; state dir {}",
                config.haproxy.cert_dir.value.display(),
                config.state.dir.value.display()
            ),
        )];
    }
    problems
        .into_iter()
        .map(|problem| {
            // The host check's messages say what is wrong, then, after "; ", what to do.
            let (what, fix) = split_fix(&problem.message, "correct the config or the host");
            Finding::fail(Check::Files, format!("{}: {what}", problem.key), fix)
        })
        .collect()
}

/// A message of the form "what is wrong; what to do", split; `otherwise` is the fix of a message with no second part.
fn split_fix(message: &str, otherwise: &str) -> (String, String) {
    match message.split_once("; ") {
        Some((what, fix)) => (what.to_owned(), fix.to_owned()),
        None => (message.to_owned(), otherwise.to_owned()),
    }
}

fn account(config: &Config) -> Finding {
    if config.fleet.is_some() {
        return Finding::ok(
            Check::Account,
            "the fleet's account, kept in etcd (`hapcert fleet status` shows the fleet)",
        );
    }
    let state = StateDir::at(&config.state.dir.value);
    match acme::account_summary(&state, &config.acme.directory) {
        Ok(Some(account)) => Finding::ok(Check::Account, format!("{} (created {})", account.url, account.created)),
        Ok(None) => Finding::ok(
            Check::Account,
            format!("none yet for {}; the first order makes one", config.acme.directory),
        ),
        Err(err) => Finding::fail(
            Check::Account,
            format!("{err:#}"),
            "restore the account file from a backup; without it, the next order makes a new account",
        ),
    }
}

async fn schedule() -> Finding {
    match crate::edge::units::is_enabled(&["hapcert.timer", "hapcert-daemon.service"]).await {
        Some(units) => report::judge_schedule(&units),
        None => Finding::skip(
            Check::Schedule,
            "not checked: no systemctl on this host; run `hapcert run` twice a day some other way (deploy/hapcert.cron)",
        ),
    }
}

fn metrics(config: &Config) -> Finding {
    let Some(textfile) = &config.metrics.textfile else {
        return Finding::ok(Check::Metrics, "no [metrics] textfile configured");
    };
    let dir = textfile.value.parent().unwrap_or(Path::new("/"));
    match writable_dir(dir) {
        Ok(()) => Finding::ok(Check::Metrics, format!("{} can be written", textfile.value.display())),
        Err(problem) => {
            let (what, fix) = split_fix(&problem, "let hapcert's user write it");
            Finding::fail(
                Check::Metrics,
                format!("metrics.textfile: {what}"),
                format!("{fix} (node_exporter's --collector.textfile.directory)"),
            )
        }
    }
}

async fn notify(config: &Config, send: bool) -> Vec<Finding> {
    if config.notify.is_empty() {
        return vec![Finding::ok(
            Check::Notify,
            "no [[notify]] channel: failures are seen through `hapcert check`, the metrics or the logs only",
        )];
    }
    if !send {
        return config
            .notify
            .iter()
            .map(|channel| {
                Finding::ok(
                    Check::Notify,
                    format!(
                        "{}: configured; nothing sent (--notify-test sends a test)",
                        crate::notify::describe(channel)
                    ),
                )
            })
            .collect();
    }
    crate::notify::test_each(config, "`hapcert doctor --notify-test`")
        .await
        .into_iter()
        .map(|(channel, outcome)| match outcome {
            Ok(()) => Finding::ok(Check::Notify, format!("{channel}: a test was delivered")),
            Err(err) => Finding::fail(
                Check::Notify,
                format!("{channel}: the test was not delivered: {err}"),
                "correct the channel's [[notify]] table",
            ),
        })
        .collect()
}

/// The account's session, for what needs its thumbprint (stateless mode's preflight). Never makes an account.
async fn existing_account(config: &Config) -> anyhow::Result<Option<Acme>> {
    let state = StateDir::at(&config.state.dir.value);
    match acme::account_summary(&state, &config.acme.directory)? {
        Some(_) => Ok(Some(Acme::existing(&config.acme, &state).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_splits_into_what_and_fix() {
        assert_eq!(
            split_fix("directory /x does not exist; create it", "other"),
            ("directory /x does not exist".to_owned(), "create it".to_owned())
        );
        assert_eq!(
            split_fix("no fix here", "other"),
            ("no fix here".to_owned(), "other".to_owned())
        );
    }
}
