//! The Nix-driving side of the harness: running `nix` (`invoke`, re-exported here), naming
//! things in the flake (`flake`), building and reading scenarios' VM tests (`vm_test`), what
//! `lib.inspectConfiguration` returns (`inspection`), scoring units' `hardening` and Django's
//! `deploy_check`, and the gate's `baseline`, `thresholds` and `comparison` (whose differences
//! are `finding`s).

mod invoke;

pub mod baseline;
pub mod comparison;
pub mod deploy_check;
pub mod finding;
pub mod flake;
pub mod hardening;
pub mod inspection;
pub mod thresholds;
pub mod vm_test;

pub use invoke::{error_message, Captured, Nix, NixError, EXPERIMENTAL_FEATURES};
