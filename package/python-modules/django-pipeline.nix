{
  lib,
  buildPythonPackage,
  fetchPypi,
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

  # The suite cannot run in a build: its tests/settings.py globs node_modules for JavaScript
  # tools at import (an IndexError without them). Run here with pip (docs/packaging.md): on
  # Django 6.0.8 and on 5.2.19 alike 88 pass, 16 skip and 4 error, the finders' lookups of
  # missing files, whose find() predates Django 5.2's find_all argument. Bitpoll reaches the
  # finders only through collectstatic's list(), which works (the package's build proves it).
  doCheck = false;

  pythonImportsCheck = [ "pipeline" ];

  meta = {
    description = "Asset packaging library for Django";
    homepage = "https://github.com/jazzband/django-pipeline";
    changelog = "https://github.com/jazzband/django-pipeline/blob/${finalAttrs.version}/HISTORY.rst";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
