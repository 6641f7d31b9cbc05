# Extra packages for the sandbox image:
#
#   lectic-nix-sandbox --nix-packages-file ./packages.example.nix -- rg --version
#
# The file is evaluated purely (no --impure), as a copy: it cannot import
# files beside it by relative path. Three forms are accepted.
#
# 1. A list of derivations. A plain file gets no `pkgs`, so it pins its own:
#
#      let
#        pkgs = import (builtins.fetchTarball {
#          url = "https://github.com/NixOS/nixpkgs/archive/<rev>.tar.gz";
#          sha256 = "<narHash>";
#        }) { };
#      in
#      [ pkgs.ripgrep ]
#
# 2. An attrset with a `packages` list (same caveat):
#
#      { packages = [ ... ]; }
#
# 3. A function of { pkgs, callPackage } returning either form. `pkgs` is
#    the nixpkgs the image itself is built from, so nothing is fetched
#    twice. This file uses this form:
{ pkgs, callPackage }:
{
  packages = [
    pkgs.ripgrep
    pkgs.python3
    (callPackage
      ({ writeShellScriptBin }:
        writeShellScriptBin "hello-sandbox" "echo hello from the sandbox")
      { })
  ];
}
