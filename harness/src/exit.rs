//! The exit codes of the process, shared by `main`, every command and the VM suite.

/// Exit codes: 0 every step passed or was skipped with a reason, 1 a step failed,
/// 2 a usage, scenario or connection error kept the run from starting. A fleet run maps its
/// hosts onto these by precedence (`report::fleet::FleetReport::exit_code`): 2 when some host
/// could not be reached, else 1 when a step failed on some host.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
