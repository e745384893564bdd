# Evaluates module/checks/hardening.nix without nixpkgs: runCommand returns its build script,
# which the tests run with the host's systemd-analyze against unit files rendered elsewhere.
{
  unitDir,
  budget ? "1.0",
}:
let
  pkgs = {
    lib = {
      concatMapStrings = f: list: builtins.concatStringsSep "" (map f list);
      escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";
    };
    runCommand = name: env: script: { inherit name env script; };
  };
  nixos.config.systemd = {
    package = "/usr";
    units = builtins.listToAttrs (
      map
        (name: {
          inherit name;
          value.unit = unitDir;
        })
        [
          "bitpoll.service"
          "bitpoll-backup.service"
          "bitpoll-clearsessions.service"
        ]
    );
  };
in
(import ../checks/hardening.nix { inherit pkgs nixos budget; }).script
