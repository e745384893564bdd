//! bitpoll-harness: runs declarative scenarios that prove a Bitpoll deployment works.
//!
//! The flow: `parse` turns a TOML file into a checked `scenario::Scenario`; `runner` renders
//! each step's templates, performs it through `actions` on a `target::Target` (local or ssh)
//! or over `http`, checks it with `expect`, takes its `capture`s, and builds a `report`, which
//! `human` and `junit` print and serde writes as JSON.

pub mod actions;
pub mod capabilities;
pub mod capture;
pub mod cli;
pub mod diagnostic;
pub mod duration;
pub mod expect;
pub mod http;
pub mod human;
pub mod junit;
pub mod local;
pub mod parse;
mod parse_step;
pub mod render;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod scenario_files;
pub mod ssh;
pub mod target;
pub mod template;
mod toml_reader;
