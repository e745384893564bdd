# Stand-in for nixpkgs' nixos/tests/ssh-keys.nix (same interface: a function of pkgs to the
# snakeoil key pair), so that the VM tests evaluate without nixpkgs.
pkgs: {
  snakeOilPrivateKey = pkgs.writeText "privkey.snakeoil" "not a key";
  snakeOilPublicKey = "ecdsa-sha2-nistp256 AAAAstub snakeoil";
}
