# The stand-ins for nixpkgs that evaluate this project's Nix code without nixpkgs, generated from
# facts/nixpkgs.toml and from nothing else: an attribute or option that file does not list does
# not exist here either, so using one fails our checks exactly as it would fail a real
# evaluation (and facts/check.py turns Nix's message into one that says to cite a source).
#
#   standIns = import ./facts { lib = import "${NIXPKGS_LIB}"; };
#   standIns.pkgs { behaviours = { "pkgs.runCommand" = name: env: script: ...; }; own = { ... }; }
#   standIns.optionsModule            # a NixOS-style module declaring the listed options
#
# The driver facts ([[driver]]) are read by nix-tests/tests/check_tests.py itself.
#
# A fact of kind "derivation" becomes a derivation-shaped attribute set with a made-up store
# path; "function" and "value" facts need a behaviour from the caller (what the stand-in does
# is the test's business, whether it exists is the facts file's), and one without a behaviour
# throws when used. A behaviour for anything the file does not list is refused.
{
  lib,
  facts ? lib.importTOML ./nixpkgs.toml,
}:
let
  inherit (lib)
    concatStringsSep
    filter
    foldl'
    hasPrefix
    head
    length
    mkOption
    recursiveUpdate
    setAttrByPath
    splitString
    tail
    types
    ;

  factsFile = "facts/nixpkgs.toml";
  sureness = [
    "read"
    "older"
    "inferred"
  ];

  # Every entry names its source; a malformed entry stops the evaluation with its path.
  checked =
    section: entry:
    let
      where = "${factsFile}: [[${section}]] ${entry.path or entry.name or "(no path)"}";
      missing = filter (key: !(entry ? ${key})) [
        "source"
        "read"
        "sureness"
      ];
    in
    if missing != [ ] then
      throw "${where}: missing ${concatStringsSep ", " missing}; every fact names the nixpkgs file that declares it, the version read and how sure it is"
    else if !(lib.elem entry.sureness sureness) then
      throw "${where}: sureness must be one of ${concatStringsSep ", " sureness}, not ${entry.sureness}"
    else
      entry;

  attributes = map (checked "attribute") (facts.attribute or [ ]);
  options = map (checked "option") (facts.option or [ ]);
  driverFacts = map (checked "driver") (facts.driver or [ ]);

  inherit (import ./behaviours.nix { inherit lib; }) storePath;
  derivationOf =
    fact:
    let
      pname = fact.pname or (lib.last (splitString "." fact.path));
      name = if fact ? version then "${pname}-${fact.version}" else pname;
    in
    {
      type = "derivation";
      inherit name pname;
      outPath = storePath name;
      version = fact.version or "";
      meta = { };
      passthru = { };
    };

  kinds = [
    "derivation"
    "function"
    "value"
  ];
  factPaths = map (fact: fact.path) attributes;

  # One set of attribute facts below a prefix ("pkgs." or "python3Packages."), as nested
  # attribute sets.
  tree =
    prefix: behaviours:
    let
      # A behaviour for an attribute stands for everything below it as well.
      coveredByBehaviour =
        fact: lib.any (path: hasPrefix "${path}." fact.path) (lib.attrNames behaviours);
      mine = filter (fact: hasPrefix prefix fact.path && !(coveredByBehaviour fact)) attributes;
      valueOf =
        fact:
        if !(lib.elem fact.kind kinds) then
          throw "${factsFile}: [[attribute]] ${fact.path}: kind must be one of ${concatStringsSep ", " kinds}"
        else if behaviours ? ${fact.path} then
          behaviours.${fact.path}
        else if fact.kind == "derivation" then
          derivationOf fact
        else
          throw "${fact.path} is in ${factsFile}, but this check's stand-ins give it no behaviour; add one where the stand-in pkgs is made";
    in
    foldl' (
      acc: fact:
      recursiveUpdate acc (
        setAttrByPath (splitString "." (lib.removePrefix prefix fact.path)) (valueOf fact)
      )
    ) { } mine;

  # Behaviours are only for listed attributes: a stand-in for anything else would accept what
  # nixpkgs refuses.
  refuseUnlisted =
    behaviours:
    let
      unlisted = filter (path: !(lib.elem path factPaths)) (lib.attrNames behaviours);
    in
    if unlisted != [ ] then
      throw "a stand-in behaviour for ${head unlisted}, which ${factsFile} does not list; read its declaration in the nixpkgs sources and add it there with its source first"
    else
      true;

  # The option type language of the facts file: a name, or [ constructor, argument... ].
  baseTypes = {
    inherit (types)
      anything
      attrs
      bool
      float
      int
      lines
      package
      path
      port
      raw
      str
      unspecified
      ;
    # nixos/modules/tasks/network-interfaces.nix: networking.hostName, a DNS label or empty.
    hostName = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
    # nixos/lib/systemd-lib.nix: a unit name with one of systemd's unit types.
    unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
    # nixos/lib/systemd-unit-options.nix: a unit setting is a scalar or a list of scalars.
    unitOption =
      let
        scalar = types.oneOf [
          types.bool
          types.int
          types.str
          types.path
        ];
      in
      types.either scalar (types.listOf scalar);
  };
  typeOf =
    where: spec:
    if builtins.isString spec then
      baseTypes.${spec}
        or (throw "${where}: unknown type `${spec}`; one of ${concatStringsSep ", " (lib.attrNames baseTypes)}")
    else if builtins.isList spec && spec != [ ] then
      let
        constructor = head spec;
        arguments = map (typeOf where) (tail spec);
        one =
          if length arguments == 1 then
            head arguments
          else
            throw "${where}: ${constructor} takes one type, got ${toString (length arguments)}";
      in
      if constructor == "listOf" then
        types.listOf one
      else if constructor == "attrsOf" then
        types.attrsOf one
      else if constructor == "nullOr" then
        types.nullOr one
      else if constructor == "oneOf" then
        types.oneOf arguments
      else if constructor == "enum" then
        types.enum (tail spec)
      else
        throw "${where}: unknown type constructor `${constructor}`; one of listOf, attrsOf, nullOr, oneOf, enum"
    else
      throw "${where}: a type is a name or [ constructor, argument... ]";

  # Options as a tree of path segments: `<name>` stands for an attribute set of submodules,
  # `*` for a list of them (NixOS's attrsOf/listOf (submodule ...)).
  optionOf =
    fact:
    let
      where = "${factsFile}: [[option]] ${fact.path}";
      type = typeOf where fact.type;
      isNullable = builtins.isList fact.type && head fact.type == "nullOr";
    in
    mkOption (
      {
        inherit type;
        description = fact.note or fact.path;
      }
      // lib.optionalAttrs (fact ? default || isNullable) { default = fact.default or null; }
    );

  isCollection = segment: segment == "<name>" || segment == "*";
  below = n: map (entry: entry // { rest = lib.drop n entry.rest; });

  # The type of the options below a collection marker: more markers nest attribute sets and
  # lists, the first named segment starts a submodule.
  collectionType =
    entries:
    let
      markers = lib.unique (map (entry: head entry.rest) entries);
      marker = head markers;
    in
    if !(lib.any isCollection markers) then
      types.submodule { options = declare entries; }
    else if length markers > 1 then
      throw "${factsFile}: options mix ${concatStringsSep " and " markers} at the same place"
    else
      (if marker == "<name>" then types.attrsOf else types.listOf) (collectionType (below 1 entries));

  declare =
    entries:
    let
      leaves = filter (entry: length entry.rest == 1) entries;
      groups = lib.groupBy (entry: head entry.rest) (filter (entry: length entry.rest > 1) entries);
      group =
        name: children:
        if isCollection (lib.elemAt (head children).rest 1) then
          mkOption {
            type = collectionType (below 1 children);
            default = if lib.elemAt (head children).rest 1 == "*" then [ ] else { };
            description = name;
          }
        else
          declare (below 1 children);
    in
    lib.mapAttrs group groups
    // lib.listToAttrs (map (entry: lib.nameValuePair (head entry.rest) entry.option) leaves);
in
{
  inherit facts;

  # Every entry, each checked for its source, version read and sureness.
  entries = builtins.deepSeq (attributes ++ options ++ driverFacts) (
    attributes ++ options ++ driverFacts
  );

  # A pkgs of the listed `pkgs.*` facts with the given behaviours, plus `own`: attributes this
  # project adds itself (the overlay's bitpoll), which are no nixpkgs facts. nixpkgs' lib is
  # pkgs.lib, as in nixpkgs.
  pkgs =
    {
      behaviours ? { },
      own ? { },
    }:
    assert refuseUnlisted behaviours;
    recursiveUpdate (tree "pkgs." behaviours) own // { inherit lib; };

  # The Python package set (python3Packages.* facts) with the given behaviours, as the set a
  # packageOverrides extension receives.
  pythonPackages =
    {
      behaviours ? { },
    }:
    assert refuseUnlisted behaviours;
    tree "python3Packages." behaviours;

  # The version a fact records (such as pkgs.python3's "3.13").
  versionOf =
    path:
    let
      found = filter (fact: fact.path == path) attributes;
    in
    if found == [ ] || !(head found ? version) then
      throw "${path}: ${factsFile} records no version for it"
    else
      (head found).version;

  # A module declaring every listed NixOS option, with its type and default.
  optionsModule = {
    options = declare (
      map (
        fact:
        let
          segments = splitString "." fact.path;
        in
        {
          rest = segments;
          option = optionOf fact;
        }
      ) options
    );
  };

}
