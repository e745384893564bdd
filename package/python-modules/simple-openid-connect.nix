{
  lib,
  buildPythonPackage,
  fetchPypi,
  flit-core,
  cryptojwt,
  django,
  furl,
  pydantic,
  requests,
}:

buildPythonPackage (finalAttrs: {
  pname = "simple-openid-connect";
  version = "2.4.0";
  pyproject = true;

  # PyPI names the sdist after the normalized project name (underscores).
  src = fetchPypi {
    pname = "simple_openid_connect";
    inherit (finalAttrs) version;
    hash = "sha256-EHcxnJR/Vo4I0dB4jrSA5WIFVklQ5LSJUbhQ9mwHO4k=";
  };

  build-system = [ flit-core ];

  dependencies = [
    cryptojwt
    furl
    pydantic
    requests
  ];

  optional-dependencies.django = [ django ];

  # The test suite needs the project's development dependencies (django-debug-toolbar, Django
  # REST framework) and an OpenID provider configured in tests/secrets.yml, which the sdist
  # leaves out.
  doCheck = false;

  pythonImportsCheck = [
    "simple_openid_connect"
    "simple_openid_connect.client"
  ];

  meta = {
    description = "Simple and opinionated OpenID Connect relying party and resource server";
    homepage = "https://github.com/fsinfuhh/py_simple_openid_connect";
    changelog = "https://github.com/fsinfuhh/py_simple_openid_connect/blob/main/CHANGELOG.md";
    license = lib.licenses.mit;
    mainProgram = "show-openid-tokens";
    maintainers = [ ];
  };
})
