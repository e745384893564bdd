//! nix-tests/inspect.nix (the flake's lib.inspectConfiguration) evaluated by real Nix with
//! nixpkgs' lib and a stand-in for nixosSystem that returns a made-up configuration: its output
//! must be what `validate --eval-only` reads (`validate::Inspection`), with the failed
//! assertions only, the enabled Bitpoll units only, and the derivations of the settings file
//! and the package taken from their store paths. A real NixOS evaluation needs nixpkgs, which
//! is not available here.
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
    let inspection: bitpoll_harness::validate::Inspection = serde_json::from_slice(&output.stdout)
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

fn main() {
    let arguments = Arguments::from_args();
    let lib = std::env::var_os("NIXPKGS_LIB").map(PathBuf::from);
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
    let trial = Trial::test("inspect_nix_returns_what_validate_reads", move || {
        inspect_nix_returns_what_validate_reads(&lib)
    })
    .with_kind("needs NIXPKGS_LIB")
    .with_ignored_flag(reason.is_some());
    libtest_mimic::run(&arguments, vec![trial]).exit();
}
