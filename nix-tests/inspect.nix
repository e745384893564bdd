# What `bitpoll-harness validate --eval-only` needs to know about an administrator's
# configuration of services.bitpoll, as JSON-able data, with nothing built and no VM: the failed
# assertions and the warnings exactly as NixOS would print them, the text of every Bitpoll unit
# (to score its sandbox with `systemd-analyze security --offline=true`), and the derivations of
# the settings file and the package (to run Django's `check --deploy` on them).
#
# The flake exposes it as lib.inspectConfiguration { system; module; }.
{
  lib,
  # nixpkgs' lib.nixosSystem (the flake's nixpkgs).
  nixosSystem,
  # The flake's nixosModules.bitpoll.
  bitpollModule,
  # The administrator's module (a path, a function or an attribute set).
  module,
  system,
}:
let
  nixos = nixosSystem {
    modules = [
      bitpollModule
      module
      # The least a system needs to evaluate, each overridable by the administrator's module:
      # the checks look at Bitpoll's units, not at how the machine boots.
      {
        nixpkgs.hostPlatform = lib.mkDefault system;
        boot.loader.grub.enable = lib.mkDefault false;
        fileSystems."/" = lib.mkDefault {
          device = "none";
          fsType = "tmpfs";
        };
        system.stateVersion = lib.mkDefault lib.trivial.release;
        # As lib.mkValidationTest does: the module under validation configures the service.
        services.bitpoll.enable = lib.mkDefault true;
      }
    ];
  };
  inherit (nixos) config;
  cfg = config.services.bitpoll;

  # A store path with the derivation that builds it. A string's context names its derivation
  # (`nix build DRV^out` builds it), so the settings file needs no option of its own.
  buildable = value: {
    path = builtins.unsafeDiscardStringContext (toString value);
    drvPath = lib.head (lib.attrNames (builtins.getContext (toString value)));
  };

  bitpollUnits = lib.filterAttrs (name: unit: lib.hasPrefix "bitpoll" name && unit.enable) (
    config.systemd.units
  );
  service = config.systemd.services.bitpoll or null;
in
{
  # Like NixOS's "Failed assertions:" list, which stops a build.
  assertions = map (assertion: assertion.message) (
    lib.filter (assertion: !assertion.assertion) config.assertions
  );
  inherit (config) warnings;
  units = lib.mapAttrs (_: unit: unit.text) bitpollUnits;
  # The service reads its settings from this file (module/service.nix renders it).
  settingsFile =
    if service == null || !(service.environment ? BITPOLL_SETTINGS_FILE) then
      null
    else
      buildable service.environment.BITPOLL_SETTINGS_FILE;
  package = if cfg.enable then buildable cfg.package // { inherit (cfg.package) name; } else null;
}
