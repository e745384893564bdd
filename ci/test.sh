#!/usr/bin/env bash
# The project's test command (README, .ci/run). It installs what the tests need when missing,
# runs the static checks, the component checks and the whole test suite, and ends with the test
# runner's summary. Every part is idempotent, so a second run on the same machine only re-tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

section() { printf '\n==> %s\n' "$*"; }

# Installers, one file per concern, each a no-op when its tools are already present.
for installer in ci/install.d/*.sh; do
  section "install: ${installer##*/}"
  bash "$installer"
done

section "cargo fmt --check"
cargo fmt --all --check
section "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Component checks (Nix parsing and formatting, hardening score, package tests): each prints
# what it measured and exits non-zero on failure.
for check in ci/checks.d/*.sh; do
  section "check: ${check##*/}"
  bash "$check"
done

section "cargo nextest (harness and testbed tests)"
cargo nextest run --workspace --locked --no-fail-fast --status-level skip --final-status-level skip
