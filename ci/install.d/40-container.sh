#!/usr/bin/env bash
# The systemd container testbed's root file system (Debian with systemd, by debootstrap), built
# once and cached under ${XDG_CACHE_HOME:-~/.cache}/bitpoll-nix/rootfs-<key>, so the container tests
# boot in about a second instead of paying for the build. A host that cannot build it (not root,
# no debootstrap) is left alone: the container tests then report themselves skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "container rootfs: not root, not built (the container tests will be skipped)"
  exit 0
fi
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  echo "container rootfs: debootstrap or systemd-nspawn missing (10-debian.sh installs them); not built"
  exit 0
fi
python3 ci/container/bitpoll-container build-rootfs
