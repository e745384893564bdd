#!/usr/bin/env bash
# The pinned Bitpoll sources (package/pins/*.json) and the package's build phases:
#
# 1. Always: every pin file is a JSON object with exactly owner, repo, rev (a full commit id),
#    hash (an SRI sha256) and version, named after its version; package/default.nix and
#    package/previous.nix each name an existing pin.
# 2. With BITPOLL_SRC (the release package/default.nix pins) and BITPOLL_SRC_PREVIOUS (the one
#    package/previous.nix pins): the NAR hash of that checkout, as fetchFromGitHub plus the
#    package's postFetch produce it (the checkout without NotoColorEmoji.ttf and without build
#    products such as __pycache__ or compiled translations), is recomputed and compared with the
#    pin; both are printed.
# 3. With a checkout and NIXPKGS_LIB as well: package/build-script.nix renders the derivation's
#    build phases with Nix, and they run on the checkout with a pip venv at the versions of
#    package/nixpkgs-python-constraints.txt standing in for the Nix Python environment. The
#    result must have the documented layout, pass its install checks and serve Bitpoll.
#
# A part that lacks its inputs reports SKIPPED with the reason; it never passes silently.
set -euo pipefail
cd "$(dirname "$0")/../.."
source ci/lib/python.sh

failed=0
fail() {
  echo "FAIL $*"
  failed=1
}

# --- 1. pin files -------------------------------------------------------------------------
python3 - package/pins/*.json <<'EOF' || failed=1
import base64, json, os, re, sys
bad = False
for path in sys.argv[1:]:
    def fail(message):
        global bad
        bad = True
        print(f"FAIL {path}: {message}")
    try:
        with open(path) as handle:
            pin = json.load(handle)
    except (OSError, ValueError) as error:
        fail(f"not readable JSON ({error}); fix the file")
        continue
    if not isinstance(pin, dict):
        fail("must be a JSON object")
        continue
    keys = {"owner", "repo", "rev", "hash", "version"}
    if set(pin) != keys:
        fail(f"keys must be exactly {sorted(keys)}, found {sorted(pin)}")
        continue
    if not all(isinstance(pin[key], str) for key in keys):
        fail("every value must be a string")
        continue
    if not re.fullmatch(r"[A-Za-z0-9-]+", pin["owner"]) or not re.fullmatch(r"[A-Za-z0-9._-]+", pin["repo"]):
        fail(f"owner/repo {pin['owner']}/{pin['repo']} is not a GitHub repository name")
    if not re.fullmatch(r"[0-9a-f]{40}", pin["rev"]):
        fail(f"rev {pin['rev']!r} must be a full 40-digit lower-case commit id, not a tag or branch")
    match = re.fullmatch(r"sha256-([A-Za-z0-9+/]{43}=)", pin["hash"])
    if not match or len(base64.b64decode(match.group(1))) != 32:
        fail(f"hash {pin['hash']!r} must be an SRI sha256 hash (sha256-<44 base64 characters>)")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", pin["version"]):
        fail(f"version {pin['version']!r} must be a release number such as 0.11.0")
    elif os.path.basename(path) != f"bitpoll-{pin['version']}.json":
        fail(f"file name must be bitpoll-{pin['version']}.json for version {pin['version']}")
    if not bad:
        print(f"ok   {path}: {pin['owner']}/{pin['repo']} {pin['version']} at {pin['rev']}")
sys.exit(1 if bad else 0)
EOF

# The pin each Nix file imports: the checkouts are matched to pins through these.
pin_of() {
  local file=$1 pin
  pin=$(grep -o 'pins/bitpoll-[0-9.]*[0-9]\.json' "$file" | head -n 1)
  if [[ -z "$pin" || ! -f "package/$pin" ]]; then
    fail "$file names no existing pin file (package/pins/bitpoll-VERSION.json)"
    return 1
  fi
  echo "package/$pin"
}
current_pin=$(pin_of package/default.nix) || true
previous_pin=$(pin_of package/previous.nix) || true

json_field() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- 2. source hashes -----------------------------------------------------------------------
# Exports what fetchFromGitHub would unpack: the checkout without the font that the package's
# postFetch removes and without build products (ci/testbed/source_version.py, which the
# testbeds use to tell a tree's release).
export_tree() {
  python3 -c 'import sys; sys.path.insert(0, "ci/testbed"); import source_version; source_version.export_tree(*sys.argv[1:])' "$1" "$2"
}

check_hash() {
  local variable=$1 pin=$2 src=$3 expected actual
  expected=$(json_field "$pin" hash)
  if ! command -v nix >/dev/null; then
    fail "$variable: nix is needed to hash the checkout; run ci/install.d/10-debian.sh"
    return
  fi
  export_tree "$src" "$work/tree-$variable"
  actual=$(nix --extra-experimental-features nix-command hash path "$work/tree-$variable")
  echo "$variable=$src"
  echo "  pinned   ($pin): $expected"
  echo "  computed (checkout without NotoColorEmoji.ttf): $actual"
  if [[ "$actual" == "$expected" ]]; then
    echo "ok   the checkout reproduces the pinned hash"
  else
    fail "$variable: the checkout's hash differs from $pin; either it is not release $(json_field "$pin" version) or files were added to or changed in it (compare it with a fresh 'git archive' of the tag)"
  fi
}

checkouts=()
for entry in "BITPOLL_SRC:$current_pin:default" "BITPOLL_SRC_PREVIOUS:$previous_pin:previous"; do
  IFS=: read -r variable pin which <<<"$entry"
  src=${!variable:-}
  if [[ -z "$pin" ]]; then
    continue
  elif [[ -z "$src" ]]; then
    echo "SKIPPED source hash for $pin: $variable is not set (a checkout of Bitpoll $(json_field "$pin" version))"
  elif [[ ! -f "$src/manage.py" ]]; then
    fail "$variable=$src is not a Bitpoll checkout (no manage.py)"
  else
    check_hash "$variable" "$pin" "$src"
    checkouts+=("$variable:$which:$src")
  fi
done

# --- 3. build phases ------------------------------------------------------------------------
lib_dir=${NIXPKGS_LIB:-}
if [[ -n "$lib_dir" && -f "$lib_dir/lib/default.nix" ]]; then
  lib_dir=$lib_dir/lib
fi
if ((${#checkouts[@]} == 0)); then
  echo "SKIPPED build phases: neither BITPOLL_SRC nor BITPOLL_SRC_PREVIOUS is set"
elif [[ -z "$lib_dir" || ! -f "$lib_dir/default.nix" ]]; then
  echo "SKIPPED build phases: NIXPKGS_LIB is not set (a path to nixpkgs' lib, e.g. the nix-community/nixpkgs.lib tree)"
elif ! nix-instantiate --read-write-mode --eval -E 'builtins.toFile "bitpoll-probe" ""' >/dev/null 2>&1; then
  # Evaluating package/default.nix copies package/files into the store, as a build would.
  echo "SKIPPED build phases: nix-instantiate cannot write to the Nix store here (run as its owner)"
else
  python=$(find_python312)
  # nixpkgs 26.05's django_5 (5.2 LTS) for the previous release: 5.2.17 came with 6.0.8 in
  # Django's August 2026 security release (docs/packaging.md).
  django_5_version=5.2.17

  # A pip venv with the packages of the Nix Python environment, mapped from the attribute
  # names package/default.nix takes from nixpkgs and from package/python-modules/.
  venv_for() {
    local attributes=$1 requirements=() no_deps=() constraints key venv attribute
    constraints=$work/constraints.txt
    cp package/nixpkgs-python-constraints.txt "$constraints"
    for attribute in $attributes; do
      case $attribute in
        nixpkgs:django | nixpkgs:django_6) requirements+=(django) ;;
        nixpkgs:django_5)
          requirements+=("django==$django_5_version")
          sed -i '/^django==/d' "$constraints"
          ;;
        # python-ldap builds against OpenLDAP's headers; LDAP login is not exercised here.
        nixpkgs:django-auth-ldap) ;;
        # A wheel of the same version: nixpkgs builds psycopg2 against libpq.
        nixpkgs:psycopg2) requirements+=(psycopg2-binary) ;;
        # Its exact libsass pin is relaxed in the Nix package, so pip must not see it.
        local:libsasscompiler) no_deps+=(libsasscompiler) requirements+=(libsass) ;;
        nixpkgs:* | local:*) requirements+=("${attribute#*:}") ;;
      esac
    done
    key=$({
      "$python" --version
      cat "$constraints"
      echo "${requirements[*]} / ${no_deps[*]}"
    } | sha256sum | cut -c1-16)
    venv=$(cache_dir)/pkgsim-venv-$key
    if [[ ! -x "$venv/bin/python" ]]; then
      echo "creating $venv (${requirements[*]}; without dependencies: ${no_deps[*]})" >&2
      rm -rf "$venv.tmp"
      "$python" -m venv "$venv.tmp"
      URLLIB3_NO_OVERRIDE=1 "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check \
        -c "$constraints" "${requirements[@]}" >&2
      URLLIB3_NO_OVERRIDE=1 "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check \
        --no-deps -c "$constraints" "${no_deps[@]}" >&2
      mv "$venv.tmp" "$venv"
    fi
    echo "$venv"
  }

  # The font: Debian's build of Noto Color Emoji when installed, else a stand-in file.
  noto=$work/noto
  mkdir -p "$noto/share/fonts/noto"
  if [[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]]; then
    cp /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf "$noto/share/fonts/noto/"
  else
    head -c 65536 /dev/urandom >"$noto/share/fonts/noto/NotoColorEmoji.ttf"
  fi

  render() {
    local which=$1 interpreter=$2
    nix-instantiate --read-write-mode --eval --strict --json package/build-script.nix \
      --arg lib "import $lib_dir" --argstr which "$which" \
      --argstr interpreter "$interpreter" --argstr noto "$noto"
  }

  for entry in "${checkouts[@]}"; do
    IFS=: read -r variable which src <<<"$entry"
    # First pass: only the attribute names, to build the venv the phases will run with.
    if ! facts=$(render "$which" /nonexistent/python 2>"$work/eval.err"); then
      fail "package/$which.nix does not evaluate: $(tail -n 5 "$work/eval.err")"
      continue
    fi
    attributes=$(python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["pythonAttributes"]))' <<<"$facts")
    echo "package/$which.nix: Python environment from nixpkgs and package/python-modules: $attributes"
    venv=$(venv_for "$attributes")
    render "$which" "$venv/bin/python" >"$work/facts.json"
    python3 -c 'import json, sys; open(sys.argv[2], "w").write(json.load(open(sys.argv[1]))["script"])' \
      "$work/facts.json" "$work/phases-$which.sh"

    out=$work/out-$which
    log=$work/build-$which.log
    echo "running package/$which.nix's build phases on $variable=$src"
    # stdenv's shell helpers that the phases use, reduced to what they do here; the sourced
    # phases call them.
    # shellcheck disable=SC2317
    if ! (
      set -euo pipefail
      export out TMPDIR=$work/tmp-$which SOURCE_DATE_EPOCH=315532800
      mkdir -p "$TMPDIR"
      # The tree fetchFromGitHub and postFetch give the derivation, exported in part 2.
      cp -r "$work/tree-$variable" "$work/src-$which"
      chmod -R u+w "$work/src-$which"
      cd "$work/src-$which"
      runHook() { :; }
      patchShebangs() {
        local file
        for file in "$2"/*; do sed -i '1s|^#!/usr/bin/env bash$|#!'"$(command -v bash)"'|' "$file"; done
      }
      substitute() {
        local input=$1 output=$2
        shift 2
        cp "$input" "$output"
        while (($#)); do
          [[ $1 == --subst-var-by ]] || { echo "unsupported substitute option $1" >&2; return 1; }
          python3 -c 'import sys; p, k, v = sys.argv[1:]; s = open(p).read(); open(p, "w").write(s.replace("@" + k + "@", v))' \
            "$output" "$2" "$3"
          shift 3
        done
      }
      substituteInPlace() {
        [[ $2 == --replace-fail ]] || { echo "unsupported substituteInPlace option $2" >&2; return 1; }
        python3 -c 'import sys; p, old, new = sys.argv[1:]; s = open(p).read(); sys.exit(f"--replace-fail: {old!r} not found in {p}") if old not in s else open(p, "w").write(s.replace(old, new))' \
          "$1" "$3" "$4"
      }
      # shellcheck source=/dev/null
      source "$work/phases-$which.sh"
    ) >"$log" 2>&1; then
      fail "package/$which.nix's build phases failed on $src; the last lines of the log:"
      tail -n 20 "$log" | sed 's/^/    /'
      continue
    fi
    echo "ok   build phases: $(grep -c 'processing file' "$log") translations compiled, $(grep -o '[0-9]* static files copied' "$log")"

    # The layout of ARCHITECTURE.md.
    for path in bin/bitpoll-manage bin/bitpoll-server bin/bitpoll-ops share/bitpoll/app/manage.py \
      share/bitpoll/app/bitpoll/settings_local.py share/bitpoll/app/bitpoll_ops.py \
      share/bitpoll/static/staticfiles.json $(cd package/files && printf 'share/bitpoll/app/%s ' bitpoll_*.py); do
      [[ -e "$out/$path" ]] || fail "package/$which.nix: \$out/$path is missing"
    done

    # disallowedReferences: nothing in the output may still point at the font package.
    if links=$(find "$out" -lname "$noto/*") && [[ -n "$links" ]]; then
      fail "package/$which.nix: the output still links the font package (disallowedReferences): $links"
    fi

    # Serve it: prestart (secrets, migrations) and the server, as the module starts them.
    state=$work/state-$which
    mkdir -m 0700 "$state"
    port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '{"ALLOWED_HOSTS": ["127.0.0.1"], "BASE_URL": "http://127.0.0.1:%s"}\n' "$port" >"$work/settings-$which.json"
    export BITPOLL_SETTINGS_FILE=$work/settings-$which.json BITPOLL_STATE_DIR=$state
    if ! "$out/bin/bitpoll-ops" prestart >"$work/prestart-$which.log" 2>&1; then
      fail "bitpoll-ops prestart failed: $(tail -n 3 "$work/prestart-$which.log")"
      continue
    fi
    "$out/bin/bitpoll-server" --bind "127.0.0.1:$port" >"$work/server-$which.log" 2>&1 &
    server_pid=$!
    if "$python" - "$port" <<'EOF'; then
import re, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 30
while True:
    try:
        page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
        break
    except OSError as error:
        if time.monotonic() > deadline:
            sys.exit(f"no answer from {base}/ within 30 s: {error}")
        time.sleep(0.2)
stylesheets = re.findall(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', page)
if not stylesheets:
    sys.exit("the start page links no hashed stylesheet: the static manifest is not in use")
response = urllib.request.urlopen(base + stylesheets[0], timeout=5)
if "immutable" not in response.headers.get("Cache-Control", ""):
    sys.exit(f"{stylesheets[0]} is served without immutable caching")
print(f"ok   served: / and {stylesheets[0]} (Cache-Control: {response.headers['Cache-Control']})")
EOF
      :
    else
      fail "package/$which.nix's output does not serve Bitpoll; the server's log:"
      tail -n 10 "$work/server-$which.log" | sed 's/^/    /'
    fi
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  done
fi

if ((failed)); then
  echo "pins and build phases: FAILED"
  exit 1
fi
echo "pins and build phases: ok"
