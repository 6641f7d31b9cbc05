# lectic-nix-sandbox itself, so `nix run` and `nix profile install` work.
#
# Built from pkgsStatic, nixpkgs' package set whose every program is linked
# statically (against musl): the same binary runs inside warm containers as
# their exec agent (src/agent), where no libc of ours is. It is how nixpkgs
# ships its static tools (pkgsStatic.ripgrep, ...), and buildRustPackage
# then keeps build scripts and proc macros (which cannot be static) on the
# build platform by itself; a glibc build would need glibc.static and
# RUSTFLAGS kept off them by hand, and glibc warns against static linking.
{ pkgs, src }:
let
  static = pkgs.pkgsStatic;
  # Completions and the man page come from running the binary, which a
  # build for another architecture cannot.
  canRun = static.stdenv.buildPlatform.canExecute static.stdenv.hostPlatform;
in
static.rustPlatform.buildRustPackage {
  pname = "lectic-nix-sandbox";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package.version;
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;
  postInstall = if canRun then ''
    mkdir -p $out/share/bash-completion/completions $out/share/zsh/site-functions \
      $out/share/fish/vendor_completions.d $out/share/man/man1
    $out/bin/lectic-nix-sandbox --completions bash > $out/share/bash-completion/completions/lectic-nix-sandbox
    $out/bin/lectic-nix-sandbox --completions zsh > $out/share/zsh/site-functions/_lectic-nix-sandbox
    $out/bin/lectic-nix-sandbox --completions fish > $out/share/fish/vendor_completions.d/lectic-nix-sandbox.fish
    $out/bin/lectic-nix-sandbox --man > $out/share/man/man1/lectic-nix-sandbox.1
  '' else "";
  # The tests need Podman, Nix and a real machine's /etc and / (the trust
  # checks walk them); `scripts/test` runs them. The build sandbox has none.
  doCheck = false;
  meta.mainProgram = "lectic-nix-sandbox";
}
