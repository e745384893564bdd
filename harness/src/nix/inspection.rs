//! What an administrator's configuration evaluates to, as the flake's `lib.inspectConfiguration`
//! (nix-tests/inspect.nix) returns it for `validate --eval-only`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What `lib.inspectConfiguration` returns (nix-tests/inspect.nix).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Messages of the failed assertions, as NixOS would print them.
    pub assertions: Vec<String>,
    pub warnings: Vec<String>,
    /// Unit name to unit file text, for every unit of services.bitpoll.
    pub units: BTreeMap<String, String>,
    /// The settings file the service reads (BITPOLL_SETTINGS_FILE).
    pub settings_file: Option<Buildable>,
    pub package: Option<Buildable>,
}

/// A store path and the derivation that builds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Buildable {
    pub path: String,
    pub drv_path: String,
}

impl Buildable {
    /// `nix build --no-link --print-out-paths DRV^out`.
    pub fn build_args(&self) -> Vec<String> {
        ["build", "--no-link", "--print-out-paths"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{}^out", self.drv_path)])
            .collect()
    }
}
