{
  lib,
  buildPythonPackage,
  fetchPypi,
  setuptools,
  django,
}:

buildPythonPackage (finalAttrs: {
  pname = "django-friendly-tag-loader";
  version = "1.3.2";
  pyproject = true;

  # PyPI names the sdist after the normalized project name (underscores).
  src = fetchPypi {
    pname = "django_friendly_tag_loader";
    inherit (finalAttrs) version;
    hash = "sha256-Nt4EC6jECLDm0fpX/4m0rxqpgGqvHPuqZzhhc3+0D3g=";
  };

  build-system = [ setuptools ];

  # pyproject.toml declares no dependencies, but the package is a Django template tag library
  # and imports django.
  dependencies = [ django ];

  # The tests need a configured Django project that the sdist does not provide.
  doCheck = false;

  pythonImportsCheck = [ "friendlytagloader" ];

  meta = {
    description = "Django template tags that load tag libraries only when they exist";
    homepage = "https://github.com/ataylor32/django-friendly-tag-loader";
    changelog = "https://github.com/ataylor32/django-friendly-tag-loader/blob/master/CHANGES.rst";
    license = lib.licenses.mit;
    maintainers = [ ];
  };
})
