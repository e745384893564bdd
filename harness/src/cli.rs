//! The command line: `list`, `check` and `run`, and the commands that drive Nix: `vm`,
//! `validate` and `gate` (each with its arguments and its work in the module of the same name
//! under `command`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::command::check::{self, CheckArgs};
use crate::command::gate::{self, GateArgs};
use crate::command::list::{self, ListArgs};
use crate::command::run::{self, RunArgs};
use crate::command::validate::{self, ValidateArgs};
use crate::command::vm::{self, VmArgs};

#[derive(Debug, Parser)]
#[command(
    name = "bitpoll-harness",
    version,
    about = "Runs declarative scenarios that prove a Bitpoll deployment works",
    after_help = "Exit codes: 0 all steps passed or were skipped with a reason, 1 a step failed, 2 usage, scenario or connection error. A fleet run (--inventory): 2 when some host could not be reached, else 1 when a step failed on some host, else 0."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios of a directory with their one-line summary.
    List(ListArgs),
    /// Validate scenario files without running them; problems are printed as FILE:LINE:COL: message.
    Check(CheckArgs),
    /// Run scenarios against a target.
    Run(RunArgs),
    /// Build and run scenarios' NixOS VM tests with Nix, and print their reports as `run` does.
    Vm(VmArgs),
    /// Check an administrator's NixOS module for services.bitpoll: evaluate it, score its
    /// hardening and run Django's deploy checks (--eval-only), or run scenarios against a VM
    /// built from it.
    Validate(ValidateArgs),
    /// Run the VM suite with another nixpkgs (or read existing reports) and compare the results
    /// with a baseline; exit 1 on any regression.
    Gate(GateArgs),
}

/// Runs a parsed command line. Errors that reach here are usage errors (exit 2).
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::List(args) => list::command(&args),
        Command::Check(args) => Ok(check::command(&args)),
        Command::Run(args) => run::command(&args),
        Command::Vm(args) => vm::command(&args),
        Command::Validate(args) => validate::command(&args),
        Command::Gate(args) => gate::command(&args),
    }
}
