#!/usr/bin/env bash
# nixfmt (RFC style, the Rust port nixfmt_rs) and deadnix, from crates.io, pinned so that
# formatting verdicts do not change under us.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
install_crate() {
  local crate=$1 version=$2 binary=$3
  if command -v "$binary" >/dev/null && [[ -f "$HOME/.cargo/.crates.toml" ]] &&
    grep -q "^\"$crate $version " "$HOME/.cargo/.crates.toml"; then
    echo "$crate $version present"
  else
    cargo install --quiet --locked "$crate" --version "$version"
  fi
}
install_crate nixfmt_rs 0.5.3 nixfmt
install_crate deadnix 1.3.1 deadnix
