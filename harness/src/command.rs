//! One module per subcommand, each with its clap arguments and its `command` function; `cli`
//! dispatches to them. They share only what lives outside this folder (`exit`, `report`,
//! `scenario`, `execution`, `target`, `nix`), never each other's code.

pub mod check;
pub mod gate;
pub mod list;
pub mod run;
pub mod validate;
pub mod vm;
