# Bitpoll, the Django poll and meeting scheduler, as a self-contained application:
#
#   bin/bitpoll-manage, bin/bitpoll-server, bin/bitpoll-ops   wrappers (package/files/*.in)
#   share/bitpoll/app/                                        manage.py, the bitpoll package with
#                                                             the settings shim and compiled
#                                                             translations, the ops tool
#   share/bitpoll/static/                                     collected static files
#
# The layout is the contract of ARCHITECTURE.md ("Package layout"). Call it with callPackage;
# `pin` selects the release (package/pins/*.json) and `selectDjango` the Django it runs on.
{
  lib,
  stdenvNoCC,
  fetchFromGitHub,
  python3,
  bash,
  gettext,
  noto-fonts-color-emoji,

  # The source: a JSON object { owner, repo, rev, hash, version } (package/pins/).
  pin ? lib.importJSON ./pins/bitpoll-0.11.0.json,
  # The Django of the whole Python package set, chosen from it. Bitpoll 0.11 needs Django 6.
  selectDjango ? ps: ps.django_6,
  # More Python packages for the application's environment, e.g. ps: [ ps.sentry-sdk ].
  extraPythonPackages ? _: [ ],
}:

let
  # Every package of this interpreter that depends on Django gets the selected Django, the way
  # nixpkgs' own Django applications (pretalx, weblate, linkding) pin theirs.
  python = python3.override {
    self = python;
    packageOverrides = lib.composeExtensions (import ./python-modules) (
      _final: prev: { django = selectDjango prev; }
    );
  };

  # Bitpoll's requirements.in and requirements-production.in (LDAP and OpenID login, PostgreSQL),
  # minus uWSGI (gunicorn serves it here) and sentry-sdk (optional: extraPythonPackages).
  pythonEnv = python.withPackages (
    ps:
    with ps;
    [
      caldav
      django
      django-auth-ldap
      django-encrypted-model-fields
      django-friendly-tag-loader
      django-markdownify
      django-pipeline
      django-simple-csp
      django-token-bucket
      django-widget-tweaks
      icalendar
      libsasscompiler
      pytz
      # Imported by Bitpoll's own code (calendar import, OpenID); listed rather than left to
      # arrive through caldav and simple-openid-connect.
      requests
      simple-openid-connect
      urllib3
      # The app server and its static file middleware, and the PostgreSQL driver.
      gunicorn
      psycopg2
      whitenoise
      # The optional Prometheus metrics (bitpoll_metrics.py); imported only when they are on.
      prometheus-client
    ]
    ++ extraPythonPackages ps
  );

  # Where the application and its static files live in $out (ARCHITECTURE.md).
  appSubdir = "share/bitpoll/app";
  staticSubdir = "share/bitpoll/static";
  # The package's own modules beside manage.py (package/files/bitpoll_*.py): the ops tool's
  # program and the modules it imports, and the health endpoint's middleware.
  appModules = lib.filter (name: lib.hasPrefix "bitpoll_" name && lib.hasSuffix ".py" name) (
    lib.attrNames (builtins.readDir ./files)
  );
  wrappers = [
    "bitpoll-manage"
    "bitpoll-server"
    "bitpoll-ops"
  ];
in

assert lib.assertMsg (lib.versionAtLeast python.pythonVersion "3.12")
  "bitpoll: needs Python 3.12 or newer, but python3 is ${python.pythonVersion}; pass a newer python3";

stdenvNoCC.mkDerivation (finalAttrs: {
  pname = "bitpoll";
  inherit (pin) version;

  # The tarball's bitpoll/base/static/fonts/NotoColorEmoji.ttf (about 11 MB) is removed while
  # fetching, so the pinned hash is that of the tree without it, which any checkout of the tag
  # reproduces (docs/packaging.md). installPhase links nixpkgs' build of the same font instead.
  src = fetchFromGitHub {
    inherit (pin)
      owner
      repo
      rev
      hash
      ;
    postFetch = ''
      rm -f "$out/bitpoll/base/static/fonts/NotoColorEmoji.ttf"
    '';
  };

  strictDeps = true;
  # The font is a build input only (see installPhase); Nix fails the build if the output
  # still refers to it.
  disallowedReferences = [ noto-fonts-color-emoji ];

  # gettext's msgfmt compiles the translations.
  nativeBuildInputs = [ gettext ];
  # The wrappers are bash scripts; patchShebangs points them at this bash.
  buildInputs = [ bash ];

  # Build-time manage.py runs need the settings shim's inputs: a settings file, the two secrets
  # and a state directory. They are throwaway values made in the build's temporary directory:
  # compilemessages and collectstatic never write them into their outputs, and no real secret
  # is ever known to the build.
  preBuild = ''
    export HOME="$TMPDIR"
    export PYTHONDONTWRITEBYTECODE=1
    export DJANGO_SETTINGS_MODULE=bitpoll.settings
    export BITPOLL_STATE_DIR="$TMPDIR/build-state"
    export BITPOLL_SETTINGS_FILE="$TMPDIR/build-settings.json"
    mkdir -p "$BITPOLL_STATE_DIR/secrets"
    ${pythonEnv.interpreter} - <<'EOF'
    import base64, os, secrets
    directory = os.path.join(os.environ["BITPOLL_STATE_DIR"], "secrets")
    with open(os.path.join(directory, "secret_key"), "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    with open(os.path.join(directory, "encryption_key"), "w") as handle:
        handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
    EOF
    chmod 0600 "$BITPOLL_STATE_DIR"/secrets/*
    echo '{"ALLOWED_HOSTS": ["localhost"], "BASE_URL": "http://localhost"}' > "$BITPOLL_SETTINGS_FILE"
  '';

  buildPhase = ''
    runHook preBuild

    install -m 0644 ${./files/settings_local.py} bitpoll/settings_local.py
    # compilemessages compiles every locale directory below the working directory, which
    # covers LOCALE_PATHS (./locale) and the apps' own.
    BITPOLL_STATIC_ROOT="$TMPDIR/unused-static" ${pythonEnv.interpreter} manage.py compilemessages

    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall

    app="$out/${appSubdir}"
    mkdir -p "$app" "$out/bin"
    cp -r manage.py bitpoll locale "$app/"
    # The package's own modules: the ops tool and the health endpoint.
    ${lib.concatMapStrings (name: ''
      install -m 0644 ${./files + "/${name}"} "$app/${name}"
    '') appModules}
    # scss/main.scss refers to this font; collectstatic copies it into the static files, after
    # which the link is removed again (below), so that the font package stays out of the
    # runtime closure: the static copy is all the server reads.
    emojiFont="$app/bitpoll/base/static/fonts/NotoColorEmoji.ttf"
    ln -s ${noto-fonts-color-emoji}/share/fonts/noto/NotoColorEmoji.ttf "$emojiFont"

    # The wrappers refer to this very output, so they are rendered here rather than by
    # replaceVars (a separate derivation cannot name $out). A placeholder left unreplaced would
    # only fail at run time, so the rendered files are checked for any.
    ${lib.concatMapStrings (name: ''
      substitute ${./files + "/${name}.in"} "$out/bin/${name}" \
        --subst-var-by python ${pythonEnv.interpreter} \
        --subst-var-by appDir "$app" \
        --subst-var-by staticRoot "$out/${staticSubdir}" \
        --subst-var-by version ${lib.escapeShellArg finalAttrs.version}
      chmod 0755 "$out/bin/${name}"
    '') wrappers}
    if grep -nE '@[A-Za-z_]+@' "$out"/bin/bitpoll-*; then
      echo "error: unreplaced placeholders in the wrappers above; add them to package/default.nix" >&2
      exit 1
    fi
    patchShebangs --host "$out/bin"

    # Collect through the wrapper that production uses, with the throwaway settings.
    "$out/bin/bitpoll-manage" collectstatic --noinput --verbosity 1
    rm "$emojiFont"
    # The manifest lists the files in the order the build's file system listed the source
    # directories; sorting it makes the output independent of that.
    ${pythonEnv.interpreter} - "$out/${staticSubdir}/staticfiles.json" <<'EOF'
    import json, sys
    with open(sys.argv[1]) as handle:
        manifest = json.load(handle)
    with open(sys.argv[1], "w") as handle:
        json.dump(manifest, handle, sort_keys=True)
    EOF

    # Compile the application's bytecode once, here: the store is read-only at run time.
    # SOURCE_DATE_EPOCH makes these checked-hash .pyc files, valid despite the store's mtimes.
    ${pythonEnv.interpreter} -m compileall -q "$app"

    runHook postInstall
  '';

  # Django's system checks load every app, the URL configuration and the templates settings, so
  # they catch a Python dependency missing from pythonEnv; the other tests check what
  # installPhase must have produced.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck

    "$out/bin/bitpoll-manage" check
    test -s "$out/${staticSubdir}/staticfiles.json" || {
      echo "error: collectstatic wrote no staticfiles.json manifest" >&2
      exit 1
    }
    test -s "$out/${appSubdir}/locale/de_DE/LC_MESSAGES/django.mo" || {
      echo "error: compilemessages did not compile the German translation" >&2
      exit 1
    }
    test -s "$out/${staticSubdir}/fonts/NotoColorEmoji.ttf" && ! test -L "$out/${staticSubdir}/fonts/NotoColorEmoji.ttf" || {
      echo "error: the Noto Color Emoji font is missing from the static files, or only linked there" >&2
      exit 1
    }

    runHook postInstallCheck
  '';

  passthru = {
    inherit pin python pythonEnv;
    appDir = "${finalAttrs.finalPackage}/${appSubdir}";
    staticRoot = "${finalAttrs.finalPackage}/${staticSubdir}";
    # The flake's checks hold the VM tests (nix-tests/); nothing here can build them without
    # the module, so this stays empty rather than pointing at tests that would not evaluate.
    tests = { };
  };

  meta = {
    description = "Web application for scheduling meetings and general polling";
    homepage = "https://github.com/fsinfuhh/Bitpoll";
    changelog = "https://github.com/fsinfuhh/Bitpoll/releases/tag/${finalAttrs.version}";
    license = lib.licenses.gpl3Only;
    mainProgram = "bitpoll-manage";
    maintainers = [ ];
    platforms = lib.platforms.linux;
  };
})
