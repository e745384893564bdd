# Evaluates the VM tests of nix-tests/ with nixpkgs' lib alone: pkgs.testers.runNixOSTest is
# replaced by a function that returns its argument, and each test's `nodes` by the server's
# configuration, evaluated against the NixOS options of facts/nixpkgs.toml. The result, as JSON, is what
# nix-tests/tests/check_tests.py inspects and runs: each test's name, rendered Python test
# script, client configuration, and the shell script of the check around it.
#   nix-instantiate --eval --strict --json nix-tests/tests/eval.nix --arg libPath "$NIXPKGS_LIB"
{
  libPath,
  scenarioDir ? ../../scenarios,
  overrideDir ? ../scenarios,
  # An administrator's module, as lib.mkValidationTest takes it; null for the project's tests.
  module ? null,
}:
let
  lib = import libPath;
  # nixpkgs as far as facts/nixpkgs.toml knows it (facts/default.nix), with what each called
  # attribute does here.
  standIns = import ../../facts { inherit lib; };
  behaviours = import ../../facts/behaviours.nix { inherit lib; };
  inherit (behaviours) storePath;
  package = name: behaviours.derivation name { };

  pkgs = standIns.pkgs {
    # The overlay's package, which services.bitpoll.package defaults to.
    own.bitpoll = package "bitpoll-0.11.0";
    behaviours = {
      inherit (behaviours)
        "pkgs.formats.json"
        "pkgs.writeScriptBin"
        "pkgs.writeText"
        "pkgs.runtimeShell"
        ;
      "pkgs.path" = ./stub-nixpkgs;
      # The nixosTest as its argument, with the output path the check around it reads.
      "pkgs.testers.runNixOSTest" =
        test:
        test
        // {
          outPath = storePath "vm-test-run-${test.name}";
          driverInteractive = package "vm-test-run-${test.name}-driver";
        };
      "pkgs.runCommand" = name: env: script: {
        inherit name script;
        inherit (env) passthru;
      };
    };
  };

  tests = import ../default.nix {
    inherit
      pkgs
      module
      scenarioDir
      overrideDir
      ;
    bitpollModule = ../../module;
    harness = package "bitpoll-harness-0.1.0";
    packages = {
      bitpoll = package "bitpoll-0.11.0";
      bitpoll_0_10 = package "bitpoll-0.10.0";
    };
  };

  # The server as the test script sees it: its modules evaluated against the NixOS options of
  # facts/nixpkgs.toml (an option the facts do not list fails here), plus the attribute the
  # test framework sets.
  serverOf = test: serverWith test [ ];

  # A specialisation inherits its parent's configuration (inheritParentConfig's default): the
  # server's modules plus its own.
  specialisationsOf =
    test:
    lib.mapAttrs (
      _: special: (serverWith test [ special.configuration ]).services.bitpoll.package.name
    ) (serverOf test).specialisation;

  # runNixOSTest sets node.pkgs, so nixpkgs.* are read-only on the nodes unless the test sets
  # node.pkgsReadOnly = false (nixos/lib/testing/nodes.nix, nixos/modules/misc/nixpkgs/
  # read-only.nix in facts/nixpkgs.toml): read-only.nix defines them itself, readOnly or unique,
  # so a node module that sets one more fails as it does there.
  readOnlyNixpkgs =
    let
      unique = message: lib.types.unique { inherit message; } lib.types.anything;
    in
    {
      options.nixpkgs = {
        hostPlatform = lib.mkOption { readOnly = true; };
        config = lib.mkOption { type = unique "nixpkgs.config is set to read-only"; };
        overlays = lib.mkOption { type = unique "nixpkgs.overlays is set to read-only"; };
      };
      config.nixpkgs = {
        hostPlatform = "x86_64-linux";
        config = { };
        overlays = [ ];
      };
    };

  serverWith =
    test: extra:
    let
      readOnly = test.node.pkgsReadOnly;
      eval = lib.evalModules {
        modules = [
          (
            if readOnly then
              {
                options = standIns.optionsModule.options // {
                  nixpkgs = removeAttrs standIns.optionsModule.options.nixpkgs [
                    "hostPlatform"
                    "config"
                    "overlays"
                  ];
                };
              }
            else
              standIns.optionsModule
          )
          {
            _module.args.pkgs = pkgs;
            systemd.package = package "systemd-260";
            services.postgresql.package = pkgs.postgresql;
            system.build.toplevel = storePath "nixos-system-server-test";
            networking.primaryIPAddress = "192.168.1.2";
          }
        ]
        # Writable, the test framework's base configuration sets the guest's system
        # (nixpkgs.system), from which hostPlatform follows unless a node sets it.
        ++ (
          if readOnly then
            [ readOnlyNixpkgs ]
          else
            [ { nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux"; } ]
        )
        ++ [ test.nodes.server ]
        ++ extra;
      };
    in
    eval.config;

  render =
    check:
    let
      test = check.passthru.run;
      nodes.server = serverOf test;
      # The client's modules against the same options, with the nodes the framework passes.
      client =
        (lib.evalModules {
          modules = [
            standIns.optionsModule
            {
              _module.args = { inherit nodes pkgs; };
            }
            test.nodes.client
          ];
        }).config;
    in
    {
      inherit (test) name;
      check = {
        inherit (check) name script;
        run = test.outPath;
      };
      testScript = test.testScript { inherit nodes; };
      firewall = nodes.server.networking.firewall.allowedTCPPorts;
      clientHosts = client.networking.hosts;
      clientHostsEnabled = client.networking.hosts != { };
      clientEtc = lib.mapAttrs (_: file: toString file.source) client.environment.etc;
      specialisation = specialisationsOf test;
      # What NixOS evaluates for every node (read-only.nix seqs them into pkgs): a node module
      # that sets them where they are read-only fails here.
      nixpkgs = {
        inherit (nodes.server.nixpkgs) hostPlatform;
        overlays = builtins.length nodes.server.nixpkgs.overlays;
        pkgsReadOnly = test.node.pkgsReadOnly;
      };
      serverUser = nodes.server.users.users.root.openssh.authorizedKeys.keys;
      # The values the server ends up with, whatever an administrator's module says.
      serverSsh = {
        inherit (nodes.server.services.openssh) enable;
        inherit (nodes.server.services.openssh.settings) PermitRootLogin;
      };
      bitpoll = {
        inherit (nodes.server.services.bitpoll)
          baseUrl
          listenAddress
          port
          allowedHosts
          ;
        package = nodes.server.services.bitpoll.package.name;
        database = nodes.server.services.bitpoll.database.type;
        backup = nodes.server.services.bitpoll.backup.enable;
      };
    };
in
lib.mapAttrs (_: render) tests
