//! Scenarios: the model a scenario file becomes (`model`, re-exported here), `parse`, which
//! checks a file and builds it, what both use (`template`, `duration`, `diagnostic`), and
//! `files`, which finds scenario files by path or name.

mod model;

pub mod diagnostic;
pub mod duration;
pub mod files;
pub mod parse;
pub mod template;

pub use model::{
    Action, Capability, Capture, CaptureSource, Expect, HeaderExpect, HttpRequest, Repeat, Retry,
    Scenario, Step, TextMatch, BUILTIN_VARS, DEFAULT_STEP_TIMEOUT,
};
