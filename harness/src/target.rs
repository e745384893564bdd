//! Where a scenario's steps act: the `Target` trait and its types (`interface`, re-exported
//! here), which `local` and `ssh` implement (`address`: the ssh target's address and how it is
//! reached), and `http`, the client that reaches the deployment's base URL directly.

mod address;
mod interface;

pub mod http;
pub mod local;
pub mod ssh;

pub use interface::{checked, shell_quote, Command, Output, Target, TargetError};
