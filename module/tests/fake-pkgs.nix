# The few pkgs attributes the module uses, without nixpkgs: derivation-shaped attribute sets
# with made-up store paths, and formats.json reimplemented after nixpkgs' pkgs-lib/formats.nix.
{ lib }:
let
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  };
in
{
  bitpoll = fakePackage "bitpoll-0.11.0";
  postgresql = fakePackage "postgresql-17.6";
  coreutils = fakePackage "coreutils-9.7";
  runtimeShell = "/bin/sh";

  formats.json =
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
      # A real file, so that tests read exactly the JSON the service would read.
      generate = name: value: builtins.toFile name (builtins.toJSON value);
    };

  writeScriptBin =
    name: text:
    fakePackage name
    // {
      inherit text;
    };
}
