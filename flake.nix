{
  description = "lectic-nix-sandbox: run Lectic's tool commands in a Nix-built, rootless Podman container";

  # nixpkgs is the only input. `lectic-nix-sandbox --nixpkgs REF` overrides it
  # (e.g. with your own registry entry, so no second nixpkgs is fetched).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (system: pkgs: {
        # The sandbox's root filesystem, run in place from the Nix store
        # (what the binary builds), and the same as an image. At run time
        # the binary replaces nix/extra-packages.nix with the user's
        # --nix-packages-file.
        containerRootfs = import ./nix/rootfs.nix {
          inherit pkgs;
          extraPackagesFile = ./nix/extra-packages.nix;
        };
        containerImage = import ./nix/image.nix {
          inherit pkgs;
          extraPackagesFile = ./nix/extra-packages.nix;
        };
        default = import ./nix/package.nix { inherit pkgs; src = self; };
      });

      apps = forAllSystems (system: pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/lectic-nix-sandbox";
        };
      });

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [ cargo rustc clippy rustfmt podman runc nix hyperfine ];
          # `cargo build` links statically (.cargo/config.toml), against
          # glibc's static libraries.
          buildInputs = [ pkgs.glibc.static ];
        };
      });
    };
}
