//! bitpoll-harness: runs declarative scenarios that prove a Bitpoll deployment works.
//!
//! The flow: `scenario::parse` turns a TOML file into a checked `scenario::Scenario`;
//! `execution::runner` renders each step's templates, performs it through `execution::actions`
//! on a `target::Target` (`target::local` or `target::ssh`) or over `target::http`, checks it
//! with `execution::expect`, takes its `execution::capture`s, and builds a `report::Report`,
//! which `report::human` and `report::junit` print, serde writes as JSON and `report::output`
//! sends where it belongs.
//!
//! The command line: `cli` dispatches to one module per subcommand in `command`, which share
//! `exit` codes and never import each other. The Nix-driving commands: `command::vm` builds
//! scenarios' VM tests through `nix::vm_test` and reads their reports, `command::validate`
//! checks an administrator's configuration (`nix::hardening`, `nix::deploy_check`),
//! `command::gate` compares a run with a `nix::baseline`; `nix` runs the programs and
//! `nix::flake` names things.
//!
//! Fleets: `fleet` runs the same scenarios on every host of an inventory, side by side, with
//! live progress and one report; it builds on `execution`, `target` and `report`, and `run`
//! hands it the work when given `--inventory`.

pub mod cli;
pub mod command;
pub mod execution;
pub mod exit;
pub mod fleet;
pub mod nix;
pub mod report;
pub mod scenario;
pub mod target;
