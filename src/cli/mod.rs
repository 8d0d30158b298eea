//! The command line: what each command does with the parts, once clap has read it ([`args`]). `main` only prints the
//! error and maps it to an exit code (`crate::error`).

pub mod args;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use time::OffsetDateTime;

pub use self::args::Cli;
use self::args::{Command, FleetCommand, ImportSource, NotifyCommand};
use crate::core::config::{self, Config};
use crate::edge::host::{check_certificate_files, host_check, load_config};
use crate::edge::store::StateDir;
use crate::edge::{acme, haproxy};
use crate::error::{EXIT_FAILED, EXIT_OK, UsageError};
use crate::output::{out, outln};
use crate::renew::challenge::preflight_command;
use crate::renew::{self, ItemResult, RunOptions, revoke};
use crate::status;

/// Runs the command; the result is the exit code (1: some certificate failed; for `check`, the plugin status).
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    let Cli {
        config: path,
        lock_timeout,
        staging,
        command,
        ..
    } = cli;
    let configured = |deploys: bool| configured(&path, staging, deploys);
    let done = match command {
        Command::Check { json } => {
            // A monitor must say UNKNOWN, on its first line, whatever stopped it; an unreadable config included.
            return Ok(match load_config(&path) {
                Ok(config) => crate::check::command(&config, json).await,
                Err(err) => crate::check::unknown(&err),
            });
        }
        // The config is the first thing it checks, so it reads the file itself.
        Command::Doctor { json, notify_test } => {
            let options = crate::doctor::Options {
                json,
                notify_test,
                staging,
            };
            return crate::doctor::command(&path, options).await;
        }
        Command::Daemon => return crate::daemon::run(&path, lock_timeout).await.map(|()| EXIT_OK),
        // The import writes a config rather than reading one.
        Command::Import {
            source: ImportSource::Certbot(args),
        } => crate::import::certbot_command(&args)?,
        Command::Run => {
            let options = RunOptions {
                lock_timeout,
                ..Default::default()
            };
            let config = configured(true)?;
            renew_command(&config, options, false).await?
        }
        Command::Renew {
            names,
            force,
            ignore_retry_after,
            dry_run,
        } => {
            let mut config = configured(!dry_run)?;
            ensure_configured(&config, &names)?;
            if dry_run && config.acme.directory == config::LETSENCRYPT {
                config.acme.directory = config::LETSENCRYPT_STAGING.to_owned();
                outln!(
                    "dry run: using Let's Encrypt's staging directory ({}) instead of production; nothing is deployed",
                    config.acme.directory
                );
            } else if dry_run {
                outln!("dry run: using {}; nothing is deployed", config.acme.directory);
            }
            let options = RunOptions {
                names,
                force,
                ignore_retry_after,
                dry_run,
                lock_timeout,
                progress: true,
            };
            renew_command(&config, options, true).await?
        }
        Command::Revoke { names, reason } => {
            let config = configured(false)?;
            ensure_configured(&config, &names)?;
            for revoked in revoke::revoke(&config, &names, reason, lock_timeout).await? {
                outln!(
                    "revoked   {}: serial {}; `hapcert run` (or `hapcert renew {} --force`) replaces it now",
                    revoked.name,
                    revoked.serial,
                    revoked.name
                );
            }
            true
        }
        Command::Status { json, long } => {
            let config = configured(false)?;
            let rows = status::collect(&config, OffsetDateTime::now_utc())?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else if long {
                out!("{}", status::render_long(&rows));
            } else {
                let colour = crate::logging::colour_on(std::io::stdout().is_terminal());
                out!("{}", status::render_table(&rows, colour));
            }
            // Which node ordered what, who serves it, who holds a lock: `fleet status --json` has it as JSON.
            if config.fleet.is_some() && !json {
                match crate::fleet::status::read(&config).await {
                    Ok(fleet) => out!("\n{}", fleet.render()),
                    Err(err) => outln!("\nfleet: {err:#}"),
                }
            }
            true
        }
        Command::Preflight { names } => {
            let config = configured(false)?;
            ensure_configured(&config, &names)?;
            preflight_command(&config, &names, lock_timeout).await?
        }
        Command::HaproxyConfig { bind } => {
            let config = configured(false)?;
            let thumbprint = match config.acme_needed_for_snippet() {
                true => {
                    let state = StateDir::create(&config.state.dir.value)?;
                    crate::fleet::account::use_fleets(&config, &state).await?;
                    acme::Acme::connect(&config.acme, &state).await?.thumbprint().to_owned()
                }
                false => String::new(),
            };
            out!(
                "{}",
                haproxy::challenge_snippet(config.challenge.mode, &bind, config.challenge.listen, &thumbprint)
            );
            true
        }
        Command::CheckConfig => {
            let config = configured(false)?;
            let owner = host_check(&config)?;
            check_certificate_files(&config, config.certificates.iter().map(|c| &c.file))?;
            let state = StateDir::at(&config.state.dir.value);
            let account = match acme::account_summary(&state, &config.acme.directory) {
                Ok(Some(a)) => a.url,
                Ok(None) => "none yet (made on the first order)".into(),
                Err(err) => format!("unreadable: {err:#}"),
            };
            out!("{}", config::summary(&config, owner, &account));
            if let Some(loaded) = haproxy::service::loaded_by_service()
                && let Some(warning) = haproxy::service::check_command_mismatch(&config.haproxy.check_command, &loaded)
            {
                outln!("  check:       WARNING: {warning}");
            }
            // What a run's preflight checks before ordering: reported, not failed on, since HAProxy may not run yet.
            for (endpoint, answered) in crate::edge::probe::verify_endpoints(&config.certificates).await {
                match answered {
                    Ok(()) => outln!("  verify:      {endpoint} answers TLS"),
                    Err(why) => outln!(
                        "  verify:      WARNING: nothing answers TLS on {endpoint} ({why}); a run orders nothing until it \
                         does: {}",
                        crate::edge::probe::VERIFY_FIX
                    ),
                }
            }
            true
        }
        // Needs no config: the key is made before there is a [fleet] to name it.
        Command::Fleet(FleetCommand::Keygen { out }) => {
            outln!("{}", crate::fleet::keygen(&out)?);
            true
        }
        Command::Fleet(FleetCommand::Status { json }) => {
            let status = crate::fleet::status::read(&configured(false)?).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                out!("{}", status.render());
            }
            true
        }
        Command::Fleet(FleetCommand::Init) => {
            outln!("{}", crate::fleet::init(&configured(false)?).await?);
            true
        }
        Command::Notify(NotifyCommand::Test) => crate::notify::send_test(&configured(false)?).await,
        Command::Account(command) => crate::account::command(&configured(false)?, command, lock_timeout).await?,
    };
    Ok(if done { EXIT_OK } else { EXIT_FAILED })
}

/// The config a command works with: `--staging` swaps in Let's Encrypt's staging directory, and is refused for a
/// command that `deploys`.
fn configured(path: &Path, staging: bool, deploys: bool) -> anyhow::Result<Config> {
    let mut config = load_config(path)?;
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
fn ensure_configured(config: &Config, names: &[String]) -> anyhow::Result<()> {
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

async fn renew_command(config: &Config, options: RunOptions, manual: bool) -> anyhow::Result<bool> {
    let owner = host_check(config)?;
    let fleet = crate::fleet::FleetMode::open(config, false).await?;
    let context = renew::RunContext {
        fleet: fleet.clone(),
        ..Default::default()
    };
    let report = renew::run_with(config, owner, &options, &context).await;
    if let Some(session) = fleet.as_ref().and_then(crate::fleet::FleetMode::session) {
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
