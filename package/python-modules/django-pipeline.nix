{
  lib,
  buildPythonPackage,
  fetchPypi,
  python,
  setuptools,
  setuptools-scm,
  django,
}:

# nixpkgs dropped django-pipeline in 2021 (NixOS/nixpkgs#122763) and has not brought it back
# (facts/nixpkgs.toml), so it is packaged here at the version Bitpoll 0.11 pins.
buildPythonPackage (finalAttrs: {
  pname = "django-pipeline";
  version = "3.1.0";
  pyproject = true;

  # PyPI names the sdist after the normalized project name (underscores).
  src = fetchPypi {
    pname = "django_pipeline";
    inherit (finalAttrs) version;
    hash = "sha256-NkcK7O1IiWlLiZqZW80u2lEvRbYaxo1QrcWGPIutXuQ=";
  };

  # setup.py asks setuptools-scm for the version, which it reads from the sdist's PKG-INFO.
  build-system = [
    setuptools
    setuptools-scm
  ];

  dependencies = [ django ];

  # The suite upstream runs (Django's test runner with the sdist's tests.settings); the tests
  # that need Node.js tools skip themselves without them.
  checkPhase = ''
    runHook preCheck
    ${python.interpreter} -m django test --settings=tests.settings
    runHook postCheck
  '';

  pythonImportsCheck = [ "pipeline" ];

  meta = {
    description = "Asset packaging library for Django";
    homepage = "https://github.com/jazzband/django-pipeline";
    changelog = "https://github.com/jazzband/django-pipeline/blob/${finalAttrs.version}/HISTORY.rst";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
