# The hosts of `bitpoll-harness run --inventory-from-flake REF` (harness/src/fleet/flake_hosts.rs
# embeds this file): given a flake's outputs, every configuration that enables services.bitpoll,
# with where to reach it over SSH and its base URL. It is a function of the outputs alone, so that
# tests can apply it to a plain attribute set shaped like them; the harness applies it to
# `builtins.getFlake REF`. It only gathers facts: flake_hosts.rs checks them and words the errors.
#
# The shapes read here, as their sources define them (docs/fleet.md, "Hosts from a flake"):
#
# - colmena, zhaofengli/colmena at 5bf4ce6a24adba74a5184f4a9bef01d545a09473: the `colmenaHive`
#   output is `colmena.lib.makeHive` (flake.nix), which is src/nix/hive/eval.nix; its
#   `nodes.NAME` is each node's NixOS evaluation, with `.config`. src/nix/hive/options.nix
#   declares deployment.targetHost (null or a string; default: the node's name; null means local
#   deployment only), deployment.targetPort (null: ssh's default), deployment.targetUser (default
#   "root"; null: ssh's default) and deployment.tags. The plain `colmena` output is the hive
#   before evaluation, which only colmena's own eval.nix turns into nodes, so it is not read.
# - deploy-rs, serokell/deploy-rs at d5eff7f948535b9c723d60cd8239f8f11ddc90fa: interface.json
#   and src/data.rs give `deploy.nodes.NAME.hostname` (required), and sshUser, user and sshOpts
#   at the top of `deploy`, on each node and on each profile; src/lib.rs (make_deploy_data)
#   prefers the profile's value to the node's to the top's, appends the sshOpts in that order,
#   logs in as sshUser and only uses `user` for sudo, so `user` is not the SSH login.
# - NixOS, NixOS/nixpkgs at 003a3fd2f05c2fe13e1bb6db3158d33004723870:
#   nixos/modules/tasks/network-interfaces.nix defaults networking.fqdn to "hostName.domain" and
#   throws when networking.domain is null or the host name is empty, hence the tryEval below.
outputs:
let
  inherit (builtins)
    attrNames
    elemAt
    filter
    length
    map
    match
    tryEval
    ;

  hive = (outputs.colmenaHive or { }).nodes or { };
  systems = outputs.nixosConfigurations or { };
  deploy = outputs.deploy or { };

  # A colmena node carries its deployment options, so its evaluation is read when a name is both
  # a node and a NixOS configuration.
  configs =
    (builtins.mapAttrs (_: system: system.config) systems)
    // (builtins.mapAttrs (_: node: node.config) hive);
  sourceOf = name: if hive ? ${name} then "colmenaHive" else "nixosConfigurations";
  # The attribute of a configuration, for messages that tell people what to evaluate.
  attributeOf =
    name:
    if hive ? ${name} then "colmenaHive.nodes.${name}.config" else "nixosConfigurations.${name}.config";

  # The first port that sshOpts gives as `-p PORT` or `-pPORT`, as written (flake_hosts.rs checks
  # it); other forms, such as `-o Port=PORT`, are not read.
  portIn =
    options:
    let
      count = length options;
      go =
        index:
        if index >= count then
          null
        else
          let
            option = elemAt options index;
            joined = match "-p(.+)" option;
          in
          if option == "-p" && index + 1 < count then
            elemAt options (index + 1)
          else if joined != null then
            elemAt joined 0
          else
            go (index + 1);
    in
    go 0;

  # Where to reach a configuration: colmena's deployment options, deploy-rs' node, then the
  # configuration's own name. Each source is only evaluated when the ones before it gave nothing.
  targetOf =
    name: config:
    let
      deployment = config.deployment or { };
      node = (deploy.nodes or { }).${name} or { };
      profile = (node.profiles or { }).system or { };
      fqdn = tryEval (config.networking.fqdn or null);
      hostName = config.networking.hostName or "";
    in
    if (deployment.targetHost or null) != null then
      {
        host = deployment.targetHost;
        from = "deployment.targetHost";
        user = deployment.targetUser or null;
        port = deployment.targetPort or null;
      }
    else if (node.hostname or null) != null then
      {
        host = node.hostname;
        from = "deploy.nodes.${name}.hostname";
        user = profile.sshUser or node.sshUser or deploy.sshUser or null;
        port = portIn ((profile.sshOpts or [ ]) ++ (node.sshOpts or [ ]) ++ (deploy.sshOpts or [ ]));
      }
    else if fqdn.success && fqdn.value != null then
      {
        host = fqdn.value;
        from = "networking.fqdn";
        user = null;
        port = null;
      }
    else if hostName != "" then
      {
        host = hostName;
        from = "networking.hostName";
        user = null;
        port = null;
      }
    else
      {
        host = null;
        from = null;
        user = null;
        port = null;
      };

  # A configuration whose enable option throws is reported, not skipped: it may be a host that
  # should have been checked.
  enabled = name: tryEval (configs.${name}.services.bitpoll.enable or false);
  names = attrNames configs;
  withState = map (name: {
    inherit name;
    state = enabled name;
  }) names;
  pick = predicate: map (entry: entry.name) (filter predicate withState);
in
{
  hosts = map (
    name:
    let
      config = configs.${name};
    in
    {
      inherit name;
      source = sourceOf name;
      target = targetOf name config;
      baseUrl = config.services.bitpoll.baseUrl or null;
      tags = (config.deployment or { }).tags or [ ];
    }
  ) (pick (entry: entry.state.success && entry.state.value == true));
  disabled = pick (entry: entry.state.success && entry.state.value != true);
  broken = map (name: "${attributeOf name}.services.bitpoll.enable") (
    pick (entry: !entry.state.success)
  );
  # Which outputs exist, for the error when no host was found.
  present = {
    nixosConfigurations = outputs ? nixosConfigurations;
    colmenaHive = outputs ? colmenaHive;
    colmena = outputs ? colmena;
    deploy = outputs ? deploy;
  };
}
