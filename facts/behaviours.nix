# What the stand-ins of facts/default.nix do when called, for the attributes several checks share.
# Only behaviour lives here: whether an attribute exists is facts/nixpkgs.toml's business, and
# facts/default.nix refuses a behaviour for an attribute that file does not list.
{ lib }:
let
  storePath = name: "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  derivation =
    name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = storePath name;
    }
    // attrs;
in
{
  inherit storePath derivation;

  # pkgs/pkgs-lib/formats.nix: the JSON value type, and a real file with the value (nixpkgs runs
  # jq over the same builtins.toJSON), so that tests read exactly what the service would read.
  "pkgs.formats.json" =
    { }:
    {
      type =
        let
          valueType =
            lib.types.nullOr (
              lib.types.oneOf [
                lib.types.bool
                lib.types.int
                lib.types.float
                lib.types.str
                lib.types.path
                (lib.types.attrsOf valueType)
                (lib.types.listOf valueType)
              ]
            )
            // {
              description = "JSON value";
            };
        in
        valueType;
      generate = name: value: builtins.toFile name (builtins.toJSON value);
    };

  "pkgs.writeScriptBin" = name: text: derivation name { inherit text; };
  "pkgs.writeText" = name: _: storePath name;
  "pkgs.runtimeShell" = "/bin/sh";
}
