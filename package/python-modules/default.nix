# The Python packages Bitpoll needs that nixpkgs lacks, as a Python package set extension
# (final: prev: { ... }). package/default.nix applies it to its own interpreter; the flake's
# overlay adds it to every Python package set through pythonPackagesExtensions.
final: _prev: {
  cryptojwt = final.callPackage ./cryptojwt.nix { };
  django-friendly-tag-loader = final.callPackage ./django-friendly-tag-loader.nix { };
  django-pipeline = final.callPackage ./django-pipeline.nix { };
  django-simple-csp = final.callPackage ./django-simple-csp.nix { };
  django-token-bucket = final.callPackage ./django-token-bucket.nix { };
  libsasscompiler = final.callPackage ./libsasscompiler.nix { };
  simple-openid-connect = final.callPackage ./simple-openid-connect.nix { };
}
