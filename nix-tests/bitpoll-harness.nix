# bitpoll-harness built from this workspace (Cargo.toml, Cargo.lock, harness/ and scenarios/,
# nothing else, so that editing the module does not rebuild it), with the shipped scenarios in
# share/bitpoll-harness/scenarios, where the binary looks for them beside itself. The flake exposes it as
# packages.bitpoll-harness; checks.harness-tests runs its unit tests. It lives here, next to the
# VM tests that run it, because harness/ holds only the crate.
{
  lib,
  rustPlatform,
  pkg-config,
  openssl,
  zlib,
}:
let
  manifest = lib.importTOML ../harness/Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "bitpoll-harness";
  inherit (manifest.package) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../harness
      ../scenarios
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [
    "--package"
    "bitpoll-harness"
  ];

  # ssh2's libssh2-sys builds the libssh2 it vendors (the crate's default; a system libssh2 is
  # used only with LIBSSH2_SYS_USE_PKG_CONFIG) against OpenSSL, which openssl-sys finds with
  # pkg-config, and links zlib through libz-sys (pkg-config as well). HTTPS uses rustls.
  nativeBuildInputs = [ pkg-config ];
  buildInputs = [
    openssl
    zlib
  ];

  postInstall = ''
    install -D -m 0644 -t "$out/share/bitpoll-harness/scenarios" scenarios/*.toml
  '';

  # The integration tests need an sshd, a systemd container and a Bitpoll checkout; the flake's
  # checks run the library's unit tests (checks.harness-tests) and the VM tests instead.
  doCheck = false;

  meta = {
    description = "Runs declarative scenarios that prove a Bitpoll deployment works";
    license = lib.licenses.mit;
    mainProgram = "bitpoll-harness";
    platforms = lib.platforms.linux;
  };
}
