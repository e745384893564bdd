//! The exit codes of the process, shared by `main`, every command and the VM suite.

/// Exit codes: 0 every step passed or was skipped with a reason, 1 a step failed,
/// 2 a usage, scenario or connection error kept the run from starting.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
