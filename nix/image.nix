# The sandbox as an image: a streamed, layered image (nothing but the stream
# script lands in the store; `podman load` reads it from a pipe). The
# sandbox itself runs containerRootfs (rootfs.nix) instead; this output is
# for `--flake` users who want an image, and the benchmarks' comparison.
{ pkgs, extraPackagesFile }:
let
  contents = import ./contents.nix { inherit pkgs extraPackagesFile; };
in
pkgs.dockerTools.streamLayeredImage {
  name = "lectic-nix-sandbox";
  contents = [ contents.tree ];
  extraCommands = ''
    mkdir -p tmp home/sandbox
    chmod 1777 tmp
    chmod 0777 home/sandbox
  '';
  config = {
    Env = contents.env;
    Cmd = [ "/bin/bash" ];
  };
}
