//! `bitpoll-harness check`: scenario files and fleet inventories validated without running
//! them, every problem printed as FILE:LINE:COL: message.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit::EXIT_USAGE;
use crate::fleet::inventory_file;
use crate::scenario::parse;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Scenario files or inventories (an inventory has [[host]] tables and no [scenario]).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// An inventory is told by its top-level keys, so one `check` validates both kinds of file.
fn is_inventory(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    match text.parse::<toml_edit::DocumentMut>() {
        Ok(document) => {
            let root = document.as_table();
            // `hosts` too: a misspelt `[[hosts]]` then gets the inventory's own error.
            !root.contains_key("scenario")
                && ["host", "hosts", "defaults"]
                    .iter()
                    .any(|key| root.contains_key(key))
        }
        Err(_) => false,
    }
}

/// `bitpoll-harness check FILE...`.
pub fn command(args: &CheckArgs) -> ExitCode {
    let mut problems = 0;
    for file in &args.files {
        let result = if is_inventory(file) {
            inventory_file::load(file).map(|inventory| {
                format!(
                    "{}: ok (inventory of {} hosts)",
                    file.display(),
                    inventory.hosts.len()
                )
            })
        } else {
            parse::load(file)
                .map(|scenario| format!("{}: ok ({} steps)", file.display(), scenario.steps.len()))
        };
        match result {
            Ok(line) => println!("{line}"),
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
