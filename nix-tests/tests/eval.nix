# Evaluates the VM tests of nix-tests/ with nixpkgs' lib alone: pkgs.testers.runNixOSTest is
# replaced by a function that returns its argument, and each test's `nodes` by the
# services.bitpoll configuration that the module (module/default.nix with module/tests' NixOS
# option stub) computes from the test's server modules. The result, as JSON, is what
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
  fakePkgs = import ../../module/tests/fake-pkgs.nix { inherit lib; };
  storePath = name: "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  package = name: {
    type = "derivation";
    inherit name;
    outPath = storePath name;
  };

  pkgs = fakePkgs // {
    inherit lib;
    path = ./stub-nixpkgs;
    writeText = name: _: storePath name;
    # The nixosTest as its argument, with the output path the check around it reads.
    testers.runNixOSTest =
      test:
      test
      // {
        outPath = storePath "vm-test-run-${test.name}";
        driverInteractive = package "vm-test-run-${test.name}-driver";
      };
    runCommand = name: env: script: {
      inherit name script;
      inherit (env) passthru;
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

  # The server as the test script sees it: services.bitpoll evaluated from the server's modules
  # (other NixOS options are not declared by the stub and are dropped), plus the two attributes
  # the test framework provides.
  serverOf = test: serverWith test [ ];

  # A specialisation inherits its parent's configuration (inheritParentConfig's default): the
  # server's modules plus its own.
  specialisationsOf =
    test:
    let
      declared = lib.foldl' (acc: module: acc // (module.specialisation or { })) { } (
        builtins.filter builtins.isAttrs test.nodes.server.imports
      );
    in
    lib.mapAttrs (
      _: special: (serverWith test [ special.configuration ]).services.bitpoll.package.name
    ) declared;

  serverWith =
    test: extra:
    let
      eval = lib.evalModules {
        modules = [
          ../../module/tests/nixos-stub.nix
          {
            _module.check = false;
            _module.args.pkgs = fakePkgs;
            systemd.package = package "systemd-260";
            services.postgresql.package = fakePkgs.postgresql;
          }
        ]
        ++ test.nodes.server.imports
        ++ extra;
      };
    in
    lib.recursiveUpdate eval.config {
      system.build.toplevel = storePath "nixos-system-server-test";
      networking.primaryIPAddress = "192.168.1.2";
    };

  unwrap = value: if value._type or null == "override" then value.content else value;

  render =
    check:
    let
      test = check.passthru.run;
      nodes.server = serverOf test;
      client = test.nodes.client { inherit nodes; };
    in
    {
      inherit (test) name;
      check = {
        inherit (check) name script;
        run = test.outPath;
      };
      testScript = test.testScript { inherit nodes; };
      firewall = nodes.server.networking.firewall.allowedTCPPorts;
      clientHosts = client.networking.hosts.content or { };
      clientHostsEnabled = client.networking.hosts.condition or false;
      clientEtc = lib.mapAttrs (_: file: toString file.source) client.environment.etc;
      specialisation = specialisationsOf test;
      serverUser = test.nodes.server.users.users.root.openssh.authorizedKeys.keys;
      # Without mkForce's wrapper: the values the server ends up with.
      serverSsh = {
        enable = unwrap test.nodes.server.services.openssh.enable;
        PermitRootLogin = unwrap test.nodes.server.services.openssh.settings.PermitRootLogin;
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
