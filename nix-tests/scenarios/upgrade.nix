# upgrade: the server boots the previous release (0.10.0) and carries a specialisation with the
# current one; the scenario seeds data on 0.10.0, then activates the specialisation as
# `nixos-rebuild test` would (switch-to-configuration, boot loader untouched) and checks that
# the data survived and exactly the new migration was applied.
{ lib, packages, ... }:
let
  # The name the scenario's default switch_command uses as well.
  specialisation = "upgraded";
in
{
  server = {
    services.bitpoll.package = packages.bitpoll_0_10;
    specialisation.${specialisation}.configuration = {
      services.bitpoll.package = lib.mkForce packages.bitpoll;
    };
  };
  # The specialisation by the store path of the server's system, not through
  # /run/current-system: after the first switch /run/current-system is the specialisation
  # itself (which has no specialisations of its own), and the scenario switches a second time to
  # prove that a switch to the running system changes nothing.
  harnessVars =
    { nodes }:
    {
      switch_command = "${nodes.server.system.build.toplevel}/specialisation/${specialisation}/bin/switch-to-configuration test";
    };
}
