#!/usr/bin/env bash
# Debian packages the tests use: an OpenSSH server for the ssh target tests, PostgreSQL for the
# process testbed, gettext for compilemessages, Nix for parsing and evaluating our Nix code,
# systemd-container and debootstrap for the systemd container testbed.
set -euo pipefail
wanted=(openssh-server openssh-client postgresql gettext nix-bin systemd-container debootstrap libssl-dev pkg-config)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "debian packages present"
fi
