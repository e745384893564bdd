use std::process::ExitCode;

use clap::Parser;

use bitpoll_harness::cli::{execute, Cli};
use bitpoll_harness::exit::EXIT_USAGE;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
