# Turns the unit data of module/units.nix into file contents, as pure Nix (builtins only):
#   "<unit name>"            the unit file (INI), rendered like NixOS renders unit options
#   "tmpfiles.d/bitpoll.conf" the directories to create before the units start
#   "bin/bitpoll-manage", "bin/bitpoll-ops"  the package's commands in a transient unit with the
#                            service's user, credentials and sandbox
# ci/render-units writes these files; the NixOS module uses the same wrapper text.
{
  # What module/units.nix returned.
  unitData,
  # The systemd-run executable the wrapper calls (NixOS passes its store path).
  systemdRun ? "systemd-run",
  # The interpreter of the wrappers (NixOS passes pkgs.runtimeShell).
  shell ? "/bin/sh",
  # More properties for the wrappers' transient units, e.g. "Environment=PATH=...".
  extraProperties ? [ ],
}:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    concatMap
    filter
    isList
    map
    replaceStrings
    ;

  show =
    v:
    if v == true then
      "true"
    else if v == false then
      "false"
    else
      toString v;

  # One `Key=value` line per value, lists giving several lines, as NixOS's attrsToSection does.
  sectionLines =
    attrs:
    concatMap (
      name:
      map (v: "${name}=${show v}") (if isList attrs.${name} then attrs.${name} else [ attrs.${name} ])
    ) (attrNames attrs);

  # Environment="NAME=value": systemd would expand specifiers and unquote, so escape both.
  environmentLines =
    env:
    map (
      name:
      "Environment=\"${
        replaceStrings [ "\\" "\"" "%" ] [ "\\\\" "\\\"" "%%" ] "${name}=${env.${name}}"
      }\""
    ) (attrNames env);

  sectionOrder = [
    "Unit"
    "Socket"
    "Service"
    "Timer"
    "Install"
  ];

  renderUnit =
    unit:
    let
      present = filter (s: unit ? ${s}) sectionOrder;
      renderSection =
        s:
        "[${s}]\n"
        + concatStringsSep "\n" (
          (if s == "Service" then environmentLines (unit.environment or { }) else [ ])
          ++ sectionLines unit.${s}
        )
        + "\n";
    in
    concatStringsSep "\n" (map renderSection present);

  tmpfilesText = concatStringsSep "" (
    map (r: "${r.type} ${r.path} ${r.mode} ${r.user} ${r.group} -\n") unitData.tmpfiles
  );

  shellQuote = s: "'${replaceStrings [ "'" ] [ "'\\''" ] s}'";

  wrapper = name: w: ''
    #!${shell}
    # ${name}: Bitpoll's ${name} as the service runs it, in a transient unit with the
    # service's user, credentials, environment and sandbox. Needs root (or polkit's consent).
    set -eu
    if [ -t 0 ] && [ -t 1 ]; then io=--pty; else io=--pipe; fi
    exec ${shellQuote systemdRun} --quiet --wait --collect --service-type=exec "$io" \
    ${
      concatStringsSep "" (map (p: "  -p ${shellQuote p} \\\n") (w.properties ++ extraProperties))
    }  -- ${shellQuote w.command} "$@"
  '';
in
builtins.mapAttrs (_: renderUnit) unitData.units
// {
  "tmpfiles.d/bitpoll.conf" = tmpfilesText;
}
// builtins.listToAttrs (
  map (name: {
    name = "bin/${name}";
    value = wrapper name unitData.wrappers.${name};
  }) (attrNames unitData.wrappers)
)
