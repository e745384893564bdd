{
  lib,
  buildPythonPackage,
  fetchPypi,
  python,
  setuptools,
  django,
  django-pipeline,
  libsass,
}:

buildPythonPackage (finalAttrs: {
  pname = "libsasscompiler";
  version = "0.2.1";
  pyproject = true;

  src = fetchPypi {
    inherit (finalAttrs) pname version;
    hash = "sha256-Go0NnXfCGjY8gHd+shkH606ws8AcXoAdS4Nr2Dpn7N4=";
  };

  build-system = [ setuptools ];

  dependencies = [
    django
    django-pipeline
    libsass
  ];

  # setup.py reads its install_requires from a pip-compile lock file, so it demands exactly
  # django-pipeline==3.1.0 (python-modules/django-pipeline.nix is that version) and
  # libsass==0.23.0. The compiler only uses sass.compile, which any libsass nixpkgs may move
  # to provides.
  pythonRelaxDeps = [ "libsass" ];

  # Importing the module reads django-pipeline's settings, so a plain pythonImportsCheck fails
  # without a configured Django; configure a minimal one and import the compiler class instead.
  checkPhase = ''
    runHook preCheck
    ${python.interpreter} -c '
    from django.conf import settings
    settings.configure(PIPELINE={})
    from libsasscompiler import LibSassCompiler
    assert LibSassCompiler.output_extension == "css"
    '
    runHook postCheck
  '';

  meta = {
    description = "SCSS compiler for django-pipeline based on libsass";
    homepage = "https://github.com/sonic182/libsasscompiler";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
