{
  lib,
  buildPythonPackage,
  fetchPypi,
  hatchling,
  uv-dynamic-versioning,
  cryptography,
  requests,
  pytestCheckHook,
  responses,
}:

buildPythonPackage (finalAttrs: {
  pname = "cryptojwt";
  version = "1.11.0";
  pyproject = true;

  src = fetchPypi {
    inherit (finalAttrs) pname version;
    hash = "sha256-UVo0XT+wkWBvKTg0c22acs/5MqAhoZYviovG3ANYz7A=";
  };

  build-system = [
    hatchling
    uv-dynamic-versioning
  ];

  # The version comes from git tags, which an sdist does not have; uv-dynamic-versioning's
  # setup hook sets UV_DYNAMIC_VERSIONING_BYPASS to $version (facts/nixpkgs.toml).
  dependencies = [
    cryptography
    requests
  ];

  nativeCheckInputs = [
    pytestCheckHook
    responses
  ];

  # Both fetch a key set from login.salesforce.com; the build has no network. The other 410
  # tests pass without one.
  disabledTests = [
    "test_jwks_url"
    "test_jws_set_jku"
  ];

  pythonImportsCheck = [
    "cryptojwt"
    "cryptojwt.jwk"
    "cryptojwt.jws"
  ];

  meta = {
    description = "JSON Web Token (JWT, JWS, JWE and JWK) implementation";
    homepage = "https://github.com/IdentityPython/JWTConnect-Python-CryptoJWT";
    license = lib.licenses.asl20;
    mainProgram = "jwtpeek";
    maintainers = [ ];
  };
})
