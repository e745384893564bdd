# The hardening gate as a flake check: scores the unit files NixOS itself generates for
# services.bitpoll with `systemd-analyze security --offline=true` (no VM, no running systemd) and
# fails when one is above the budget. ci/checks.d/40-hardening.sh does the same on the units
# rendered from module/units.nix without nixpkgs; this check covers what NixOS adds on top.
#
# In flake.nix:
#   checks.${system}.hardening = import ./module/checks/hardening.nix {
#     inherit pkgs;
#     package = self.packages.${system}.bitpoll;
#   };
# or, to score a given system: import ./module/checks/hardening.nix { inherit pkgs; nixos = <a
# system evaluated with lib.nixosSystem or pkgs.nixos, with services.bitpoll enabled>; }.
{
  pkgs,
  # The Bitpoll package of the default system (pkgs.bitpoll when null, as the module's default).
  package ? null,
  # An evaluated NixOS system (it needs `config`) with services.bitpoll enabled. The default is
  # the smallest such system, with every Bitpoll unit present (and the metrics, which add a
  # socket, environment and a runtime directory to bitpoll.service).
  nixos ? pkgs.nixos {
    imports = [ ../default.nix ];
    services.bitpoll = {
      enable = true;
      backup.enable = true;
      metrics.enable = true;
    }
    // (if package == null then { } else { inherit package; });
    boot.loader.grub.enable = false;
    fileSystems."/" = {
      device = "none";
      fsType = "tmpfs";
    };
    system.stateVersion = "26.05";
  },
  # The budget on systemd-analyze's exposure scale (0 = locked down, 10 = unprotected).
  budget ? "1.0",
  units ? [
    "bitpoll.service"
    "bitpoll-backup.service"
    "bitpoll-clearsessions.service"
  ],
}:
let
  unitFile = name: "${nixos.config.systemd.units.${name}.unit}/${name}";
in
pkgs.runCommand "bitpoll-hardening-score"
  {
    nativeBuildInputs = [ nixos.config.systemd.package ];
    preferLocalBuild = true;
  }
  ''
    failed=0
    : > "$out"
    score_unit() {
      local name=$1 file=$2 report score
      report=$(systemd-analyze security --offline=true --no-pager "$file")
      score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
      if [ -z "$score" ]; then
        echo "error: no exposure level for $name in systemd-analyze's output" >&2
        failed=1
        return
      fi
      echo "$name: exposure $score (budget ${budget})" | tee -a "$out"
      if awk -v s="$score" -v b="${budget}" 'BEGIN { exit !(s > b) }'; then
        echo "FAIL $name: exposure $score is above the budget ${budget}" >&2
        printf '%s\n' "$report" | grep '✗' >&2 || true
        failed=1
      fi
    }
    ${pkgs.lib.concatMapStrings (name: ''
      score_unit ${pkgs.lib.escapeShellArg name} ${pkgs.lib.escapeShellArg (unitFile name)}
    '') units}
    exit "$failed"
  ''
