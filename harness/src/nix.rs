//! The commands that drive Nix and what they need: running `nix` (`invoke`, re-exported here),
//! naming things in the flake (`flake`), scoring units' `hardening` and Django's
//! `deploy_check` for `validate`, and the gate's `baseline`, `thresholds` and `comparison`
//! (whose differences are `finding`s).

mod invoke;

pub mod baseline;
pub mod comparison;
pub mod deploy_check;
pub mod finding;
pub mod flake;
pub mod hardening;
pub mod thresholds;

pub use invoke::{error_message, Captured, Nix, NixError, EXPERIMENTAL_FEATURES};
