#!/usr/bin/env bash
# The offline hardening gate: renders Bitpoll's units from module/units.nix with placeholder
# paths (no nixpkgs needed) and scores every service with `systemd-analyze security
# --offline=true`. Prints each score; fails when one is above the budget (BITPOLL_SECURITY_BUDGET,
# default 1.0, on systemd-analyze's 0-10 exposure scale). Three configurations are scored: the
# default (no network at all), one with outbound addresses (a remote database or SMTP relay),
# and one with Prometheus metrics (a second socket, its environment and runtime directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
budget=${BITPOLL_SECURITY_BUDGET:-1.0}

if ! command -v systemd-analyze >/dev/null; then
  echo "error: systemd-analyze not found; install Debian's systemd package (ci/install.d/10-debian.sh)" >&2
  exit 1
fi
echo "systemd-analyze: $(systemd-analyze --version | head -n1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# systemd-analyze prints "→ Overall exposure level for NAME: 0.2 SAFE ..."; take the number.
score_of() {
  systemd-analyze security --offline=true --no-pager "$1" |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}

failed=0
checked=0
score_config() {
  local label=$1
  shift
  ci/render-units "$work/$label" "$@" >/dev/null
  local unit score
  for unit in "$work/$label"/*.service; do
    score=$(score_of "$unit")
    if [[ -z "$score" ]]; then
      echo "error: no score for $label/${unit##*/}: systemd-analyze printed no overall exposure level" >&2
      failed=1
      continue
    fi
    checked=$((checked + 1))
    if awk -v s="$score" -v b="$budget" 'BEGIN { exit !(s > b) }'; then
      echo "FAIL $label/${unit##*/}: exposure $score is above the budget $budget"
      systemd-analyze security --offline=true --no-pager "$unit" | grep '✗' || true
      failed=1
    else
      echo "ok   $label/${unit##*/}: exposure $score (budget $budget)"
    fi
  done
}

score_config default \
  --credential secret_key=/run/keys/bitpoll-secret-key
score_config outbound \
  --socket /run/bitpoll/bitpoll.sock \
  --outbound 192.0.2.10/32 --outbound localhost \
  --credential db_password=/run/keys/bitpoll-db-password
score_config metrics \
  --metrics-port 8081

echo "scored $checked services"
exit "$failed"
