//! Running a scenario: `runner` takes the steps in order, `render` fills each one's templates,
//! `actions` performs it on the target, `expect` checks what came back, `capture` takes values
//! for later steps, and `capabilities` says which steps the target can run at all.

pub mod actions;
pub mod capabilities;
pub mod capture;
pub mod expect;
pub mod render;
pub mod runner;
