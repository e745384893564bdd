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
      # This flake's packages, built with the given nixpkgs instance.
      packagesFor =
        pkgs:
        let
          bitpoll = bitpollFor pkgs;
        in
        {
          inherit bitpoll;
          # The release before, for the upgrade scenario (package/previous.nix).
          bitpoll_0_10 = pkgs.callPackage ./package/previous.nix { };
          bitpoll-harness = pkgs.callPackage ./nix-tests/bitpoll-harness.nix { };
          default = bitpoll;
        };
      # The systems whose checks include the VM tests (they need KVM on the builder).
      vmTestSystems = [ "x86_64-linux" ];
      # The VM tests of nix-tests/ with the given nixpkgs instance and this flake's packages
      # built with it; `module` and `only` as in nix-tests/default.nix.
      vmTestsFor =
        pkgs: packages: args:
        import ./nix-tests (
          {
            inherit pkgs packages;
            bitpollModule = self.nixosModules.bitpoll;
            harness = packages.bitpoll-harness;
          }
          // args
        );
    in
    {
      # Adds Bitpoll, its previous release and the Python packages it needs that nixpkgs lacks
      # (to every Python package set) to a nixpkgs instance.
      overlays.default = final: prev: {
        bitpoll = bitpollFor final;
        bitpoll_0_10 = final.callPackage ./package/previous.nix { };
        pythonPackagesExtensions = prev.pythonPackagesExtensions ++ [ pythonModules ];
      };

      packages = forAllSystems packagesFor;

      apps = forAllSystems (
        pkgs:
        let
          harness = {
            type = "app";
            program = pkgs.lib.getExe (packagesOf pkgs).bitpoll-harness;
            meta.description = "Run Bitpoll scenarios against a deployment";
          };
        in
        {
          bitpoll-harness = harness;
          default = harness;
        }
      );

      lib = {
        # The VM tests with an administrator's configuration on the server: every scenario, or
        # the named ones, as an attribute set vm-NAME of checks like checks.<system>.vm-NAME,
        # each with its nixosTest as .run and .driverInteractive (`bitpoll-harness validate`).
        #   bitpoll-nix.lib.mkValidationTest {
        #     system = "x86_64-linux";
        #     module = ./bitpoll.nix;            # configures services.bitpoll
        #     scenarios = [ "deployment" ];      # optional; default: all
        #   }
        # `pkgs` may replace `system` to build everything (Bitpoll, the harness, the VMs) with
        # another nixpkgs instance.
        mkValidationTest =
          {
            module,
            system ? null,
            pkgs ?
              if system == null then
                throw "mkValidationTest: pass `system` (such as \"x86_64-linux\") or `pkgs`"
              else
                nixpkgs.legacyPackages.${system},
            scenarios ? null,
          }:
          vmTestsFor pkgs (packagesFor pkgs) {
            inherit module;
            only = scenarios;
          };

        # What `bitpoll-harness validate --eval-only` reads from an administrator's
        # configuration, with nothing built: failed assertions, warnings, the units' text, and
        # the settings file and package as derivations (nix-tests/inspect.nix).
        #   bitpoll-nix.lib.inspectConfiguration { system = "x86_64-linux"; module = ./bitpoll.nix; }
        inspectConfiguration =
          { module, system }:
          import ./nix-tests/inspect.nix {
            inherit (lib) nixosSystem;
            inherit lib module system;
            bitpollModule = self.nixosModules.bitpoll;
          };
      };

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

      # `nix flake check` builds all of these: the packages, the Nix lint, the harness's unit
      # tests and the offline hardening gate on every system, and on x86_64-linux one VM test per
      # scenario (vm-NAME, nix-tests/).
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
          inherit (packages) bitpoll bitpoll_0_10 bitpoll-harness;
          # The library's unit tests; the integration tests need sshd, systemd and Bitpoll, which
          # the VM tests provide.
          harness-tests = packages.bitpoll-harness.overrideAttrs (old: {
            name = "bitpoll-harness-unit-tests-${old.version}";
            doCheck = true;
            cargoTestFlags = [ "--lib" ];
          });
          # systemd-analyze security --offline on the units NixOS generates (module/checks/).
          hardening = import ./module/checks/hardening.nix {
            inherit pkgs;
            package = packages.bitpoll;
          };
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
        // lib.optionalAttrs (lib.elem pkgs.stdenv.hostPlatform.system vmTestSystems) (
          vmTestsFor pkgs packages { }
        )
      );
    };
}
