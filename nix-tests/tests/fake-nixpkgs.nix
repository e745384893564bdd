# Stand-in for the nixpkgs flake, to evaluate this flake's outputs without nixpkgs
# (nix-tests/tests/check_tests.py writes a flake.nix that returns this and passes it with
# --override-input nixpkgs). It has nixpkgs' real lib; its legacyPackages are the stand-ins of
# facts/nixpkgs.toml (facts/default.nix), so the flake may use no attribute the facts do not
# list. Files of package/ become opaque stub derivations, so that this check follows the
# flake's wiring and not the package's internals; nix-tests/bitpoll-harness.nix and the VM
# tests are evaluated for real, with pkgs.testers.runNixOSTest recording its test module.
{ libPath }:
let
  lib = import libPath;
  standIns = import ../../facts { inherit lib; };
  behaviours = import ../../facts/behaviours.nix { inherit lib; };
  inherit (behaviours) derivation;

  mkPkgs =
    system:
    let
      pkgs = standIns.pkgs {
        behaviours = {
          inherit (behaviours) "pkgs.writeText";
          "pkgs.stdenv.hostPlatform.system" = system;
          "pkgs.path" = ./stub-nixpkgs;
          # The harness's own file and the development shell are evaluated; the package is
          # package/build-script.nix's subject.
          "pkgs.callPackage" =
            file: args:
            if
              lib.elem (baseNameOf file) [
                "bitpoll-harness.nix"
                "devshell.nix"
              ]
            then
              lib.callPackageWith pkgs file args
            else
              # With the passthru of the package's contract (ARCHITECTURE.md) that the
              # development shell uses.
              derivation "callPackage-${baseNameOf (dirOf file)}-${baseNameOf file}" {
                inherit args;
                pythonEnv = derivation "python3-env" { };
                appDir = behaviours.storePath "bitpoll/share/bitpoll/app";
              };
          "pkgs.rustPlatform.buildRustPackage" =
            attrs:
            let
              drv = derivation "${attrs.pname}-${attrs.version}" attrs;
            in
            drv
            // {
              overrideAttrs =
                f:
                let
                  changed = drv // f drv;
                in
                derivation changed.name changed;
            };
          "pkgs.runCommand" =
            name: env: script:
            derivation name (env // { inherit script; });
          "pkgs.mkShell" = attrs: derivation "nix-shell" attrs;
          "pkgs.writeShellApplication" = attrs: derivation attrs.name attrs;
          "pkgs.rustPlatform.rustLibSrc" = behaviours.storePath "rust-lib-src";
          "pkgs.testers.runNixOSTest" =
            test:
            derivation "vm-test-run-${test.name}" {
              inherit test;
              driverInteractive = derivation "vm-test-run-${test.name}-driver" { };
            };
          "pkgs.nixos" = configuration: {
            inherit configuration;
            config.systemd.package = derivation "systemd" { };
          };
          "pkgs.pythonPackagesExtensions" = [ ];
        };
      };
    in
    pkgs;
in
{
  inherit lib;
  legacyPackages = lib.genAttrs [
    "x86_64-linux"
    "aarch64-linux"
  ] mkPkgs;
}
