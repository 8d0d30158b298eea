//! The `hapcert` binary: parse the command line, run, print the whole error chain once, map it to an exit code.

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
    match runtime.block_on(cli::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{}", error::describe(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
