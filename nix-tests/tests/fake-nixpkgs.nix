# Stand-in for the nixpkgs flake, to evaluate this flake's outputs without nixpkgs
# (nix-tests/tests/check_tests.py writes a flake.nix that returns this and passes it with
# --override-input nixpkgs). It has nixpkgs' real lib; everything else is a stub that records
# its arguments. Files of package/ become opaque stub derivations, so that this check follows
# the flake's wiring and not the package's internals; nix-tests/bitpoll-harness.nix and the VM
# tests are evaluated for real, with pkgs.testers.runNixOSTest recording its test module.
{ libPath }:
let
  lib = import libPath;
  storePath = name: "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  derivation =
    name: attrs:
    attrs
    // {
      type = "derivation";
      inherit name;
      outPath = storePath name;
    };

  mkPkgs =
    system:
    lib.fix (pkgs: {
      inherit lib;
      stdenv.hostPlatform.system = system;
      path = ./stub-nixpkgs;
      # The harness's own file is evaluated; package/ is not this check's subject.
      callPackage =
        file: args:
        if baseNameOf file == "bitpoll-harness.nix" then
          lib.callPackageWith pkgs file args
        else
          derivation "callPackage-${baseNameOf (dirOf file)}-${baseNameOf file}" { inherit args; };
      rustPlatform.buildRustPackage =
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
      pkg-config = derivation "pkg-config" { };
      openssl = derivation "openssl" { };
      zlib = derivation "zlib" { };
      nixfmt = derivation "nixfmt" { };
      nixfmt-tree = derivation "nixfmt-tree" { };
      deadnix = derivation "deadnix" { };
      writeText = name: _: storePath name;
      runCommand =
        name: env: script:
        derivation name (env // { inherit script; });
      testers.runNixOSTest =
        test:
        derivation "vm-test-run-${test.name}" {
          inherit test;
          driverInteractive = derivation "vm-test-run-${test.name}-driver" { };
        };
      nixos = configuration: {
        inherit configuration;
        config.systemd.package = derivation "systemd" { };
      };
      pythonPackagesExtensions = [ ];
    });
in
{
  inherit lib;
  legacyPackages = lib.genAttrs [
    "x86_64-linux"
    "aarch64-linux"
  ] mkPkgs;
}
