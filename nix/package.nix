# lectic-nix-sandbox itself, so `nix run` and `nix profile install` work.
{ pkgs, src }:
pkgs.rustPlatform.buildRustPackage {
  pname = "lectic-nix-sandbox";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package.version;
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;
  # Integration tests need Podman and Nix; `cargo test --lib` runs in the build.
  cargoTestFlags = [ "--lib" ];
  meta.mainProgram = "lectic-nix-sandbox";
}
