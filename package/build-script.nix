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
  # The Python package set: every attribute the package may take from nixpkgs resolves to a
  # marker string, anything else fails the evaluation, so a misspelt attribute name is caught.
  nixpkgsPythonAttributes = [
    "caldav"
    "django"
    "django_5"
    "django_6"
    "django-auth-ldap"
    "django-encrypted-model-fields"
    "django-markdownify"
    "django-pipeline"
    "django-widget-tweaks"
    "gunicorn"
    "icalendar"
    "psycopg2"
    "pytz"
    "whitenoise"
  ];
  python3.override =
    { packageOverrides, ... }:
    let
      base = lib.genAttrs nixpkgsPythonAttributes (name: "nixpkgs:${name}") // {
        callPackage = path: _: "local:${lib.removeSuffix ".nix" (baseNameOf path)}";
      };
      pkgs = lib.fix (lib.extends packageOverrides (_: base));
    in
    {
      # package/default.nix requires at least 3.12; nixpkgs 26.05's python3 is 3.13.
      pythonVersion = "3.13";
      withPackages = select: {
        inherit interpreter;
        attributes = select pkgs;
      };
    };
  stdenvNoCC.mkDerivation =
    f:
    let
      attrs = f (attrs // { finalPackage = "/nix/store/final-package"; });
    in
    attrs // { overrideAttrs = g: attrs // g attrs; };
  packageArguments = {
    inherit lib stdenvNoCC python3;
    fetchFromGitHub = source: source;
    bash = "/bin/bash";
    gettext = "gettext";
    noto-fonts-color-emoji = noto;
  };
  drv =
    if which == "default" then
      import ./default.nix packageArguments
    else if which == "previous" then
      import ./previous.nix {
        inherit lib;
        callPackage = path: arguments: import path (packageArguments // arguments);
      }
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
