# The development shell (`nix develop`): the Rust toolchain for the harness, the Nix linters,
# Bitpoll's wrappers and Python environment, and `bitpoll-dev`, Django's auto-reloading
# development server on a Bitpoll checkout with the package's settings shim.
{
  mkShell,
  writeShellApplication,
  bitpoll,
  cargo,
  cargo-nextest,
  clippy,
  deadnix,
  nixfmt,
  rust-analyzer,
  rustc,
  rustfmt,
  rustPlatform,
}:

let
  # bitpoll-dev [CHECKOUT] [runserver arguments]: CHECKOUT defaults to $BITPOLL_SRC. Its state
  # (SQLite database, throwaway secrets, settings, compiled static files) lives in
  # $BITPOLL_DEV_STATE, by default .bitpoll-dev in the current directory. The shim is linked into
  # the checkout as bitpoll/settings_local.py, the file Bitpoll's .gitignore reserves for it.
  bitpoll-dev = writeShellApplication {
    name = "bitpoll-dev";
    runtimeInputs = [ bitpoll.pythonEnv ];
    text = ''
      src=''${1:-''${BITPOLL_SRC:-}}
      if [[ -z "$src" || ! -f "$src/manage.py" ]]; then
        echo "bitpoll-dev: no Bitpoll checkout; pass its path or set BITPOLL_SRC" >&2
        exit 64
      fi
      [[ $# -gt 0 ]] && shift
      src=$(cd "$src" && pwd)
      state=''${BITPOLL_DEV_STATE:-$PWD/.bitpoll-dev}
      mkdir -p "$state/secrets" "$state/static"
      chmod 0700 "$state" "$state/secrets"
      python - "$state/secrets" <<'EOF'
      import base64, os, secrets, sys
      for name, make in (("secret_key", lambda: secrets.token_urlsafe(50)),
                         ("encryption_key", lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())):
          path = os.path.join(sys.argv[1], name)
          if not os.path.exists(path):
              with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                  handle.write(make())
      EOF
      if [[ ! -f "$state/settings.json" ]]; then
        echo '{"DEBUG": true, "ALLOWED_HOSTS": ["localhost", "127.0.0.1"], "BASE_URL": "http://127.0.0.1:8000"}' \
          > "$state/settings.json"
      fi
      ln -sfn ${bitpoll.appDir}/bitpoll/settings_local.py "$src/bitpoll/settings_local.py"
      export DJANGO_SETTINGS_MODULE=bitpoll.settings
      export BITPOLL_STATE_DIR="$state"
      export BITPOLL_SETTINGS_FILE="$state/settings.json"
      export BITPOLL_STATIC_ROOT="$state/static"
      cd "$src"
      python manage.py migrate --noinput
      exec python manage.py runserver "$@"
    '';
  };
in
mkShell {
  packages = [
    cargo
    cargo-nextest
    clippy
    rust-analyzer
    rustc
    rustfmt
    deadnix
    nixfmt
    bitpoll
    bitpoll.pythonEnv
    bitpoll-dev
  ];

  # rust-analyzer finds the standard library's sources here.
  env.RUST_SRC_PATH = "${rustPlatform.rustLibSrc}";
}
