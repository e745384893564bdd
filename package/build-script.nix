# Not part of the package: a test helper for ci/checks.d/20-pins.sh. It evaluates
# package/default.nix (or previous.nix) with nixpkgs' real lib and small stand-ins for the rest
# of nixpkgs, and returns the derivation's build phases as one shell script plus the facts the
# check compares: the Python environment's nixpkgs attribute names, the source and the version.
# The check runs that script on a Bitpoll checkout with a pip venv in place of the Nix Python
# environment, which is as close to building the package as a machine without nixpkgs gets.
{
  # nixpkgs' lib (NIXPKGS_LIB).
  lib,
  # "default" (package/default.nix) or "previous" (package/previous.nix).
  which,
  # The Python interpreter standing in for the package's Python environment.
  interpreter,
  # A directory standing in for noto-fonts-color-emoji (share/fonts/noto/NotoColorEmoji.ttf).
  noto,
}:

let
  # nixpkgs as far as facts/nixpkgs.toml knows it: every attribute the package takes, its
  # Python package set included, must be listed there, so one that nixpkgs lacks fails here as
  # it would in a real build (callPackageWith names a missing argument).
  standIns = import ../facts { inherit lib; };
  python3 = {
    pythonVersion = standIns.versionOf "pkgs.python3";
    override =
      { packageOverrides, ... }:
      let
        base = standIns.pythonPackages {
          behaviours."python3Packages.callPackage" =
            path: _: "local:${lib.removeSuffix ".nix" (baseNameOf path)}";
        };
        pythonPackages = lib.fix (lib.extends packageOverrides (_: base));
        # A package of nixpkgs is named by its attribute, one of package/python-modules by its file.
        nameOf = package: if builtins.isString package then package else "nixpkgs:${package.pname}";
      in
      {
        inherit (python3) pythonVersion;
        withPackages = select: {
          inherit interpreter;
          attributes = map nameOf (select pythonPackages);
        };
      };
  };
  pkgs = standIns.pkgs {
    behaviours = {
      "pkgs.python3" = python3;
      "pkgs.callPackage" = path: arguments: lib.callPackageWith pkgs path arguments;
      "pkgs.fetchFromGitHub" = source: source;
      "pkgs.stdenvNoCC.mkDerivation" =
        f:
        let
          attrs = f (attrs // { finalPackage = "/nix/store/final-package"; });
        in
        attrs // { overrideAttrs = g: attrs // g attrs; };
      # The font as a directory with share/fonts/noto/NotoColorEmoji.ttf, as nixpkgs installs it.
      "pkgs.noto-fonts-color-emoji" = noto;
    };
  };
  drv =
    if which == "default" then
      lib.callPackageWith pkgs ./default.nix { }
    else if which == "previous" then
      lib.callPackageWith pkgs ./previous.nix { }
    else
      throw "build-script.nix: which must be \"default\" or \"previous\", not ${which}";
in
{
  inherit (drv) version;
  inherit (drv.src) owner repo rev;
  pythonAttributes = drv.passthru.pythonEnv.attributes;
  script = lib.concatStringsSep "\n" [
    (drv.postPatch or "")
    drv.preBuild
    drv.buildPhase
    drv.installPhase
    drv.installCheckPhase
  ];
}
