# What the sandbox's root holds, for both forms of it (image.nix, rootfs.nix):
# the base tools, the packages file's packages, /usr/bin/env, /bin/sh, CA
# certificates and passwd/group entries, merged into one tree.
{ pkgs, extraPackagesFile }:
let
  extraPackages = import ./packages-file.nix { inherit pkgs; file = extraPackagesFile; };

  basePackages = with pkgs; [
    bashInteractive
    coreutils
    findutils
    gnugrep
    gnused
    gawk
    git
    jq
    curl
    cacert
    util-linux
  ];
in
{
  tree = pkgs.buildEnv {
    name = "lectic-nix-sandbox-root";
    paths = basePackages ++ extraPackages ++ [
      pkgs.dockerTools.usrBinEnv # /usr/bin/env for `#!/usr/bin/env` shebangs
      pkgs.dockerTools.binSh
      pkgs.dockerTools.caCertificates
      pkgs.dockerTools.fakeNss # root and nobody; the sandbox adds the invoking user
    ];
  };
  env = [
    "PATH=/bin:/usr/bin"
    "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
    "GIT_SSL_CAINFO=/etc/ssl/certs/ca-bundle.crt"
  ];
}
