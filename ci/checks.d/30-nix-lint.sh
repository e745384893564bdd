#!/usr/bin/env bash
# Every Nix file tracked by git parses (nix-instantiate --parse), is formatted (nixfmt, RFC style)
# and has no dead code (deadnix). Prints how many files it checked and each failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

for tool in nix-instantiate nixfmt deadnix; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found; run ci/install.d/10-debian.sh and ci/install.d/20-nix-tools.sh" >&2
    exit 1
  fi
done

mapfile -t files < <(git ls-files -- '*.nix')
if [[ ${#files[@]} -eq 0 ]]; then
  echo "no tracked Nix files"
  exit 0
fi

failed=0
for file in "${files[@]}"; do
  if ! err=$(nix-instantiate --parse "$file" 2>&1 >/dev/null); then
    echo "FAIL parse $file: $err"
    failed=1
  fi
done
if ! nixfmt --check "${files[@]}"; then
  echo "FAIL nixfmt: run 'nixfmt FILE' on the files listed above"
  failed=1
fi
if ! deadnix --fail --quiet "${files[@]}"; then
  deadnix "${files[@]}" || true
  echo "FAIL deadnix: remove the unused bindings listed above"
  failed=1
fi

echo "checked ${#files[@]} Nix files (parse, nixfmt, deadnix)"
exit "$failed"
