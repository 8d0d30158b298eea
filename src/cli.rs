//! The command line: parsing (clap), and what each command does with the parts. `main` only maps the result to an exit
//! code.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use time::OffsetDateTime;

use crate::core::config::{self, Config, DEFAULT_CONFIG_PATH};
use crate::edge::store::StateDir;
use crate::edge::{acme, haproxy};
use crate::logging::LogFormat;
use crate::renew::challenge::ChallengeSide;
use crate::renew::revoke;
use crate::renew::{self, ItemResult, RunOptions};
use crate::status;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (nothing due counts as success)
  1  at least one certificate failed, or another run held the lock too long
  2  usage or configuration error (the message names the file, line and key)
`hapcert check` follows the monitoring-plugin convention instead:
  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN";

#[derive(Debug, Parser)]
#[command(name = "hapcert", version, about = "Certificate agent for HAProxy: ACME over HTTP-01 on a side port, atomic PEM deploy, checked reload", after_help = EXIT_CODES)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "HAPCERT_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level or filter (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "HAPCERT_LOG", default_value = "info")]
    pub log_level: String,
    /// How long to wait for another run to finish before giving up.
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,
    /// Use Let's Encrypt's staging directory for this one command, whatever the config says.
    #[arg(long, global = true)]
    pub staging: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Renew every certificate that is due. For the daily timer: prints nothing on stdout when nothing is due.
    Run,
    /// Renew now: the named certificates, or all; only what is due unless --force.
    Renew {
        /// Certificate names from the config; none means all.
        names: Vec<String>,
        /// Renew even when not due.
        #[arg(long)]
        force: bool,
        /// With --force: order even while the CA asked to wait (its Retry-After, or the failed-validation budget).
        #[arg(long, requires = "force")]
        ignore_retry_after: bool,
        /// Do the whole ACME flow and verify the result, but deploy nothing. Uses Let's Encrypt's staging directory
        /// when the config names Let's Encrypt's production one.
        #[arg(long)]
        dry_run: bool,
    },
    /// Revoke the deployed certificate at the CA; the next run replaces it with a new one (and a new key).
    Revoke {
        /// Certificate names from the config.
        #[arg(required = true)]
        names: Vec<String>,
        /// The reason given to the CA.
        #[arg(long, value_enum, default_value = "unspecified")]
        reason: revoke::Reason,
    },
    /// Show each certificate, when it expires, what happens next and why, and the last result.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// One block per certificate with the whole schedule (the CA's window, next check) instead of the table.
        #[arg(long, conflicts_with = "json")]
        long: bool,
    },
    /// Validate the config file (and the directories, users and files it names), then print a summary.
    CheckConfig,
    /// Monitor: the files on disk and what every endpoint serves, for Nagios, Icinga or Zabbix. One summary line
    /// first; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check {
        /// The full report as JSON, after the summary line.
        #[arg(long)]
        json: bool,
    },
    /// Notifications.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Run for good: renew when due, probe the endpoints, serve /metrics and /healthz. SIGHUP re-reads the config,
    /// SIGTERM stops.
    Daemon,
    /// Fetch a test token through the public path (port 80) for every name, as the CA will. Runs before every order too.
    Preflight {
        /// Certificate names from the config; none means all.
        names: Vec<String>,
    },
    /// Print the HAProxy lines the challenge mode needs: the forwarding to the side port, or the stateless answer.
    HaproxyConfig {
        /// The plain-HTTP bind of the printed frontend.
        #[arg(long, default_value = ":80")]
        bind: String,
    },
    /// The ACME account.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Take over another ACME client's certificates: print a config for them and adopt the current ones.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test event through every configured channel; exit 1 if any channel fails.
    Test,
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// certbot's /etc/letsencrypt: one [[certificate]] per lineage; hooks and the account are reported, not carried over.
    Certbot(crate::import::CertbotImport),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print the account URL, contacts and directory.
    Show,
    /// Replace the account key. The old key file is kept until the CA confirms the new key.
    Rollover,
    /// Deactivate the account at the CA, for good. The next run makes a new account.
    Deactivate {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Replace the account's contact addresses at the CA (none given removes them).
    Update {
        /// An e-mail address; repeat for several.
        #[arg(long = "contact")]
        contacts: Vec<String>,
    },
}

/// An error that is the user's to fix in how hapcert was called or configured: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Runs the command; the result is the exit code (1: some certificate failed; for `check`, the plugin status).
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    if let Command::Check { json } = cli.command {
        // A monitor must say UNKNOWN, on its first line, whatever stopped it; an unreadable config included.
        return Ok(match load_config(&cli.config) {
            Ok(config) => crate::check::command(&config, json).await,
            Err(err) => crate::check::unknown(&err),
        });
    }
    if let Command::Daemon = cli.command {
        return crate::daemon::run(&cli.config, cli.lock_timeout).await.map(|()| 0);
    }
    execute_once(cli).await.map(|ok| if ok { 0 } else { 1 })
}

async fn execute_once(cli: Cli) -> anyhow::Result<bool> {
    // The import writes a config rather than reading one.
    if let Command::Import {
        source: ImportSource::Certbot(args),
    } = &cli.command
    {
        return crate::import::certbot_command(args);
    }
    let mut config = load_config(&cli.config)?;
    if cli.staging {
        if let Command::Run | Command::Renew { dry_run: false, .. } = cli.command {
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
    match cli.command {
        Command::Run => {
            renew_command(
                &config,
                RunOptions {
                    lock_timeout: cli.lock_timeout,
                    ..Default::default()
                },
                false,
            )
            .await
        }
        Command::Renew {
            names,
            force,
            ignore_retry_after,
            dry_run,
        } => {
            check_names(&config, &names)?;
            if dry_run && config.acme.directory == config::LETSENCRYPT {
                config.acme.directory = config::LETSENCRYPT_STAGING.to_owned();
                println!(
                    "dry run: using Let's Encrypt's staging directory ({}) instead of production; nothing is deployed",
                    config.acme.directory
                );
            } else if dry_run {
                println!("dry run: using {}; nothing is deployed", config.acme.directory);
            }
            renew_command(
                &config,
                RunOptions {
                    names,
                    force,
                    ignore_retry_after,
                    dry_run,
                    lock_timeout: cli.lock_timeout,
                    progress: true,
                },
                true,
            )
            .await
        }
        Command::Revoke { names, reason } => {
            check_names(&config, &names)?;
            for revoked in revoke::revoke(&config, &names, reason, cli.lock_timeout).await? {
                println!(
                    "revoked   {}: serial {}; `hapcert run` (or `hapcert renew {} --force`) replaces it now",
                    revoked.name, revoked.serial, revoked.name
                );
            }
            Ok(true)
        }
        Command::Status { json, long } => {
            let rows = status::collect(&config, OffsetDateTime::now_utc())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if long {
                print!("{}", status::render_long(&rows));
            } else {
                let colour = crate::logging::colour_on(std::io::stdout().is_terminal());
                print!("{}", status::render_table(&rows, colour));
            }
            Ok(true)
        }
        Command::Preflight { names } => {
            check_names(&config, &names)?;
            preflight_command(&config, &names, cli.lock_timeout).await
        }
        Command::HaproxyConfig { bind } => {
            let thumbprint = match config.acme_needed_for_snippet() {
                true => {
                    let state = StateDir::create(&config.state.dir.value)?;
                    acme::Acme::connect(&config.acme, &state).await?.thumbprint().to_owned()
                }
                false => String::new(),
            };
            print!(
                "{}",
                haproxy::challenge_snippet(config.challenge.mode, &bind, config.challenge.listen, &thumbprint)
            );
            Ok(true)
        }
        Command::CheckConfig => {
            let owner = crate::edge::host::host_check(&config)?;
            print!("{}", summary(&config, owner));
            Ok(true)
        }
        Command::Import { .. } | Command::Check { .. } | Command::Daemon => {
            unreachable!("handled before the config is read")
        }
        Command::Notify(NotifyCommand::Test) => Ok(crate::notify::send_test(&config).await),
        Command::Account(AccountCommand::Show) => {
            let state = StateDir::at(&config.state.dir.value);
            match acme::account_summary(&state, &config.acme.directory)? {
                Some(account) => {
                    println!("account:   {}", account.url);
                    println!("directory: {}", account.directory);
                    println!(
                        "contact:   {}",
                        if account.contact.is_empty() {
                            "-".into()
                        } else {
                            account.contact.join(", ")
                        }
                    );
                    println!("created:   {}", account.created);
                    println!("key file:  {}", state.account_path(&config.acme.directory).display());
                }
                None => println!(
                    "no account yet for {}; the first run that orders a certificate creates one",
                    config.acme.directory
                ),
            }
            Ok(true)
        }
        Command::Account(command) => account_command(&config, command, cli.lock_timeout).await,
    }
}

async fn account_command(config: &Config, command: AccountCommand, lock_timeout: Duration) -> anyhow::Result<bool> {
    let state = StateDir::create(&config.state.dir.value)?;
    let _lock = state.lock(lock_timeout)?;
    let acme = acme::Acme::existing(&config.acme, &state).await?;
    match command {
        AccountCommand::Show => unreachable!("handled without the CA"),
        AccountCommand::Rollover => {
            let url = acme.roll_over_key(&state).await?;
            println!("rolled over: account {url} now signs with a new key (confirmed by the CA)");
            Ok(true)
        }
        AccountCommand::Update { contacts } => {
            let contacts = contacts
                .iter()
                .map(|c| config::contact_uri(c).ok_or_else(|| UsageError(format!("'{c}' is not an e-mail address"))))
                .collect::<Result<Vec<_>, _>>()?;
            acme.update_contacts(&state, &contacts).await?;
            println!(
                "updated:  account {} contacts are now {}",
                acme.account_url(),
                if contacts.is_empty() {
                    "none".to_owned()
                } else {
                    contacts.join(", ")
                }
            );
            Ok(true)
        }
        AccountCommand::Deactivate { yes } => {
            if !yes && !confirm(&format!("Deactivate account {} for good? [y/N] ", acme.account_url()))? {
                println!("not deactivated");
                return Ok(false);
            }
            let url = acme.account_url().to_owned();
            match acme.deactivate(&state).await? {
                acme::AccountStanding::Refused(answer) => {
                    println!("deactivated: account {url}; the CA now refuses its key ({answer})");
                    Ok(true)
                }
                acme::AccountStanding::Valid => {
                    println!("NOT deactivated: the CA still accepts account {url}");
                    Ok(false)
                }
            }
        }
    }
}

/// Asks on the terminal; without one, there is nobody to ask, and the answer is a usage error.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    if !std::io::stdin().is_terminal() {
        return Err(UsageError("refusing to deactivate without confirmation; pass --yes".into()).into());
    }
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn check_names(config: &Config, names: &[String]) -> anyhow::Result<()> {
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

async fn preflight_command(config: &Config, names: &[String], lock_timeout: Duration) -> anyhow::Result<bool> {
    crate::edge::host::host_check(config)?;
    let state = StateDir::create(&config.state.dir.value)?;
    let _lock = state.lock(lock_timeout)?;
    let acme = acme::Acme::connect(&config.acme, &state).await?;
    let side = ChallengeSide::start(config, acme.thumbprint()).await?;
    let mut all_ok = true;
    for spec in config.select(names) {
        match side.preflight(config, spec).await {
            Ok(()) => println!(
                "ok        {}: {}",
                spec.name,
                spec.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Err(err) => {
                all_ok = false;
                println!("FAILED    {}: {err}", spec.name);
            }
        }
    }
    side.stop().await;
    Ok(all_ok)
}

/// Reads and validates the config file; shared by every command and the daemon's SIGHUP.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        UsageError(format!(
            "cannot read the config file {}: {err}; pass --config PATH or set HAPCERT_CONFIG",
            path.display()
        ))
    })?;
    Ok(Config::parse(&text, path)?)
}

async fn renew_command(config: &Config, options: RunOptions, manual: bool) -> anyhow::Result<bool> {
    let owner = crate::edge::host::host_check(config)?;
    let report = renew::run(config, owner, &options).await.context("the run stopped")?;
    for item in &report.items {
        match &item.result {
            ItemResult::NotDue if manual => println!("not due   {}: {}", item.name, item.decision.reason),
            ItemResult::NotDue => {}
            ItemResult::Renewed(facts, how) => println!(
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
            ItemResult::DryRun(facts) => println!(
                "dry run   {}: issued serial {}, expires {}; nothing deployed",
                item.name,
                facts.serial,
                crate::core::time::format_time(facts.not_after)
            ),
            ItemResult::Failed(failure) => println!("FAILED    {}: {}", item.name, failure.message),
            ItemResult::Deferred { until, why } => println!(
                "waiting   {}: due, but not tried before {}: {why}",
                item.name,
                crate::core::time::format_time(*until)
            ),
        }
    }
    for failure in report.hook_failures.iter().filter(|f| f.certificate.is_none()) {
        println!("FAILED    {failure}");
    }
    Ok(!report.any_failed())
}

fn summary(config: &Config, owner: config::FileOwner) -> String {
    let state = StateDir::at(&config.state.dir.value);
    let account = match acme::account_summary(&state, &config.acme.directory) {
        Ok(Some(a)) => a.url,
        Ok(None) => "none yet (made on the first order)".into(),
        Err(err) => format!("unreadable: {err:#}"),
    };
    let id = |v: Option<u32>| v.map_or("unchanged".to_owned(), |n| n.to_string());
    let mut out = format!(
        "{path}: OK\n  CA:          {dir}\n  account:     {account}\n  contact:     {contact}\n  challenge:   HTTP-01 on {listen}\n  cert dir:    {cert_dir} (mode {mode:04o}, uid {uid}, gid {gid})\n  check:       {check}\n  reload:      {reload}\n  state:       {state}\n  certificates ({n}):\n",
        path = config.path.display(),
        dir = config.acme.directory,
        contact = if config.acme.contact.is_empty() {
            "-".into()
        } else {
            config.acme.contact.join(", ")
        },
        listen = config.challenge.listen,
        cert_dir = config.haproxy.cert_dir.value.display(),
        mode = config.haproxy.mode,
        uid = id(owner.uid),
        gid = id(owner.gid),
        check = config.haproxy.check_command,
        reload = config.haproxy.reload_command,
        state = config.state.dir.value.display(),
        n = config.certificates.len(),
    );
    for cert in &config.certificates {
        let names: Vec<&str> = cert.domains.iter().map(|d| d.as_str()).collect();
        let rule = cert.renew_before.map_or("1/3 of lifetime left".to_owned(), |d| {
            format!("{} before expiry", crate::core::time::format_duration(d))
        });
        out.push_str(&format!(
            "    {:<16} {:<11} {} -> {} (renew at {rule})\n",
            cert.name,
            cert.key_type.name(),
            names.join(", "),
            cert.file.value.display()
        ));
    }
    out
}
