//! nix-tests/inspect.nix (the flake's lib.inspectConfiguration) evaluated by real Nix with
//! nixpkgs' lib and a stand-in for nixosSystem that returns a made-up configuration: its output
//! must be what `validate --eval-only` reads (`validate::Inspection`), with the failed
//! assertions only, the enabled Bitpoll units only, and the derivations of the settings file
//! and the package taken from their store paths; and flake.nix's `lib.inspectConfiguration`
//! wires the flake's module and the administrator's into nixosSystem. A real NixOS evaluation
//! needs nixpkgs, which is not available here.
//!
//! Needs nixpkgs' lib in NIXPKGS_LIB; ignored with the reason otherwise.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inspect_nix_returns_what_validate_reads(lib: &Path) -> Result<(), Failed> {
    let expression = format!(
        r#"let
  lib = import {lib};
  drv = name: derivation {{ inherit name; system = "x86_64-linux"; builder = "/bin/sh"; }};
  settings = drv "bitpoll-settings.json";
  package = drv "bitpoll-0.11.0";
  nixosSystem = {{ modules }}: {{
    config = {{
      assertions = [
        {{ assertion = true; message = "holds"; }}
        {{ assertion = false; message = "services.bitpoll.baseUrl is on localhost"; }}
      ];
      warnings = [ "a warning" ];
      services.bitpoll = {{ enable = true; inherit package; }};
      systemd.services.bitpoll.environment.BITPOLL_SETTINGS_FILE = "${{settings}}";
      systemd.units = {{
        "bitpoll.service" = {{ enable = true; text = "ExecStart=${{package}}/bin/bitpoll-server"; }};
        "bitpoll-backup.timer" = {{ enable = false; text = "off"; }};
        "sshd.service" = {{ enable = true; text = "not ours"; }};
      }};
    }};
  }};
in
import {inspect} {{
  inherit lib nixosSystem;
  bitpollModule = {{ }};
  module = {{ }};
  system = "x86_64-linux";
}}"#,
        lib = lib.join("default.nix").display(),
        inspect = repository().join("nix-tests/inspect.nix").display(),
    );
    let output = std::process::Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expression])
        .output()
        .map_err(|e| format!("cannot run nix-instantiate: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let inspection: bitpoll_harness::nix::inspection::Inspection =
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("validate cannot read inspect.nix's output: {e}"))?;
    assert_eq!(
        inspection.assertions,
        ["services.bitpoll.baseUrl is on localhost"]
    );
    assert_eq!(inspection.warnings, ["a warning"]);
    assert_eq!(
        inspection.units.keys().collect::<Vec<_>>(),
        ["bitpoll.service"]
    );
    let package = inspection.package.unwrap();
    assert!(
        package.drv_path.ends_with("-bitpoll-0.11.0.drv"),
        "{}",
        package.drv_path
    );
    assert_eq!(
        inspection.units["bitpoll.service"],
        format!("ExecStart={}/bin/bitpoll-server", package.path)
    );
    let settings = inspection.settings_file.unwrap();
    assert!(settings.drv_path.ends_with("-bitpoll-settings.json.drv"));
    assert!(settings.path.ends_with("-bitpoll-settings.json"));
    Ok(())
}

/// The flake's wiring: `lib.inspectConfiguration` of flake.nix's outputs, with nixpkgs' lib and
/// a stand-in nixosSystem, passes the flake's module first and the administrator's module to
/// nixosSystem.
fn the_flake_passes_its_module_and_the_administrators(lib: &Path) -> Result<(), Failed> {
    let expression = format!(
        r#"let
  lib = import {lib};
  package = derivation {{ name = "bitpoll-0.11.0"; system = "x86_64-linux"; builder = "/bin/sh"; }};
  nixosSystem = {{ modules }}: {{
    config = {{
      assertions = [ ];
      # What the flake passed: the key of its own module, the administrator's, the count.
      warnings = [
        ((builtins.head modules) {{ inherit lib; pkgs = {{ }}; }}).key
        (builtins.elemAt modules 1).marker
        (toString (builtins.length modules))
      ];
      services.bitpoll = {{ enable = true; inherit package; }};
      systemd.services = {{ }};
      systemd.units = {{ }};
    }};
  }};
  nixpkgs = {{ lib = lib // {{ inherit nixosSystem; }}; legacyPackages = {{ }}; }};
  self = (import {flake}).outputs {{ inherit self nixpkgs; }};
in
self.lib.inspectConfiguration {{ system = "x86_64-linux"; module = {{ marker = "the administrator's"; }}; }}"#,
        lib = lib.join("default.nix").display(),
        flake = repository().join("flake.nix").display(),
    );
    let output = std::process::Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expression])
        .output()
        .map_err(|e| format!("cannot run nix-instantiate: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let inspection: bitpoll_harness::nix::inspection::Inspection =
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("validate cannot read the flake's output: {e}"))?;
    assert_eq!(
        inspection.warnings,
        [
            "bitpoll-nix#nixosModules.bitpoll",
            "the administrator's",
            "3"
        ]
    );
    assert!(inspection.units.is_empty());
    assert!(inspection.settings_file.is_none());
    assert!(inspection
        .package
        .unwrap()
        .drv_path
        .ends_with("-bitpoll-0.11.0.drv"));
    Ok(())
}

fn main() {
    let arguments = Arguments::from_args();
    // A nixpkgs(-lib) checkout or its lib directory, as the other checks accept.
    let lib = std::env::var_os("NIXPKGS_LIB")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.join("lib/default.nix").is_file() {
                dir.join("lib")
            } else {
                dir
            }
        });
    let reason = match &lib {
        None => Some("NIXPKGS_LIB is not set; point it at nixpkgs' lib directory".to_string()),
        Some(dir) if !dir.join("default.nix").is_file() => Some(format!(
            "NIXPKGS_LIB={} has no default.nix; point it at nixpkgs' lib directory",
            dir.display()
        )),
        Some(_) => None,
    };
    if let Some(reason) = &reason {
        eprintln!("inspect_nix: skipped: {reason}");
    }
    let lib = lib.unwrap_or_default();
    type Test = fn(&Path) -> Result<(), Failed>;
    let tests: [(&str, Test); 2] = [
        (
            "inspect_nix_returns_what_validate_reads",
            inspect_nix_returns_what_validate_reads,
        ),
        (
            "the_flake_passes_its_module_and_the_administrators",
            the_flake_passes_its_module_and_the_administrators,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let lib = lib.clone();
            Trial::test(name, move || test(&lib))
                .with_kind("needs NIXPKGS_LIB")
                .with_ignored_flag(reason.is_some())
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit();
}
