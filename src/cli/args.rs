//! The command line as clap reads it: global options, commands and their arguments. What each command does is in
//! `cli/mod.rs` and the modules it calls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::account::AccountCommand;
use crate::core::config::DEFAULT_CONFIG_PATH;
use crate::edge::acme::RevokeReason;
use crate::logging::LogFormat;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (nothing due counts as success)
  1  at least one certificate failed, or another run held the lock too long
  2  usage or configuration error (the message names the file, line and key)
`hapcert check` follows the monitoring-plugin convention instead:
  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN";

#[derive(Debug, Parser)]
#[command(name = "hapcert", version = crate::VERSION, about = "Certificate agent for HAProxy: ACME over HTTP-01 on a side port, atomic PEM deploy, checked reload", after_help = EXIT_CODES)]
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
        reason: RevokeReason,
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
    /// Is this host ready? Checks, in the order to fix them: the config and the files it names, HAProxy (version,
    /// Runtime API, master socket, verify endpoints), the challenge route for each name, the CA (directory, ARI,
    /// profiles, clock), the account, the timer or daemon, the metrics file and the notification channels. One line per
    /// finding, OK, WARN or FAIL, with the fix. Exit 0 when nothing FAILed (WARNs too: they do not stop a run), 1
    /// otherwise.
    Doctor {
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
        /// Send a test notification through every [[notify]] channel (nothing is sent without it).
        #[arg(long)]
        notify_test: bool,
    },
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
    /// With --check, read HAProxy's configuration instead and say what hapcert relies on that is missing or doubled.
    HaproxyConfig {
        /// The plain-HTTP bind of the printed frontend.
        #[arg(long, default_value = ":80")]
        bind: String,
        /// Check these files (a directory: its *.cfg files), or with no FILE the -f files of [haproxy]
        /// check_command: the challenge route on port 80 with no rule before it, a challenge backend without a
        /// health check, the admin socket of runtime_api (once), option idle-close-on-response, a default
        /// certificate before the cert directory, and a second defaults section that shadows the first. Each finding
        /// names its file, line and fix. Exit 0 when all is there, 1 otherwise.
        #[arg(long, num_args = 0.., value_name = "FILE")]
        check: Option<Vec<std::path::PathBuf>>,
    },
    /// The ACME account.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Take over another ACME client's certificates: print a config for them and adopt the current ones.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Several load balancers sharing their certificates through etcd.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// TLS endpoints that hapcert neither issues nor deploys, which `check` watches ([[watch]]).
    #[command(subcommand)]
    Watch(WatchCommand),
}

#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Print a [[watch]] entry for every backend server that HAProxy reaches with `ssl`, read from the -f files of
    /// [haproxy] check_command, to review and paste into the config. Plain servers are left out; a TLS server that
    /// cannot be watched as written is named in a comment, with why.
    Suggest {
        /// Read this HAProxy configuration file (or directory of *.cfg files) instead; repeat it for several, in the
        /// order HAProxy loads them.
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Write a new random fleet key (mode 0600) for [fleet] key_file; never overwrites a file. Copy it to every node.
    Keygen {
        /// Where to write the key, e.g. /etc/hapcert/fleet.key.
        #[arg(long)]
        out: PathBuf,
    },
    /// The fleet as etcd has it: nodes, which node serves which certificate, laggards, locks and pending orders.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring this node's ACME account and current certificates into an empty fleet prefix (the move from a single node).
    Init,
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
