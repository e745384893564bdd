#!/usr/bin/env bash
# The Python test runner: pytest in its own venv on Python >= 3.12 (Bitpoll 0.11 needs it),
# rebuilt only when this file's requirements change. The venv is built in place (scripts carry
# its absolute path in their shebangs) and marked complete last, so an interrupted build is
# rebuilt next time instead of being taken as good.
set -euo pipefail
source "$(dirname "$0")/../lib/python.sh"
venv=$(tools_venv_dir)
if [[ -f "$venv/.complete" ]]; then
  echo "pytest venv present: $venv"
  exit 0
fi
python=$(find_python312)
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "pytest==8.4.2" "black==26.10.1" "pyflakes==4.1.0"
touch "$venv/.complete"
echo "pytest venv created: $venv"
