//! `bitpoll-harness list`: the scenarios of a directory with their one-line summary.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::exit::EXIT_USAGE;
use crate::scenario::files::{directory, in_dir};
use crate::scenario::parse;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The scenario directory (default: as `run --scenarios` finds it).
    pub dir: Option<PathBuf>,
}

/// `bitpoll-harness list [DIR]`.
pub fn command(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let dir = directory(args.dir.as_deref()).map_err(anyhow::Error::msg)?;
    let files = in_dir(&dir).map_err(anyhow::Error::msg)?;
    let mut invalid = false;
    let mut rows = Vec::new();
    for file in files {
        match parse::load(&file) {
            Ok(scenario) => rows.push((scenario.name, scenario.summary)),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                invalid = true;
            }
        }
    }
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, summary) in rows {
        println!("{name:<width$}  {summary}");
    }
    Ok(if invalid {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    })
}
