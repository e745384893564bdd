//! `bitpoll-harness check`: scenario files validated without running them, every problem
//! printed as FILE:LINE:COL: message.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::exit::EXIT_USAGE;
use crate::scenario::parse;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `bitpoll-harness check FILE...`.
pub fn command(args: &CheckArgs) -> ExitCode {
    let mut problems = 0;
    for file in &args.files {
        match parse::load(file) {
            Ok(scenario) => println!("{}: ok ({} steps)", file.display(), scenario.steps.len()),
            Err(diagnostics) => {
                problems += diagnostics.0.len();
                eprintln!("{diagnostics}");
            }
        }
    }
    if problems > 0 {
        eprintln!("{problems} problem(s) found");
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}
