#!/usr/bin/env bash
# The Python-side tests: the settings shim, the ops tool, the testbeds and the module's evaluation.
# Tests that need a Bitpoll checkout (BITPOLL_SRC) or nixpkgs' lib (NIXPKGS_LIB) report themselves
# skipped with the reason when those are absent; -rs prints every reason.
set -euo pipefail
source "$(dirname "$0")/../lib/python.sh"
cd "$(dirname "$0")/../.."
exec "$(tools_venv_dir)/bin/pytest" -rs
