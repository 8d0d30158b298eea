//! The command line: what each command does with the parts, once clap has read it ([`args`]). `main` only prints the
//! error and maps it to an exit code (`crate::error`).

pub mod args;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

pub use self::args::Cli;
use self::args::{Command, FleetCommand, ImportSource, NotifyCommand, WatchCommand};
use crate::control::commands::{self, ensure_configured};
use crate::control::{client, wire};
use crate::core::config::{self, Config};
use crate::edge::host::{check_certificate_files, host_check, load_config};
use crate::edge::store::StateDir;
use crate::edge::{acme, haproxy};
use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::output::{out, outln};
use crate::renew::RunOptions;
use crate::renew::challenge::preflight_command;

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
            commands::renew(&config, options, false, None).await?
        }
        Command::Renew {
            names,
            force,
            ignore_retry_after,
            dry_run,
        } => {
            let command = wire::Command::Renew {
                names,
                force,
                ignore_retry_after,
                dry_run,
            };
            return by_daemon_or_here(&path, staging, lock_timeout, command).await;
        }
        Command::Revoke { names, reason } => {
            let reason = clap::ValueEnum::to_possible_value(&reason).map(|v| v.get_name().to_owned());
            let command = wire::Command::Revoke {
                names,
                reason: reason.unwrap_or_default(),
            };
            return by_daemon_or_here(&path, staging, lock_timeout, command).await;
        }
        Command::Status { json, long } => {
            let colour = crate::logging::colour_on(std::io::stdout().is_terminal());
            let command = wire::Command::Status { json, long, colour };
            return by_daemon_or_here(&path, staging, lock_timeout, command).await;
        }
        Command::Preflight { names } => {
            let config = configured(false)?;
            ensure_configured(&config, &names)?;
            preflight_command(&config, &names, lock_timeout).await?
        }
        Command::HaproxyConfig { check: Some(files), .. } => {
            // With files named, a host without a config yet is checked against the example config's values.
            let config = match files.is_empty() {
                true => Some(configured(false)?),
                false => configured(false).inspect_err(|err| tracing::warn!("{err:#}")).ok(),
            };
            return crate::haproxy_check::command(config.as_ref(), &files);
        }
        Command::HaproxyConfig { bind, check: None } => {
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
            for (endpoint, answered, key) in crate::edge::probe::verify_endpoints(&config.certificates).await {
                match answered {
                    Ok(()) => outln!("  verify:      {endpoint} answers TLS"),
                    Err(silent) if silent.refused => outln!(
                        "  verify:      WARNING: {}; a run orders nothing until something answers TLS there",
                        silent.message(key)
                    ),
                    Err(silent) => outln!(
                        "  verify:      WARNING: {}; a run orders nothing until it does: {}",
                        silent.message(key),
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
        // With --file, the config only keeps from proposing what it already watches.
        Command::Watch(WatchCommand::Suggest { files }) => {
            let config = match files.is_empty() {
                true => Some(configured(false)?),
                false => configured(false)
                    .inspect_err(|err| tracing::warn!("{err:#}; every TLS server is proposed"))
                    .ok(),
            };
            crate::watch::suggest_command(config.as_ref(), &files)?;
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
    commands::staged(load_config(path)?, staging, deploys)
}

/// `renew`, `revoke` and `status`: by a running daemon when its control socket answers, else here. Either way the
/// same code runs, with the same stdout and exit code.
async fn by_daemon_or_here(
    path: &Path,
    staging: bool,
    lock_timeout: Duration,
    command: wire::Command,
) -> anyhow::Result<u8> {
    // A config that cannot be read names no socket, and fails here the same way it would anyway.
    let config = load_config(path)?;
    let socket = config.daemon.control_socket().to_owned();
    if let client::Asked::Done(code) = client::ask(&socket, path, staging, lock_timeout, command.clone()).await? {
        return Ok(code);
    }
    let done = commands::execute(config, &command, staging, lock_timeout, None).await?;
    Ok(if done { EXIT_OK } else { EXIT_FAILED })
}
