#!/usr/bin/env bash
# The Python test runner: pytest in its own venv on Python 3.12 (Bitpoll 0.11 needs >= 3.12),
# rebuilt only when this file's requirements change.
set -euo pipefail
source "$(dirname "$0")/../lib/python.sh"
venv=$(tools_venv_dir)
if [[ -x "$venv/bin/pytest" ]]; then
  echo "pytest venv present: $venv"
  exit 0
fi
python=$(find_python312)
rm -rf "$venv.tmp"
"$python" -m venv "$venv.tmp"
"$venv.tmp/bin/pip" install --quiet --disable-pip-version-check "pytest==8.4.2"
mv "$venv.tmp" "$venv"
echo "pytest venv created: $venv"
