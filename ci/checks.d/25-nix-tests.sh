#!/usr/bin/env bash
# The VM tests of nix-tests/ without a VM: every scenario file has a test and every test a
# scenario (discovery uses builtins only, so this part always runs), bad override and scenario
# files are refused with the file named, and, with nixpkgs' lib (NIXPKGS_LIB), every test's
# Python script is rendered and run against stand-in machines. Building and booting the VMs
# needs Nix with KVM: `nix flake check` (docs/vm-tests.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v nix-instantiate >/dev/null; then
  echo "error: nix-instantiate not found; run ci/install.d/10-debian.sh" >&2
  exit 1
fi
exec python3 nix-tests/tests/check_tests.py
