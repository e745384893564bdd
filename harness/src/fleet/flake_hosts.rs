//! Hosts from Nix instead of a hand-written inventory: the configurations of a flake that
//! enable services.bitpoll. (Being written; see docs/fleet.md.)

use super::inventory::Inventory;
use crate::nix::Nix;

/// The inventory of `run --inventory-from-flake REF`.
pub fn inventory(_nix: &Nix, flake: &str) -> anyhow::Result<Inventory> {
    anyhow::bail!("--inventory-from-flake {flake}: not built yet")
}
