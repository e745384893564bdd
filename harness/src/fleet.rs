//! Fleets: the same scenarios on many hosts at once, one report. `inventory` is the model of
//! the hosts (read from a TOML file by `inventory_file`, or from a flake by `flake_hosts`),
//! `pool` runs them side by side through `host_run`, `progress` shows them live, `render` says
//! what happened (the report's model is `report::fleet`, so that the gate reads it without
//! importing this module), and `run` ties these together for `bitpoll-harness run --inventory`.

pub mod flake_hosts;
pub mod host_run;
pub mod inventory;
pub mod inventory_file;
pub mod pool;
pub mod progress;
pub mod render;
pub mod run;
