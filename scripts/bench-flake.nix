# The benchmarks' 20,000-file content (as scripts/bench-image.py), once as a
# root filesystem run from the Nix store (#rootfs) and once as an image
# (#image), so both paths are measured on the same files. NIXPKGS is
# replaced by the fixture nixpkgs.
{
  inputs.nixpkgs.url = "NIXPKGS";
  outputs = { self, nixpkgs }:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      files = pkgs.runCommand "bench-files" { } ''
        i=0
        while [ $i -lt 20000 ]; do
          d=$out/files/d$((i / 500))
          [ -d $d ] || mkdir -p $d
          echo "file $i" > $d/f$i
          i=$((i + 1))
        done
      '';
      tree = pkgs.runCommand "bench-tree" { } ''
        mkdir -p $out/bin
        ln -s ${pkgs.busybox}/bin/busybox $out/bin/true
        ln -s ${pkgs.busybox}/bin/busybox $out/bin/sh
        ln -s ${files}/files $out/files
      '';
    in
    {
      packages.x86_64-linux = {
        rootfs = pkgs.runCommand "bench-rootfs" { } ''
          mkdir -p $out
          cp -RP ${tree}/. $out/
        '';
        image = pkgs.dockerTools.buildLayeredImage {
          name = "bench-files";
          contents = [ tree ];
        };
      };
    };
}
