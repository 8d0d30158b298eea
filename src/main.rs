//! The `hapcert` binary: parse the command line, run, print the whole error chain once, map it to an exit code (and
//! report stdout that could not be written).

use std::process::ExitCode;

use clap::Parser;
use hapcert::cli::{self, Cli};
use hapcert::error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = hapcert::logging::init(cli.log_format, &cli.log_level) {
        eprintln!("hapcert: {err:#}");
        return ExitCode::from(error::EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hapcert: cannot start the async runtime: {err}");
            return ExitCode::from(error::EXIT_FAILED);
        }
    };
    let code = match runtime.block_on(cli::execute(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", error::describe(&err));
            error::exit_code(&err)
        }
    };
    // A reader that went away is no failure (`output` stops writing quietly); a write that failed otherwise is.
    match hapcert::output::take_failure() {
        Some(err) => {
            eprintln!("hapcert: cannot write the results to stdout: {err}");
            ExitCode::from(code.max(error::EXIT_FAILED))
        }
        None => ExitCode::from(code),
    }
}
