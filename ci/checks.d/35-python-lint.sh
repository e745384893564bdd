#!/usr/bin/env bash
# The project's Python: black (pyproject.toml's settings) and pyflakes over every tracked *.py
# file and every tracked script with a python3 shebang.
set -euo pipefail
source "$(dirname "$0")/../lib/python.sh"
cd "$(dirname "$0")/../.."
venv=$(tools_venv_dir)
mapfile -t files < <(
  {
    git ls-files '*.py'
    git ls-files | grep -v '\.py$' | while read -r file; do
      [[ -f "$file" ]] && head -n1 "$file" | grep -q '^#!.*python3' && echo "$file"
    done
  } | sort -u
)
echo "${#files[@]} Python files"
"$venv/bin/black" --check --quiet "${files[@]}" || {
  echo "error: black would reformat the files above; run: $venv/bin/black ${files[*]}" >&2
  exit 1
}
"$venv/bin/pyflakes" "${files[@]}"
echo "black and pyflakes: clean"
