//! `renew`, `revoke` and `status` as one code path, whoever runs them: the command line by itself, or the daemon for
//! a client of its control socket. Only what the daemon lends differs: its responder, its fleet session and its stop
//! signal (a [`RunContext`]). Results go through `out!`, which the daemon points at the client.

use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;

use super::wire::Command;
use crate::core::config::{self, Config};
use crate::edge::acme::RevokeReason;
use crate::edge::host::host_check;
use crate::error::UsageError;
use crate::output::{out, outln};
use crate::renew::{self, ItemResult, RunContext, RunOptions, revoke};
use crate::status;

/// Runs `command` with `config` as loaded (before `--staging`). `lent` is what a daemon lends; `None` runs as a
/// one-shot command does (the side port opened for the orders, the fleet joined for this run). The result is whether
/// everything succeeded (exit code 0 or 1).
pub async fn execute(
    config: Config,
    command: &Command,
    staging: bool,
    lock_timeout: Duration,
    lent: Option<RunContext>,
) -> anyhow::Result<bool> {
    match command {
        Command::Renew {
            names,
            force,
            ignore_retry_after,
            dry_run,
        } => {
            let mut config = staged(config, staging, !dry_run)?;
            ensure_configured(&config, names)?;
            if *dry_run && config.acme.directory == config::LETSENCRYPT {
                config.acme.directory = config::LETSENCRYPT_STAGING.to_owned();
                outln!(
                    "dry run: using Let's Encrypt's staging directory ({}) instead of production; nothing is deployed",
                    config.acme.directory
                );
            } else if *dry_run {
                outln!("dry run: using {}; nothing is deployed", config.acme.directory);
            }
            let options = RunOptions {
                names: names.clone(),
                force: *force,
                ignore_retry_after: *ignore_retry_after,
                dry_run: *dry_run,
                lock_timeout,
                // A bar is for a person at this process's terminal: never the daemon's.
                progress: lent.is_none(),
            };
            renew(&config, options, true, lent).await
        }
        Command::Revoke { names, reason } => {
            let config = staged(config, staging, false)?;
            ensure_configured(&config, names)?;
            let reason = <RevokeReason as clap::ValueEnum>::from_str(reason, false)
                .map_err(|_| UsageError(format!("'{reason}' is not a revocation reason")))?;
            for revoked in revoke::revoke(&config, names, reason, lock_timeout).await? {
                outln!(
                    "revoked   {}: serial {}; `hapcert run` (or `hapcert renew {} --force`) replaces it now",
                    revoked.name,
                    revoked.serial,
                    revoked.name
                );
            }
            Ok(true)
        }
        Command::Status { json, long, colour } => {
            let config = staged(config, staging, false)?;
            let rows = status::collect(&config, OffsetDateTime::now_utc())?;
            if *json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                if *long {
                    out!("{}", status::render_long(&rows));
                } else {
                    out!("{}", status::render_table(&rows, *colour));
                }
                // What the last check watched besides: `check --json` and the metrics carry it as data.
                let watched = status::collect_watched(&config)?;
                out!(
                    "{}",
                    status::render_watched(&watched, OffsetDateTime::now_utc(), *colour)
                );
            }
            // Which node ordered what, who serves it, who holds a lock: `fleet status --json` has it as JSON.
            if config.fleet.is_some() && !json {
                match crate::fleet::status::read(&config).await {
                    Ok(fleet) => out!("\n{}", fleet.render()),
                    Err(err) => outln!("\nfleet: {err:#}"),
                }
            }
            Ok(true)
        }
    }
}

/// The config a command works with: `--staging` swaps in Let's Encrypt's staging directory, and is refused for a
/// command that `deploys`.
pub fn staged(mut config: Config, staging: bool, deploys: bool) -> anyhow::Result<Config> {
    if staging {
        if deploys {
            return Err(UsageError(
                "--staging would deploy untrusted staging certificates into HAProxy; add --dry-run (renew), or set \
                 acme.directory = \"letsencrypt-staging\" in the config if that is what you want"
                    .into(),
            )
            .into());
        }
        config.acme.directory = config::LETSENCRYPT_STAGING.to_owned();
        tracing::info!(directory = %config.acme.directory, "--staging: using Let's Encrypt's staging directory");
    }
    Ok(config)
}

/// Every name on the command line must be a certificate (or a group) of the config.
pub fn ensure_configured(config: &Config, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        if config.select(std::slice::from_ref(name)).next().is_none() {
            let known: Vec<&str> = config.certificates.iter().map(|c| c.group.as_str()).collect();
            let message = format!(
                "no certificate named '{name}' in {}; known: {}",
                config.path.display(),
                known.join(", ")
            );
            return Err(UsageError(message).into());
        }
    }
    Ok(())
}

/// A run and its report on stdout (`manual`: `renew`, which also says what was not due). With `lent`, the run uses
/// the daemon's responder and fleet session; without, it joins the fleet for itself.
pub async fn renew(
    config: &Config,
    options: RunOptions,
    manual: bool,
    lent: Option<RunContext>,
) -> anyhow::Result<bool> {
    let owner = host_check(config)?;
    let (context, own_fleet) = match lent {
        Some(context) => (context, None),
        None => {
            let fleet = crate::fleet::FleetMode::open(config, false).await?;
            let context = RunContext {
                fleet: fleet.clone(),
                ..Default::default()
            };
            (context, fleet)
        }
    };
    let report = renew::run_with(config, owner, &options, &context).await;
    if let Some(session) = own_fleet.as_ref().and_then(crate::fleet::FleetMode::session) {
        session.close().await;
    }
    let report = report.context("the run stopped")?;
    for adopted in &report.adopted {
        outln!(
            "adopted   {}: serial {} from the fleet (ordered by {}), served after verification",
            adopted.name,
            adopted.serial,
            adopted.ordered_by
        );
    }
    for item in &report.items {
        match &item.result {
            ItemResult::NotDue if manual => outln!("not due   {}: {}", item.name, item.decision.reason),
            ItemResult::NotDue => {}
            ItemResult::Renewed(facts, how) => outln!(
                "renewed   {}: serial {}, expires {}, served after {how} ({}){}",
                item.name,
                facts.serial,
                crate::core::time::format_time(facts.not_after),
                item.decision.reason,
                report
                    .deploy_hook_failure(&item.name)
                    .map(|failure| format!("; {failure}"))
                    .unwrap_or_default()
            ),
            ItemResult::DryRun(facts) => outln!(
                "dry run   {}: issued serial {}, expires {}; nothing deployed",
                item.name,
                facts.serial,
                crate::core::time::format_time(facts.not_after)
            ),
            ItemResult::Failed(failure) => outln!("FAILED    {}: {}", item.name, failure.message),
            ItemResult::Deferred { until, why } => outln!(
                "waiting   {}: due, but not tried before {}: {why}",
                item.name,
                crate::core::time::format_time(*until)
            ),
            ItemResult::Elsewhere { holder, .. } => outln!(
                "elsewhere {}: {holder} holds the fleet's lock on it and is renewing it; this node deploys what it \
                 publishes",
                item.name
            ),
        }
    }
    for failure in report.hook_failures.iter().filter(|f| f.certificate.is_none()) {
        outln!("FAILED    {failure}");
    }
    for (name, what) in &report.interrupted {
        outln!("FAILED    {name}: a deploy a crash interrupted: {what}");
    }
    Ok(!report.any_failed())
}
