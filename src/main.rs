//! The `hapcert` binary: parse the command line, run, print the whole error chain once, map it to an exit code.

use std::process::ExitCode;

use clap::Parser;
use hapcert::cli::{self, Cli, UsageError};
use hapcert::core::config::ConfigErrors;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = hapcert::logging::init(cli.log_format, &cli.log_level) {
        eprintln!("hapcert: {err:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hapcert: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) if err.downcast_ref::<ConfigErrors>().is_some() => {
            eprintln!("hapcert: the config has problems:\n{err}");
            ExitCode::from(2)
        }
        Err(err) if err.downcast_ref::<UsageError>().is_some() => {
            eprintln!("hapcert: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("hapcert: {err:#}");
            ExitCode::from(1)
        }
    }
}
