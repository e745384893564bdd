# Evaluates services.bitpoll with nixpkgs' lib alone (lib.evalModules), the NixOS option stub and
# fake pkgs, and returns what the tests inspect, as JSON-able data:
#   nix-instantiate --eval --strict --json module/tests/eval.nix \
#     --arg libPath "$NIXPKGS_LIB" --arg configuration '{ services.bitpoll.enable = true; }' -A result
{
  libPath,
  configuration ? { },
}:
let
  lib = import libPath;
  # nixpkgs as far as facts/nixpkgs.toml knows it, and the overlay's bitpoll.
  standIns = import ../../facts { inherit lib; };
  behaviours = import ../../facts/behaviours.nix { inherit lib; };
  pkgs = standIns.pkgs {
    behaviours = {
      inherit (behaviours) "pkgs.formats.json" "pkgs.writeScriptBin" "pkgs.runtimeShell";
    };
    own.bitpoll = behaviours.derivation "bitpoll-0.11.0" { };
  };

  evalWith =
    modules:
    lib.evalModules {
      modules = [
        ../default.nix
        standIns.optionsModule
        {
          _module.args.pkgs = pkgs;
          systemd.package = {
            type = "derivation";
            name = "systemd-260";
            outPath = "${builtins.storeDir}/00000000000000000000000000000000-systemd-260";
          };
          services.postgresql.package = pkgs.postgresql;
        }
      ]
      ++ modules;
    };

  eval = evalWith [ configuration ];
  inherit (eval) config;

  # Every option below services.bitpoll, sub-options of submodules (settings) included.
  collect =
    options:
    lib.concatMap (
      value:
      if lib.isOption value then
        [ value ]
        ++ (
          let
            sub = value.type.getSubOptions value.loc;
          in
          if value.type.name == "submodule" then collect (removeAttrs sub [ "_module" ]) else [ ]
        )
      else if builtins.isAttrs value then
        collect value
      else
        [ ]
    ) (builtins.attrValues options);
  bitpollOptions = collect eval.options.services.bitpoll;

  isLiteral = value: builtins.isAttrs value && value ? _type;

  describe = option: {
    name = lib.showOption option.loc;
    type = option.type.description;
    hasDescription = (option.description or null) != null && option.description != "";
    hasDefault = option ? default || option ? defaultText;
    hasExample = option ? example;
    exampleIsLiteral = option ? example && isLiteral option.example;
  };

  # Each option set to its example at once: evaluating this type-checks every example.
  examples = evalWith [
    {
      services.bitpoll.enable = true;
    }
    {
      config = lib.mkMerge (
        map (option: lib.setAttrByPath option.loc option.example) (
          builtins.filter (option: option ? example && !isLiteral option.example) bitpollOptions
        )
      );
    }
  ];

  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  settingsFile = config.systemd.services.bitpoll.environment.BITPOLL_SETTINGS_FILE or null;
in
{
  result = {
    assertions = failedAssertions;
    inherit (config) warnings;
    settings =
      if settingsFile == null then null else builtins.fromJSON (builtins.readFile settingsFile);
    services = config.systemd.services;
    sockets = config.systemd.sockets;
    timers = config.systemd.timers;
    targets = config.systemd.targets;
    tmpfiles = config.systemd.tmpfiles.settings;
    # The fields the module sets; the declared options have more, with their defaults.
    users = lib.mapAttrs (_: user: {
      inherit (user) isSystemUser group description;
    }) config.users.users;
    groups = lib.mapAttrs (_: _: { }) config.users.groups;
    postgresql = {
      inherit (config.services.postgresql) enable ensureDatabases ensureUsers;
    };
    prometheus = {
      inherit (config.services.prometheus) enable scrapeConfigs;
    };
    nginx = {
      inherit (config.services.nginx)
        enable
        upstreams
        virtualHosts
        recommendedProxySettings
        ;
    };
    firewall = config.networking.firewall.allowedTCPPorts;
    wrappers = map (p: {
      inherit (p) name text;
    }) config.environment.systemPackages;
  };

  options = map describe bitpollOptions;

  examples = {
    settings = builtins.fromJSON (
      builtins.readFile examples.config.systemd.services.bitpoll.environment.BITPOLL_SETTINGS_FILE
    );
    services = builtins.attrNames examples.config.systemd.services;
  };

  # For docs/options.md: nixpkgs' own documentation list of the options.
  docs = builtins.filter (option: lib.hasPrefix "services.bitpoll." option.name) (
    lib.optionAttrSetToDocList eval.options
  );
}
