//! Scenario files: TOML in, a checked [`Scenario`](super::Scenario) or every problem with its
//! position out.
//!
//! Parsing does no I/O beyond reading the file. Everything that can be known before a run is
//! checked here: keys, types, one action per step, unique step names, and that every `{{var}}`
//! is defined by `[vars]`, an earlier capture or a built-in.
//!
//! `document` reads the top level, `step` each `[[step]]` with `expect` and `capture` for its
//! tables; all of them read through `toml_reader` and share the state in `parser`.

mod capture;
mod document;
mod expect;
mod parser;
mod step;
pub(crate) mod toml_reader;

pub use document::{load, parse};
