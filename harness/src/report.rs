//! What a run produced: the report model (`model`, re-exported here; its JSON form is the
//! documented schema), `human` and `junit`, which render it, and `output`, which decides what
//! goes to stdout, stderr and files.

mod model;

pub mod human;
pub mod junit;
pub mod output;

pub use model::{Detail, Report, ScenarioReport, Status, StepReport, Summary, SCHEMA_VERSION};
