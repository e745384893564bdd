# Bitpoll 0.10.0, the release before the one package/default.nix builds by default. The upgrade
# scenario starts a server on it and switches to 0.11.0.
#
# 0.10.0 pinned Django 5.0, which nixpkgs 26.05 no longer has; it runs on django_5 (5.2 LTS).
# Django 5.1 removed the STATICFILES_STORAGE setting that 0.10.0 uses, so without a change
# Django would silently fall back to its plain storage: no django-pipeline post-processing (the
# compiled SCSS bundles) and no staticfiles.json manifest. 0.11.0 moved the same value into
# STORAGES; postPatch makes exactly that change here.
{
  lib,
  callPackage,
}:

(callPackage ./default.nix {
  pin = lib.importJSON ./pins/bitpoll-0.10.0.json;
  selectDjango = ps: ps.django_5;
}).overrideAttrs
  (previousAttrs: {
    postPatch = (previousAttrs.postPatch or "") + ''
      substituteInPlace bitpoll/settings.py --replace-fail \
        "STATICFILES_STORAGE = 'pipeline.storage.PipelineManifestStorage'" \
        "STORAGES = {'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'}, 'staticfiles': {'BACKEND': 'pipeline.storage.PipelineManifestStorage'}}"
    '';
  })
