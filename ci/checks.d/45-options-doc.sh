#!/usr/bin/env bash
# docs/options.md must match the option declarations of services.bitpoll. Rendering needs
# nixpkgs' lib (NIXPKGS_LIB), which this repository neither contains nor fetches: without it the
# check reports itself skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${NIXPKGS_LIB:-}" ]]; then
  echo "SKIPPED options doc check: NIXPKGS_LIB is not set (a path to nixpkgs' lib, e.g. the nix-community/nixpkgs.lib tree)"
  exit 0
fi
exec ci/gen-options-doc --check
