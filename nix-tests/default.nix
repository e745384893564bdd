# The VM tests: one per scenario file in scenarios/, found by discover.nix and built by
# make-test.nix, named vm-NAME. With `module`, the same tests run an administrator's
# configuration of services.bitpoll on the server instead of this project's test deployment
# (the flake's lib.mkValidationTest); `only` restricts them to the named scenarios.
{
  pkgs,
  bitpollModule,
  harness,
  packages,
  module ? null,
  only ? null,
  scenarioDir ? ../scenarios,
  overrideDir ? ./scenarios,
}:
let
  inherit (pkgs) lib;
  found = import ./discover.nix { inherit scenarioDir overrideDir; };
  unknown = if only == null then [ ] else lib.subtractLists (lib.attrNames found) only;
  selected = if only == null then found else lib.getAttrs only found;
  makeTest = import ./make-test.nix {
    inherit
      pkgs
      bitpollModule
      harness
      packages
      ;
  };
  # An administrator's module says how Bitpoll is deployed; the test turns the service on and
  # opens the port of its base URL, as the administrator's firewall would for its users.
  validationArgs = lib.optionalAttrs (module != null) {
    prefix = "bitpoll-validate";
    pkgsReadOnly = false;
    serverConfig =
      { config, ... }:
      {
        imports = [ module ];
        services.bitpoll.enable = lib.mkDefault true;
        networking.firewall.allowedTCPPorts = [
          (import ./endpoint.nix { inherit lib; } config.services.bitpoll.baseUrl).port
        ];
      };
  };
in
if unknown != [ ] then
  throw "no scenario `${lib.head unknown}`; the scenarios are: ${lib.concatStringsSep ", " (lib.attrNames found)}"
else
  lib.mapAttrs' (
    name: scenario:
    lib.nameValuePair "vm-${name}" (makeTest (scenario // { inherit name; } // validationArgs))
  ) selected
