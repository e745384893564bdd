#!/usr/bin/env bash
# facts/nixpkgs.toml and the stand-ins generated from it: every fact cites its source, the
# package's Python modules take only listed attributes, and a missing fact fails an evaluation
# with a message that names it (facts/check.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 facts/check.py
