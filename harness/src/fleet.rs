//! Fleets: the same scenarios on many hosts at once, one report. `inventory` is the model of
//! the hosts (read from a TOML file by `inventory_file`), `pool` runs them side by side through
//! `host_run`, `progress` shows them live, `report` and `render` say what happened, and `run`
//! ties these together for `bitpoll-harness run --inventory`.

pub mod flake_hosts;
pub mod host_run;
pub mod inventory;
pub mod inventory_file;
pub mod pool;
pub mod progress;
pub mod render;
pub mod report;
pub mod run;
