# services.bitpoll: Bitpoll, the poll and meeting scheduler, as a NixOS service.
#
# The units themselves are a pure function of a few paths and settings (units.nix, with the
# sandbox in hardening.nix), shared with the offline hardening gate and the systemd container
# testbed; the files here declare the options and wire that function into NixOS.
{
  imports = [
    ./options.nix
    ./settings.nix
    ./service.nix
    ./database.nix
    ./nginx.nix
    ./metrics.nix
    ./assertions.nix
  ];
}
