# Shared by the installers and checks: where the project's Python lives.

# The first Python >= 3.12 found: $BITPOLL_PYTHON, then PATH, then pyenv's versions.
find_python312() {
  local candidate
  for candidate in "${BITPOLL_PYTHON:-}" python3.13 python3.12 \
    "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "error: no python >= 3.12 found; set BITPOLL_PYTHON to one" >&2
  return 1
}

cache_dir() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/bitpoll-nix"
}

# The tools venv is keyed by the installer's content so a changed pin builds a fresh one.
tools_venv_dir() {
  local key
  key=$(sha256sum "$(dirname "${BASH_SOURCE[0]}")/../install.d/30-python-tools.sh" | cut -c1-12)
  echo "$(cache_dir)/tools-venv-$key"
}
