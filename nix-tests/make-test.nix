# The one helper every VM test is built with: a `server` running services.bitpoll and a
# `client` that runs `bitpoll-harness run SCENARIO` against it, over SSH (as root, with nixpkgs'
# throwaway snakeoil key) for commands and over HTTP for requests.
#
# Two derivations, so that the reports survive a failing scenario: Nix keeps no output of a
# failed build, so the nixosTest itself (passthru.run) records the harness's exit code next to
# report.json and junit.xml and succeeds whenever the harness ran; the check around it copies
# the reports and fails unless that exit code is 0 (1: a step failed, 2: the run could not
# start). CI builds `run` first to keep the reports either way (docs/vm-tests.md).
{
  pkgs,
  # The flake's NixOS module (services.bitpoll).
  bitpollModule,
  # The bitpoll-harness package run on the client.
  harness,
  # Packages a per-scenario override may use (`bitpoll`, `bitpoll_0_10`).
  packages,
}:
{
  # The scenario's name, file (scenarios/NAME.toml) and declared variables, as nix-tests/discover.nix
  # returns them.
  name,
  scenario,
  vars,
  # nix-tests/scenarios/NAME.nix, or null.
  override ? null,
  # The server's configuration of services.bitpoll. The default is this project's test
  # deployment; lib.mkValidationTest passes an administrator's module instead.
  serverConfig ? {
    services.bitpoll = {
      enable = true;
      listenAddress = "0.0.0.0";
      openFirewall = true;
      # The client reaches the server by its node name; the base URL follows
      # (http://server:8080, see services.bitpoll.baseUrl).
      allowedHosts = [ "server" ];
    };
  },
  # Prefix of the test's name (the derivation is named vm-test-run-PREFIX-NAME).
  prefix ? "bitpoll",
  # runNixOSTest sets node.pkgs, which makes nixpkgs.* read-only on the nodes; an
  # administrator's module may set them (nixpkgs.hostPlatform in any
  # hardware-configuration.nix, nixpkgs.config, nixpkgs.overlays), so validation tests pass false.
  pkgsReadOnly ? true,
}:
let
  inherit (pkgs) lib;
  sshKeys = import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs;
  where = "nix-tests/scenarios/${name}.nix";

  # An override file is a function of { pkgs, lib, packages } to an attribute set with any of
  # `server` and `client` (NixOS modules added to that node) and `harnessVars` (an attribute set
  # of scenario variables, or a function of { nodes } to one, passed as --var NAME=VALUE).
  overrides =
    if override == null then
      { }
    else
      let
        function = import override;
        value =
          if lib.isFunction function then
            function { inherit pkgs lib packages; }
          else
            throw "${where}: must be a function of { pkgs, lib, packages, ... }, such as `_: { server = { ... }; }`";
        unknown = lib.subtractLists [
          "server"
          "client"
          "harnessVars"
        ] (lib.attrNames value);
      in
      if !lib.isAttrs value then
        throw "${where}: must evaluate to an attribute set of server, client and harnessVars"
      else if unknown != [ ] then
        throw "${where}: unknown attribute `${lib.head unknown}`; expected server, client or harnessVars"
      else
        value;

  harnessVarsFor =
    nodes:
    let
      raw = overrides.harnessVars or { };
      given = if lib.isFunction raw then raw { inherit nodes; } else raw;
      # The harness refuses a --var its scenario does not declare; say so here, at evaluation,
      # with the file to fix.
      undeclared = lib.subtractLists vars (lib.attrNames given);
    in
    if undeclared != [ ] then
      throw "${where}: harnessVars.${lib.head undeclared} is not declared in [vars] of scenarios/${name}.toml; declare it there or remove it here"
    else
      given;

  endpointOf = import ./endpoint.nix { inherit lib; };

  reportDir = "/tmp/bitpoll-harness";
  identity = "/root/.ssh/id_ecdsa";
  # The scenario this test runs, found by name in --scenarios as everywhere else.
  scenarioDir = "/etc/bitpoll-harness/scenarios";

  run = pkgs.testers.runNixOSTest {
    name = "${prefix}-${name}";
    node = { inherit pkgsReadOnly; };

    nodes.server = {
      imports = [
        bitpollModule
        serverConfig
        (overrides.server or { })
      ];
      # The harness logs in as root with the snakeoil key below, keys only. Forced, because an
      # administrator's configuration under validation may close SSH or root logins; the test
      # needs them to look inside.
      services.openssh = {
        enable = lib.mkForce true;
        settings.PermitRootLogin = lib.mkForce "prohibit-password";
      };
      users.users.root.openssh.authorizedKeys.keys = [ sshKeys.snakeOilPublicKey ];
      # Bitpoll, PostgreSQL and a second system generation (upgrade) need more than the default.
      virtualisation.memorySize = lib.mkDefault 2048;
    };

    nodes.client =
      { nodes, ... }:
      let
        endpoint = endpointOf nodes.server.services.bitpoll.baseUrl;
      in
      {
        imports = [ (overrides.client or { }) ];
        environment.systemPackages = [ harness ];
        # Part of the client's closure, so it is in the VM's store.
        environment.etc."bitpoll-harness/scenarios/${name}.toml".source = scenario;
        # An administrator's base URL names their public host; here it is the server.
        networking.hosts = lib.mkIf (endpoint.host != "server") {
          ${nodes.server.networking.primaryIPAddress} = [ endpoint.host ];
        };
      };

    testScript =
      { nodes, ... }:
      let
        cfg = nodes.server.services.bitpoll;
        endpoint = endpointOf cfg.baseUrl;
        # Wildcard listeners are checked on the loopback address.
        localAddress =
          if
            lib.elem cfg.listenAddress [
              "0.0.0.0"
              "::"
              "[::]"
            ]
          then
            "127.0.0.1"
          else
            cfg.listenAddress;
        command = lib.escapeShellArgs (
          [
            "bitpoll-harness"
            "run"
            name
            "--scenarios"
            scenarioDir
            "--target"
            "ssh://root@server"
            "--identity"
            identity
            "--known-hosts"
            "accept-new"
            "--known-hosts-file"
            "/root/.ssh/known_hosts"
            "--base-url"
            cfg.baseUrl
            "--report"
            "${reportDir}/report.json"
            "--junit"
            "${reportDir}/junit.xml"
          ]
          ++ lib.concatLists (
            lib.mapAttrsToList (var: value: [
              "--var"
              "${var}=${toString value}"
            ]) (harnessVarsFor nodes)
          )
        );
      in
      ''
        start_all()

        server.wait_for_unit("bitpoll.socket")
        ${lib.optionalString (cfg.unixSocket == null) ''
          server.wait_for_open_port(${toString cfg.port}, ${builtins.toJSON localAddress})
        ''}
        server.wait_for_open_port(22)
        client.wait_for_unit("multi-user.target")
        client.wait_for_open_port(${toString endpoint.port}, ${builtins.toJSON endpoint.host})

        client.succeed(
            "install -D -m 0600 ${sshKeys.snakeOilPrivateKey} ${identity}",
            "mkdir -p ${reportDir}",
        )

        # The exit code is judged by the check around this test, after the reports are saved.
        # The timeout is a backstop: each scenario has its own budget (15 minutes at most), the
        # test driver's global timeout is an hour.
        status, output = client.execute(${builtins.toJSON "${command} 2>&1"}, timeout=1800)
        print(output)

        client.succeed(f"echo {status} > ${reportDir}/harness-status")

        # Into the test's $out (an empty target directory); the driver type-checks this script,
        # so only methods the pinned driver declares are called (facts/nixpkgs.toml).
        for artefact in ("harness-status", "report.json", "junit.xml"):
            path = f"${reportDir}/{artefact}"
            if client.execute(f"test -f {path}")[0] == 0:
                client.copy_from_machine(path, "")
            else:
                client.log(f"bitpoll-harness wrote no {artefact}")
      '';
  };
in
pkgs.runCommand "vm-test-${prefix}-${name}"
  {
    passthru = {
      inherit run;
      inherit (run) driverInteractive;
    };
    preferLocalBuild = true;
  }
  ''
    mkdir -p "$out"
    for artefact in report.json junit.xml; do
      if [ -f ${run}/"$artefact" ]; then
        cp ${run}/"$artefact" "$out/"
      fi
    done
    status=$(cat ${run}/harness-status)
    if [ "$status" != 0 ]; then
      echo "bitpoll-harness run ${name} exited with $status (1: a step failed, 2: the run could not start); the reports are in ${run}" >&2
      exit 1
    fi
  ''
