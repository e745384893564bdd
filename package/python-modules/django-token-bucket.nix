{
  lib,
  buildPythonPackage,
  fetchPypi,
  setuptools,
  django,
}:

buildPythonPackage (finalAttrs: {
  pname = "django-token-bucket";
  version = "0.2.4";
  pyproject = true;

  # PyPI names the sdist after the normalized project name (underscores).
  src = fetchPypi {
    pname = "django_token_bucket";
    inherit (finalAttrs) version;
    hash = "sha256-hkj4Vo2OXI0IR/T6/qzt5ZPPLCFJNnNWyEm9hkervCQ=";
  };

  # A setup.py-only sdist: setuptools builds it through its PEP 517 fallback.
  build-system = [ setuptools ];

  dependencies = [ django ];

  # The sdist ships no tests.
  doCheck = false;

  pythonImportsCheck = [ "django_token_bucket" ];

  meta = {
    description = "Token bucket rate limiting backed by the Django ORM";
    homepage = "https://github.com/fsinfuhh/django_token_bucket";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
