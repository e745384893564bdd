# Finds the VM tests to build: one per scenario file (scenarios/NAME.toml), each with its
# optional per-scenario override (nix-tests/scenarios/NAME.nix). Written with builtins only, so
# that plain `nix-instantiate --eval` runs it without nixpkgs (ci/checks.d/25-nix-tests.sh).
#
# The result maps each scenario name to
#   { scenario = <path of the TOML file>; override = <path or null>; vars = [ declared vars ]; }
# and evaluation fails, naming the file, on an override without a scenario, a file in
# nix-tests/scenarios/ that is not a .nix file, a scenario whose file name is not a valid
# attribute name, or a scenario whose [scenario] name differs from its file name.
{
  scenarioDir ? ../scenarios,
  overrideDir ? ./scenarios,
}:
let
  inherit (builtins)
    attrNames
    elem
    filter
    head
    listToAttrs
    match
    pathExists
    readDir
    stringLength
    substring
    ;

  # The directory's entries, or none when it does not exist (a repository without overrides).
  entries = dir: if pathExists dir then readDir dir else { };

  # File names ending in `suffix`, with the suffix removed. Symlinks count: a scenario may be
  # shared with another directory.
  stems =
    suffix: dir:
    let
      all = entries dir;
      isFile =
        name:
        elem all.${name} [
          "regular"
          "symlink"
        ];
      hasSuffix =
        name:
        stringLength name > stringLength suffix
        && substring (stringLength name - stringLength suffix) (stringLength suffix) name == suffix;
      strip = name: substring 0 (stringLength name - stringLength suffix) name;
    in
    map strip (filter (name: isFile name && hasSuffix name) (attrNames all));

  scenarioNames = stems ".toml" scenarioDir;
  overrideNames = stems ".nix" overrideDir;

  # Anything else in nix-tests/scenarios/ is a mistake (a typo in the extension, a directory).
  strays =
    let
      all = entries overrideDir;
    in
    filter (name: match ".*\\.nix" name == null || all.${name} == "directory") (attrNames all);
  orphans = filter (name: !(elem name scenarioNames)) overrideNames;
  badNames = filter (name: match "[A-Za-z][A-Za-z0-9_-]*" name == null) scenarioNames;

  # The scenario's header and variables, read with Nix's own TOML parser. The harness is the
  # authority on the format (`bitpoll-harness check`); this only needs the name and [vars].
  readScenario =
    name:
    let
      file = scenarioDir + "/${name}.toml";
      parsed = builtins.fromTOML (builtins.readFile file);
      declared = parsed.scenario.name or null;
    in
    if declared != name then
      throw "scenarios/${name}.toml: [scenario] name is ${
        if declared == null then "missing" else "\"${declared}\""
      }, expected \"${name}\" (the file name): rename the file or the scenario"
    else
      {
        scenario = file;
        override = if elem name overrideNames then overrideDir + "/${name}.nix" else null;
        vars = attrNames (parsed.vars or { });
      };
in
if strays != [ ] then
  throw "nix-tests/scenarios/${head strays}: not a .nix file; overrides are nix-tests/scenarios/NAME.nix for scenarios/NAME.toml"
else if orphans != [ ] then
  throw "nix-tests/scenarios/${head orphans}.nix: there is no scenarios/${head orphans}.toml for this override; remove the file or add the scenario"
else if badNames != [ ] then
  throw "scenarios/${head badNames}.toml: a scenario's file name must start with a letter and hold only letters, digits, - and _ (it names the check vm-${head badNames})"
else
  listToAttrs (
    map (name: {
      inherit name;
      value = readScenario name;
    }) scenarioNames
  )
