//! What a run produced: the report model (`model`, re-exported here; its JSON form is the
//! documented schema) and a fleet run's (`fleet`: one such report per host), `human` and
//! `junit`, which render it, `output`, which decides what goes to stdout, stderr and files,
//! and `files`, which reads reports of either kind back.

mod model;

pub mod files;
pub mod fleet;
pub mod human;
pub mod junit;
pub mod output;

pub use model::{Detail, Report, ScenarioReport, Status, StepReport, Summary, SCHEMA_VERSION};
