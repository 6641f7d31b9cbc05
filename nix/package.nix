# lectic-nix-sandbox itself, so `nix run` and `nix profile install` work.
# Linked statically (glibc's static libraries): the same binary runs inside
# warm containers as their exec agent (src/agent), where no libc of ours is.
{ pkgs, src }:
pkgs.rustPlatform.buildRustPackage {
  pname = "lectic-nix-sandbox";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package.version;
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;
  buildInputs = [ pkgs.glibc.static ];
  # buildRustPackage passes --target, so this reaches our crate and not the
  # proc macros (as .cargo/config.toml does for `cargo build`).
  RUSTFLAGS = "-C target-feature=+crt-static";
  # Completions and the man page, generated from the command line's
  # definition by the binary itself.
  postInstall = ''
    mkdir -p $out/share/bash-completion/completions $out/share/zsh/site-functions \
      $out/share/fish/vendor_completions.d $out/share/man/man1
    $out/bin/lectic-nix-sandbox --completions bash > $out/share/bash-completion/completions/lectic-nix-sandbox
    $out/bin/lectic-nix-sandbox --completions zsh > $out/share/zsh/site-functions/_lectic-nix-sandbox
    $out/bin/lectic-nix-sandbox --completions fish > $out/share/fish/vendor_completions.d/lectic-nix-sandbox.fish
    $out/bin/lectic-nix-sandbox --man > $out/share/man/man1/lectic-nix-sandbox.1
  '';
  # Integration tests need Podman and Nix; `cargo test --lib` runs in the build.
  cargoTestFlags = [ "--lib" ];
  meta.mainProgram = "lectic-nix-sandbox";
}
