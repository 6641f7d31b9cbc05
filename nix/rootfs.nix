# The sandbox as a root filesystem in the Nix store, which containers run in
# place (`podman create --rootfs`): no image is loaded or copied. It is the
# merged tree as symlinks into the store, the mount points a read-only root
# needs, and nix-support/container-env (the variables an image's config
# would set). The sandbox gives each container a private skeleton of this
# tree with its mount points (see src/container/root.rs) and bind-mounts
# exactly this path's closure at /nix/store, read-only.
{ pkgs, extraPackagesFile }:
let
  contents = import ./contents.nix { inherit pkgs extraPackagesFile; };
in
pkgs.runCommand "lectic-nix-sandbox-rootfs" { } ''
  mkdir -p $out
  cp -RP ${contents.tree}/. $out/
  chmod -R u+w $out
  mkdir -p $out/dev $out/proc $out/sys $out/run $out/tmp $out/var/tmp \
    $out/home/sandbox $out/nix/store $out/etc $out/nix-support
  ln -sfn /proc/mounts $out/etc/mtab
  for f in hosts hostname resolv.conf; do
    [ -e $out/etc/$f ] || : > $out/etc/$f
  done
  printf '%s\n' ${builtins.concatStringsSep " " (map (e: "'${e}'") contents.env)} \
    > $out/nix-support/container-env
''
