{
  lib,
  buildPythonPackage,
  fetchPypi,
  hatchling,
  django,
}:

buildPythonPackage (finalAttrs: {
  pname = "django-simple-csp";
  version = "0.5.dev1";
  pyproject = true;

  # PyPI names the sdist after the normalized project name (underscores).
  src = fetchPypi {
    pname = "django_simple_csp";
    inherit (finalAttrs) version;
    hash = "sha256-6jAuiCMDGJphc2yDJgt5WUyNjPepx2XRKv72Mg35qu0=";
  };

  build-system = [ hatchling ];

  dependencies = [ django ];

  # The sdist ships no tests.
  doCheck = false;

  pythonImportsCheck = [
    "django_simple_csp"
    "django_simple_csp.middleware.csp"
  ];

  meta = {
    description = "Content Security Policy headers for Django";
    homepage = "https://github.com/fsinfuhh/django-simple-csp";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
