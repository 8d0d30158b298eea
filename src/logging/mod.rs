//! Logs go to stderr, for journald and cron mail; stdout carries only command output. Colour only on a terminal.
//! A request to the daemon's control socket also gets its own lines back ([`forward`]).

pub mod forward;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `level` is a tracing filter: `info`, `debug`, or per module like `hapcert=debug,instant_acme=info`.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level {level:?} is not a valid filter: {e}"))?;
    let layers = tracing_subscriber::registry().with(filter).with(forward::Forward);
    let stderr = tracing_subscriber::fmt::layer().with_writer(|| crate::renew::progress::LogWriter);
    match format {
        LogFormat::Text => layers
            .with(
                stderr
                    .with_ansi(colour_on(std::io::stderr().is_terminal()))
                    .with_target(false),
            )
            .init(),
        LogFormat::Json => layers.with(stderr.json().with_current_span(false)).init(),
    }
    Ok(())
}

/// Colour only for a person at a terminal, and not when they asked for none (https://no-color.org): for the logs on
/// stderr and the `status` table on stdout alike.
pub fn colour_on(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
