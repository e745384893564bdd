//! bitpoll-harness: runs declarative scenarios that prove a Bitpoll deployment works.
//!
//! The flow: `parse` turns a TOML file into a checked `scenario::Scenario`; `runner` renders
//! each step's templates, performs it through `actions` on a `target::Target` (local or ssh)
//! or over `http`, checks it with `expect`, takes its `capture`s, and builds a `report`, which
//! `human` and `junit` print and serde writes as JSON.
//!
//! The Nix-driving commands: `vm` builds scenarios' VM tests through `nix` and reads their
//! reports, `validate` checks an administrator's configuration (`hardening`, `deploy_check`),
//! `gate` compares a run with a `baseline`; `nix` runs the programs and `flake` names things.

pub mod cli;
pub mod command;
pub mod execution;
pub mod exit;
pub mod nix;
pub mod report;
pub mod scenario;
pub mod target;
