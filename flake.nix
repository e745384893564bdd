{
  description = "Bitpoll as a NixOS service, and the harness that proves a deployment works";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  # A thin adapter: package/ and module/ never mention flake inputs; this file wires them up.
  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # The systems the package and the module are built and tested for.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      packagesOf = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system};
      # The Python packages Bitpoll needs that nixpkgs lacks, as a package set extension.
      pythonModules = import ./package/python-modules;
      # Bitpoll built with the given nixpkgs instance.
      bitpollFor = pkgs: pkgs.callPackage ./package { };
    in
    {
      # Adds Bitpoll, its previous release and the Python packages it needs that nixpkgs lacks
      # (to every Python package set) to a nixpkgs instance.
      overlays.default = final: prev: {
        bitpoll = bitpollFor final;
        bitpoll_0_10 = final.callPackage ./package/previous.nix { };
        pythonPackagesExtensions = prev.pythonPackagesExtensions ++ [ pythonModules ];
      };

      packages = forAllSystems (
        pkgs:
        let
          bitpoll = bitpollFor pkgs;
        in
        {
          inherit bitpoll;
          # The release before, for the upgrade scenario (package/previous.nix).
          bitpoll_0_10 = pkgs.callPackage ./package/previous.nix { };
          default = bitpoll;
        }
      );

      nixosModules = {
        # services.bitpoll. Its package option defaults to pkgs.bitpoll; without the overlay the
        # package is built from this flake's package/ with the system's own nixpkgs, so that
        # `services.bitpoll.enable = true;` works on its own and nixpkgs.pkgs may stay read-only.
        bitpoll =
          { lib, pkgs, ... }:
          {
            _class = "nixos";
            key = "bitpoll-nix#nixosModules.bitpoll";
            imports = [ ./module ];
            services.bitpoll.package = lib.mkDefault (pkgs.bitpoll or (bitpollFor pkgs));
          };
        default = self.nixosModules.bitpoll;
      };

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      devShells = forAllSystems (pkgs: {
        default = pkgs.callPackage ./package/devshell.nix { inherit (packagesOf pkgs) bitpoll; };
      });

      # CHECKS: `nix flake check` builds all of these. The packages and the Nix lint live here;
      # the VM tests (nix-tests/), the offline hardening gate and the cargo tests are added to
      # this set as well (see ARCHITECTURE.md).
      checks = forAllSystems (
        pkgs:
        let
          packages = packagesOf pkgs;
          # Every .nix file of the flake, and nothing else, so that the lint reruns only when
          # one of them changes.
          nixFiles = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ./.;
          };
        in
        {
          inherit (packages) bitpoll bitpoll_0_10;
          nix-lint =
            pkgs.runCommand "bitpoll-nix-lint"
              {
                nativeBuildInputs = [
                  pkgs.nixfmt
                  pkgs.deadnix
                ];
              }
              ''
                cd ${nixFiles}
                find . -name '*.nix' -print0 | xargs -0 nixfmt --check
                find . -name '*.nix' -print0 | xargs -0 deadnix --fail
                touch "$out"
              '';
        }
      );
    };
}
