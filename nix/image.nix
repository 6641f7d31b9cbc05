# The sandbox image: a streamed, layered image (nothing but the stream script
# lands in the store; `podman load` reads it from a pipe).
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

  rootEnv = pkgs.buildEnv {
    name = "lectic-nix-sandbox-root";
    paths = basePackages ++ extraPackages;
  };
in
pkgs.dockerTools.streamLayeredImage {
  name = "lectic-nix-sandbox";
  contents = [
    rootEnv
    pkgs.dockerTools.usrBinEnv # /usr/bin/env for `#!/usr/bin/env` shebangs
    pkgs.dockerTools.binSh
    pkgs.dockerTools.caCertificates
    pkgs.dockerTools.fakeNss # root and nobody; Podman adds the invoking user
  ];
  extraCommands = ''
    mkdir -p tmp home/sandbox
    chmod 1777 tmp
    chmod 0777 home/sandbox
  '';
  config = {
    Env = [
      "PATH=/bin:/usr/bin"
      "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
      "GIT_SSL_CAINFO=/etc/ssl/certs/ca-bundle.crt"
    ];
    Cmd = [ "/bin/bash" ];
  };
}
