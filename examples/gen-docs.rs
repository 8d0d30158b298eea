//! `cargo run --example gen-docs -- <dir>`: the man pages of the command line (`<dir>/man1/hapcert.1` and one page per
//! subcommand, `hapcert-renew.1`, `hapcert-fleet-status.1`, ...) and the bash, zsh and fish completions
//! (`<dir>/completions/`), all from the clap definitions the program parses with, so they cannot drift from it.
//! scripts/package runs it; an example rather than a subcommand keeps clap_mangen and clap_complete out of the
//! binary, and rather than a build script keeps them out of every build.

use std::fs;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use hapcert::cli::Cli;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example gen-docs -- <output directory>");
        std::process::exit(2);
    };
    let man = dir.join("man1");
    fs::create_dir_all(&man)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    let completions = dir.join("completions");
    fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "hapcert", &completions)?;
    }
    Ok(())
}
